package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// idleTimer tells its actor, with an idleTick, when a period has passed;
// the actor counts the messages it receives (touch) and so knows at a tick
// whether it has been quiet for a whole period. Session and user actors
// stop when idle this way rather than by protoactor's receive timeout,
// whose timer goroutine writes the actor context's fields while the actor
// may be reading them (a data race the race detector reports when the
// timeout fires as a message arrives) and which fires only once.
//
// The timer's callback only sends the tick, so it touches no actor state;
// only the actor calls the methods.
type idleTimer struct {
	timer   *time.Timer
	seen    uint64 // messages received
	atCheck uint64 // seen at the last arm or tick
}

// idleTick is the timer's message to its actor.
type idleTick struct{}

var idleTickMsg = &idleTick{}

// arm starts the timer (again) for period d, counting quiet from now.
func (t *idleTimer) arm(h *Hub, self *actor.PID, d time.Duration) {
	t.atCheck = t.seen
	if t.timer != nil {
		t.timer.Reset(d)
		return
	}
	t.timer = time.AfterFunc(d, func() {
		h.goroutines.Do(func() { h.root.Send(self, idleTickMsg) }) // refused once the hub stops
	})
}

// touch counts a message.
func (t *idleTimer) touch() { t.seen++ }

// quiet reports, at a tick, whether no message came since the last arm or
// tick, and starts the next period.
func (t *idleTimer) quiet() bool {
	q := t.seen == t.atCheck
	t.atCheck = t.seen
	return q
}

// armed reports whether a tick is due.
func (t *idleTimer) armed() bool { return t.timer != nil }

// stop stops the timer; a tick already on its way is ignored by an actor
// that is no longer armed or no longer alive.
func (t *idleTimer) stop() {
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
}
