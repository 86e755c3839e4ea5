package actors

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/lifecycle"
	"github.com/chatbox/chatbox/protocol"
)

// Sink is one socket's outbound side, supplied by the transport.
type Sink interface {
	// WriteFrames writes complete WebSocket frames (header and payload, as
	// in protocol.Event.Wire), in order, ideally in one system call. The
	// connection's flusher is its only caller for event frames;
	// implementations serialise it with their own control frames (pings,
	// close). It must not keep wires after returning.
	WriteFrames(wires [][]byte) error
	// Close sends a close frame with code and reason, then closes the socket.
	// It is idempotent and safe to call from any goroutine.
	Close(code uint16, reason string)
}

// WebSocket close codes the actors decide on.
const (
	CloseNormal       uint16 = 1000
	CloseGoingAway    uint16 = 1001
	CloseTryAgain     uint16 = 1013 // the outbound queue overflowed: resume with sync
	closeInternal     uint16 = 1011
	closeReasonSlow          = "slow consumer: reconnect and sync"
	closeReasonServer        = "server closing the connection"
)

// conn is one connection's outbound side: who is behind it and its
// outbox. Events arrive in the order their senders sent them; the outbox
// coalesces consecutive deltas of one reply, and a flusher goroutine,
// started only while there is something to write, drains it into the
// socket. An idle connection therefore holds no goroutine here.
type conn struct {
	hub      *Hub
	identity Identity
	id       string
	out      *outbox
}

func newConn(h *Hub, m *attach) conn {
	return conn{hub: h, identity: m.identity, id: m.connID, out: newOutbox(m.sink, h.cfg.OutboxLimit)}
}

// start queues hello, the first frame of every connection, and registers
// an admin's connection for live alerts. pid is the connection's address.
func (c *conn) start(pid *actor.PID) {
	c.push(c.hub.hello(c.identity, c.id))
	if c.identity.Admin {
		c.hub.root.Send(c.hub.admins, &adminOnline{conn: pid})
	}
}

// push queues ev; any goroutine may call it (the outbox has its own lock).
func (c *conn) push(ev *protocol.Event) {
	switch c.out.push(ev) {
	case pushOverflow:
		c.hub.metrics.slowCloses.Inc()
		c.hub.log.Warn("outbound queue overflow; closing", slog.String("conn_id", c.id), slog.String("user_id", c.identity.UserID))
		c.out.close(CloseTryAgain, closeReasonSlow)
	case pushCoalesced:
		c.hub.metrics.coalesced.Inc()
	case pushStartFlush:
		if !c.hub.flush(c.out) {
			c.out.close(CloseGoingAway, closeReasonServer) // the hub is stopping
		}
	}
}

// connProcess is a connection in the actor tree, conn/<conn_id> under its
// user's actor, without an actor of its own. It is a protoactor Process
// with a pid (resolved by the hub, see connAddress), so the user's actor
// and admins' actors address it like any actor, watch it and stop it; but a
// message sent to it is pushed into the outbox on the sender's goroutine.
// The outbox is already the connection's bounded queue, and a mailbox in
// front of it would be a second one, with its own memory per connection
// and one more hop for every frame (docs/architecture.md, "What each actor
// is").
type connProcess struct {
	conn
	pid *actor.PID

	mu       sync.Mutex   // guards watchers and stopped
	watchers []*actor.PID // notified with Terminated when it stops
	stopped  bool
}

var _ actor.Process = (*connProcess)(nil)

// spawnConn registers the connection of m under parent (its user actor's
// pid id, or where it will be) and queues its hello.
func (h *Hub) spawnConn(parent string, m *attach) (*connProcess, error) {
	c := &connProcess{conn: newConn(h, m)}
	c.pid = actor.NewPID(connAddress, parent+"/conn-"+m.connID)
	h.localMu.Lock()
	_, taken := h.local[c.pid.Id]
	if !taken {
		h.local[c.pid.Id] = c
	}
	h.localMu.Unlock()
	if taken {
		return nil, fmt.Errorf("register connection %s: the id is taken", m.connID)
	}
	c.start(c.pid)
	return c, nil
}

// connAddress is the address of this node's connections in single-node
// mode. protoactor's process registry keeps a map per shard, 32,768 of
// them, and a pid alone in its map costs a whole map group (about 260
// bytes); a connection per user doubled that. So connections live in one
// map of the hub instead, which the registry reaches through an address
// resolver (resolveConn), the extension point it has for pids it does not
// hold; a pid looks its process up once and keeps it. In cluster mode
// connections are actors at the node's own address (cluster.go).
const connAddress = "conns.local"

// resolveConn is the process registry's resolver for connAddress.
func (h *Hub) resolveConn(pid *actor.PID) (actor.Process, bool) {
	if pid.Address != connAddress {
		return nil, false
	}
	h.localMu.Lock()
	c, ok := h.local[pid.Id]
	h.localMu.Unlock()
	if !ok {
		return h.system.DeadLetter, true
	}
	return c, true
}

// SendUserMessage takes an event for the socket, or a poison pill.
func (c *connProcess) SendUserMessage(_ *actor.PID, message any) {
	switch m := actor.UnwrapEnvelopeMessage(message).(type) {
	case *protocol.Event:
		c.push(m)
	case *actor.PoisonPill:
		// Everything sent before it is in the outbox already.
		c.stop(CloseGoingAway, closeReasonServer)
	}
}

// SendSystemMessage handles watching and stopping, as an actor would.
func (c *connProcess) SendSystemMessage(_ *actor.PID, message any) {
	switch m := message.(type) {
	case *actor.Watch:
		c.mu.Lock()
		stopped := c.stopped
		if !stopped {
			c.watchers = append(c.watchers, m.Watcher)
		}
		c.mu.Unlock()
		if stopped {
			c.terminated(m.Watcher)
		}
	case *actor.Unwatch:
		c.mu.Lock()
		c.watchers = slices.DeleteFunc(c.watchers, m.Watcher.Equal)
		c.mu.Unlock()
	case *actor.Stop:
		c.stop(CloseGoingAway, closeReasonServer)
	}
}

// Stop stops the connection (protoactor's Stop of its pid).
func (c *connProcess) Stop(*actor.PID) { c.stop(CloseGoingAway, closeReasonServer) }

// stop closes the socket once what is queued is written (with code and
// reason, unless a close is already on its way), unregisters the pid and
// tells the watchers. Idempotent; any goroutine.
func (c *connProcess) stop(code uint16, reason string) {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	watchers := c.watchers
	c.watchers = nil
	c.mu.Unlock()
	c.hub.localMu.Lock()
	delete(c.hub.local, c.pid.Id)
	c.hub.localMu.Unlock()
	c.out.closeAfterFlush(code, reason)
	for _, w := range watchers {
		c.terminated(w)
	}
}

func (c *connProcess) terminated(watcher *actor.PID) {
	p, _ := c.hub.system.ProcessRegistry.Get(watcher)
	p.SendSystemMessage(watcher, &actor.Terminated{Who: c.pid, Why: actor.TerminatedReason_Stopped})
}

type pushResult uint8

const (
	pushQueued pushResult = iota
	pushStartFlush
	pushCoalesced
	pushOverflow
	pushClosed
)

// outbox is a bounded queue of encoded events between its connection's
// senders (serialised by its lock) and its flusher goroutine (the only
// consumer).
//
// Consecutive deltas of one reply that wait together are coalesced: they
// stay in the queue as they came but count as one frame towards the bound,
// and the flusher encodes them as one merged delta when it writes them. A
// slow device so gets fewer, larger frames and never a gap, and merging
// costs no allocation and no re-encoding of what was merged so far.
type outbox struct {
	sink Sink
	cap  int // frames queued before an overflow

	mu       sync.Mutex // guards the fields below
	queue    []*protocol.Event
	frames   int               // frames the queue makes: coalesced deltas share one
	end      int               // where the last queued event ends, when it is a delta
	spare    []*protocol.Event // the flusher's last batch, reused to avoid allocating
	wires    [][]byte          // the flusher's frames of a batch, reused; only the flusher touches it
	flushing bool              // a flusher goroutine is running
	closed   bool
	closing  *closeRequest   // close once the queue is written
	flusher  *lifecycle.Task // o.flush, bound once, for a flusher of its own (flushers.go)
}

// continues reports whether delta d starts where last, a delta ending at
// end, ends.
func continues(last *protocol.Event, end int, d *protocol.Event) bool {
	return last.Kind == protocol.KindDelta && d.Kind == protocol.KindDelta && last.MessageID == d.MessageID &&
		last.SessionID == d.SessionID && end == d.Offset
}

// scratch is what a flusher encodes merged deltas with: a buffer and the
// texts of one merge. Pooled, so that neither an idle connection nor a
// merge keeps one of its own.
type scratch struct {
	buf   []byte
	parts []string
}

var scratches = sync.Pool{New: func() any { return &scratch{buf: make([]byte, 0, 4<<10)} }}

// maxPooledScratch: a larger buffer (a burst of merged text) is left to the
// garbage collector rather than kept in the pool.
const maxPooledScratch = 64 << 10

type closeRequest struct {
	code   uint16
	reason string
}

func newOutbox(sink Sink, capacity int) *outbox {
	return &outbox{sink: sink, cap: capacity}
}

// push queues ev, coalesced with the last queued delta when it continues
// that delta. It reports whether the caller must start a flusher.
func (o *outbox) push(ev *protocol.Event) pushResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.closing != nil {
		return pushClosed
	}
	if n := len(o.queue); n > 0 && continues(o.queue[n-1], o.end, ev) {
		o.queue = append(o.queue, ev)
		o.end += len(ev.Text)
		return pushCoalesced
	}
	if o.frames >= o.cap {
		return pushOverflow
	}
	o.queue = append(o.queue, ev)
	o.frames++
	o.end = ev.Offset + len(ev.Text)
	if o.flushing {
		return pushQueued
	}
	o.flushing = true
	return pushStartFlush
}

// flush writes queued frames until the queue is empty, then exits.
func (o *outbox) flush() {
	var batch []*protocol.Event
	for {
		o.mu.Lock()
		if batch != nil {
			clear(batch)
			o.spare = batch[:0]
		}
		if len(o.queue) == 0 || o.closed {
			o.flushing = false
			req := o.closing
			if req != nil && !o.closed {
				o.closed = true
			} else {
				req = nil
			}
			o.mu.Unlock()
			if req != nil {
				o.sink.Close(req.code, req.reason)
			}
			return
		}
		batch, o.queue = o.queue, o.spare
		o.spare, o.frames = nil, 0
		o.mu.Unlock()

		var sc *scratch
		o.wires = o.wires[:0]
		for i := 0; i < len(batch); {
			ev, j, end := batch[i], i+1, batch[i].Offset+len(batch[i].Text)
			for j < len(batch) && continues(ev, end, batch[j]) {
				end += len(batch[j].Text)
				j++
			}
			if j == i+1 {
				o.wires = append(o.wires, ev.Wire)
			} else {
				if sc == nil {
					sc = scratches.Get().(*scratch)
				}
				sc.parts = sc.parts[:0]
				for _, d := range batch[i:j] {
					sc.parts = append(sc.parts, d.Text)
				}
				var w []byte
				sc.buf, w = protocol.AppendDeltaFrame(sc.buf, ev.SessionID, ev.MessageID, ev.Seq, ev.Offset, sc.parts)
				o.wires = append(o.wires, w)
			}
			i = j
		}
		err := o.sink.WriteFrames(o.wires)
		clear(o.wires)
		if sc != nil {
			clear(sc.parts)
			if sc.buf = sc.buf[:0]; cap(sc.buf) <= maxPooledScratch {
				scratches.Put(sc)
			}
		}
		if err != nil {
			o.close(CloseGoingAway, "write failed")
		}
	}
}

// closeAfterFlush closes the socket once the frames already queued are
// written (a flusher runs whenever frames are queued). Idempotent.
func (o *outbox) closeAfterFlush(code uint16, reason string) {
	o.mu.Lock()
	if o.closed || o.closing != nil {
		o.mu.Unlock()
		return
	}
	if o.flushing {
		o.closing = &closeRequest{code, reason}
		o.mu.Unlock()
		return
	}
	o.closed = true
	o.mu.Unlock()
	o.sink.Close(code, reason)
}

// close drops what is queued, stops all further writes and closes the
// socket; idempotent.
func (o *outbox) close(code uint16, reason string) {
	o.mu.Lock()
	already := o.closed
	o.closed = true
	o.queue = nil
	o.mu.Unlock()
	if !already {
		o.sink.Close(code, reason)
	}
}
