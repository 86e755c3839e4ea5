package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterIsOffByDefault(t *testing.T) {
	c := Default()
	if c.Cluster.Enabled || c.Cluster.Provider != ClusterStatic || c.Cluster.Name != "chatbox" ||
		c.Cluster.Listen != "127.0.0.1:7000" || c.Cluster.DiscoveryListen != "127.0.0.1:7100" {
		t.Fatalf("cluster defaults: %+v", c.Cluster)
	}
}

func TestClusterValidation(t *testing.T) {
	mongo := func(c *Config) { c.Storage.MongoURI = "mongodb://127.0.0.1:27017" }
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; none: valid
	}{
		{"embedded store refused", func(c *Config) {
			c.Cluster.Enabled = true
			c.Cluster.Peers = []string{"127.0.0.1:7100"}
		}, []string{"cluster.enabled", "storage.mongo_uri"}},
		{"static with peers", func(c *Config) {
			mongo(c)
			c.Cluster.Enabled = true
			c.Cluster.Peers = []string{"127.0.0.1:7100", "127.0.0.1:7101"}
		}, nil},
		{"static without peers", func(c *Config) { mongo(c); c.Cluster.Enabled = true }, []string{"cluster.peers"}},
		{"bad peer", func(c *Config) {
			mongo(c)
			c.Cluster.Enabled = true
			c.Cluster.Peers = []string{"nohost"}
		}, []string{"cluster.peers: must be host:port"}},
		{"kubernetes needs no peers", func(c *Config) {
			mongo(c)
			c.Cluster.Enabled, c.Cluster.Provider = true, ClusterKubernetes
		}, nil},
		{"unknown provider", func(c *Config) { mongo(c); c.Cluster.Enabled, c.Cluster.Provider = true, "etcd" },
			[]string{`cluster.provider: must be "static" or "kubernetes", got "etcd"`}},
		{"bad listen", func(c *Config) {
			mongo(c)
			c.Cluster.Enabled, c.Cluster.Provider, c.Cluster.Listen = true, ClusterKubernetes, "7000"
		}, []string{"cluster.listen"}},
		{"disabled is not checked", func(c *Config) { c.Cluster.Provider = "nonsense" }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want an error naming %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestClusterFromFileAndEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatbox.toml")
	file := `
[storage]
mongo_uri = "mongodb://127.0.0.1:1"
[cluster]
enabled = true
listen = "127.0.0.1:7001"
peers = ["127.0.0.1:7100", "127.0.0.1:7101"]
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"CHATBOX_CLUSTER_ADVERTISE": "10.0.0.5:7001", "CHATBOX_CLUSTER_DISCOVERY_LISTEN": "127.0.0.1:7101"}
	c, err := Load(path, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	got := c.Cluster
	if !got.Enabled || got.Listen != "127.0.0.1:7001" || got.Advertise != "10.0.0.5:7001" ||
		got.DiscoveryListen != "127.0.0.1:7101" || len(got.Peers) != 2 {
		t.Fatalf("cluster section: %+v", got)
	}
}

func TestClusterUnknownKeyIsNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chatbox.toml")
	if err := os.WriteFile(path, []byte("[cluster]\nmembers = []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, nil); err == nil || !strings.Contains(err.Error(), "members") {
		t.Fatalf("unknown key: %v", err)
	}
}
