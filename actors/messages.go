package actors

import (
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// Identity is the authenticated user behind a connection.
type Identity struct {
	UserID string
	Name   string
	Admin  bool
}

// attach asks the directory for the user's actor and a new connActor under
// it; the answer goes to reply (buffered, so no actor ever waits on it). A
// channel rather than a protoactor future: a future registers a process
// and keeps a timer per connection.
type attach struct {
	identity Identity
	connID   string
	sink     Sink
	reply    chan *attached
}

type attached struct {
	user *actor.PID
	conn *actor.PID
}

// routed wraps what a parent forwards to a child, so the child can count it
// for the idle handshake.
type routed struct{ msg any }

// childIdle is a child's request to be stopped: it has been idle and has
// seen `seen` routed messages.
type childIdle struct {
	name string
	seen uint64
}

// command is a client command from one connection, as sent by the transport
// to the user actor.
type command struct {
	connID string
	conn   *actor.PID
	cmd    protocol.Command
	reject *protocol.Event // set instead of cmd for a frame that did not decode
	// admitted: a typing notice that passed its rate limit on arrival, and
	// waited behind a call in flight.
	admitted bool
}

// detach says a connection's socket is gone.
type detach struct{ connID, userID string }

// sessionCommand is a command forwarded by the user actor to a session.
// conn receives the events that answer it (nil for HTTP calls); when
// replyTo is set the session also answers a *callAnswer there, after those
// events (sessionActor.answer says how).
type sessionCommand struct {
	conn     *actor.PID
	identity Identity
	cmd      protocol.Command
	replyTo  *actor.PID
	connID   string
}

// call is a command from outside the owner's own connections: an admin's
// (watch, takeover, an admin message…) or one made over the HTTP API. It is
// routed to the session owner's user actor through the directory.
type call struct {
	identity Identity
	conn     *actor.PID // the caller's connection, or nil for HTTP
	connID   string
	cmd      protocol.Command
	replyTo  *actor.PID // the caller's user actor, or the HTTP request's future
}

// CallResult is what a successful call returns.
type CallResult struct {
	MessageID string // an admin message's id
	Seq       int64  // an admin message's seq
}

// callAnswer ends a call: err is nil on success.
type callAnswer struct {
	connID string
	result CallResult
	err    *protocol.Error
}

// forUser asks the directory to route msg to a user's actor, spawning it.
type forUser struct {
	userID string
	msg    any
}

// relay asks a user actor to pass msg on to another actor, after the events
// it already sent (an admin's call answered after its events, see
// sessionActor.answer).
type relay struct {
	to  *actor.PID
	msg any
}

// setShare asks a session to create (on) or revoke its read-only share
// link; the session answers a *shareAnswer to replyTo.
type setShare struct {
	sessionID string
	on        bool
	replyTo   *actor.PID
}

type shareAnswer struct {
	shareID string
	err     *protocol.Error
}

// ownerFound answers an admin connection's lookup of a session's owner.
type ownerFound struct {
	cmd   *command
	owner string
	err   error
}

// closeConns asks every user actor to close its connections once the
// events already sent to them are delivered (Poison queues behind them).
type closeConns struct{}

// adminOnline registers an admin's connection for live alerts.
type adminOnline struct{ conn *actor.PID }

// alertAdmins sends an event to every connected admin.
type alertAdmins struct{ event *protocol.Event }

// deliver is an event from a session to its user actor: to one connection,
// or to all of them (and watchers) when to is nil. A plain broadcast, the
// common case (every delta), is sent as the bare *protocol.Event instead.
type deliver struct {
	event  *protocol.Event
	to     *actor.PID
	except *actor.PID // a broadcast that skips this connection (its sender)
	// adminsOnly: a broadcast to the watching admins, never to the
	// owner's connections (an internal note).
	adminsOnly bool
}

// genChunk and genDone carry a generation's output from its goroutine back
// to the session actor. gen identifies the generation so that output of a
// cancelled one is ignored.
type genChunk struct {
	gen  uint64
	text string
}

// genChunks recycles the chunks of every generation, which would otherwise
// cost an allocation per token.
var genChunks = sync.Pool{New: func() any { return new(genChunk) }}

type genDone struct {
	gen   uint64
	usage *providers.Usage
	err   error
}

// checkpointDone tells the session actor that a checkpoint write of
// generation gen has returned.
type checkpointDone struct {
	gen   uint64
	write *checkpointWrite
}
