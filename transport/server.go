// Package transport is Chatbox's network edge: the HTTP server, the
// WebSocket upgrade (gobwas/ws) with its Origin and token checks, framing,
// keepalive, and the HTTP API. It hands decoded commands to the actors
// through actors.Hub and reads stored data through persistence.Store.
//
// Concurrency: each WebSocket has one read goroutine (the HTTP handler's,
// after the upgrade) and its writes are serialised by the connection's
// mutex; pings are sent from a timer, so an idle socket holds one goroutine.
package transport

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/rs/cors"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// Verifier checks a bearer token; *auth.Verifier satisfies it.
type Verifier interface {
	Verify(token string) (auth.Identity, error)
}

// Config configures a Server. Zero values take the documented defaults.
type Config struct {
	Listen          string // default "127.0.0.1:8080"; port 0 picks a free port
	PathPrefix      string // every route moves under it, e.g. "/chatbox"
	AllowedOrigins  []string
	CORSOrigins     []string      // origins allowed to call /api/ from a browser; empty: none
	MaxMessageBytes int64         // default 65536
	IdleTimeout     time.Duration // a silent peer is closed after this; default 60s
	PingInterval    time.Duration // default 25s
	WriteTimeout    time.Duration // one frame write; default 10s
	ReadyTimeout    time.Duration // the store ping of /readyz; default 2s

	Verifier Verifier          // required
	Hub      *actors.Hub       // required
	Store    persistence.Store // required
	Web      http.Handler      // the pages served at "/"; optional
	Metrics  http.Handler      // served at /metrics when set
	Logger   *slog.Logger      // default: discard
	// MetricSet receives the transport's metrics; default: a private set.
	MetricSet *metrics.Set
}

// Server is the HTTP and WebSocket server. New builds it; Listen binds;
// Serve runs until Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	origins map[string]bool
	http    *http.Server
	ln      net.Listener

	closing atomic.Bool    // Shutdown has begun: refuse upgrades, report not ready
	conns   sync.WaitGroup // upgraded sockets not yet closed
	poll    poller         // tells sockets when they are readable; made by Listen
}

// New builds a server; it does no I/O.
func New(cfg Config) *Server {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:8080"
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 65536
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 60 * time.Second
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 25 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MetricSet == nil {
		cfg.MetricSet = metrics.NewSet()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With(slog.String("component", "transport")), origins: map[string]bool{}}
	for _, o := range cfg.AllowedOrigins {
		s.origins[o] = true
	}
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	return s
}

// Handler is the server's routes, for tests that bring their own listener.
func (s *Server) Handler() http.Handler {
	p := s.cfg.PathPrefix
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+p+"/ws", s.handleWS)
	mux.HandleFunc("GET "+p+"/healthz", s.handleHealth)
	mux.HandleFunc("GET "+p+"/readyz", s.handleReady)
	if s.cfg.Metrics != nil {
		mux.Handle("GET "+p+"/metrics", s.cfg.Metrics)
	}
	api := http.NewServeMux()
	api.HandleFunc("GET "+p+"/api/sessions", s.handleSessions)
	api.HandleFunc("GET "+p+"/api/sessions/{id}/messages", s.handleMessages)
	api.HandleFunc("POST "+p+"/api/sessions/{id}/share", s.handleShare)
	api.HandleFunc("DELETE "+p+"/api/sessions/{id}/share", s.handleShare)
	api.HandleFunc("GET "+p+"/api/shared/{share_id}", s.handleShared)
	api.HandleFunc("GET "+p+"/api/admin/sessions", s.handleAdminSessions)
	api.HandleFunc("GET "+p+"/api/admin/sessions/{id}", s.handleAdminSession)
	api.HandleFunc("POST "+p+"/api/admin/sessions/{id}/takeover", s.handleAdminAction(protocol.TypeTakeover))
	api.HandleFunc("POST "+p+"/api/admin/sessions/{id}/release", s.handleAdminAction(protocol.TypeRelease))
	api.HandleFunc("POST "+p+"/api/admin/sessions/{id}/messages", s.handleAdminMessage)
	api.HandleFunc("GET "+p+"/api/admin/stats", s.handleAdminStats)
	api.HandleFunc(p+"/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, protocol.Err(protocol.CodeNotFound))
	})
	var apiHandler http.Handler = api
	if len(s.cfg.CORSOrigins) > 0 {
		// rs/cors reads an empty list as "*", so it is only installed with
		// a configured allowlist.
		apiHandler = cors.New(cors.Options{
			AllowedOrigins: s.cfg.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodDelete},
			AllowedHeaders: []string{"Authorization", "Content-Type"},
			MaxAge:         600,
		}).Handler(api)
	}
	mux.Handle(p+"/api/", apiHandler)
	if s.cfg.Web != nil {
		mux.Handle(p+"/", http.StripPrefix(p, s.cfg.Web))
	}
	return withRequestID(mux)
}

// Listen binds the listening socket.
func (s *Server) Listen() error {
	p, err := newPoller(s.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		p.close()
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.ln, s.poll = ln, p
	return nil
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections and waits, until ctx ends, for the
// read loops of upgraded sockets. The caller closes the sockets themselves
// by shutting the hub down, between BeginShutdown and Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.BeginShutdown()
	err := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.conns.Wait(); close(done) }()
	select {
	case <-done:
		s.poll.close()
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("wait for connections: %w", ctx.Err()))
	}
	return err
}

// rejections counts WebSocket handshakes refused before the upgrade, by reason.
func (s *Server) rejections(reason string) *metrics.Counter {
	return s.cfg.MetricSet.GetOrCreateCounter(`chatbox_handshake_rejections_total{reason="` + reason + `"}`)
}

// disconnects counts ended WebSocket connections by why they ended.
func (s *Server) disconnects(reason string) *metrics.Counter {
	return s.cfg.MetricSet.GetOrCreateCounter(`chatbox_disconnects_total{reason="` + reason + `"}`)
}

// BeginShutdown makes /readyz answer 503 and refuses new upgrades.
func (s *Server) BeginShutdown() { s.closing.Store(true) }

type ctxKey struct{}

// withRequestID gives every request an id, echoed in X-Request-Id and put
// on every log line about it.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}
