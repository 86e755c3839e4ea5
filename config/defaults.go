package config

import (
	"net"
	"slices"
	"time"
)

// Default returns the configuration used when there is no file and no
// environment: dev mode on 127.0.0.1:8080 with the demo model. It is what
// Load("", nil) returns, without validation. It is the one place the
// program's defaults are written: the components take resolved values, and
// their tests build them from Default.
func Default() *Config {
	c := scalarDefaults()
	c.applyDerivedDefaults()
	return c
}

// demoModel is the model configured when [[llm.models]] is empty.
var demoModel = Model{ID: "demo", Name: "Demo (offline)", Provider: ProviderDemo}

// scalarDefaults holds the defaults that the file and the environment
// overwrite, so that an explicit zero in the file stays zero.
func scalarDefaults() *Config {
	return &Config{
		Server: Server{
			Listen:          "127.0.0.1:8080",
			Mode:            ModeDev,
			MaxMessageBytes: 64 << 10,
			ShutdownTimeout: Duration{30 * time.Second},
			IdleTimeout:     Duration{60 * time.Second},
			PingInterval:    Duration{25 * time.Second},
			MaxConnections:  10000,

			HTTPIdleTimeout:        Duration{120 * time.Second},
			HTTPReadTimeout:        Duration{30 * time.Second},
			MaxHeaderBytes:         64 << 10,
			ShareRequestsPerMinute: 60,
		},
		Limits: Limits{
			MessagesPerMinute:  30,
			MessageBurst:       10,
			ConnectionsPerUser: 10,
			RepliesInFlight:    3,
		},
		Storage: Storage{
			Database: "chatbox",
			DataDir:  "./data",
			Timeout:  Duration{5 * time.Second},
			Sync:     SyncNormal,

			MaxUploadBytes: 10 << 20,
		},
		LLM: LLM{
			DefaultModel:      demoModel.ID,
			DemoDelay:         Duration{60 * time.Millisecond},
			ConnectTimeout:    Duration{10 * time.Second},
			FirstTokenTimeout: Duration{30 * time.Second},
			IdleTimeout:       Duration{30 * time.Second},
			MaxRetries:        2,
			ContextBudget:     24000,
		},
		Cluster: Cluster{
			Name:            "chatbox",
			Listen:          "127.0.0.1:7000",
			Provider:        ClusterStatic,
			DiscoveryListen: "127.0.0.1:7100",
		},
		Tuning: Tuning{
			SessionIdle:     2 * time.Minute,
			UserIdle:        time.Minute,
			OutboxLimit:     256,
			CheckpointEvery: 3 * time.Second,
			HistoryWindow:   200,

			WriteTimeout: 10 * time.Second,
			ReadyTimeout: 2 * time.Second,

			RetryBackoff:     200 * time.Millisecond,
			MaxRetryBackoff:  5 * time.Second,
			BreakerThreshold: 5,
			BreakerCooldown:  30 * time.Second,

			WebhookTimeout:  5 * time.Second,
			WebhookAttempts: 4,
			WebhookBackoff:  time.Second,
			WebhookQueue:    256,
		},
	}
}

// apiKeyEnv is the usual variable holding each vendor's API key.
var apiKeyEnv = map[string]string{
	ProviderOpenAI:    "OPENAI_API_KEY",
	ProviderAnthropic: "ANTHROPIC_API_KEY",
	ProviderGemini:    "GEMINI_API_KEY",
	ProviderDify:      "DIFY_API_KEY",
}

// applyDerivedDefaults fills what depends on other keys or is a list; it
// runs after the file and the environment.
func (c *Config) applyDerivedDefaults() {
	if len(c.Server.AllowedOrigins) == 0 {
		c.Server.AllowedOrigins = originsFor(c.Server.Listen)
	}
	if len(c.LLM.Models) == 0 {
		c.LLM.Models = []Model{demoModel}
	}
	for i := range c.LLM.Models {
		m := &c.LLM.Models[i]
		if m.Name == "" {
			m.Name = m.ID
		}
		if m.APIKeyEnv == "" {
			m.APIKeyEnv = apiKeyEnv[m.Provider]
		}
		if len(m.Input) == 0 {
			m.Input = []string{InputText}
		}
	}
	if len(c.Storage.UploadTypes) == 0 {
		c.Storage.UploadTypes = slices.Clone(DefaultUploadTypes)
	}
}

// originsFor derives the WebSocket Origin allowlist from the listen address:
// the page served by this server, and for a local listener the two names a
// developer types into a browser. It returns nil for an unparsable address,
// which Validate reports.
func originsFor(listen string) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return nil
	}
	var origins []string
	add := func(h string) {
		o := "http://" + net.JoinHostPort(h, port)
		for _, have := range origins {
			if have == o {
				return
			}
		}
		origins = append(origins, o)
	}
	if host != "" {
		add(host)
	}
	if isLocal(host) {
		add("localhost")
		add("127.0.0.1")
	}
	return origins
}

// isLocal reports whether a listener on host is reachable as localhost:
// loopback or the unspecified address ("", 0.0.0.0, ::).
func isLocal(host string) bool {
	if host == "" || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}
