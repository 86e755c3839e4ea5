package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Limits checked by Validate.
const (
	minMessageBytes = 1 << 10
	maxMessageBytes = 16 << 20
	maxRetriesLimit = 10
)

// Validate checks every key and reports all problems at once, joined; each
// names its key and what is wrong, e.g.
//
//	server.mode: must be "dev" or "production", got "prod"
//
// Messages never quote secret values. Validate does not require secrets to
// be present: that is PrepareSecrets's job, since dev mode generates them.
func (c *Config) Validate() error {
	var p problems
	c.Server.validate(&p)
	c.Auth.validate(&p)
	c.Storage.validate(&p)
	c.LLM.validate(&p)
	c.Limits.validate(&p)
	c.Notify.validate(&p)
	c.Desk.validate(&p)
	c.Cluster.validate(&p, c.Storage.MongoURI)
	return p.err()
}

func (l *Limits) validate(p *problems) {
	for _, v := range []struct {
		key string
		n   int
	}{
		{"limits.messages_per_minute", l.MessagesPerMinute}, {"limits.message_burst", l.MessageBurst},
		{"limits.connections_per_user", l.ConnectionsPerUser}, {"limits.replies_in_flight", l.RepliesInFlight},
		{"limits.daily_tokens_per_user", l.DailyTokens},
	} {
		if v.n < 0 {
			p.add(v.key, "must be 0 (no limit) or more, got %d", v.n)
		}
	}
}

func (n *Notify) validate(p *problems) {
	if n.WebhookURL == "" {
		return
	}
	if u, err := url.Parse(n.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("notify.webhook_url", "must be an http or https URL")
	}
}

// problems collects validation errors in the order they are found.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (p problems) err() error { return errors.Join(p...) }

func (p *problems) positive(key string, d Duration) {
	if d.Duration <= 0 {
		p.add(key, "must be a positive duration such as \"30s\", got %q", d.String())
	}
}

func (s *Server) validate(p *problems) {
	if _, port, err := net.SplitHostPort(s.Listen); err != nil {
		p.add("server.listen", "must be host:port such as \"127.0.0.1:8080\", got %q", s.Listen)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.add("server.listen", "port must be a number between 0 and 65535, got %q", port)
	}
	if s.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(s.MetricsListen); err != nil {
			p.add("server.metrics_listen", "must be host:port such as \"127.0.0.1:9090\", got %q", s.MetricsListen)
		}
	}
	if s.MaxConnections < 0 {
		p.add("server.max_connections", "must be 0 (no limit) or more, got %d", s.MaxConnections)
	}
	if s.Mode != ModeDev && s.Mode != ModeProduction {
		p.add("server.mode", "must be %q or %q, got %q", ModeDev, ModeProduction, s.Mode)
	}
	if pp := s.PathPrefix; pp != "" {
		if !strings.HasPrefix(pp, "/") || strings.HasSuffix(pp, "/") {
			p.add("server.path_prefix", "must start with \"/\" and not end with \"/\", got %q", pp)
		} else if path.Clean(pp) != pp || strings.ContainsAny(pp, "?#% ") {
			p.add("server.path_prefix", "must be a plain path such as \"/chatbox\", got %q", pp)
		}
	}
	for i, o := range s.AllowedOrigins {
		if err := checkOrigin(o); err != nil {
			p.add(fmt.Sprintf("server.allowed_origins[%d]", i), "%v", err)
		}
	}
	for i, o := range s.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			p.add(fmt.Sprintf("server.cors_origins[%d]", i), "%v", err)
		}
	}
	if s.MaxMessageBytes < minMessageBytes || s.MaxMessageBytes > maxMessageBytes {
		p.add("server.max_message_bytes", "must be between %d and %d, got %d", minMessageBytes, maxMessageBytes, s.MaxMessageBytes)
	}
	p.positive("server.shutdown_timeout", s.ShutdownTimeout)
	p.positive("server.idle_timeout", s.IdleTimeout)
	p.positive("server.ping_interval", s.PingInterval)
	// A ping must reach a quiet but healthy peer, and its pong come back,
	// before the idle timeout closes it.
	if s.PingInterval.Duration > 0 && s.PingInterval.Duration >= s.IdleTimeout.Duration {
		p.add("server.ping_interval", "must be shorter than server.idle_timeout (%s), got %s", s.IdleTimeout, s.PingInterval)
	}
	p.positive("server.http_idle_timeout", s.HTTPIdleTimeout)
	p.positive("server.http_read_timeout", s.HTTPReadTimeout)
	if s.MaxHeaderBytes < minHeaderBytes || s.MaxHeaderBytes > maxHeaderBytes {
		p.add("server.max_header_bytes", "must be between %d and %d, got %d", minHeaderBytes, maxHeaderBytes, s.MaxHeaderBytes)
	}
	if s.ShareRequestsPerMinute < 0 {
		p.add("server.share_requests_per_minute", "must be 0 (no limit) or more, got %d", s.ShareRequestsPerMinute)
	}
}

// The bounds of server.max_header_bytes: room for a bearer token (up to
// 8 KiB) and the usual headers, and no more than net/http's own default.
const (
	minHeaderBytes = 16 << 10
	maxHeaderBytes = 1 << 20
)

// checkOrigin accepts what a browser sends in an Origin header:
// scheme://host[:port], nothing after it. Browsers compare exactly, so a
// trailing slash would silently never match.
func checkOrigin(o string) error {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("must be scheme://host[:port] such as \"https://chat.example.com\", got %q", o)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(o, "?") || strings.HasSuffix(o, "#") {
		return fmt.Errorf("must be scheme://host[:port] with no path, query or user, got %q", o)
	}
	if o != strings.ToLower(o) {
		return fmt.Errorf("must be lower case, as browsers send it, got %q", o)
	}
	if p := u.Port(); p != "" {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return fmt.Errorf("port must be a number between 0 and 65535, got %q", o)
		}
	}
	return nil
}

func (a *Auth) validate(p *problems) {
	if a.JWTSecret != "" && a.JWTPublicKeyFile != "" {
		p.add("auth.jwt_secret", "cannot be set together with auth.jwt_public_key_file: choose HS256 or a public key")
	}
}

func (s *Storage) validate(p *problems) {
	if s.MaxUploadBytes <= 0 {
		p.add("storage.max_upload_bytes", "must be a positive number of bytes, got %d", s.MaxUploadBytes)
	}
	for i, t := range s.UploadTypes {
		if typ, sub, ok := strings.Cut(t, "/"); !ok || typ == "" || sub == "" || strings.ContainsAny(t, " ;,") {
			p.add(fmt.Sprintf("storage.upload_types[%d]", i), "must be a media type such as \"image/png\", got %q", t)
		}
	}
	// The URI may hold a password, so it is never quoted back.
	if s.MongoURI != "" && !strings.HasPrefix(s.MongoURI, "mongodb://") && !strings.HasPrefix(s.MongoURI, "mongodb+srv://") {
		p.add("storage.mongo_uri", "must start with \"mongodb://\" or \"mongodb+srv://\"")
	}
	if s.Database == "" || strings.ContainsAny(s.Database, "/\\. \"$") {
		p.add("storage.database", "must be a non-empty MongoDB database name without /\\. \"$, got %q", s.Database)
	}
	if s.DataDir == "" {
		p.add("storage.data_dir", "must not be empty")
	}
	if s.EncryptionKey != "" {
		if err := checkKey(s.EncryptionKey); err != nil {
			p.add("storage.encryption_key", "%v", err)
		}
	}
	for i, k := range s.PreviousEncryptionKeys {
		if err := checkKey(k); err != nil {
			p.add(fmt.Sprintf("storage.previous_encryption_keys[%d]", i), "%v", err)
		}
	}
	p.positive("storage.timeout", s.Timeout)
	if s.Sync != SyncNormal && s.Sync != SyncFull {
		p.add("storage.sync", "must be %q or %q, got %q", SyncNormal, SyncFull, s.Sync)
	}
}

// checkKey reports what is wrong with an encryption key, without quoting it.
func checkKey(k string) error {
	if isPlaceholder(k) {
		return errors.New(`is a placeholder; generate a key with "chatbox keygen"`)
	}
	if _, err := decodeKey(k); err != nil {
		return err
	}
	return nil
}

var providers = []string{ProviderDemo, ProviderOpenAI, ProviderAnthropic, ProviderGemini, ProviderDify}

var inputs = []string{InputText, InputImage, InputPDF, InputAudio}

func (l *LLM) validate(p *problems) {
	ids := make(map[string]bool, len(l.Models))
	for i, m := range l.Models {
		key := fmt.Sprintf("llm.models[%d]", i)
		switch {
		case m.ID == "":
			p.add(key+".id", "must not be empty")
		case ids[m.ID]:
			p.add(key+".id", "duplicate %q", m.ID)
		}
		ids[m.ID] = true
		if !slices.Contains(providers, m.Provider) {
			p.add(key+".provider", "must be one of %s, got %q", strings.Join(providers, ", "), m.Provider)
		} else if m.Provider != ProviderDemo && m.Provider != ProviderDify && m.Model == "" {
			p.add(key+".model", "must name the vendor's model (e.g. \"gpt-4o-mini\") for provider %q", m.Provider)
		}
		for j, in := range m.Input {
			if !slices.Contains(inputs, in) {
				p.add(fmt.Sprintf("%s.input[%d]", key, j), "must be one of %s, got %q", strings.Join(inputs, ", "), in)
			}
		}
		if m.Provider == ProviderDify && m.BaseURL == "" {
			p.add(key+".base_url", "must name the Dify API, e.g. \"https://api.dify.ai/v1\", for provider %q", m.Provider)
		}
		if m.BaseURL != "" {
			if u, err := url.Parse(m.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.add(key+".base_url", "must be an http:// or https:// URL, got %q", m.BaseURL)
			}
		}
	}
	for i, m := range l.Models {
		for j, f := range m.Fallback {
			key := fmt.Sprintf("llm.models[%d].fallback[%d]", i, j)
			switch {
			case f == m.ID:
				p.add(key, "%q names the model itself", f)
			case !ids[f]:
				p.add(key, "%q is not one of the configured models", f)
			case slices.Index(m.Fallback, f) < j:
				p.add(key, "duplicate %q", f)
			}
		}
	}
	if !ids[l.DefaultModel] || l.DefaultModel == "" {
		p.add("llm.default_model", "%q is not one of the configured models", l.DefaultModel)
	}
	if l.DemoDelay.Duration < 0 {
		p.add("llm.demo_delay", "must not be negative, got %s", l.DemoDelay)
	}
	p.positive("llm.connect_timeout", l.ConnectTimeout)
	p.positive("llm.first_token_timeout", l.FirstTokenTimeout)
	p.positive("llm.idle_timeout", l.IdleTimeout)
	if l.MaxRetries < 0 || l.MaxRetries > maxRetriesLimit {
		p.add("llm.max_retries", "must be between 0 and %d, got %d", maxRetriesLimit, l.MaxRetries)
	}
	if l.TranscribeModel != "" {
		i := slices.IndexFunc(l.Models, func(m Model) bool { return m.ID == l.TranscribeModel })
		if i < 0 || l.Models[i].Provider != ProviderOpenAI {
			p.add("llm.transcribe_model", "%q must be one of the configured models of provider %q", l.TranscribeModel, ProviderOpenAI)
		}
	}
	if l.ContextBudget <= 0 {
		p.add("llm.context_budget", "must be a positive number of characters, got %d", l.ContextBudget)
	}
}

func (d *Desk) validate(p *problems) {
	ids := make(map[string]bool, len(d.Replies))
	for i, r := range d.Replies {
		key := fmt.Sprintf("desk.replies[%d]", i)
		switch {
		case strings.TrimSpace(r.ID) == "":
			p.add(key+".id", "must not be empty")
		case ids[r.ID]:
			p.add(key+".id", "duplicate %q", r.ID)
		}
		ids[r.ID] = true
		if strings.TrimSpace(r.Title) == "" {
			p.add(key+".title", "must not be empty")
		}
		if strings.TrimSpace(r.Text) == "" {
			p.add(key+".text", "must not be empty")
		}
	}
}

func (c *Cluster) validate(p *problems, mongoURI string) {
	if !c.Enabled {
		return
	}
	if mongoURI == "" {
		p.add("cluster.enabled", "the nodes of a cluster must share a MongoDB: set storage.mongo_uri (the embedded store belongs to one node)")
	}
	if c.Name == "" {
		p.add("cluster.name", "must not be empty")
	}
	hostPort := func(key, v string) {
		if _, port, err := net.SplitHostPort(v); err != nil || port == "" {
			p.add(key, "must be host:port, got %q", v)
		}
	}
	hostPort("cluster.listen", c.Listen)
	if c.Advertise != "" {
		hostPort("cluster.advertise", c.Advertise)
	}
	switch c.Provider {
	case ClusterStatic:
		hostPort("cluster.discovery_listen", c.DiscoveryListen)
		if len(c.Peers) == 0 {
			p.add("cluster.peers", "must list every member's discovery_listen address, this one included")
		}
		for _, peer := range c.Peers {
			hostPort("cluster.peers", peer)
		}
	case ClusterKubernetes:
	default:
		p.add("cluster.provider", "must be %q or %q, got %q", ClusterStatic, ClusterKubernetes, c.Provider)
	}
}
