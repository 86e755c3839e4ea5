package actors

import (
	"context"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// A connected user who has sent nothing has no actor; its connection is
// parked in the directory. Erasing the user still closes it with 4001.
func TestAParkedConnectionOfAnErasedUserClosesWith4001(t *testing.T) {
	h, _ := newTestHub(t, &stepModel{})
	_, sink := connectRecorded(t, h, alice)
	if n := h.userActors(alice.UserID); n != 0 {
		t.Fatalf("%d user actors for a user who sent nothing, want none", n)
	}
	record := &persistence.AuditEntry{ID: persistence.NewAuditID(time.Now()), At: time.Now(), AdminID: ann.UserID, AdminName: ann.Name,
		Role: persistence.AuditByAdmin, Action: "erase", UserID: alice.UserID}
	if _, err := h.EraseUser(context.Background(), alice.UserID, record); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { _, code := sink.snapshot(); return code == CloseErased })
	eventually(t, func() bool { return h.metrics.users.Load() == 0 })
}

// When something else than the user spawns the user's actor (an admin
// taking over a stored session), the actor adopts the parked connections
// first: the user's idle device sees the takeover.
func TestAnAdminCallAdoptsTheParkedConnectionsOfTheUser(t *testing.T) {
	const idle = 50 * time.Millisecond
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.SessionIdle, c.UserIdle = idle, idle })
	first := connect(t, h, alice)
	sid := exchange(t, first, model, 0, "", "hi", "hello")
	first.conn.Close()
	eventually(t, func() bool { return h.metrics.users.Load() == 0 && h.metrics.sessions.Load() == 0 })

	phone := connect(t, h, alice) // parked: alice has no actor now
	if n := h.userActors(alice.UserID); n != 0 {
		t.Fatalf("%d actors of alice after she left, want none", n)
	}
	admin := connect(t, h, ann)
	admin.do(protocol.Command{Type: protocol.TypeTakeover, ID: "t", SessionID: sid})
	if e := phone.next(typ("takeover")); e["session_id"] != sid {
		t.Fatalf("takeover event %v", e)
	}
	if n := h.userActors(alice.UserID); n != 1 {
		t.Fatalf("%d actors of alice after the takeover, want the one that adopted her phone", n)
	}
	phone.do(protocol.Command{Type: protocol.TypePing, ID: "p"})
	phone.next(typ("pong"))
}
