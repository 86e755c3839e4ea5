// Package leaktest is the goroutine leak check that every Chatbox package
// starting goroutines runs from its TestMain, after its tests:
// go.uber.org/goleak, polled for long enough that goroutines which end by
// themselves shortly after their owner stopped are not reported.
//
// It is for tests only; call it from TestMain, never from a test.
package leaktest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// Grace is how long Check waits for goroutines to end. It outlasts
// protoactor's dead-letter log throttle: a goroutine the actor system starts
// on a burst of dead letters, which sleeps DeadLetterThrottleInterval (1s)
// and then returns, and which ActorSystem.Shutdown does not stop.
const Grace = 3 * time.Second

// Check returns goleak's report of the goroutines, other than the testing
// package's and the runtime's, still running after Grace; nil if none.
func Check(opts ...goleak.Option) error {
	deadline := time.Now().Add(Grace)
	for {
		err := goleak.Find(opts...) // itself retries for about half a second
		if err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

// Verify exits the test binary with status 1 if Check reports a leak.
func Verify(opts ...goleak.Option) {
	if err := Check(opts...); err != nil {
		fmt.Fprintf(os.Stderr, "leaktest: goroutines outlived the tests: %v\n", err)
		os.Exit(1)
	}
}

// Main runs the tests and, if they pass, Verify; it is a whole TestMain:
//
//	func TestMain(m *testing.M) { leaktest.Main(m) }
func Main(m *testing.M, opts ...goleak.Option) {
	if code := m.Run(); code != 0 {
		os.Exit(code)
	}
	Verify(opts...)
}
