package actors

import (
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/protocol"
)

// Sink is one socket's outbound side, supplied by the transport.
type Sink interface {
	// WriteFrames writes complete WebSocket frames (header and payload, as
	// in protocol.Event.Wire), in order, ideally in one system call. The
	// connActor's flusher is its only caller for event frames;
	// implementations serialise it with their own control frames (pings,
	// close). It must not keep wires after returning.
	WriteFrames(wires [][]byte) error
	// Close sends a close frame with code and reason, then closes the socket.
	// It is idempotent and safe to call from any goroutine.
	Close(code uint16, reason string)
}

// WebSocket close codes the actors decide on.
const (
	CloseNormal     uint16 = 1000
	CloseGoingAway  uint16 = 1001
	CloseTryAgain   uint16 = 1013 // the outbound queue overflowed: resume with sync
	closeInternal   uint16 = 1011
	closeReasonSlow        = "slow consumer: reconnect and sync"
)

// connActor owns one connection's outbound queue. Events arrive in the order
// the user actor sent them; the outbox coalesces consecutive deltas of one
// reply and a flusher goroutine, started only while there is something to
// write, drains it into the socket. An idle connection therefore holds no
// goroutine here.
type connActor struct {
	hub      *Hub
	identity Identity
	connID   string
	out      *outbox
}

func (c *connActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.push(ctx, c.hub.hello(c.identity, c.connID))
		if c.identity.Admin {
			ctx.Send(c.hub.admins, &adminOnline{conn: ctx.Self()})
		}
	case *protocol.Event:
		c.push(ctx, m)
	case *actor.Restarting:
		// The socket's state is unknown after a crash: close it, the client
		// reconnects and syncs. Only this connection is affected.
		c.out.close(closeInternal, "internal error")
	case *actor.Stopped:
		// Frames already queued (a reply's final message) still go out.
		c.out.closeAfterFlush(CloseGoingAway, "server closing the connection")
	}
}

func (c *connActor) push(ctx actor.Context, ev *protocol.Event) {
	switch c.out.push(ev) {
	case pushOverflow:
		c.hub.metrics.slowCloses.Inc()
		c.hub.log.Warn("outbound queue overflow; closing", slog.String("conn_id", c.connID), slog.String("user_id", c.identity.UserID))
		c.out.close(CloseTryAgain, closeReasonSlow)
	case pushCoalesced:
		c.hub.metrics.coalesced.Inc()
	case pushStartFlush:
		if !c.hub.goroutines.Go(c.out.flush) {
			c.out.close(CloseGoingAway, "server closing the connection") // the hub is stopping
		}
	}
}

type pushResult uint8

const (
	pushQueued pushResult = iota
	pushStartFlush
	pushCoalesced
	pushOverflow
	pushClosed
)

// outbox is a bounded queue of encoded events between a connActor (the only
// producer) and its flusher goroutine (the only consumer).
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

// queued is an event waiting in an outbox. more is text of later deltas of
// the same reply merged into it while it waited; the merged delta is
// encoded once, when it is written, so merging costs an append, not a
// re-encoding of everything merged so far.
type queued struct {
	ev   *protocol.Event
	more []byte
}

// continues reports whether delta d starts where q (with what was merged
// into it) ends.
func (q *queued) continues(d *protocol.Event) bool {
	e := q.ev
	return e.Kind == protocol.KindDelta && d.Kind == protocol.KindDelta && e.MessageID == d.MessageID &&
		e.SessionID == d.SessionID && e.Offset+len(e.Text)+len(q.more) == d.Offset
}

// wire is the frame to write for q.
func (q *queued) wire() []byte {
	if len(q.more) == 0 {
		return q.ev.Wire
	}
	e := q.ev
	return protocol.NewDelta(e.SessionID, e.MessageID, e.Seq, e.Offset, e.Text+string(q.more)).Wire
}

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
		o.queue[n-1].more = append(o.queue[n-1].more, ev.Text...)
		return pushCoalesced
	}
	if len(o.queue) >= o.cap {
		return pushOverflow
	}
	o.queue = append(o.queue, queued{ev: ev})
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

		o.wires = o.wires[:0]
		for i := range batch {
			o.wires = append(o.wires, batch[i].wire())
		}
		err := o.sink.WriteFrames(o.wires)
		clear(o.wires)
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
