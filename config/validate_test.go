package config

import (
	"strings"
	"testing"
	"time"
)

const (
	testKey  = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="     // 32 bytes
	shortKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"         // 30 bytes
	longKey  = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==" // 34 bytes
)

func TestValidate(t *testing.T) {
	twoModels := func(c *Config) {
		c.LLM.Models = []Model{
			{ID: "demo", Name: "Demo", Provider: "demo"},
			{ID: "gpt", Name: "GPT", Provider: "openai", Model: "gpt-4o-mini"},
		}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"listen without port", func(c *Config) { c.Server.Listen = "localhost" },
			`server.listen: must be host:port`},
		{"listen bad port", func(c *Config) { c.Server.Listen = "localhost:http" },
			`server.listen: port must be a number`},
		{"listen port zero", func(c *Config) { c.Server.Listen = "127.0.0.1:0" }, ""},
		{"mode", func(c *Config) { c.Server.Mode = "prod" },
			`server.mode: must be "dev" or "production", got "prod"`},
		{"path prefix no slash", func(c *Config) { c.Server.PathPrefix = "chatbox" },
			`server.path_prefix: must start with "/" and not end with "/"`},
		{"path prefix trailing slash", func(c *Config) { c.Server.PathPrefix = "/chatbox/" },
			`server.path_prefix: must start with "/" and not end with "/"`},
		{"path prefix root", func(c *Config) { c.Server.PathPrefix = "/" },
			`server.path_prefix: must start with "/" and not end with "/"`},
		{"path prefix unclean", func(c *Config) { c.Server.PathPrefix = "/a//b" },
			`server.path_prefix: must be a plain path`},
		{"path prefix ok", func(c *Config) { c.Server.PathPrefix = "/a/chatbox" }, ""},
		{"origin with path", func(c *Config) { c.Server.AllowedOrigins = []string{"https://a.example/"} },
			`server.allowed_origins[0]: must be scheme://host[:port] with no path`},
		{"origin without scheme", func(c *Config) { c.Server.AllowedOrigins = []string{"https://ok.example", "a.example"} },
			`server.allowed_origins[1]: must be scheme://host[:port]`},
		{"origin wildcard", func(c *Config) { c.Server.AllowedOrigins = []string{"*"} },
			`server.allowed_origins[0]: must be scheme://host[:port]`},
		{"origin upper case", func(c *Config) { c.Server.AllowedOrigins = []string{"https://A.example"} },
			`server.allowed_origins[0]: must be lower case`},
		{"origin with query", func(c *Config) { c.Server.AllowedOrigins = []string{"https://a.example?x=1"} },
			`server.allowed_origins[0]: must be scheme://host[:port] with no path`},
		{"origin ok", func(c *Config) { c.Server.AllowedOrigins = []string{"https://a.example:8443", "http://[::1]:8080"} }, ""},
		{"cors origin", func(c *Config) { c.Server.CORSOrigins = []string{"https://a.example/app"} },
			`server.cors_origins[0]: must be scheme://host[:port] with no path`},
		{"http idle timeout zero", func(c *Config) { c.Server.HTTPIdleTimeout = Duration{} },
			`server.http_idle_timeout: must be a positive duration`},
		{"http read timeout negative", func(c *Config) { c.Server.HTTPReadTimeout = Duration{-time.Second} },
			`server.http_read_timeout: must be a positive duration`},
		{"header bytes too small", func(c *Config) { c.Server.MaxHeaderBytes = 16383 },
			`server.max_header_bytes: must be between 16384 and 1048576, got 16383`},
		{"header bytes too large", func(c *Config) { c.Server.MaxHeaderBytes = 1<<20 + 1 },
			`server.max_header_bytes: must be between 16384 and 1048576`},
		{"share limit negative", func(c *Config) { c.Server.ShareRequestsPerMinute = -1 },
			`server.share_requests_per_minute: must be 0 (no limit) or more, got -1`},
		{"share limit off", func(c *Config) { c.Server.ShareRequestsPerMinute = 0 }, ""},
		{"message too small", func(c *Config) { c.Server.MaxMessageBytes = 1023 },
			`server.max_message_bytes: must be between 1024 and 16777216, got 1023`},
		{"message too large", func(c *Config) { c.Server.MaxMessageBytes = 16777217 },
			`server.max_message_bytes: must be between 1024 and 16777216`},
		{"shutdown timeout", func(c *Config) { c.Server.ShutdownTimeout = Duration{} },
			`server.shutdown_timeout: must be a positive duration`},
		{"idle timeout", func(c *Config) { c.Server.IdleTimeout = Duration{-time.Second} },
			`server.idle_timeout: must be a positive duration`},
		{"ping slower than idle", func(c *Config) { c.Server.PingInterval = Duration{time.Minute} },
			`server.ping_interval: must be shorter than server.idle_timeout`},
		{"secret and public key", func(c *Config) { c.Auth.JWTSecret, c.Auth.JWTPublicKeyFile = "s", "k.pem" },
			`auth.jwt_secret: cannot be set together with auth.jwt_public_key_file`},
		{"mongo uri", func(c *Config) { c.Storage.MongoURI = "postgres://u:hunter2@db" },
			`storage.mongo_uri: must start with "mongodb://" or "mongodb+srv://"`},
		{"mongo srv uri", func(c *Config) { c.Storage.MongoURI = "mongodb+srv://cluster.example" }, ""},
		{"database", func(c *Config) { c.Storage.Database = "a.b" },
			`storage.database: must be a non-empty MongoDB database name`},
		{"data dir", func(c *Config) { c.Storage.DataDir = "" },
			`storage.data_dir: must not be empty`},
		{"key not base64", func(c *Config) { c.Storage.EncryptionKey = "not base64!" },
			`storage.encryption_key: must be base64 of exactly 32 bytes`},
		{"key short", func(c *Config) { c.Storage.EncryptionKey = shortKey },
			`storage.encryption_key: must be base64 of exactly 32 bytes (see "chatbox keygen"), got 30 bytes`},
		{"key long", func(c *Config) { c.Storage.EncryptionKey = longKey },
			`storage.encryption_key: must be base64 of exactly 32 bytes (see "chatbox keygen"), got 34 bytes`},
		{"key placeholder", func(c *Config) { c.Storage.EncryptionKey = "PLACEHOLDER-set-me" },
			`storage.encryption_key: is a placeholder`},
		{"key ok", func(c *Config) { c.Storage.EncryptionKey = testKey }, ""},
		{"previous key", func(c *Config) { c.Storage.PreviousEncryptionKeys = []string{testKey, shortKey} },
			`storage.previous_encryption_keys[1]: must be base64 of exactly 32 bytes`},
		{"storage timeout", func(c *Config) { c.Storage.Timeout = Duration{} },
			`storage.timeout: must be a positive duration`},
		{"storage sync", func(c *Config) { c.Storage.Sync = "always" },
			`storage.sync: must be "normal" or "full", got "always"`},
		{"default model", func(c *Config) { c.LLM.DefaultModel = "x" },
			`llm.default_model: "x" is not one of the configured models`},
		{"empty model id", func(c *Config) { c.LLM.Models[0].ID = "" },
			`llm.models[0].id: must not be empty`},
		{"duplicate id", func(c *Config) { twoModels(c); c.LLM.Models[1].ID = "demo" },
			`llm.models[1].id: duplicate "demo"`},
		{"provider", func(c *Config) { c.LLM.Models[0].Provider = "mistral" },
			`llm.models[0].provider: must be one of demo, openai, anthropic, gemini, dify, got "mistral"`},
		{"vendor model missing", func(c *Config) { twoModels(c); c.LLM.Models[1].Model = "" },
			`llm.models[1].model: must name the vendor's model`},
		{"base url", func(c *Config) { twoModels(c); c.LLM.Models[1].BaseURL = "localhost:11434/v1" },
			`llm.models[1].base_url: must be an http:// or https:// URL`},
		{"fallback unknown", func(c *Config) { twoModels(c); c.LLM.Models[1].Fallback = []string{"demo", "claude"} },
			`llm.models[1].fallback[1]: "claude" is not one of the configured models`},
		{"fallback self", func(c *Config) { twoModels(c); c.LLM.Models[1].Fallback = []string{"gpt"} },
			`llm.models[1].fallback[0]: "gpt" names the model itself`},
		{"fallback duplicate", func(c *Config) { twoModels(c); c.LLM.Models[1].Fallback = []string{"demo", "demo"} },
			`llm.models[1].fallback[1]: duplicate "demo"`},
		{"fallback ok", func(c *Config) { twoModels(c); c.LLM.Models[1].Fallback = []string{"demo"} }, ""},
		{"demo delay", func(c *Config) { c.LLM.DemoDelay = Duration{-time.Millisecond} },
			`llm.demo_delay: must not be negative`},
		{"demo delay zero", func(c *Config) { c.LLM.DemoDelay = Duration{} }, ""},
		{"connect timeout", func(c *Config) { c.LLM.ConnectTimeout = Duration{} },
			`llm.connect_timeout: must be a positive duration`},
		{"first token timeout", func(c *Config) { c.LLM.FirstTokenTimeout = Duration{} },
			`llm.first_token_timeout: must be a positive duration`},
		{"llm idle timeout", func(c *Config) { c.LLM.IdleTimeout = Duration{} },
			`llm.idle_timeout: must be a positive duration`},
		{"max retries", func(c *Config) { c.LLM.MaxRetries = -1 },
			`llm.max_retries: must be between 0 and 10, got -1`},
		{"context budget", func(c *Config) { c.LLM.ContextBudget = 0 },
			`llm.context_budget: must be a positive number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.mutate(c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			wantErr(t, err, tt.want)
		})
	}
}

func TestValidateReportsEverything(t *testing.T) {
	c := Default()
	c.Server.Mode = "prod"
	c.Storage.MongoURI = "postgres://user:hunter2@db"
	c.Storage.EncryptionKey = "hunter3"
	c.LLM.DefaultModel = "x"
	err := c.Validate()
	wantErr(t, err, "server.mode", "storage.mongo_uri", "storage.encryption_key", "llm.default_model")
	if got := strings.Count(err.Error(), "\n") + 1; got != 4 {
		t.Errorf("%d problems reported, want 4:\n%v", got, err)
	}
	for _, secret := range []string{"hunter2", "hunter3"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error quotes a secret: %v", err)
		}
	}
}

// Load runs Validate: a bad value from the file or the environment fails Load.
func TestLoadValidates(t *testing.T) {
	_, err := Load(writeConfig(t, "[server]\nmode = \"prod\"\n"), nil)
	wantErr(t, err, `server.mode: must be "dev" or "production", got "prod"`)
	_, err = Load("", env(map[string]string{"CHATBOX_LLM_DEFAULT_MODEL": "gpt"}))
	wantErr(t, err, `llm.default_model: "gpt" is not one of the configured models`)
}
