package main

import (
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestClusterErasingAUserFromAThirdNodeClosesItsDevicesEverywhereFirst: a
// user with a device on node 1 and one on node 2 (one of them attached to
// the user's actor from another node), a reply streaming; an admin on node
// 3 erases the user. Both devices are closed with 4001, the store holds
// nothing of the user afterwards (from any node), the audit trail has the
// erase entry, another user is untouched, and the user's next device starts
// with nothing.
func TestClusterErasingAUserFromAThirdNodeClosesItsDevicesEverywhereFirst(t *testing.T) {
	nodes := clusterNodes(t, 3, "20ms", "[limits]\nmessages_per_minute = 0")
	alice, bob, ann := signToken(t, "alice", "Alice"), signToken(t, "bob", "Bob"), signAdmin(t, "ann", "Ann")
	devices := []*client{nodes[0].dial(t, alice, false), nodes[1].dial(t, alice, false)}
	devices[0].send(map[string]any{"type": "send", "id": "1", "text": "first"})
	sid := devices[0].next(isType("ack")).str("session_id")
	devices[0].next(isFinal)
	devices[1].next(isFinal)
	var link map[string]string
	if code := nodes[1].doJSON(t, "POST", alice, "/api/sessions/"+sid+"/share", "", &link); code != 200 {
		t.Fatalf("share from node 2: %d", code)
	}
	bobs := nodes[2].dial(t, bob, false)
	bobs.send(map[string]any{"type": "send", "id": "b1", "text": "bob's"})
	bobSid := bobs.next(isType("ack")).str("session_id")
	bobs.next(isFinal)
	// A reply in flight when the erasure comes: stored as interrupted,
	// then erased with the rest.
	devices[1].send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "a long story please"})
	devices[1].next(isType("ack"))
	devices[0].next(isType("delta"))

	var res struct {
		Erased map[string]int64 `json:"erased"`
	}
	if code := nodes[2].doJSON(t, "DELETE", ann, "/api/admin/users/alice", "", &res); code != 200 {
		t.Fatalf("erase from node 3: %d", code)
	}
	if res.Erased["sessions"] != 1 || res.Erased["messages"] != 4 {
		t.Errorf("erased %v, want 1 session and 4 messages (2 sends, 2 replies)", res.Erased)
	}
	for i, d := range devices {
		select {
		case ce := <-d.closed:
			if ce.Code != websocket.StatusCode(4001) {
				t.Errorf("alice's device on node %d closed with %d %q, want 4001", i+1, ce.Code, ce.Reason)
			}
		case <-time.After(waitFor):
			t.Fatalf("alice's device on node %d was not closed", i+1)
		}
	}

	for i, n := range nodes {
		var list sessionList
		if n.getJSON(t, alice, "/api/sessions", &list); len(list.Sessions) != 0 {
			t.Errorf("node %d lists %d sessions of alice after the erasure", i+1, len(list.Sessions))
		}
		if code := n.getJSON(t, "", "/api/shared/"+link["share_id"], nil); code != 404 {
			t.Errorf("node %d: the erased session's share link answers %d, want 404", i+1, code)
		}
	}
	var export struct {
		Sessions []any `json:"sessions"`
	}
	if code := nodes[0].getJSON(t, ann, "/api/admin/users/alice/export", &export); code != 200 || len(export.Sessions) != 0 {
		t.Errorf("export of alice after the erasure: %d, %d sessions", code, len(export.Sessions))
	}
	var audit auditList
	nodes[1].getJSON(t, ann, "/api/admin/audit", &audit)
	erases := 0
	for _, e := range audit.Entries {
		if e["action"] == "erase" && e["user_id"] == "alice" && e["admin_id"] == "ann" {
			erases++
		}
	}
	if erases != 1 {
		t.Errorf("audit after the erasure: %v, want one erase of alice by ann", audit.Entries)
	}
	if got := syncAll(t, bobs, bobSid, 0); len(got) != 2 {
		t.Errorf("bob's session holds %d messages after alice's erasure, want 2", len(got))
	}

	// The next device of the user starts with nothing, and can write again.
	pollUntil(t, "alice can connect again", func() bool {
		c := nodes[0].dial(t, alice, false)
		if err := c.write(map[string]any{"type": "send", "id": "3", "text": "hello again"}); err != nil {
			return false
		}
		e, err := c.within(2*time.Second, func(e event) bool { return e.str("type") == "ack" || e.str("type") == "error" })
		c.conn.CloseNow()
		return err == nil && e.str("type") == "ack"
	})
	var list sessionList
	if nodes[2].getJSON(t, alice, "/api/sessions", &list); len(list.Sessions) != 1 {
		t.Errorf("alice has %d sessions after starting again, want 1", len(list.Sessions))
	}
}

// TestClusterShareLinksWorkFromAnyNode: a session's owner creates its share
// link on a node that does not hold the owner's actor, anyone reads it on
// any node, the owner revokes it from a third, and then no node serves it.
func TestClusterShareLinksWorkFromAnyNode(t *testing.T) {
	nodes := clusterNodes(t, 3, "1ms")
	dana := signToken(t, "dana", "Dana")
	d := nodes[0].dial(t, dana, false)
	d.send(map[string]any{"type": "send", "id": "1", "text": "share me"})
	sid := d.next(isType("ack")).str("session_id")
	d.next(isFinal)
	host := hostOf(t, nodes)
	other := (host + 1) % 3

	var link map[string]string
	if code := nodes[other].doJSON(t, "POST", dana, "/api/sessions/"+sid+"/share", "", &link); code != 200 || link["share_id"] == "" {
		t.Fatalf("share from node %d (the user's actor is on node %d): %d %v", other+1, host+1, code, link)
	}
	var again map[string]string
	if code := nodes[host].doJSON(t, "POST", dana, "/api/sessions/"+sid+"/share", "", &again); code != 200 || again["share_id"] != link["share_id"] {
		t.Fatalf("sharing again from node %d: %d %v, want the same link %s", host+1, code, again, link["share_id"])
	}
	for i, n := range nodes {
		var shared struct {
			Messages []map[string]any `json:"messages"`
		}
		if code := n.getJSON(t, "", "/api/shared/"+link["share_id"], &shared); code != 200 || len(shared.Messages) != 2 {
			t.Fatalf("node %d serves the share link: %d, %d messages; want 200 and 2", i+1, code, len(shared.Messages))
		}
	}
	if code := nodes[(host+2)%3].doJSON(t, "DELETE", dana, "/api/sessions/"+sid+"/share", "", nil); code != 204 {
		t.Fatalf("revoke from node %d: %d", (host+2)%3+1, code)
	}
	for i, n := range nodes {
		if code := n.getJSON(t, "", "/api/shared/"+link["share_id"], nil); code != 404 {
			t.Errorf("node %d serves a revoked share link: %d, want 404", i+1, code)
		}
	}
	// Someone else's session: not found, from any node.
	eve := signToken(t, "eve", "Eve")
	if code := nodes[other].doJSON(t, "POST", eve, "/api/sessions/"+sid+"/share", "", nil); code != 404 {
		t.Errorf("another user shares dana's session: %d, want 404", code)
	}
}
