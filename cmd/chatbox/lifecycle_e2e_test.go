package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
)

type auditList struct {
	Entries    []map[string]any `json:"entries"`
	NextCursor string           `json:"next_cursor"`
}

// actions lists the audit entries' actions, newest first.
func actions(l auditList) []string {
	out := make([]string, len(l.Entries))
	for i, e := range l.Entries {
		out[i], _ = e["action"].(string)
	}
	return out
}

func TestEndMidReplyStoresTheReplyFirstThenRefusesNewMessages(t *testing.T) {
	s := startServer(t, t.TempDir(), `demo_delay = "40ms"`)
	tok, ann := signToken(t, "alice", "Alice"), signAdmin(t, "ann", "Ann")
	phone, laptop := s.dial(t, tok, false), s.dial(t, tok, true)

	phone.send(map[string]any{"type": "send", "id": "c1", "text": "tell me a long story"})
	sid := phone.next(isType("ack")).str("session_id")
	admin := s.dial(t, ann, false)
	admin.send(map[string]any{"type": "watch", "session_id": sid})
	admin.barrier()
	laptop.collect(isType("delta"))
	laptop.send(map[string]any{"type": "end", "session_id": sid})

	for name, c := range map[string]*client{"phone": phone, "laptop": laptop, "watching admin": admin} {
		events := c.collect(isType("ended"))
		final := -1
		for i, e := range events {
			if isFinal(e) {
				final = i
			}
		}
		if final < 0 || events[final].msg().str("status") != "stopped" {
			t.Fatalf("%s: no stopped reply before ended: %v", name, events)
		}
		if got := events[len(events)-1]; got.str("session_id") != sid {
			t.Errorf("%s: ended event %v", name, got)
		}
	}
	var stored struct {
		Messages []map[string]any `json:"messages"`
	}
	s.getJSON(t, tok, "/api/sessions/"+sid+"/messages", &stored)
	if len(stored.Messages) != 2 || stored.Messages[1]["status"] != "stopped" || stored.Messages[1]["text"] == "" {
		t.Fatalf("stored %v, want the user's message and the stopped reply", stored.Messages)
	}

	phone.send(map[string]any{"type": "send", "id": "c2", "session_id": sid, "text": "one more thing"})
	if e := phone.next(isType("error")); e.str("code") != "ended" || e.str("id") != "c2" {
		t.Fatalf("send after end: %v, want error ended", e)
	}
	phone.send(map[string]any{"type": "help", "id": "c3", "session_id": sid})
	if e := phone.next(isType("error")); e.str("code") != "ended" {
		t.Fatalf("help after end: %v, want error ended", e)
	}
	s.getJSON(t, tok, "/api/sessions/"+sid+"/messages", &stored)
	if len(stored.Messages) != 2 {
		t.Errorf("the refused send stored something: %v", stored.Messages)
	}

	var list sessionList
	if code := s.getJSON(t, ann, "/api/admin/sessions?status=ended", &list); code != 200 || len(list.Sessions) != 1 || list.Sessions[0]["status"] != "ended" {
		t.Errorf("admin list of ended sessions: %d %v", code, list.Sessions)
	}
	if s.getJSON(t, ann, "/api/admin/sessions?status=active", &list); len(list.Sessions) != 0 {
		t.Errorf("admin list of active sessions: %v, want none", list.Sessions)
	}
	if code := s.getJSON(t, ann, "/api/admin/sessions?status=closed", nil); code != 400 {
		t.Errorf("unknown status filter: %d, want 400", code)
	}

	// A device that comes back learns that the session has ended.
	tablet := s.dial(t, tok, false)
	tablet.send(map[string]any{"type": "sync", "session_id": sid, "after_seq": 0})
	tablet.next(isType("ended"))

	var audit auditList
	s.getJSON(t, ann, "/api/admin/audit", &audit)
	if len(audit.Entries) != 1 || audit.Entries[0]["action"] != "end" || audit.Entries[0]["role"] != "user" ||
		audit.Entries[0]["admin_id"] != "alice" || audit.Entries[0]["session_id"] != sid || audit.Entries[0]["user_id"] != "alice" {
		t.Errorf("audit: %v, want alice's end", audit.Entries)
	}
}

func TestAdminEndsASessionOverHTTP(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	ann := signAdmin(t, "ann", "Ann")
	alice, sid := startChat(t, s, signToken(t, "alice", "Alice"), "hello")

	var e apiErr
	if code := s.doJSON(t, "POST", signToken(t, "bob", "Bob"), "/api/sessions/"+sid+"/end", "", &e); code != 404 || e.Error.Code != "not_found" {
		t.Errorf("another user ends it: %d %+v, want 404", code, e)
	}
	if code := s.doJSON(t, "POST", "", "/api/sessions/"+sid+"/end", "", &e); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
	var ended struct {
		Session map[string]any `json:"session"`
	}
	if code := s.doJSON(t, "POST", ann, "/api/sessions/"+sid+"/end", "", &ended); code != 200 || ended.Session["status"] != "ended" {
		t.Fatalf("admin ends: %d %v", code, ended)
	}
	alice.next(isType("ended"))
	if code := s.doJSON(t, "POST", ann, "/api/admin/sessions/"+sid+"/messages", `{"text":"hi"}`, &e); code != 409 || e.Error.Code != "ended" {
		t.Errorf("admin message to an ended session: %d %+v, want 409 ended", code, e)
	}
	var audit auditList
	s.getJSON(t, ann, "/api/admin/audit", &audit)
	if len(audit.Entries) != 1 || audit.Entries[0]["role"] != "admin" || audit.Entries[0]["admin_name"] != "Ann" || audit.Entries[0]["user_id"] != "alice" {
		t.Errorf("audit: %v, want Ann's end of alice's session", audit.Entries)
	}
}

type export struct {
	UserID     string `json:"user_id"`
	ExportedAt string `json:"exported_at"`
	Sessions   []struct {
		ID       string           `json:"id"`
		UserID   string           `json:"user_id"`
		Status   string           `json:"status"`
		Messages []map[string]any `json:"messages"`
	} `json:"sessions"`
}

func (s *testServer) export(t *testing.T, tok, path string) (export, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("export %s: %d %v %s", path, resp.StatusCode, err, body)
	}
	var x export
	if err := json.Unmarshal(body, &x); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	return x, resp.Header
}

func TestExportHoldsEveryMessageForTheUserAndForAdmins(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	alice, ann := signToken(t, "alice", "Alice"), signAdmin(t, "ann", "Ann")
	c, first := startChat(t, s, alice, "first conversation")
	c.send(map[string]any{"type": "send", "id": "c2", "session_id": first, "text": "and a follow-up"})
	c.next(isType("ack"))
	c.next(isFinal)
	_, second := startChat(t, s, alice, "second conversation")
	startChat(t, s, signToken(t, "bob", "Bob"), "bob's secret")

	mine, h := s.export(t, alice, "/api/me/export")
	if h.Get("Content-Disposition") == "" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v, want a JSON download", h)
	}
	if mine.UserID != "alice" || mine.ExportedAt == "" || len(mine.Sessions) != 2 {
		t.Fatalf("export %+v, want alice's two sessions", mine)
	}
	if mine.Sessions[0].ID != first || mine.Sessions[1].ID != second {
		t.Errorf("sessions %s, %s; want %s then %s (oldest first)", mine.Sessions[0].ID, mine.Sessions[1].ID, first, second)
	}
	texts := []string{}
	for _, m := range mine.Sessions[0].Messages {
		texts = append(texts, m["role"].(string)+":"+m["text"].(string))
	}
	if len(texts) != 4 || texts[0] != "user:first conversation" || texts[2] != "user:and a follow-up" || mine.Sessions[0].Messages[1]["text"] == "" {
		t.Errorf("first session's messages %q, want 2 user messages with their replies, decrypted", texts)
	}
	for _, sess := range mine.Sessions {
		if sess.UserID != "alice" {
			t.Errorf("a session of %s in alice's export", sess.UserID)
		}
	}

	theirs, _ := s.export(t, ann, "/api/admin/users/alice/export")
	a, _ := json.Marshal(mine.Sessions)
	b, _ := json.Marshal(theirs.Sessions)
	if !bytes.Equal(a, b) || theirs.UserID != "alice" {
		t.Errorf("the admin's export differs from the user's:\n%s\n%s", a, b)
	}
	var e apiErr
	if code := s.getJSON(t, alice, "/api/admin/users/bob/export", &e); code != 403 {
		t.Errorf("a user exporting another: %d, want 403", code)
	}
	var audit auditList
	s.getJSON(t, ann, "/api/admin/audit", &audit)
	if got := actions(audit); len(got) != 2 || got[0] != "export" || got[1] != "export" ||
		audit.Entries[0]["role"] != "admin" || audit.Entries[1]["role"] != "user" || audit.Entries[0]["user_id"] != "alice" {
		t.Errorf("audit %v, want alice's export, then Ann's of alice", audit.Entries)
	}
}

// scanDir reads every file under dir and fails t for each id of gone that
// one holds, and for each id of present that none holds.
func scanDir(t *testing.T, dir string, gone []string, present []string) {
	t.Helper()
	var all [][]byte
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all = append(all, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	joined := bytes.Join(all, []byte{0})
	for _, id := range gone {
		if bytes.Contains(joined, []byte(id)) {
			t.Errorf("%q is still in a file under the data dir", id)
		}
	}
	for _, id := range present {
		if !bytes.Contains(joined, []byte(id)) {
			t.Errorf("%q is not in any file under the data dir: the scan shows nothing", id)
		}
	}
}

func TestErasingAUserLeavesNoTraceUnderTheDataDir(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "")
	alice, ann := signToken(t, "alice", "Alice"), signAdmin(t, "ann", "Ann")
	var erased []string
	device, sid := startChat(t, s, alice, "please forget me")
	erased = append(erased, sid)
	for i := range 3 {
		device.send(map[string]any{"type": "send", "id": "m" + string(rune('a'+i)), "session_id": sid, "text": "more"})
		erased = append(erased, device.next(isType("ack")).str("message_id"))
		erased = append(erased, device.next(isFinal).msg().str("id"))
	}
	_, other := startChat(t, s, alice, "another one")
	erased = append(erased, other)
	var link map[string]string
	if code := s.doJSON(t, "POST", alice, "/api/sessions/"+other+"/share", "", &link); code != 200 {
		t.Fatalf("share: %d", code)
	}
	erased = append(erased, link["share_id"])
	if code := s.doJSON(t, "POST", ann, "/api/admin/sessions/"+sid+"/takeover", "", nil); code != 200 {
		t.Fatalf("takeover: %d", code)
	}
	_, bobs := startChat(t, s, signToken(t, "bob", "Bob"), "bob stays")

	var e apiErr
	if code := s.doJSON(t, "DELETE", alice, "/api/admin/users/alice", "", &e); code != 403 {
		t.Errorf("a user erasing: %d, want 403", code)
	}
	scanDir(t, dir, nil, erased) // the control: before, every id is there

	var res struct {
		Erased map[string]int64 `json:"erased"`
	}
	if code := s.doJSON(t, "DELETE", ann, "/api/admin/users/alice", "", &res); code != 200 {
		t.Fatalf("erase: %d", code)
	}
	// 2 sessions: 5 user messages, 5 replies, the takeover's system message.
	if res.Erased["sessions"] != 2 || res.Erased["messages"] != 11 || res.Erased["attachments"] != 0 {
		t.Errorf("erased %v, want 2 sessions and 11 messages", res.Erased)
	}
	select {
	case ce := <-device.closed:
		if ce.Code != websocket.StatusCode(4001) {
			t.Errorf("alice's device closed with %d, want 4001", ce.Code)
		}
	case <-time.After(waitFor):
		t.Fatal("alice's device was not closed")
	}
	scanDir(t, dir, erased, []string{bobs})

	if code := s.getJSON(t, alice, "/api/sessions/"+sid+"/messages", &e); code != 404 {
		t.Errorf("an erased session's messages: %d, want 404", code)
	}
	if code := s.getJSON(t, "", "/api/shared/"+link["share_id"], nil); code != 404 {
		t.Errorf("an erased session's share link: %d, want 404", code)
	}
	var list sessionList
	if s.getJSON(t, alice, "/api/sessions", &list); len(list.Sessions) != 0 {
		t.Errorf("alice's sessions after erasure: %v", list.Sessions)
	}
	if s.getJSON(t, ann, "/api/admin/sessions", &list); len(list.Sessions) != 1 || list.Sessions[0]["id"] != bobs {
		t.Errorf("all sessions after erasure: %v, want only bob's", list.Sessions)
	}
	var audit auditList
	s.getJSON(t, ann, "/api/admin/audit", &audit)
	if got := actions(audit); len(got) != 2 || got[0] != "erase" || got[1] != "takeover" ||
		audit.Entries[0]["user_id"] != "alice" || audit.Entries[1]["session_id"] != "" || audit.Entries[1]["user_id"] != "alice" {
		t.Errorf("audit %v, want the erase of alice and the takeover with its session id emptied", audit.Entries)
	}
	// Alice may come back, as a new user with nothing.
	back := s.dial(t, alice, false)
	back.send(map[string]any{"type": "sync", "id": "s", "session_id": sid, "after_seq": 0})
	if e := back.next(isType("error")); e.str("code") != "not_found" {
		t.Errorf("sync of an erased session: %v, want not_found", e)
	}

	s.stop(t)
	scanDir(t, dir, erased, []string{bobs})
}

func TestUsersDeleteTheirOwnSessionsForReal(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "")
	alice, ann := signToken(t, "alice", "Alice"), signAdmin(t, "ann", "Ann")
	phone, sid := startChat(t, s, alice, "delete me")
	laptop := s.dial(t, alice, false)
	_, kept := startChat(t, s, alice, "keep me")

	var e apiErr
	if code := s.doJSON(t, "DELETE", signToken(t, "bob", "Bob"), "/api/sessions/"+sid, "", &e); code != 404 {
		t.Errorf("another user deletes it: %d, want 404", code)
	}
	if code := s.doJSON(t, "DELETE", alice, "/api/sessions/"+sid, "", nil); code != 204 {
		t.Fatalf("delete: %d, want 204", code)
	}
	laptop.next(isType("deleted"))
	if code := s.doJSON(t, "DELETE", alice, "/api/sessions/"+sid, "", &e); code != 404 {
		t.Errorf("delete again: %d, want 404", code)
	}
	if code := s.getJSON(t, alice, "/api/sessions/"+sid+"/messages", nil); code != 404 {
		t.Errorf("its messages: %d, want 404", code)
	}
	if code := s.getJSON(t, ann, "/api/admin/sessions/"+sid, nil); code != 404 {
		t.Errorf("the admin's view of it: %d, want 404", code)
	}
	for _, cmd := range []map[string]any{
		{"type": "send", "id": "x1", "session_id": sid, "text": "hello?"},
		{"type": "sync", "id": "x2", "session_id": sid, "after_seq": 0},
	} {
		phone.send(cmd)
		if ev := phone.next(isType("error")); ev.str("code") != "not_found" {
			t.Errorf("%v after delete: %v, want not_found", cmd["type"], ev)
		}
	}
	var list sessionList
	if s.getJSON(t, alice, "/api/sessions", &list); len(list.Sessions) != 1 || list.Sessions[0]["id"] != kept {
		t.Errorf("sessions after delete: %v, want only the kept one", list.Sessions)
	}
	var audit auditList
	s.getJSON(t, ann, "/api/admin/audit", &audit)
	if len(audit.Entries) != 1 || audit.Entries[0]["action"] != "delete" || audit.Entries[0]["user_id"] != "alice" || audit.Entries[0]["session_id"] != "" {
		t.Errorf("audit %v, want alice's delete naming no session", audit.Entries)
	}
	scanDir(t, dir, []string{sid}, []string{kept})
}

func TestAuditTrailIsNewestFirstAndPaginated(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	ann := signAdmin(t, "ann", "Ann")
	_, sid := startChat(t, s, signToken(t, "alice", "Alice"), "hello")
	for _, step := range []string{"takeover", "release", "takeover", "release", "end"} {
		path := "/api/admin/sessions/" + sid + "/" + step
		if step == "end" {
			path = "/api/sessions/" + sid + "/end"
		}
		if code := s.doJSON(t, "POST", ann, path, "", nil); code != 200 {
			t.Fatalf("%s: %d", step, code)
		}
	}
	var got []string
	cursor := ""
	for pages := 0; pages < 5; pages++ {
		var page auditList
		if code := s.getJSON(t, ann, "/api/admin/audit?limit=2&cursor="+cursor, &page); code != 200 || len(page.Entries) > 2 {
			t.Fatalf("page: %d, %d entries", code, len(page.Entries))
		}
		for _, e := range page.Entries {
			if e["admin_id"] != "ann" || e["session_id"] != sid || e["at"] == "" || e["id"] == "" {
				t.Errorf("entry %v", e)
			}
		}
		got = append(got, actions(page)...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	want := []string{"end", "release", "takeover", "release", "takeover"}
	if len(got) != len(want) {
		t.Fatalf("audit %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("audit %v, want %v", got, want)
		}
	}
	if code := s.getJSON(t, ann, "/api/admin/audit?cursor=bogus", nil); code != 400 {
		t.Errorf("bad cursor: %d, want 400", code)
	}
	if code := s.getJSON(t, signToken(t, "alice", "Alice"), "/api/admin/audit", nil); code != 403 {
		t.Errorf("a user reads the audit: %d, want 403", code)
	}
}
