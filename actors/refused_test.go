package actors

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// A send that would start a new session and is refused creates nothing:
// no session (titled with the refused text), no message (CONTRACT §14).
// Before, the session was stored before the reply limits were asked
// (every row failed on the parent commit).
func TestARefusedSendCreatesNoSession(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		setup  func(t *testing.T, h *Hub, d *device, model *stepModel)
		code   string
	}{
		{"the server is draining", Limits{}, func(t *testing.T, h *Hub, _ *device, _ *stepModel) {
			h.draining.Store(true)
		}, protocol.CodeBusy},
		{"the daily quota is used", Limits{DailyTokens: 10}, func(t *testing.T, h *Hub, _ *device, _ *stepModel) {
			h.spendTokens(alice.UserID, 10)
		}, protocol.CodeRateLimited},
		{"too many replies in flight", Limits{RepliesInFlight: 1}, func(t *testing.T, h *Hub, d *device, model *stepModel) {
			d.do(protocol.Command{Type: protocol.TypeSend, ID: "first", Text: "the reply to this one streams"})
			d.next(typ("ack"))
			model.stream(t, 0) // in flight until the test ends
		}, protocol.CodeBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Limits = tt.limits })
			d := connect(t, h, alice)
			tt.setup(t, h, d, model)
			ctx := context.Background()
			before, _, err := h.cfg.Store.ListSessions(ctx, alice.UserID, persistence.Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			d.do(protocol.Command{Type: protocol.TypeSend, ID: "refused", Text: "refused text"})
			e := d.next(func(e map[string]any) bool { return e["type"] == "error" && e["id"] == "refused" })
			if e["code"] != tt.code {
				t.Fatalf("refused with %v, want %s", e, tt.code)
			}
			after, _, err := h.cfg.Store.ListSessions(ctx, alice.UserID, persistence.Page{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("%d sessions stored after the refusal, %d before: %+v", len(after), len(before), after)
			}
		})
	}
}
