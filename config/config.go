package config

import "time"

// Modes of operation.
const (
	ModeDev        = "dev"
	ModeProduction = "production"
)

// Providers a model may name.
const (
	ProviderDemo      = "demo"
	ProviderOpenAI    = "openai"
	ProviderAnthropic = "anthropic"
	ProviderGemini    = "gemini"
	ProviderDify      = "dify"
)

// Config is the whole configuration; its TOML layout is CONTRACT §2.
type Config struct {
	Server  Server  `toml:"server"`
	Auth    Auth    `toml:"auth"`
	Storage Storage `toml:"storage"`
	LLM     LLM     `toml:"llm"`
	Limits  Limits  `toml:"limits"`
	Notify  Notify  `toml:"notify"`
	Desk    Desk    `toml:"desk"`
	Cluster Cluster `toml:"cluster"`
	// Tuning is not read from the file or the environment; see [Tuning].
	Tuning Tuning `toml:"-"`
}

// Tuning holds the values the components need that are not configuration
// keys. They are fixed by [Default], so that every default of the program
// is written once, here; tests shorten them. The components refuse a zero in any of them.
type Tuning struct {
	// Actors.
	SessionIdle     time.Duration // a session actor with nothing to do stops after this
	UserIdle        time.Duration // a user actor with no connection or session stops after this
	OutboxLimit     int           // events queued per connection before it is closed with 1013
	CheckpointEvery time.Duration // a long reply is stored this often while it streams
	HistoryWindow   int           // messages a session keeps in memory for context

	// Transport.
	WriteTimeout time.Duration // one WebSocket frame write (and read)
	ReadyTimeout time.Duration // the store ping behind /readyz

	// The model catalog.
	RetryBackoff     time.Duration // base of the jittered exponential backoff between retries
	MaxRetryBackoff  time.Duration // cap of one wait, a vendor's Retry-After included
	BreakerThreshold int           // consecutive failures that open a model's circuit breaker
	BreakerCooldown  time.Duration // how long an open breaker fails fast

	// The notify webhook.
	WebhookTimeout  time.Duration // one POST
	WebhookAttempts int           // POSTs per event, the first included
	WebhookBackoff  time.Duration // first retry wait, doubled each time
	WebhookQueue    int           // events waiting to be sent
}

// Server is the [server] section: the listener, the WebSocket limits and
// the browser-facing allowlists.
type Server struct {
	Listen          string   `toml:"listen"`            // default "127.0.0.1:8080"
	Mode            string   `toml:"mode"`              // "dev" (default) or "production"
	PathPrefix      string   `toml:"path_prefix"`       // "" or "/something", no trailing slash
	AllowedOrigins  []string `toml:"allowed_origins"`   // WebSocket Origin allowlist; default derived from listen
	CORSOrigins     []string `toml:"cors_origins"`      // HTTP API CORS allowlist
	MaxMessageBytes int64    `toml:"max_message_bytes"` // default 65536
	ShutdownTimeout Duration `toml:"shutdown_timeout"`  // default 30s
	IdleTimeout     Duration `toml:"idle_timeout"`      // a silent peer is closed after this; default 60s
	PingInterval    Duration `toml:"ping_interval"`     // server pings this often; default 25s
	// MetricsListen, when set, serves /metrics on this address only, not
	// on the public listener.
	MetricsListen  string `toml:"metrics_listen"`
	MaxConnections int    `toml:"max_connections"` // all users together; 503 before the upgrade when full; default 10000
	// HTTP limits (CONTRACT §14).
	HTTPIdleTimeout        Duration `toml:"http_idle_timeout"`         // an idle keep-alive HTTP connection is closed after this; default 120s
	HTTPReadTimeout        Duration `toml:"http_read_timeout"`         // a request's headers and body must have arrived by then; default 30s
	MaxHeaderBytes         int      `toml:"max_header_bytes"`          // larger request headers: 431; default 65536
	ShareRequestsPerMinute int      `toml:"share_requests_per_minute"` // per client address on the anonymous share route; 429 past it; 0: off; default 60
}

// Limits protect the service from one user's excess. Zero turns a limit off.
type Limits struct {
	MessagesPerMinute  int `toml:"messages_per_minute"`   // per user, all devices together; default 30
	MessageBurst       int `toml:"message_burst"`         // messages allowed at once before the rate applies; default 10
	ConnectionsPerUser int `toml:"connections_per_user"`  // default 10
	RepliesInFlight    int `toml:"replies_in_flight"`     // generations at once per user; default 3
	DailyTokens        int `toml:"daily_tokens_per_user"` // model tokens per user per UTC day; default 0 (no quota)
}

// Notify configures outbound alerts.
type Notify struct {
	WebhookURL string `toml:"webhook_url"` // POSTed JSON when a user asks for a human
}

// Cluster is the [cluster] section: several nodes as one protoactor-go
// cluster (CONTRACT §12). Disabled, the node runs alone as before.
type Cluster struct {
	Enabled bool   `toml:"enabled"`
	Name    string `toml:"name"`   // nodes with the same name form one cluster; default "chatbox"
	Listen  string `toml:"listen"` // actor traffic between nodes; default 127.0.0.1:7000
	// Advertise is the address other nodes dial; empty: Listen.
	Advertise string `toml:"advertise"`
	// Provider finds the members: "static" (a fixed list, protoactor's
	// automanaged provider) or "kubernetes" (the pods of this deployment).
	Provider string `toml:"provider"`
	// DiscoveryListen is this node's membership endpoint (static only);
	// default 127.0.0.1:7100.
	DiscoveryListen string `toml:"discovery_listen"`
	// Peers is every member's discovery_listen address, this one included
	// (static only).
	Peers []string `toml:"peers"`
}

// Cluster providers.
const (
	ClusterStatic     = "static"
	ClusterKubernetes = "kubernetes"
)

// Auth is the [auth] section: how bearer tokens are verified. At most one
// of JWTSecret (HS256) and JWTPublicKeyFile (RS256/ES256) is set.
type Auth struct {
	JWTSecret        string `toml:"jwt_secret"`
	JWTPublicKeyFile string `toml:"jwt_public_key_file"`
	Issuer           string `toml:"issuer"`
	Audience         string `toml:"audience"`
}

// Storage is the [storage] section: where conversations live and the keys
// that encrypt message text.
type Storage struct {
	MongoURI               string   `toml:"mongo_uri"`
	Database               string   `toml:"database"` // default "chatbox"
	DataDir                string   `toml:"data_dir"` // default "./data"
	EncryptionKey          string   `toml:"encryption_key"`
	PreviousEncryptionKeys []string `toml:"previous_encryption_keys"`
	Timeout                Duration `toml:"timeout"` // deadline of one store call; default 5s
	// Sync is the embedded store's durability: "normal" (default) survives
	// a crash of the process, "full" also a loss of power, at a cost per
	// commit. MongoDB's own write concern governs the production store.
	Sync string `toml:"sync"`
	// MaxUploadBytes bounds one attachment upload; default 10 MiB.
	MaxUploadBytes int64 `toml:"max_upload_bytes"`
	// UploadTypes are the media types an upload may have, as sniffed from
	// its bytes; default DefaultUploadTypes.
	UploadTypes []string `toml:"upload_types"`
}

// DefaultUploadTypes are the upload types allowed when storage.upload_types
// is not set (CONTRACT §9).
var DefaultUploadTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
	"text/plain", "audio/webm", "audio/ogg", "audio/mpeg", "audio/wav", "audio/mp4"}

// Embedded store durability levels (storage.sync).
const (
	SyncNormal = "normal"
	SyncFull   = "full"
)

// LLM is the [llm] section: the models clients may select and the limits
// applied to every provider call.
type LLM struct {
	DefaultModel string  `toml:"default_model"` // default "demo"
	Models       []Model `toml:"models"`        // default: the one demo model
	// DemoDelay is the pause between the demo provider's words; default 60ms.
	DemoDelay Duration `toml:"demo_delay"`

	ConnectTimeout    Duration `toml:"connect_timeout"`     // dial + TLS + response headers; default 10s
	FirstTokenTimeout Duration `toml:"first_token_timeout"` // request start to first text; default 30s
	IdleTimeout       Duration `toml:"idle_timeout"`        // longest gap between chunks; default 30s
	MaxRetries        int      `toml:"max_retries"`         // before the first token; default 2
	// ContextBudget caps the conversation sent to a model, in characters,
	// trimmed from the oldest end; default 24000.
	ContextBudget int `toml:"context_budget"`
	// TranscribeModel names a model of provider openai whose base URL and
	// key transcribe voice notes (POST {base_url}/audio/transcriptions);
	// its model field is the transcription model, e.g. "whisper-1". Empty:
	// voice notes reach models as a placeholder.
	TranscribeModel string `toml:"transcribe_model"`
}

// Model is one [[llm.models]] entry: a model id clients select and the
// provider that serves it.
type Model struct {
	ID           string   `toml:"id"`
	Name         string   `toml:"name"`
	Provider     string   `toml:"provider"` // demo | openai | anthropic | gemini
	Model        string   `toml:"model"`
	BaseURL      string   `toml:"base_url"`
	APIKeyEnv    string   `toml:"api_key_env"`
	SystemPrompt string   `toml:"system_prompt"`
	Fallback     []string `toml:"fallback"` // model ids tried in order before the first token
	// Input lists what the model accepts: "text", "image", "pdf",
	// "audio"; default ["text"]. Attachments of other kinds reach it as a
	// placeholder naming the file.
	Input []string `toml:"input"`
}

// Model inputs ([[llm.models]] input).
const (
	InputText  = "text"
	InputImage = "image"
	InputPDF   = "pdf"
	InputAudio = "audio"
)

// Duration is a time.Duration written as a Go duration string ("30s", "1m").
type Duration struct{ time.Duration }

// MarshalText writes d as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a Go duration string such as "30s" or "1m30s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// Desk is the help desk's configuration.
type Desk struct {
	// Replies are the canned replies an admin can insert from the
	// dashboard's composer; default none.
	Replies []Reply `toml:"replies"`
}

// Reply is one canned reply ([[desk.replies]]).
type Reply struct {
	ID    string `toml:"id" json:"id"`       // unique
	Title string `toml:"title" json:"title"` // what the picker lists and searches
	Text  string `toml:"text" json:"text"`   // what it inserts
}
