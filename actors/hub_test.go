package actors

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence/storetest"
)

// waitClosed fails the test unless ch is closed within a few seconds.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: not in time", what)
	}
}

// stackHas reports whether any goroutine is running fn.
func stackHas(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// A flusher blocked on a slow socket is a goroutine of the hub: Shutdown
// returns only once it has written what was queued and closed the socket,
// and a second Shutdown is a no-op.
func TestShutdownWaitsForAFlusherOnASlowSocketAndIsIdempotent(t *testing.T) {
	h, _ := newTestHub(t, &stepModel{})
	sink := newGateSink()
	ticket, err := h.Admit(alice.UserID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Connect(ticket, alice, sink); err != nil {
		t.Fatal(err)
	}
	// The sweeper and the pooled flushers, one of them blocked on the
	// gate writing hello.
	eventually(t, func() bool { return h.goroutines.Running() == 1+pooledFlushers && stackHas("(*outbox).flush") })

	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(context.Background()) }()
	waitClosed(t, h.goroutines.Stopping(), "Shutdown stops the hub's goroutines")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while the flusher was blocked", err)
	default:
	}
	close(sink.gate)
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the flusher was released")
	}
	frames, code := sink.snapshot()
	if len(frames) != 1 || !strings.Contains(string(frames[0]), `"hello"`) || code != CloseGoingAway {
		t.Fatalf("socket got %d frames and close %d, want hello then %d", len(frames), code, CloseGoingAway)
	}
	if n := h.goroutines.Running(); n != 0 {
		t.Fatalf("%d goroutines of the hub still running after Shutdown", n)
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if h.goroutines.Go(func() {}) {
		t.Fatal("the hub started a goroutine after Shutdown")
	}
}

// Shutdown waits for a sweep in progress, and the sweeper is gone when it
// returns: no sweep can run after it.
func TestSweeperDoesNotRunAfterShutdown(t *testing.T) {
	cfg := testConfig()
	cfg.Store, cfg.Models = storetest.Open(t), &stepModel{}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.sweepEvery = time.Millisecond
	var sweeps atomic.Int64
	var shutDown atomic.Bool
	inSweep, release := make(chan struct{}), make(chan struct{})
	h.onSweep = func() {
		if shutDown.Load() {
			t.Error("a sweep ran after Shutdown returned")
		}
		if sweeps.Add(1) == 3 {
			close(inSweep)
			<-release
		}
	}
	h.Start()
	waitClosed(t, inSweep, "the sweeper runs")

	shut := make(chan error, 1)
	go func() { shut <- h.Shutdown(context.Background()) }()
	waitClosed(t, h.goroutines.Stopping(), "Shutdown stops the hub's goroutines")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) during a sweep", err)
	default:
	}
	close(release)
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	shutDown.Store(true)
	if n := sweeps.Load(); n != 3 {
		t.Fatalf("%d sweeps, want 3: the sweeper went on after it was stopped", n)
	}
	if stackHas("actors.(*Hub).sweep(") {
		t.Fatal("the sweeper goroutine outlived Shutdown")
	}
}

func TestAUserActorLearnsItsUserFromItsPidOnly(t *testing.T) {
	for _, tt := range []struct{ pid, want string }{
		{"$1/" + userName("alice") + "$2", "alice"},
		{"$1/" + userName("a/b$c") + "$3f", "a/b$c"},
		{"partition-activator/alice$7", ""},
		{"$1/user-", ""},
	} {
		if got := userOf(tt.pid); got != tt.want {
			t.Errorf("userOf(%q) = %q, want %q", tt.pid, got, tt.want)
		}
	}
}

// userActors counts the registered user actors of userID.
func (h *Hub) userActors(userID string) int {
	n := 0
	for _, m := range h.system.ProcessRegistry.LocalPIDs.LocalPIDs {
		for _, id := range m.Keys() {
			if userOf(id) == userID {
				n++
			}
		}
	}
	return n
}
