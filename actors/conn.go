package actors

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

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
// user's actor, without an actor of its own. It is a protoactor Process:
// registered under a pid, so the user's actor, admins' actors and other
// nodes address it like any actor, watch it and stop it; but a message sent
// to it is pushed into the outbox on the sender's goroutine. The outbox is
// already the connection's bounded queue, and a mailbox in front of it
// would be a second one, with its own memory per connection and one more
// hop for every frame (docs/architecture.md, "What each actor is").
type connProcess struct {
	conn
	pid *actor.PID

	mu       sync.Mutex   // guards watchers and stopped
	watchers []*actor.PID // notified with Terminated when it stops
	stopped  bool
}

var _ actor.Process = (*connProcess)(nil)

// spawnConn registers the connection of m under the user actor parent
// and queues its hello.
func (h *Hub) spawnConn(parent *actor.PID, m *attach) (*connProcess, error) {
	c := &connProcess{conn: newConn(h, m)}
	pid, ok := h.system.ProcessRegistry.Add(c, parent.Id+"/conn-"+m.connID)
	if !ok {
		return nil, fmt.Errorf("register connection %s: the id is taken", m.connID)
	}
	c.pid = pid
	c.start(pid)
	return c, nil
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
	c.hub.system.ProcessRegistry.Remove(c.pid)
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
type outbox struct {
	sink Sink
	cap  int

	mu       sync.Mutex // guards the fields below
	queue    []queued
	spare    []queued // the flusher's last batch, reused to avoid allocating
	wires    [][]byte // the flusher's frames of a batch, reused; only the flusher touches it
	flushing bool     // a flusher goroutine is running
	closed   bool
	closing  *closeRequest // close once the queue is written
}

// queued is an event waiting in an outbox. When later deltas of the same
// reply are merged into it while it waits, more holds the texts of all of
// them, its own first: the merged delta is encoded once, when it is
// written, so merging costs an append of a string header, not a
// re-encoding of everything merged so far. end is the offset where it
// ends.
type queued struct {
	ev   *protocol.Event
	more []string
	end  int
}

func newQueued(ev *protocol.Event) queued {
	return queued{ev: ev, end: ev.Offset + len(ev.Text)}
}

// continues reports whether delta d starts where q (with what was merged
// into it) ends.
func (q *queued) continues(d *protocol.Event) bool {
	e := q.ev
	return e.Kind == protocol.KindDelta && d.Kind == protocol.KindDelta && e.MessageID == d.MessageID &&
		e.SessionID == d.SessionID && q.end == d.Offset
}

// merge appends delta d, which continues q.
func (q *queued) merge(d *protocol.Event) {
	if q.more == nil {
		q.more = append(make([]string, 0, 4), q.ev.Text)
	}
	q.more = append(q.more, d.Text)
	q.end += len(d.Text)
}

// wire is the frame to write for q; a merged delta is encoded into buf,
// which is returned grown.
func (q *queued) wire(buf []byte) (grown, frame []byte) {
	if q.more == nil {
		return buf, q.ev.Wire
	}
	e := q.ev
	return protocol.AppendDeltaFrame(buf, e.SessionID, e.MessageID, e.Seq, e.Offset, q.more)
}

// frameBufs holds the buffers flushers encode merged deltas into, so that
// neither a merge nor an idle connection keeps one of its own.
var frameBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// maxPooledFrameBuf: a larger buffer (a burst of merged text) is left to
// the garbage collector rather than kept in the pool.
const maxPooledFrameBuf = 64 << 10

type closeRequest struct {
	code   uint16
	reason string
}

func newOutbox(sink Sink, capacity int) *outbox {
	return &outbox{sink: sink, cap: capacity}
}

// push queues ev, merging it into the last queued delta when it continues
// that delta. It reports whether the caller must start a flusher.
func (o *outbox) push(ev *protocol.Event) pushResult {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.closing != nil {
		return pushClosed
	}
	if n := len(o.queue); n > 0 && o.queue[n-1].continues(ev) {
		o.queue[n-1].merge(ev)
		return pushCoalesced
	}
	if len(o.queue) >= o.cap {
		return pushOverflow
	}
	o.queue = append(o.queue, newQueued(ev))
	if o.flushing {
		return pushQueued
	}
	o.flushing = true
	return pushStartFlush
}

// flush writes queued frames until the queue is empty, then exits.
func (o *outbox) flush() {
	var batch []queued
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
		o.spare = nil
		o.mu.Unlock()

		var pooled *[]byte
		var buf []byte
		o.wires = o.wires[:0]
		for i := range batch {
			if batch[i].more != nil && pooled == nil {
				pooled = frameBufs.Get().(*[]byte)
				buf = (*pooled)[:0]
			}
			var w []byte
			buf, w = batch[i].wire(buf)
			o.wires = append(o.wires, w)
		}
		err := o.sink.WriteFrames(o.wires)
		clear(o.wires)
		if pooled != nil && cap(buf) <= maxPooledFrameBuf {
			*pooled = buf[:0]
			frameBufs.Put(pooled)
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
