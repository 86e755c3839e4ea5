package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// devConfig returns a valid dev-mode config whose data_dir is a fresh,
// not yet existing, directory.
func devConfig(t *testing.T) *Config {
	t.Helper()
	c := Default()
	c.Storage.DataDir = filepath.Join(t.TempDir(), "data")
	return c
}

func TestPrepareSecretsDev(t *testing.T) {
	first := devConfig(t)
	if err := first.PrepareSecrets(); err != nil {
		t.Fatal(err)
	}
	if len(first.JWTSecret()) == 0 {
		t.Fatal("no jwt secret generated")
	}
	key, _, err := first.EncryptionKeys()
	if err != nil || len(key) != KeySize {
		t.Fatalf("encryption key: %d bytes, %v", len(key), err)
	}

	dir := first.Storage.DataDir
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data_dir: %v, mode %v, want 0700", err, fi.Mode().Perm())
	}
	for _, name := range []string{"jwt_secret", "encryption_key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}

	// A restart reads the same secrets back.
	second := Default()
	second.Storage.DataDir = dir
	if err := second.PrepareSecrets(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.JWTSecret(), second.JWTSecret()) {
		t.Error("jwt secret changed across restarts")
	}
	if first.Storage.EncryptionKey != second.Storage.EncryptionKey {
		t.Error("encryption key changed across restarts")
	}
	// A fresh directory gets fresh secrets.
	third := devConfig(t)
	if err := third.PrepareSecrets(); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.JWTSecret(), third.JWTSecret()) || first.Storage.EncryptionKey == third.Storage.EncryptionKey {
		t.Error("two data dirs share a secret")
	}
}

func TestPrepareSecretsDevKeepsConfigured(t *testing.T) {
	c := devConfig(t)
	c.Auth.JWTSecret = "configured"
	c.Storage.EncryptionKey = testKey
	if err := c.PrepareSecrets(); err != nil {
		t.Fatal(err)
	}
	if string(c.JWTSecret()) != "configured" || c.Storage.EncryptionKey != testKey {
		t.Error("configured secrets replaced")
	}
	if _, err := os.Stat(c.Storage.DataDir); !os.IsNotExist(err) {
		t.Errorf("data_dir created although nothing was generated: %v", err)
	}

	t.Run("public key file means no jwt secret", func(t *testing.T) {
		c := devConfig(t)
		c.Auth.JWTPublicKeyFile = "jwt.pem"
		if err := c.PrepareSecrets(); err != nil {
			t.Fatal(err)
		}
		if c.JWTSecret() != nil {
			t.Error("jwt secret generated beside a public key file")
		}
	})
}

func TestPrepareSecretsDevClusterGeneratesNothing(t *testing.T) {
	c := devConfig(t)
	c.Cluster.Enabled = true
	wantErr(t, c.PrepareSecrets(), "auth.jwt_secret", "storage.encryption_key", "cluster.enabled")
	if _, err := os.Stat(c.Storage.DataDir); !os.IsNotExist(err) {
		t.Errorf("data_dir created: %v", err)
	}
	c.Auth.JWTSecret, c.Storage.EncryptionKey = "configured", testKey
	if err := c.PrepareSecrets(); err != nil {
		t.Fatalf("both configured: %v", err)
	}
}

func TestPrepareSecretsDevBadFile(t *testing.T) {
	tests := []struct{ file, content, want string }{
		{"encryption_key", "short\n", "storage.encryption_key: "},
		{"jwt_secret", "  \n", "auth.jwt_secret: "},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := devConfig(t)
			if err := os.MkdirAll(c.Storage.DataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(c.Storage.DataDir, tt.file)
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			wantErr(t, c.PrepareSecrets(), tt.want, path, "delete it")
		})
	}
}

func TestPrepareSecretsProduction(t *testing.T) {
	const goodSecret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means accepted
	}{
		{"complete", func(*Config) {}, ""},
		{"public key instead of secret", func(c *Config) { c.Auth.JWTSecret, c.Auth.JWTPublicKeyFile = "", "jwt.pem" }, ""},
		{"empty secret", func(c *Config) { c.Auth.JWTSecret = "" }, "auth.jwt_secret: must be set in production mode"},
		{"placeholder secret", func(c *Config) { c.Auth.JWTSecret = "placeholder-0123456789abcdef0123456789" }, "auth.jwt_secret: is a placeholder"},
		{"changeme secret", func(c *Config) { c.Auth.JWTSecret = "please-CHANGEME-0123456789abcdef0123" }, "auth.jwt_secret: is a placeholder"},
		{"change-me secret", func(c *Config) { c.Auth.JWTSecret = "change-me-0123456789abcdef0123456789" }, "auth.jwt_secret: is a placeholder"},
		{"change_me secret", func(c *Config) { c.Auth.JWTSecret = "change_me_0123456789abcdef0123456789" }, "auth.jwt_secret: is a placeholder"},
		{"short secret", func(c *Config) { c.Auth.JWTSecret = goodSecret[:31] }, "auth.jwt_secret: must be at least 32 bytes in production mode, got 31"},
		{"empty key", func(c *Config) { c.Storage.EncryptionKey = "" }, "storage.encryption_key: must be set in production mode"},
		{"placeholder key", func(c *Config) { c.Storage.EncryptionKey = "PLACEHOLDER" }, "storage.encryption_key: is a placeholder"},
		{"placeholder previous key", func(c *Config) { c.Storage.PreviousEncryptionKeys = []string{"changeme"} }, "storage.previous_encryption_keys[0]: is a placeholder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := devConfig(t)
			c.Server.Mode = ModeProduction
			c.Auth.JWTSecret = goodSecret
			c.Storage.EncryptionKey = testKey
			tt.mutate(c)
			err := c.PrepareSecrets()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
			} else {
				wantErr(t, err, tt.want)
				if s := c.Auth.JWTSecret; s != "" && strings.Contains(err.Error(), s) {
					t.Errorf("error quotes the secret: %v", err)
				}
			}
			if _, err := os.Stat(c.Storage.DataDir); !os.IsNotExist(err) {
				t.Errorf("production mode wrote to data_dir: %v", err)
			}
		})
	}
}

func TestEncryptionKeys(t *testing.T) {
	c := Default()
	if _, _, err := c.EncryptionKeys(); err == nil {
		t.Error("want an error before PrepareSecrets")
	}
	c.Storage.EncryptionKey = testKey
	c.Storage.PreviousEncryptionKeys = []string{longKey[:44], testKey}
	_, _, err := c.EncryptionKeys()
	wantErr(t, err, "storage.previous_encryption_keys[0]")

	other, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	c.Storage.PreviousEncryptionKeys = []string{other}
	cur, prev, err := c.EncryptionKeys()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := base64.StdEncoding.DecodeString(testKey)
	wantPrev, _ := base64.StdEncoding.DecodeString(other)
	if !bytes.Equal(cur, want) || len(prev) != 1 || !bytes.Equal(prev[0], wantPrev) {
		t.Errorf("got %x %x", cur, prev)
	}
}

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	for range 10 {
		k, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) != KeySize {
			t.Fatalf("key %d bytes, %v", len(b), err)
		}
		if seen[k] {
			t.Fatal("GenerateKey repeated a key")
		}
		seen[k] = true
	}
}

func TestJWTPublicKeyPEM(t *testing.T) {
	c := Default()
	if b, err := c.JWTPublicKeyPEM(); b != nil || err != nil {
		t.Errorf("unset: got %q, %v", b, err)
	}
	c.Auth.JWTPublicKeyFile = filepath.Join(t.TempDir(), "missing.pem")
	_, err := c.JWTPublicKeyPEM()
	wantErr(t, err, "read auth.jwt_public_key_file", "missing.pem")
}
