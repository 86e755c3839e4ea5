// Package actors is Chatbox's core: the protoactor-go actor tree that owns
// every live conversation and fans its events out to devices.
//
//	directory                 one per node: finds or spawns a user's actor
//	└── user/<user_id>        userActor: supervisor and fan-out point of one user
//	    ├── conn/<conn_id>    connActor: one WebSocket's outbound queue
//	    └── session/<id>      sessionActor: one conversation, the only writer of its records
//
// Concurrency contract: all state lives inside actors and is touched only by
// the actor that owns it, one message at a time; there are no locks except
// the outbox's, which hands frames from a connActor to the goroutine that
// writes its socket. The transport talks to this package only through Hub
// and Conn, and supplies each connection's socket as a Sink; this package
// never imports a WebSocket or database library.
//
// Ordering: every event of a session goes session → user → conn, so all of a
// user's connections see the same events in the same order. A connection's
// commands are sent by its single read goroutine to the user actor, so they
// are handled in the order they were sent.
//
// Actors stop when idle (no connection, no reply in flight) after a
// handshake with their parent that counts routed messages, so a command in
// flight to a stopping actor is never lost: the parent only stops a child
// that has seen everything the parent sent it.
package actors
