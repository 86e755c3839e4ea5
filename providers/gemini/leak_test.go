package gemini

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/chatbox/chatbox/lifecycle/leaktest"
)

// opencensus, which the genai SDK imports through Google's auth libraries,
// starts its stats worker from a package init: one goroutine per process
// that nothing can stop, not a leak of ours.
func TestMain(m *testing.M) {
	leaktest.Main(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"))
}
