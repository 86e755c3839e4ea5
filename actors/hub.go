package actors

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/lifecycle"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// Models is what the actors need of the model catalog; *providers.Catalog
// satisfies it.
type Models interface {
	Models() []providers.ModelInfo
	Default() string
	Has(id string) bool
	Stream(ctx context.Context, id string, msgs []providers.Message) iter.Seq2[providers.Chunk, error]
}

var _ Models = (*providers.Catalog)(nil)

// Notifier tells people outside Chatbox that a user asked for a human;
// *notify.Webhook satisfies it. It must not block.
type Notifier interface {
	HelpRequested(sessionID, userID string)
}

// Config configures a Hub. Its values are resolved (the defaults live in
// the config package): New rejects a zero where it would mean nothing.
type Config struct {
	Store   persistence.Store // required
	Models  Models            // required
	Logger  *slog.Logger      // nil discards
	Metrics *metrics.Set      // nil: a private set
	Notify  Notifier          // optional
	// Placement, when set, makes this node one of a cluster (cluster.go);
	// call Join after Start.
	Placement Placement
	Limits    Limits // zero values: no limit

	SessionIdle     time.Duration // a session actor with nothing to do stops after this; required
	UserIdle        time.Duration // a user actor with no connection or session stops after this; required
	OutboxLimit     int           // events queued per connection before close 1013; required
	CheckpointEvery time.Duration // a long reply is stored this often while it streams; required
	ContextBudget   int           // characters of conversation sent to a model; 0: no trimming
	HistoryWindow   int           // messages of a branch sent to a model as context (a session holds about 4× as many in memory); required
	StoreTimeout    time.Duration // deadline of one store call; required
}

// validate names the first field whose value cannot work.
func (c *Config) validate() error {
	if c.Models == nil {
		return errors.New("actors.Config.Models: required")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"SessionIdle", int64(c.SessionIdle)}, {"UserIdle", int64(c.UserIdle)}, {"OutboxLimit", int64(c.OutboxLimit)},
		{"CheckpointEvery", int64(c.CheckpointEvery)}, {"HistoryWindow", int64(c.HistoryWindow)}, {"StoreTimeout", int64(c.StoreTimeout)},
	} {
		if f.v <= 0 {
			return fmt.Errorf("actors.Config.%s: must be positive, got %d", f.name, f.v)
		}
	}
	if c.ContextBudget < 0 {
		return fmt.Errorf("actors.Config.ContextBudget: must not be negative, got %d", c.ContextBudget)
	}
	return nil
}

// Hub owns the actor system and is the transport's door into it. Create it
// with New, then Start; Shutdown stops every actor and waits for every
// goroutine the hub started.
type Hub struct {
	cfg       Config
	log       *slog.Logger
	metrics   hubMetrics
	models    []protocol.ModelInfo
	names     map[string]string // model id → display name
	helloTmpl *protocol.HelloTemplate

	system    *actor.ActorSystem
	root      *actor.RootContext
	directory *actor.PID
	admins    *actor.PID
	userProps *actor.Props // every local user actor's (directory.go)
	// local holds this node's connections by pid id in single-node mode
	// (conn.go, connAddress).
	localMu sync.Mutex // guards local
	local   map[string]*connProcess
	// Cluster mode (cluster.go): the parent of this node's connection
	// actors, the user actors hosted here (pid id → pid), and their metrics.
	conns    *actor.PID
	grains   sync.Map
	cmetrics *clusterMetrics

	// baseCtx is the parent of every generation's context; cancelled last
	// in Shutdown so no provider request outlives the hub.
	baseCtx    context.Context
	cancelBase context.CancelFunc
	// goroutines starts and counts every goroutine of the hub outside the
	// actor system: generations, outbox flushers, store lookups, the
	// sweeper. It refuses once Shutdown has stopped the actors.
	goroutines lifecycle.Group
	flushq     chan *outbox // to an idle pooled flusher (flushers.go)

	ttftWindow, replyWindow window
	users                   sync.Map      // user id → *userState, for the limits
	sweepEvery              time.Duration // how often sweepUsers runs; tests shorten it
	onSweep                 func()        // called after each sweep; for tests, set before Start
	typingEvery             time.Duration // the typing rate limit; tests widen it before connecting
	draining                atomic.Bool   // Drain has begun: no new generations
	stopping                atomic.Bool   // Shutdown has begun
	// storeDown is set when a store call failed as unavailable and cleared
	// by the next success; while set, sends store before calling a model.
	storeDown atomic.Bool

	shutdownOnce sync.Once
	shutdownErr  error // the first Shutdown's result, written inside shutdownOnce
}

// New checks cfg and builds a hub; it starts nothing.
func New(cfg Config) (*Hub, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	h := &Hub{cfg: cfg, log: cfg.Logger.With(slog.String("component", "actors")), names: map[string]string{}, sweepEvery: sweepEvery,
		typingEvery: typingEvery}
	h.metrics = newHubMetrics(cfg.Metrics)
	for _, m := range cfg.Models.Models() {
		h.models = append(h.models, protocol.ModelInfo{ID: m.ID, Name: m.Name})
		h.names[m.ID] = m.Name
	}
	h.helloTmpl = protocol.NewHelloTemplate(h.models, cfg.Models.Default())
	return h, nil
}

// Start starts the actor system, the directory and the sweeper.
func (h *Hub) Start() {
	var protoHandler slog.Handler = minLevel{h.cfg.Logger.Handler(), slog.LevelWarn}
	if h.clustered() {
		protoHandler = newThrottled(protoHandler, 10*time.Second)
	}
	protoLog := slog.New(protoHandler).With(slog.String("component", "protoactor"))
	h.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return protoLog }))
	h.root = h.system.Root
	h.baseCtx, h.cancelBase = context.WithCancel(context.Background())
	props := actor.PropsFromProducer(func() actor.Actor { return &directory{hub: h, users: newChildren()} },
		actor.WithSupervisor(childSupervisor))
	if !h.clustered() {
		h.local = map[string]*connProcess{}
		h.system.ProcessRegistry.RegisterAddressResolver(h.resolveConn)
	}
	h.userProps = actor.PropsFromProducer(func() actor.Actor { return newUserActor(h, "") }, actor.WithSupervisor(childSupervisor))
	h.directory = h.root.Spawn(props)
	h.admins, _ = h.root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &admins{hub: h, conns: map[string]*actor.PID{}} }), adminsName)
	h.goroutines.Go(h.sweep)
	h.startFlushers()
}

// sweep forgets idle users' limit state every sweepEvery until the hub's
// goroutines are stopped; no sweep starts once they are.
func (h *Hub) sweep() {
	tick := time.NewTicker(h.sweepEvery)
	defer tick.Stop()
	stopping := h.goroutines.Stopping()
	for {
		select {
		case <-stopping:
			return
		case <-tick.C:
			select {
			case <-stopping: // both were ready
				return
			default:
			}
			h.sweepUsers()
			if h.onSweep != nil {
				h.onSweep()
			}
		}
	}
}

// sweepEvery is how often idle users' limit state is forgotten.
const sweepEvery = 5 * time.Minute

// ErrShuttingDown answers Connect once Shutdown has begun.
var ErrShuttingDown = errors.New("hub is shutting down")

// connectTimeout bounds the wait for the directory to attach a connection.
const connectTimeout = 5 * time.Second

// Connect attaches a new connection of identity, admitted by ticket, whose
// socket is sink. The hello event is the first frame queued on it. On
// error the ticket is released.
func (h *Hub) Connect(ticket *Ticket, identity Identity, sink Sink) (*Conn, error) {
	if h.baseCtx.Err() != nil {
		ticket.Release()
		return nil, ErrShuttingDown
	}
	connID := newID()
	reply := make(chan *attached, 1)
	to := h.directory
	if h.clustered() {
		to = h.conns
	}
	h.root.Send(to, &attach{identity: identity, connID: connID, sink: sink, reply: reply})
	timeout := time.NewTimer(connectTimeout)
	defer timeout.Stop()
	var a *attached
	select {
	case a = <-reply:
	case <-timeout.C:
		// If the attachment still happens, undo it: the socket is gone. A
		// hub too far into Shutdown to start this stops the attachment too.
		h.goroutines.Go(func() {
			select {
			case late := <-reply:
				if late.conn != nil {
					h.root.Send(cmp.Or(late.user, h.directory), &detach{connID: connID, userID: identity.UserID})
				}
			case <-h.baseCtx.Done():
			}
		})
	}
	if a == nil || a.conn == nil {
		ticket.Release()
		return nil, errors.New("attach connection: no answer from the actors")
	}
	h.metrics.connects.Inc()
	c := &Conn{hub: h, id: connID, userID: identity.UserID, pid: a.conn, ticket: ticket}
	c.user.Store(a.user) // nil for a parked connection (parked.go)
	return c, nil
}

// Conn is the transport's handle on one attached connection. Command and
// Reject must be called by one reader at a time, which keeps the commands
// in order; Close may be called from any goroutine.
type Conn struct {
	hub    *Hub
	id     string
	userID string
	user   atomic.Pointer[actor.PID] // its user's actor; nil until a parked connection's first command
	pid    *actor.PID
	ticket *Ticket
	closed atomic.Bool
}

// ID is the connection id sent in hello.
func (c *Conn) ID() string { return c.id }

// Command hands a decoded client command to the user's actor.
func (c *Conn) Command(cmd protocol.Command) {
	if u := c.userActor(); u != nil {
		c.hub.root.Send(u, &command{connID: c.id, conn: c.pid, cmd: cmd})
	}
}

// Reject answers a frame that could not be decoded, in order with the
// answers to the commands before it: an error event for the command whose
// client id is id. err is shown as protocol.AsError makes it.
func (c *Conn) Reject(id string, err error) {
	ev := protocol.NewError(id, "", protocol.AsError(err))
	if u := c.userActor(); u != nil {
		c.hub.root.Send(u, &command{connID: c.id, conn: c.pid, cmd: protocol.Command{ID: id}, reject: ev})
	}
}

// Close detaches the connection after its socket ended. Idempotent.
func (c *Conn) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.ticket.Release()
	// A parked connection's detach goes to the directory, which forwards
	// it if the user's actor adopted the connection meanwhile.
	c.hub.root.Send(cmp.Or(c.user.Load(), c.hub.directory), &detach{connID: c.id, userID: c.userID})
}

// drainPoll is how often Drain looks at the replies in flight.
const drainPoll = 20 * time.Millisecond

// Drain refuses new generations (busy) and waits until the replies in
// flight have finished, or ctx ends. Connections stay open meanwhile, so
// users see their replies complete. Call Shutdown after it.
func (h *Hub) Drain(ctx context.Context) error {
	h.draining.Store(true)
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for h.metrics.replies.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain: %d replies still in flight: %w", h.metrics.replies.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// CloseConnections closes every socket with 1001 after the events already
// produced for it are written. Shutdown afterwards stops the rest.
func (h *Hub) CloseConnections() {
	if h.clustered() {
		h.root.Send(h.conns, &closeConns{})
		return
	}
	h.root.Send(h.directory, &closeConns{})
}

// Shutdown stops every actor (replies in flight are stored as interrupted
// and every socket is closed with 1001, after the flushers started for the
// frames already queued), then stops the hub's goroutines: none starts
// after that, and Shutdown waits for the running ones until ctx ends. It is
// idempotent: later calls wait for the first and return its result.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.shutdownOnce.Do(func() {
		if h.system == nil {
			h.goroutines.Stop()
			return
		}
		h.stopping.Store(true)
		if h.clustered() {
			h.shutdownErr = h.stopClusterActors(ctx)
		}
		for _, pid := range []*actor.PID{h.directory, h.admins} {
			if werr := h.root.StopFuture(pid).Wait(); werr != nil {
				h.shutdownErr = errors.Join(h.shutdownErr, fmt.Errorf("stop actors: %w", werr))
			}
		}
		h.goroutines.Stop()
		h.cancelBase()
		if werr := h.goroutines.Wait(ctx); werr != nil {
			h.shutdownErr = errors.Join(h.shutdownErr, fmt.Errorf("wait for the hub's goroutines: %w", werr))
		}
		if h.clustered() {
			h.cfg.Placement.Shutdown() // it shuts the actor system down
			return
		}
		h.system.Shutdown()
	})
	return h.shutdownErr
}

func (h *Hub) hello(id Identity, connID string) *protocol.Event {
	return h.helloTmpl.Event(protocol.Hello{UserID: id.UserID, Name: id.Name, ConnectionID: connID, Admin: id.Admin})
}

func (h *Hub) notifyHelp(sessionID, userID string) {
	if h.cfg.Notify != nil {
		h.cfg.Notify.HelpRequested(sessionID, userID)
	}
}

func (h *Hub) modelName(id string) string {
	if n, ok := h.names[id]; ok {
		return n
	}
	return id
}

func (h *Hub) now() time.Time { return time.Now().UTC() }

func (h *Hub) storeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.cfg.StoreTimeout)
}

// newID is a random 128-bit identifier in hex.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// minLevel drops records below its level; protoactor logs chatty Info lines.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.Handler.Enabled(ctx, l)
}
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{m.Handler.WithAttrs(a), m.level}
}
func (m minLevel) WithGroup(n string) slog.Handler { return minLevel{m.Handler.WithGroup(n), m.level} }
