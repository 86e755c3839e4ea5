package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/chatbox/chatbox/lifecycle/leaktest"
)

// The tests run the whole program in-process (startServer), so every
// goroutine it starts must be gone when they end. opencensus, which the
// genai SDK imports through Google's auth libraries, starts its stats
// worker from a package init: one per process that nothing stops, not ours.
func TestMain(m *testing.M) {
	leaktest.Main(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}
