package lifecycle

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
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

// A task is counted like Go's goroutines each time it starts, refused once
// the group stops, and starting it allocates nothing.
func TestATaskRunsCountedUntilStopAndStartsWithoutAllocating(t *testing.T) {
	var g Group
	release := make(chan struct{})
	var ran atomic.Int64
	task := g.Task(func() { ran.Add(1); <-release })
	for range 3 {
		if !task.Go() {
			t.Fatal("Go refused before Stop")
		}
	}
	if n := g.Running(); n != 3 {
		t.Fatalf("Running = %d with three starts blocked, want 3", n)
	}
	close(release)
	// Each start waits for the one before to return, so the runtime
	// reuses its goroutine: a closure per start would be 1 allocation
	// each; what is left is the occasional new goroutine.
	const starts = 1000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range starts {
		n := ran.Load()
		task.Go()
		for ran.Load() == n || g.Running() != 0 {
			runtime.Gosched()
		}
	}
	runtime.ReadMemStats(&after)
	if per := float64(after.Mallocs-before.Mallocs) / starts; per > 0.5 {
		t.Errorf("starting a task allocates %.2f times", per)
	}
	g.Stop()
	if task.Go() {
		t.Error("Go started the task after Stop")
	}
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != 3+starts {
		t.Fatalf("the task ran %d times, want %d", n, 3+starts)
	}
}
