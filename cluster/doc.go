// Package cluster joins this node to the other Chatbox nodes with
// protoactor-go's cluster: a cluster provider finds the members ("static":
// protoactor's automanaged provider over a fixed peer list; "kubernetes":
// its Kubernetes provider), the disthash identity lookup places each user's
// actor on one member, and protoactor remote carries the messages between
// nodes, all of them protobuf messages of the wire subpackage.
//
// It knows nothing of conversations: the actors package hands it the props
// of the user actor (the only cluster kind) and asks it for the pid of a
// user's actor; everything else about who talks to whom stays there.
//
// Concurrency: New does no I/O; Start joins (once, from one goroutine);
// Get, Members and Ready may be called from any goroutine after Start (Get
// waits at most lookupWait; a lookup it gave up on runs out on a goroutine
// that Shutdown waits for);
// Shutdown is idempotent.
package cluster
