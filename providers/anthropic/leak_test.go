package anthropic

import (
	"testing"

	"github.com/chatbox/chatbox/lifecycle/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }
