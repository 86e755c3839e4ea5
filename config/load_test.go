package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
	"pgregory.net/rapid"
)

// writeConfig writes a TOML file into a fresh directory and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chatbox.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// env returns a getenv reading from a map.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// mustLoad loads and fails the test on error.
func mustLoad(t *testing.T, path string, vars map[string]string) *Config {
	t.Helper()
	c, err := Load(path, env(vars))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// wantErr checks that err is non-nil and contains every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err, f)
		}
	}
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, "", nil)
	tests := []struct {
		key       string
		got, want any
	}{
		{"server.listen", c.Server.Listen, "127.0.0.1:8080"},
		{"server.mode", c.Server.Mode, "dev"},
		{"server.path_prefix", c.Server.PathPrefix, ""},
		{"server.allowed_origins", c.Server.AllowedOrigins, []string{"http://127.0.0.1:8080", "http://localhost:8080"}},
		{"server.cors_origins", c.Server.CORSOrigins, []string(nil)},
		{"server.max_message_bytes", c.Server.MaxMessageBytes, int64(65536)},
		{"server.shutdown_timeout", c.Server.ShutdownTimeout.Duration, 30 * time.Second},
		{"server.idle_timeout", c.Server.IdleTimeout.Duration, 60 * time.Second},
		{"server.ping_interval", c.Server.PingInterval.Duration, 25 * time.Second},
		{"auth.jwt_secret", c.Auth.JWTSecret, ""},
		{"storage.mongo_uri", c.Storage.MongoURI, ""},
		{"storage.database", c.Storage.Database, "chatbox"},
		{"storage.data_dir", c.Storage.DataDir, "./data"},
		{"storage.timeout", c.Storage.Timeout.Duration, 5 * time.Second},
		{"llm.default_model", c.LLM.DefaultModel, "demo"},
		{"llm.models", c.LLM.Models, []Model{{ID: "demo", Name: "Demo (offline)", Provider: "demo", Input: []string{"text"}}}},
		{"llm.transcribe_model", c.LLM.TranscribeModel, ""},
		{"storage.max_upload_bytes", c.Storage.MaxUploadBytes, int64(10 << 20)},
		{"storage.upload_types", c.Storage.UploadTypes, DefaultUploadTypes},
		{"llm.demo_delay", c.LLM.DemoDelay.Duration, 60 * time.Millisecond},
		{"llm.connect_timeout", c.LLM.ConnectTimeout.Duration, 10 * time.Second},
		{"llm.first_token_timeout", c.LLM.FirstTokenTimeout.Duration, 30 * time.Second},
		{"llm.idle_timeout", c.LLM.IdleTimeout.Duration, 30 * time.Second},
		{"llm.max_retries", c.LLM.MaxRetries, 2},
		{"llm.context_budget", c.LLM.ContextBudget, 24000},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
	if d := Default(); !reflect.DeepEqual(d, c) {
		t.Errorf("Default() = %+v, Load(\"\") = %+v", d, c)
	}
}

func TestDerivedDefaults(t *testing.T) {
	tests := []struct {
		listen string
		want   []string
	}{
		{"127.0.0.1:8080", []string{"http://127.0.0.1:8080", "http://localhost:8080"}},
		{"localhost:9000", []string{"http://localhost:9000", "http://127.0.0.1:9000"}},
		{"0.0.0.0:80", []string{"http://0.0.0.0:80", "http://localhost:80", "http://127.0.0.1:80"}},
		{":8080", []string{"http://localhost:8080", "http://127.0.0.1:8080"}},
		{"[::]:8080", []string{"http://[::]:8080", "http://localhost:8080", "http://127.0.0.1:8080"}},
		{"[::1]:8080", []string{"http://[::1]:8080", "http://localhost:8080", "http://127.0.0.1:8080"}},
		{"chat.example.com:8443", []string{"http://chat.example.com:8443"}},
		{"10.1.2.3:8080", []string{"http://10.1.2.3:8080"}},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			c := mustLoad(t, "", map[string]string{"CHATBOX_SERVER_LISTEN": tt.listen})
			if !slices.Equal(c.Server.AllowedOrigins, tt.want) {
				t.Errorf("allowed_origins = %q, want %q", c.Server.AllowedOrigins, tt.want)
			}
		})
	}

	t.Run("model name and api key env", func(t *testing.T) {
		c := mustLoad(t, writeConfig(t, `
[llm]
default_model = "g"
[[llm.models]]
id = "g"
provider = "openai"
model = "gpt-4o-mini"
[[llm.models]]
id = "a"
provider = "anthropic"
model = "claude"
[[llm.models]]
id = "m"
provider = "gemini"
model = "gemini"
api_key_env = "MY_KEY"
[[llm.models]]
id = "d"
provider = "demo"
`), nil)
		want := []struct{ name, keyEnv string }{{"g", "OPENAI_API_KEY"}, {"a", "ANTHROPIC_API_KEY"}, {"m", "MY_KEY"}, {"d", ""}}
		for i, w := range want {
			if m := c.LLM.Models[i]; m.Name != w.name || m.APIKeyEnv != w.keyEnv {
				t.Errorf("models[%d]: name %q api_key_env %q, want %q %q", i, m.Name, m.APIKeyEnv, w.name, w.keyEnv)
			}
		}
	})

	t.Run("explicit zero stays zero", func(t *testing.T) {
		c := mustLoad(t, writeConfig(t, "[llm]\nmax_retries = 0\ndemo_delay = \"0s\"\n"), nil)
		if c.LLM.MaxRetries != 0 || c.LLM.DemoDelay.Duration != 0 {
			t.Errorf("max_retries %d demo_delay %s, want 0 and 0s", c.LLM.MaxRetries, c.LLM.DemoDelay)
		}
	})
}

const fullConfig = `
[server]
listen = "0.0.0.0:9090"
mode = "production"
path_prefix = "/chatbox"
allowed_origins = ["https://chat.example.com"]
cors_origins = ["https://admin.example.com", "https://app.example.com:8443"]
max_message_bytes = 4096
shutdown_timeout = "10s"
idle_timeout = "2m"
ping_interval = "20s"
metrics_listen = "127.0.0.1:9100"
max_connections = 500
http_idle_timeout = "90s"
http_read_timeout = "15s"
max_header_bytes = 32768
share_requests_per_minute = 0

[auth]
jwt_secret = ""
jwt_public_key_file = "/etc/chatbox/jwt.pem"
issuer = "https://id.example.com"
audience = "chatbox"

[storage]
mongo_uri = "mongodb://db:27017/?replicaSet=rs0"
database = "chat"
data_dir = "/var/lib/chatbox"
encryption_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
previous_encryption_keys = ["ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="]
timeout = "2s"
sync = "full"

[llm]
default_model = "gpt"
demo_delay = "5ms"
connect_timeout = "3s"
first_token_timeout = "20s"
idle_timeout = "15s"
max_retries = 4
context_budget = 8000

[[llm.models]]
id = "gpt"
name = "GPT"
provider = "openai"
model = "gpt-4o-mini"
base_url = "http://127.0.0.1:11434/v1"
api_key_env = "MY_OPENAI_KEY"
system_prompt = "Be brief."
fallback = ["demo"]

[[llm.models]]
id = "demo"
name = "Demo"
provider = "demo"

[limits]
messages_per_minute = 5
message_burst = 2
connections_per_user = 3
replies_in_flight = 1
daily_tokens_per_user = 100000

[notify]
webhook_url = "https://hooks.example.com/chatbox"
`

func fullWant() *Config {
	return &Config{
		Server: Server{
			Listen:          "0.0.0.0:9090",
			Mode:            "production",
			PathPrefix:      "/chatbox",
			AllowedOrigins:  []string{"https://chat.example.com"},
			CORSOrigins:     []string{"https://admin.example.com", "https://app.example.com:8443"},
			MaxMessageBytes: 4096,
			ShutdownTimeout: Duration{10 * time.Second},
			IdleTimeout:     Duration{2 * time.Minute},
			PingInterval:    Duration{20 * time.Second},
			MetricsListen:   "127.0.0.1:9100",
			MaxConnections:  500,

			HTTPIdleTimeout: Duration{90 * time.Second},
			HTTPReadTimeout: Duration{15 * time.Second},
			MaxHeaderBytes:  32768,
		},
		Limits:  Limits{MessagesPerMinute: 5, MessageBurst: 2, ConnectionsPerUser: 3, RepliesInFlight: 1, DailyTokens: 100000},
		Notify:  Notify{WebhookURL: "https://hooks.example.com/chatbox"},
		Cluster: Default().Cluster, // the file has no [cluster]
		Auth: Auth{
			JWTPublicKeyFile: "/etc/chatbox/jwt.pem",
			Issuer:           "https://id.example.com",
			Audience:         "chatbox",
		},
		Storage: Storage{
			MongoURI:               "mongodb://db:27017/?replicaSet=rs0",
			Database:               "chat",
			DataDir:                "/var/lib/chatbox",
			EncryptionKey:          "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
			PreviousEncryptionKeys: []string{"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="},
			Timeout:                Duration{2 * time.Second},
			Sync:                   SyncFull,
			MaxUploadBytes:         10 << 20,
			UploadTypes:            DefaultUploadTypes,
		},
		LLM: LLM{
			DefaultModel: "gpt",
			Models: []Model{
				{ID: "gpt", Name: "GPT", Provider: "openai", Model: "gpt-4o-mini", BaseURL: "http://127.0.0.1:11434/v1",
					APIKeyEnv: "MY_OPENAI_KEY", SystemPrompt: "Be brief.", Fallback: []string{"demo"}, Input: []string{"text"}},
				{ID: "demo", Name: "Demo", Provider: "demo", Input: []string{"text"}},
			},
			DemoDelay:         Duration{5 * time.Millisecond},
			ConnectTimeout:    Duration{3 * time.Second},
			FirstTokenTimeout: Duration{20 * time.Second},
			IdleTimeout:       Duration{15 * time.Second},
			MaxRetries:        4,
			ContextBudget:     8000,
		},
		Tuning: Default().Tuning,
	}
}

func TestLoadFullFile(t *testing.T) {
	c := mustLoad(t, writeConfig(t, fullConfig), nil)
	if want := fullWant(); !reflect.DeepEqual(c, want) {
		t.Fatalf("loaded\n%+v\nwant\n%+v", c, want)
	}

	// Round trip: what Marshal writes, Load reads back unchanged.
	out, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again := mustLoad(t, writeConfig(t, string(out)), nil)
	out2, err := toml.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(out2) {
		t.Fatalf("round trip changed the config:\n%s\nthen\n%s", out, out2)
	}
}

func TestExampleFile(t *testing.T) {
	const example = "chatbox.example.toml"
	t.Run("as shipped equals the defaults", func(t *testing.T) {
		c := mustLoad(t, example, nil)
		b1, _ := toml.Marshal(c)
		b2, _ := toml.Marshal(Default())
		if string(b1) != string(b2) {
			t.Errorf("example differs from Default():\n%s\nvs\n%s", b1, b2)
		}
	})
	t.Run("with every commented model enabled", func(t *testing.T) {
		b, err := os.ReadFile(example)
		if err != nil {
			t.Fatal(err)
		}
		const marker = "# More models"
		before, after, ok := strings.Cut(string(b), marker)
		if !ok {
			t.Fatalf("%q marker missing", marker)
		}
		lines := []string{marker}
		for l := range strings.Lines(after) {
			if code, ok := strings.CutPrefix(l, "# "); ok && (strings.HasPrefix(code, "[[") || strings.Contains(code, " = ")) {
				l = code
			}
			lines = append(lines, l)
		}
		c := mustLoad(t, writeConfig(t, before+strings.Join(lines, "")), nil)
		var ids []string
		for _, m := range c.LLM.Models {
			ids = append(ids, m.ID)
		}
		if want := []string{"demo", "gpt", "claude", "gemini", "local", "vision", "whisper", "dify"}; !slices.Equal(ids, want) {
			t.Errorf("model ids %q, want %q", ids, want)
		}
	})
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"top level", "lisen = \"x\"\n", []string{`config `, `chatbox.toml:1: unknown key "lisen"`}},
		{"nested", "[server]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n", []string{`:3: unknown key "server.lisen"`}},
		{"dotted", "server.lisen = \"x\"\n", []string{`unknown key "server.lisen"`}},
		{"in llm.models", "[[llm.models]]\nid = \"demo\"\nprovider = \"demo\"\nmodle = \"x\"\n", []string{`:4: unknown key "llm.models.modle"`}},
		{"unknown table", "[sever]\nlisten = \"x\"\n", []string{`unknown table "sever"`}},
		{"all of them", "[server]\na = 1\nb = 2\n", []string{`unknown key "server.a"`, `unknown key "server.b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.text), nil)
			wantErr(t, err, tt.want...)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"wrong type", "[server]\nmax_message_bytes = \"big\"\n", []string{"config ", "chatbox.toml:2: server.max_message_bytes"}},
		{"bad duration", "[server]\nshutdown_timeout = \"soon\"\n", []string{"chatbox.toml:2: server.shutdown_timeout"}},
		{"duration as a number", "[llm]\nidle_timeout = 30\n", []string{"chatbox.toml: llm.idle_timeout: must be a duration string"}},
		{"list as a string", "[server]\nallowed_origins = \"x\"\n", []string{"chatbox.toml:2: server.allowed_origins: must be a list of strings, got a TOML string"}},
		{"syntax", "[server\n", []string{"chatbox.toml:1: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tt.text), nil)
			wantErr(t, err, tt.want...)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope.toml"), nil)
		wantErr(t, err, "read config", "nope.toml")
	})
	t.Run("secret not echoed", func(t *testing.T) {
		_, err := Load(writeConfig(t, "[auth]\njwt_secret = \"s3cr3t-value\" x\n"), nil)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error %v: want one without the secret", err)
		}
	})
}

func TestEnvOverrides(t *testing.T) {
	file := "[server]\nlisten = \"127.0.0.1:1111\"\n[storage]\nmongo_uri = \"mongodb://file\"\n"
	tests := []struct {
		name  string
		vars  map[string]string
		check func(*Config) bool
	}{
		{"string", map[string]string{"CHATBOX_STORAGE_MONGO_URI": "mongodb://env:27017"},
			func(c *Config) bool { return c.Storage.MongoURI == "mongodb://env:27017" }},
		{"string beats file", map[string]string{"CHATBOX_SERVER_LISTEN": "127.0.0.1:2222"},
			func(c *Config) bool {
				return c.Server.Listen == "127.0.0.1:2222" && slices.Contains(c.Server.AllowedOrigins, "http://localhost:2222")
			}},
		{"list", map[string]string{"CHATBOX_SERVER_ALLOWED_ORIGINS": " https://a.example , https://b.example:8443,"},
			func(c *Config) bool {
				return slices.Equal(c.Server.AllowedOrigins, []string{"https://a.example", "https://b.example:8443"})
			}},
		{"duration", map[string]string{"CHATBOX_SERVER_SHUTDOWN_TIMEOUT": "1m30s"},
			func(c *Config) bool { return c.Server.ShutdownTimeout.Duration == 90*time.Second }},
		{"int64", map[string]string{"CHATBOX_SERVER_MAX_MESSAGE_BYTES": "2048"},
			func(c *Config) bool { return c.Server.MaxMessageBytes == 2048 }},
		{"int", map[string]string{"CHATBOX_LLM_MAX_RETRIES": "0"},
			func(c *Config) bool { return c.LLM.MaxRetries == 0 }},
		{"empty is unset", map[string]string{"CHATBOX_STORAGE_MONGO_URI": ""},
			func(c *Config) bool { return c.Storage.MongoURI == "mongodb://file" }},
		{"secret", map[string]string{"CHATBOX_AUTH_JWT_SECRET": "from-env"},
			func(c *Config) bool { return string(c.JWTSecret()) == "from-env" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustLoad(t, writeConfig(t, file), tt.vars)
			if !tt.check(c) {
				t.Errorf("override %v not applied: %+v", tt.vars, c)
			}
		})
	}
}

// TestEnvNames pins the variable names: they are public contract.
func TestEnvNames(t *testing.T) {
	var got []string
	for _, v := range envVars(Default()) {
		got = append(got, v.name)
	}
	want := []string{
		"CHATBOX_SERVER_LISTEN", "CHATBOX_SERVER_MODE", "CHATBOX_SERVER_PATH_PREFIX",
		"CHATBOX_SERVER_ALLOWED_ORIGINS", "CHATBOX_SERVER_CORS_ORIGINS", "CHATBOX_SERVER_MAX_MESSAGE_BYTES",
		"CHATBOX_SERVER_SHUTDOWN_TIMEOUT", "CHATBOX_SERVER_IDLE_TIMEOUT", "CHATBOX_SERVER_PING_INTERVAL",
		"CHATBOX_SERVER_METRICS_LISTEN", "CHATBOX_SERVER_MAX_CONNECTIONS",
		"CHATBOX_SERVER_HTTP_IDLE_TIMEOUT", "CHATBOX_SERVER_HTTP_READ_TIMEOUT", "CHATBOX_SERVER_MAX_HEADER_BYTES",
		"CHATBOX_SERVER_SHARE_REQUESTS_PER_MINUTE",
		"CHATBOX_AUTH_JWT_SECRET", "CHATBOX_AUTH_JWT_PUBLIC_KEY_FILE", "CHATBOX_AUTH_ISSUER", "CHATBOX_AUTH_AUDIENCE",
		"CHATBOX_STORAGE_MONGO_URI", "CHATBOX_STORAGE_DATABASE", "CHATBOX_STORAGE_DATA_DIR",
		"CHATBOX_STORAGE_ENCRYPTION_KEY", "CHATBOX_STORAGE_PREVIOUS_ENCRYPTION_KEYS", "CHATBOX_STORAGE_TIMEOUT", "CHATBOX_STORAGE_SYNC",
		"CHATBOX_STORAGE_MAX_UPLOAD_BYTES", "CHATBOX_STORAGE_UPLOAD_TYPES",
		"CHATBOX_LLM_DEFAULT_MODEL", "CHATBOX_LLM_DEMO_DELAY", "CHATBOX_LLM_CONNECT_TIMEOUT",
		"CHATBOX_LLM_FIRST_TOKEN_TIMEOUT", "CHATBOX_LLM_IDLE_TIMEOUT", "CHATBOX_LLM_MAX_RETRIES", "CHATBOX_LLM_CONTEXT_BUDGET",
		"CHATBOX_LLM_TRANSCRIBE_MODEL",
		"CHATBOX_LIMITS_MESSAGES_PER_MINUTE", "CHATBOX_LIMITS_MESSAGE_BURST", "CHATBOX_LIMITS_CONNECTIONS_PER_USER",
		"CHATBOX_LIMITS_REPLIES_IN_FLIGHT", "CHATBOX_LIMITS_DAILY_TOKENS_PER_USER", "CHATBOX_NOTIFY_WEBHOOK_URL",
		"CHATBOX_CLUSTER_ENABLED", "CHATBOX_CLUSTER_NAME", "CHATBOX_CLUSTER_LISTEN", "CHATBOX_CLUSTER_ADVERTISE",
		"CHATBOX_CLUSTER_PROVIDER", "CHATBOX_CLUSTER_DISCOVERY_LISTEN", "CHATBOX_CLUSTER_PEERS",
	}
	if !slices.Equal(got, want) {
		t.Errorf("env names\n%q\nwant\n%q", got, want)
	}
	// Every key's type must be settable from a string.
	for _, v := range envVars(Default()) {
		sample := "1"
		if v.field.Type() == durationType {
			sample = "1s"
		}
		if err := setField(v.field, sample); err != nil {
			t.Errorf("%s: %v", v.name, err)
		}
	}
}

func TestEnvBadValue(t *testing.T) {
	tests := []struct{ name, value string }{
		{"CHATBOX_SERVER_SHUTDOWN_TIMEOUT", "soon"},
		{"CHATBOX_SERVER_MAX_MESSAGE_BYTES", "64k"},
		{"CHATBOX_LLM_MAX_RETRIES", "1.5"},
		{"CHATBOX_LLM_CONTEXT_BUDGET", "99999999999999999999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", env(map[string]string{tt.name: tt.value}))
			wantErr(t, err, tt.name, tt.value)
		})
	}
	t.Run("all reported", func(t *testing.T) {
		_, err := Load("", env(map[string]string{"CHATBOX_LLM_MAX_RETRIES": "x", "CHATBOX_LLM_IDLE_TIMEOUT": "y"}))
		wantErr(t, err, "CHATBOX_LLM_MAX_RETRIES", "CHATBOX_LLM_IDLE_TIMEOUT")
	})
}

// Any list of origins, however spaced, survives the trip through
// CHATBOX_SERVER_ALLOWED_ORIGINS.
func TestEnvOriginListProperty(t *testing.T) {
	label := rapid.StringMatching(`[a-z][a-z0-9-]{0,10}`)
	origin := rapid.Custom(func(t *rapid.T) string {
		o := rapid.SampledFrom([]string{"http", "https"}).Draw(t, "scheme") + "://" +
			strings.Join(rapid.SliceOfN(label, 1, 3).Draw(t, "labels"), ".")
		if rapid.Bool().Draw(t, "has port") {
			o += ":" + strconv.Itoa(rapid.IntRange(1, 65535).Draw(t, "port"))
		}
		return o
	})
	rapid.Check(t, func(t *rapid.T) {
		want := rapid.SliceOfN(origin, 1, 5).Draw(t, "origins")
		var b strings.Builder
		for i, o := range want {
			if i > 0 {
				b.WriteString(rapid.SampledFrom([]string{",", ", ", " ,", " , "}).Draw(t, "sep"))
			}
			b.WriteString(o)
		}
		c, err := Load("", env(map[string]string{"CHATBOX_SERVER_ALLOWED_ORIGINS": b.String()}))
		if err != nil {
			t.Fatalf("Load(%q): %v", b.String(), err)
		}
		if !slices.Equal(c.Server.AllowedOrigins, want) {
			t.Fatalf("got %q, want %q", c.Server.AllowedOrigins, want)
		}
	})
}

func TestDeskReplies(t *testing.T) {
	c := mustLoad(t, writeConfig(t, `
[[desk.replies]]
id = "hi"
title = "Greeting"
text = "Hello!"

[[desk.replies]]
id = "bye"
title = "Farewell"
text = "Goodbye."
`), nil)
	want := []Reply{{"hi", "Greeting", "Hello!"}, {"bye", "Farewell", "Goodbye."}}
	if !slices.Equal(c.Desk.Replies, want) {
		t.Errorf("replies = %+v, want %+v", c.Desk.Replies, want)
	}
	for _, tc := range []struct{ text, key string }{
		{"[[desk.replies]]\nid = \"a\"\ntitle = \"A\"\ntext = \"x\"\n[[desk.replies]]\nid = \"a\"\ntitle = \"B\"\ntext = \"y\"\n", "desk.replies[1].id"},
		{"[[desk.replies]]\nid = \"a\"\ntext = \"x\"\n", "desk.replies[0].title"},
		{"[[desk.replies]]\nid = \"a\"\ntitle = \"A\"\n", "desk.replies[0].text"},
		{"[[desk.replies]]\nid = \"a\"\ntitle = \"A\"\ntext = \"x\"\nbody = \"y\"\n", "body"},
	} {
		_, err := Load(writeConfig(t, tc.text), func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("config %q: err = %v, want it to name %s", tc.text, err, tc.key)
		}
	}
}
