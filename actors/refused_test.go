package actors

import (
	"context"
	"fmt"
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

// A new session whose first message cannot be stored is taken back: the
// send is refused with storage_unavailable and nothing of it stays
// (before, an empty session titled with the refused text was left).
func TestAFirstMessageThatCannotBeStoredLeavesNoSession(t *testing.T) {
	store := newFaultStore(t)
	store.hooks(nil, func(*persistence.Message) error {
		return fmt.Errorf("append: %w", persistence.ErrUnavailable)
	}, nil)
	h, _ := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = store })
	d := connect(t, h, alice)
	d.do(protocol.Command{Type: protocol.TypeSend, ID: "refused", Text: "refused text"})
	e := d.next(func(e map[string]any) bool { return e["type"] == "error" && e["id"] == "refused" })
	if e["code"] != protocol.CodeStorageUnavailable {
		t.Fatalf("refused with %v, want storage_unavailable", e)
	}
	if w := store.written(); w["create_session"] != 1 {
		t.Fatalf("writes %v: the session was never created, so this test shows nothing", w)
	}
	list, _, err := store.ListSessions(context.Background(), alice.UserID, persistence.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("sessions stored after the refusal: %+v", list)
	}
	// The store is back: the next send starts a conversation as usual.
	store.hooks(nil, nil, nil)
	d.do(protocol.Command{Type: protocol.TypeSend, ID: "again", Text: "second try"})
	if a := d.next(typ("ack")); a["id"] != "again" {
		t.Fatalf("after the store came back: %v", a)
	}
}
