// Package transport is Chatbox's network edge: the HTTP server, the
// WebSocket upgrade (gobwas/ws) with its Origin and token checks, framing,
// keepalive, and the HTTP API. It hands decoded commands to the actors
// through actors.Hub and reads stored data through persistence.Store.
//
// Sockets are accepted by the front (front.go): it reads each socket's
// first request and upgrades a plain WebSocket handshake that passes every
// check itself, without net/http; every other request, refusals included,
// is replayed to net/http, which answers it as it always has.
//
// Concurrency: after the upgrade the HTTP handler returns and the socket is
// watched by the poller: on Linux one epoll instance and one goroutine for
// every socket (poll_linux.go), elsewhere a goroutine per socket
// (poll_other.go). A socket is read on a goroutine started for it only
// when it is readable, one message at a time and never by two goroutines at
// once, so its commands reach the hub in order; an idle socket holds no
// goroutine and no read buffer on Linux. Writes (the actors' flusher, pongs,
// pings, close) are serialised by the connection's mutex, and a write that
// fails or times out closes the socket at once, so no frame ever follows a
// partial one; pings and the idle check run on a per-connection timer. Every goroutine the package starts,
// timer callbacks included, goes through the Server's lifecycle.Group, and
// Shutdown waits for them and closes the poller.
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
	"github.com/gobwas/ws"
	"github.com/rs/cors"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/lifecycle"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// Verifier checks a bearer token; *auth.Verifier satisfies it.
type Verifier interface {
	Verify(token string) (auth.Identity, error)
}

// Config configures a Server. Its values are resolved (the defaults live in
// the config package): New rejects a zero where it would mean nothing.
type Config struct {
	Listen          string // host:port, required; port 0 picks a free port
	PathPrefix      string // every route moves under it, e.g. "/chatbox"
	AllowedOrigins  []string
	CORSOrigins     []string      // origins allowed to call /api/ from a browser; empty: none
	MaxMessageBytes int64         // required
	IdleTimeout     time.Duration // a silent peer is closed after this; required
	PingInterval    time.Duration // required
	WriteTimeout    time.Duration // one frame write; required
	ReadyTimeout    time.Duration // the store ping of /readyz; required
	// HTTPIdleTimeout closes an idle keep-alive HTTP connection; required.
	HTTPIdleTimeout time.Duration
	// HTTPReadTimeout bounds reading a request, headers and body; required.
	HTTPReadTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (431 past it); required.
	MaxHeaderBytes int
	// ShareRequestsPerMinute limits each client address on the anonymous
	// share route (429 past it); 0: no limit.
	ShareRequestsPerMinute int

	Verifier Verifier // required
	// Cluster, when set, adds the cluster check to /readyz and the nodes
	// to /api/admin/stats (cluster mode; *cluster.Node satisfies it).
	Cluster ClusterStatus
	Hub     *actors.Hub       // required
	Store   persistence.Store // required
	Web     http.Handler      // the pages served at "/"; optional
	Metrics http.Handler      // served at /metrics when set
	Logger  *slog.Logger      // nil discards
	// MetricSet receives the transport's metrics; nil: a private set.
	MetricSet *metrics.Set
	// Replies are the help desk's canned replies; nil: none.
	Replies []CannedReply
	// MaxUploadBytes bounds one attachment upload; zero means 10 MiB.
	MaxUploadBytes int64
	// UploadTypes are the media types an upload may have; nil means
	// none is allowed.
	UploadTypes []string
	// Transcriber transcribes voice notes on upload; nil: none.
	Transcriber Transcriber
}

// Server is the HTTP and WebSocket server. New builds it; Listen binds and
// starts the poller; Serve runs until Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	origins map[string]bool
	http    *http.Server
	ln      net.Listener   // what net/http serves: the front's hand-overs
	frontLn *frontListener // accepts the sockets; made by Listen
	// frontUpgrades counts the upgrades the front made without net/http.
	frontUpgrades atomic.Int64

	upgrader   ws.HTTPUpgrader // one for every upgrade: it holds only settings
	closing    atomic.Bool     // Shutdown has begun: refuse upgrades, report not ready
	shareLimit *addrLimiter    // the anonymous share route, per client address
	goroutines lifecycle.Group // the poller's loop, reads, keepalives
	poll       poller          // tells sockets when they are readable; made by Listen

	connMu  sync.Mutex           // guards live and drained
	live    map[*wsConn]struct{} // upgraded sockets not yet closed
	drained chan struct{}        // closed when live empties, while Shutdown waits for it

	shutdownOnce sync.Once
	shutdownErr  error // the first Shutdown's result, written inside shutdownOnce
}

// errShuttingDown refuses work once Shutdown has begun.
var errShuttingDown = errors.New("server is shutting down")

// validate names the first field whose value cannot work.
func (c *Config) validate() error {
	if c.Listen == "" {
		return errors.New("transport.Config.Listen: required")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxMessageBytes", c.MaxMessageBytes}, {"IdleTimeout", int64(c.IdleTimeout)}, {"PingInterval", int64(c.PingInterval)},
		{"WriteTimeout", int64(c.WriteTimeout)}, {"ReadyTimeout", int64(c.ReadyTimeout)},
		{"HTTPIdleTimeout", int64(c.HTTPIdleTimeout)}, {"HTTPReadTimeout", int64(c.HTTPReadTimeout)},
		{"MaxHeaderBytes", int64(c.MaxHeaderBytes)},
	} {
		if f.v <= 0 {
			return fmt.Errorf("transport.Config.%s: must be positive, got %d", f.name, f.v)
		}
	}
	if c.ShareRequestsPerMinute < 0 {
		return fmt.Errorf("transport.Config.ShareRequestsPerMinute: must not be negative, got %d", c.ShareRequestsPerMinute)
	}
	return nil
}

// New checks cfg and builds a server; it does no I/O.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = 10 << 20
	}
	if cfg.MetricSet == nil {
		cfg.MetricSet = metrics.NewSet()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With(slog.String("component", "transport")), origins: map[string]bool{}, live: map[*wsConn]struct{}{}}
	for _, o := range cfg.AllowedOrigins {
		s.origins[o] = true
	}
	s.shareLimit = newAddrLimiter(cfg.ShareRequestsPerMinute, time.Now)
	s.upgrader = ws.HTTPUpgrader{Timeout: cfg.WriteTimeout, Protocol: func(p string) bool { return p == Subprotocol }}
	// ReadTimeout covers the headers too (ReadHeaderTimeout is left zero);
	// an upgraded socket's deadlines are cleared by the upgrade.
	s.http = &http.Server{
		Handler: s.Handler(), ReadTimeout: cfg.HTTPReadTimeout, IdleTimeout: cfg.HTTPIdleTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler is the server's routes, for tests that bring their own listener.
func (s *Server) Handler() http.Handler {
	p := s.cfg.PathPrefix
	mux := http.NewServeMux()
	mux.HandleFunc(p+"/ws", s.handleWS) // any method: checkHandshake answers a wrong one in JSON
	mux.HandleFunc("GET "+p+"/healthz", s.handleHealth)
	mux.HandleFunc("GET "+p+"/readyz", s.handleReady)
	if s.cfg.Metrics != nil {
		mux.Handle("GET "+p+"/metrics", s.cfg.Metrics)
	}
	api := http.NewServeMux()
	api.HandleFunc("GET "+p+"/api/sessions", s.handleSessions)
	api.HandleFunc("GET "+p+"/api/sessions/{id}/messages", s.handleMessages)
	api.HandleFunc("PATCH "+p+"/api/sessions/{id}", s.handleRenameSession)
	api.HandleFunc("DELETE "+p+"/api/sessions/{id}", s.handleDeleteSession)
	api.HandleFunc("POST "+p+"/api/sessions/{id}/share", s.handleShare)
	api.HandleFunc("DELETE "+p+"/api/sessions/{id}/share", s.handleShare)
	api.HandleFunc("GET "+p+"/api/shared/{share_id}", s.limitByAddr(s.shareLimit, "shared", s.handleShared))
	api.HandleFunc("GET "+p+"/api/admin/sessions", s.handleAdminSessions)
	api.HandleFunc("GET "+p+"/api/admin/sessions/{id}", s.handleAdminSession)
	api.HandleFunc("POST "+p+"/api/admin/sessions/{id}/takeover", s.handleAdminAction(protocol.TypeTakeover))
	api.HandleFunc("POST "+p+"/api/admin/sessions/{id}/release", s.handleAdminAction(protocol.TypeRelease))
	api.HandleFunc("POST "+p+"/api/admin/sessions/{id}/messages", s.handleAdminMessage)
	api.HandleFunc("GET "+p+"/api/admin/stats", s.handleAdminStats)
	api.HandleFunc("POST "+p+"/api/sessions/{id}/end", s.handleEnd)
	api.HandleFunc("GET "+p+"/api/me/export", s.handleMyExport)
	api.HandleFunc("GET "+p+"/api/admin/users/{user_id}/export", s.handleAdminExport)
	api.HandleFunc("DELETE "+p+"/api/admin/users/{user_id}", s.handleAdminErase)
	api.HandleFunc("GET "+p+"/api/admin/audit", s.handleAdminAudit)
	s.deskRoutes(api, p)
	api.HandleFunc("POST "+p+"/api/attachments", s.handleUpload)
	api.HandleFunc("GET "+p+"/api/attachments/{id}", s.handleAttachment)
	api.HandleFunc("GET "+p+"/api/attachments/{id}/meta", s.handleAttachmentMeta)
	api.HandleFunc(p+"/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, protocol.Err(protocol.CodeNotFound))
	})
	var apiHandler http.Handler = api
	if len(s.cfg.CORSOrigins) > 0 {
		// rs/cors reads an empty list as "*", so it is only installed with
		// a configured allowlist.
		apiHandler = cors.New(cors.Options{
			AllowedOrigins: s.cfg.CORSOrigins,
			AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
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

// Listen binds the listening socket and starts the poller.
func (s *Server) Listen() error {
	p, err := newPoller(s.log, &s.goroutines)
	if err != nil {
		return err
	}
	// No TCP keepalive: the WebSocket pings and idle timeout, and
	// http_idle_timeout for HTTP, find dead peers already, and turning it on
	// costs four setsockopt calls on every accepted socket.
	ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(context.Background(), "tcp", s.cfg.Listen)
	if err != nil {
		p.close()
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	s.frontLn = newFrontListener(s, ln)
	s.ln, s.poll = jsonErrorListener{s.frontLn}, p
	s.goroutines.Go(s.keepalives)
	return nil
}

// Addr is the bound address, after Listen.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until Shutdown; it returns nil after a clean shutdown.
func (s *Server) Serve() error {
	if !s.goroutines.Go(s.frontLn.run) {
		return http.ErrServerClosed
	}
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.frontLn.Close()
		return err
	}
	return nil
}

// forcedCloseGrace is how long Shutdown, past its deadline, still waits for
// the transport's goroutines once it has closed their sockets under them:
// a blocked read or write then returns at once.
const forcedCloseGrace = time.Second

// Shutdown stops accepting connections and waits, until ctx ends, for the
// upgraded sockets to close. The caller closes them by telling the hub to
// (Hub.CloseConnections), between BeginShutdown and Shutdown; a socket still
// open when ctx ends is closed here without a close frame. Then the poller
// is closed (its descriptors and goroutine) and Shutdown waits for every
// goroutine the server started. It is idempotent: later calls wait for the
// first and return its result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() { s.shutdownErr = s.shutdown(ctx) })
	return s.shutdownErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.BeginShutdown()
	err := s.http.Shutdown(ctx)
	if s.frontLn != nil {
		s.frontLn.Close() // if Serve had not begun, net/http did not
	}
	if werr := s.waitConns(ctx); werr != nil {
		err = errors.Join(err, werr)
		s.closeConns()
	}
	s.goroutines.Stop()
	if s.poll != nil {
		s.poll.close()
	}
	wctx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), forcedCloseGrace)
		defer cancel()
	}
	if werr := s.goroutines.Wait(wctx); werr != nil {
		err = errors.Join(err, fmt.Errorf("wait for the transport's goroutines: %w", werr))
	}
	return err
}

// track counts an upgraded socket until untrack; it refuses once Shutdown
// has begun, which would not wait for it.
func (s *Server) track(c *wsConn) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.live[c] = struct{}{}
	return true
}

func (s *Server) untrack(c *wsConn) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	delete(s.live, c)
	if len(s.live) == 0 && s.drained != nil {
		close(s.drained)
		s.drained = nil
	}
}

// waitConns waits until every tracked socket is closed, or ctx ends.
func (s *Server) waitConns(ctx context.Context) error {
	s.connMu.Lock()
	if len(s.live) == 0 {
		s.connMu.Unlock()
		return nil
	}
	if s.drained == nil {
		s.drained = make(chan struct{})
	}
	drained := s.drained
	s.connMu.Unlock()
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		s.connMu.Lock()
		n := len(s.live)
		s.connMu.Unlock()
		if n == 0 {
			return nil
		}
		return fmt.Errorf("wait for %d connections to close: %w", n, ctx.Err())
	}
}

// closeConns closes every socket still open. The descriptor is closed
// first, which ends a write or read blocked on it, so closeWith cannot wait
// on the connection's mutex for long; the close frame is not sent.
func (s *Server) closeConns() {
	s.connMu.Lock()
	conns := make([]*wsConn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.connMu.Unlock()
	for _, c := range conns {
		c.conn.Close()
		c.closeWith(uint16(ws.StatusGoingAway), "server shutting down", "shutdown_timeout")
	}
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
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestID(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(string)
	return id
}

// ClusterStatus is what the transport shows of this node's cluster.
type ClusterStatus interface {
	Ready() error      // nil while this node is a member
	Members() []string // the members this node sees
}
