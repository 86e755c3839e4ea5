// Package actors is Chatbox's core: the protoactor-go actor tree that owns
// every live conversation and fans its events out to devices.
//
//	directory                 one per node: finds or spawns a user's actor
//	└── user/<user_id>        userActor: supervisor and fan-out point of one user
//	    ├── conn/<conn_id>    connProcess: one WebSocket's outbound queue, a Process with a pid but no mailbox
//	    └── session/<id>      sessionActor: one conversation, the only writer of its records
//
// Concurrency contract: conversation state lives inside actors and is
// touched only by the actor that owns it, one message at a time. Three
// small things are shared, each under its own mutex: a connection's outbox,
// into which its senders push events on their own goroutines and from which
// a flusher (flushers.go) writes its socket (conn.go); the per-user limit state, which transport goroutines
// read when they admit a connection (limits.go); and the response-time
// windows that Stats reads (stats.go). Store and provider calls run on
// goroutines the hub owns and report back to their actor by message: a
// generation's stream, a reply's checkpoint, an admin's owner lookup, a
// user's erasure (erase.go: the user actor closes its sockets through their
// outboxes and stops, then the directory erases the store). The
// transport talks to this package only through Hub and Conn, and supplies
// each connection's socket as a Sink; this package never imports a
// WebSocket or database library.
//
// Ordering: every event of a session goes session → user → conn, so all of a
// user's connections see the same events in the same order. A connection's
// commands are handed over by one reader at a time (Conn.Command), so they
// are handled in the order they were sent.
//
// The store is the arbiter: every write is fenced, and a session actor
// that loses a write reloads from the store before it answers.
//
// A conversation is a tree (tree.go): the session actor holds its messages
// by id with their parents, resolves send, edit and regenerate to a place
// in it (branch.go), and sends the model only the path from the new message
// to the root. Presence (typing) is relayed, never stored (rename.go).
// The help desk (desk.go) adds internal notes, which the tree never holds
// and only watching admins receive, the owner's rating, the time of a help
// request, and who watches each session, kept by the user actor.
//
// Cluster mode (cluster.go, with a Placement): the user actor is a
// protoactor cluster kind keyed by user id, connection actors stay on the
// socket's node under a local parent and attach to their user's actor
// wherever it is placed, and whatever crosses nodes is a wire.Envelope.
//
// A connected user who has not acted yet has no user actor: the directory
// keeps its connections parked until the first command or call spawns it
// (parked.go).
//
// Actors stop when idle (no connection, no reply in flight) after a
// handshake with their parent that counts routed messages, so a command in
// flight to a stopping actor is never lost: the parent only stops a child
// that has seen everything the parent sent it.
package actors
