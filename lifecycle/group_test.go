package lifecycle

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/lifecycle/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestWaitWaitsForEveryStartedGoroutine(t *testing.T) {
	var g Group
	release := make(chan struct{})
	var finished sync.WaitGroup
	const n = 10
	finished.Add(n)
	for range n {
		if !g.Go(func() { <-release; finished.Done() }) {
			t.Fatal("Go refused before Stop")
		}
	}
	if got := g.Running(); got != n {
		t.Fatalf("Running = %d, want %d", got, n)
	}
	waited := make(chan error, 1)
	go func() { waited <- g.Wait(context.Background()) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned %v with %d goroutines blocked", err, n)
	case <-g.Stopping():
		// Wait stops the group first; the goroutines are still blocked.
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	finished.Wait() // every f returned before Wait did, so this cannot block
	if got := g.Running(); got != 0 {
		t.Fatalf("Running after Wait = %d", got)
	}
}

func TestGoAndDoRefuseAfterStop(t *testing.T) {
	var g Group
	g.Stop()
	ran := false
	if g.Go(func() { ran = true }) {
		t.Error("Go started a goroutine after Stop")
	}
	if g.Do(func() { ran = true }) {
		t.Error("Do ran after Stop")
	}
	if ran {
		t.Error("a refused function ran")
	}
	if err := g.Wait(context.Background()); err != nil {
		t.Fatalf("Wait on an empty stopped group: %v", err)
	}
}

func TestGoFromAGoroutineOfTheGroupAfterStopRefuses(t *testing.T) {
	var g Group
	started := make(chan bool)
	g.Go(func() {
		<-g.Stopping()
		started <- g.Go(func() {})
	})
	g.Stop()
	if <-started {
		t.Fatal("a goroutine of the group started another after Stop")
	}
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStopAndWaitAreIdempotent(t *testing.T) {
	var g Group
	g.Go(func() { <-g.Stopping() })
	for range 3 {
		g.Stop()
		if err := g.Wait(context.Background()); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	}
}

func TestWaitReportsWhatIsStillRunningWhenCtxEnds(t *testing.T) {
	var g Group
	release := make(chan struct{})
	g.Go(func() { <-release })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := g.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want a deadline error", err)
	}
	close(release)
	if err := g.Wait(context.Background()); err != nil {
		t.Fatalf("second Wait: %v", err)
	}
}

func TestDoIsCountedWhileItRuns(t *testing.T) {
	var g Group
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan bool)
	go func() { done <- g.Do(func() { close(inside); <-release }) }()
	<-inside
	if got := g.Running(); got != 1 {
		t.Fatalf("Running during Do = %d, want 1", got)
	}
	g.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); err == nil {
		t.Fatal("Wait returned while Do was running")
	}
	close(release)
	if !<-done {
		t.Fatal("Do reported false for a call it ran")
	}
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Go racing Stop and Wait either starts a goroutine that Wait then waits
// for, or refuses; run with -race, it also checks for the WaitGroup misuse.
func TestGoRacingWaitIsCountedOrRefused(t *testing.T) {
	for range 100 {
		var g Group
		var ran sync.WaitGroup // counts the goroutines that were started
		var mu sync.Mutex
		returned := 0
		start := make(chan struct{})
		var callers sync.WaitGroup
		for range 4 {
			callers.Go(func() {
				<-start
				for range 20 {
					ran.Add(1)
					if !g.Go(func() {
						mu.Lock()
						returned++
						mu.Unlock()
						ran.Done()
					}) {
						ran.Done()
					}
				}
			})
		}
		close(start)
		if err := g.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		atWait, running := returned, g.Running()
		mu.Unlock()
		if running != 0 {
			t.Fatalf("Running = %d after Wait", running)
		}
		callers.Wait()
		ran.Wait()
		mu.Lock()
		after := returned
		mu.Unlock()
		if after != atWait {
			t.Fatalf("%d goroutines ran after Wait returned", after-atWait)
		}
	}
}
