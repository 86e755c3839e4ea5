package actors

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sweepUsers may run while a user is admitted or a reply counted: the
// count must land in the state the next Admit reads, never in one the
// sweep has just dropped (the user would get a fresh state with a zero
// count and past the limit). Both goroutines hammer one user for a bounded
// time; before the fix the limit was overrun within a fraction of a second
// (verified on the parent commit).
func TestSweepingUsersNeverLosesACountInFlight(t *testing.T) {
	h, _ := newTestHub(t, &stepModel{}, func(c *Config) {
		c.Limits = Limits{ConnectionsPerUser: 1, RepliesInFlight: 1}
	})
	const user = "swept"
	deadline := time.Now().Add(time.Second)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			h.sweepUsers()
		}
	})
	defer func() { stop.Store(true); wg.Wait() }()
	for i := 0; time.Now().Before(deadline); i++ {
		ticket, err := h.Admit(user)
		if err != nil {
			t.Fatalf("round %d: first connection refused: %v", i, err)
		}
		if extra, err := h.Admit(user); err == nil {
			extra.Release()
			ticket.Release()
			t.Fatalf("round %d: a second connection was admitted past connections_per_user = 1", i)
		}
		ticket.Release()

		if !h.acquireReply(user) {
			t.Fatalf("round %d: first reply refused", i)
		}
		if h.acquireReply(user) {
			t.Fatalf("round %d: a second reply was counted past replies_in_flight = 1", i)
		}
		h.releaseReply(user)
	}
}
