// Package lifecycle owns goroutines: a Group starts them, counts them, and
// refuses to start any once it is stopping, so whoever stops a component can
// wait for everything the component started (nats-server's startGoRoutine
// is the model).
//
// Concurrency contract: every method of a Group is safe to call from any
// goroutine, including from goroutines the Group started, and the zero
// value is ready to use. Go and Do either count f before it runs or refuse
// it; Stop happens before any refusal it causes, so a goroutine counted by
// Go can never be added after Wait has seen the count reach zero (the race
// a bare sync.WaitGroup allows when Add and Wait meet). A Group cannot be
// restarted once stopped.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Group counts the goroutines of one owner (a hub, a server) between its
// start and its shutdown.
type Group struct {
	mu       sync.Mutex    // guards the fields below
	running  int           // goroutines started by Go, and calls of Do, not yet returned
	stopped  bool          // Stop has been called: Go and Do refuse
	stopping chan struct{} // closed by Stop; made on first use
	idle     chan struct{} // closed once stopped with nothing running; made on first use
}

// init makes the channels; g.mu is held.
func (g *Group) init() {
	if g.stopping == nil {
		g.stopping = make(chan struct{})
		g.idle = make(chan struct{})
	}
}

// Go runs f on a new goroutine counted by the group and reports true, or,
// once Stop has been called, starts nothing and reports false. The caller
// must handle false: it means the owner is shutting down.
func (g *Group) Go(f func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.exit()
		f()
	}()
	return true
}

// Task is a goroutine body of a group, bound once so that it can be
// started again and again without an allocation: Go's closure costs one
// per start, which a connection's flusher would pay per burst of frames.
type Task struct {
	g   *Group
	run func()
}

// Task binds f to the group; start it with Task.Go.
func (g *Group) Task(f func()) *Task {
	return &Task{g: g, run: func() {
		defer g.exit()
		f()
	}}
}

// Go is Group.Go for the task's f.
func (t *Task) Go() bool {
	if !t.g.enter() {
		return false
	}
	go t.run()
	return true
}

// Do runs f on the calling goroutine, counted like a goroutine of the
// group, and reports true; once Stop has been called it does not run f and
// reports false. It is for callbacks that already have a goroutine the
// group did not start, such as a time.AfterFunc's.
func (g *Group) Do(f func()) bool {
	if !g.enter() {
		return false
	}
	defer g.exit()
	f()
	return true
}

func (g *Group) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	if g.stopped {
		return false
	}
	g.running++
	return true
}

func (g *Group) exit() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running--
	if g.stopped && g.running == 0 {
		close(g.idle)
	}
}

// Stop makes Go and Do refuse from now on and closes Stopping. It does not
// wait; goroutines already running continue until they return. Idempotent.
func (g *Group) Stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	if g.stopped {
		return
	}
	g.stopped = true
	close(g.stopping)
	if g.running == 0 {
		close(g.idle)
	}
}

// Stopping is closed when Stop is called: a long-lived goroutine of the
// group selects on it to know when to return.
func (g *Group) Stopping() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.init()
	return g.stopping
}

// Wait stops the group, then waits until every goroutine it started has
// returned, or ctx ends. It may be called more than once and from several
// goroutines.
func (g *Group) Wait(ctx context.Context) error {
	g.Stop()
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		select {
		case <-idle: // both were ready: the goroutines did finish
			return nil
		default:
		}
		return fmt.Errorf("%d goroutines still running: %w", g.Running(), ctx.Err())
	}
}

// Running is how many goroutines of the group have not returned yet.
func (g *Group) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}
