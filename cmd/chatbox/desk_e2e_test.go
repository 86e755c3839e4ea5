package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/providers/openai/openaitest"
)

// rawGet does an authenticated GET (none when tok is empty) and returns
// the status and the body as it came.
func (s *testServer) rawGet(t *testing.T, tok, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

type queueList struct {
	Sessions []struct {
		ID              string  `json:"id"`
		HelpRequested   bool    `json:"help_requested"`
		HelpRequestedAt string  `json:"help_requested_at"`
		WaitingSeconds  *int64  `json:"waiting_seconds"`
		Title           string  `json:"title"`
		Rating          *rating `json:"rating"`
	} `json:"sessions"`
}

type rating struct {
	Score   int    `json:"score"`
	Comment string `json:"comment"`
}

func (s *testServer) queue(t *testing.T, admin string) []string {
	t.Helper()
	var q queueList
	if code := s.getJSON(t, admin, "/api/admin/queue", &q); code != 200 {
		t.Fatalf("queue: HTTP %d", code)
	}
	var ids []string
	for _, x := range q.Sessions {
		if !x.HelpRequested || x.HelpRequestedAt == "" || x.WaitingSeconds == nil || *x.WaitingSeconds < 0 {
			t.Errorf("queue entry %+v lacks help_requested_at or waiting_seconds", x)
		}
		ids = append(ids, x.ID)
	}
	return ids
}

func TestTheQueueIsOrderedByRequestAndDropsSessionsATakeoverOrAnEndAnswers(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	admin := signAdmin(t, "ann", "Ann")
	desk := s.dial(t, admin, false)
	type user struct {
		c   *client
		sid string
	}
	users := map[string]user{}
	for _, name := range []string{"alice", "bob", "carol"} {
		c, sid := startChat(t, s, signToken(t, name, name), "hello from "+name)
		users[name] = user{c, sid}
	}
	if got := s.queue(t, admin); len(got) != 0 {
		t.Fatalf("queue before any help request: %v", got)
	}
	// Help asked in the order bob, alice, carol: each request is stored
	// before the next (the barrier), and the admin is alerted of each.
	for _, name := range []string{"bob", "alice", "carol"} {
		u := users[name]
		u.c.send(map[string]any{"type": "help", "session_id": u.sid})
		u.c.barrier()
		if e := desk.next(isType("help")); e.str("session_id") != u.sid {
			t.Fatalf("help alert for %s: %v", name, e)
		}
	}
	want := []string{users["bob"].sid, users["alice"].sid, users["carol"].sid}
	if got := s.queue(t, admin); !slices.Equal(got, want) {
		t.Fatalf("queue = %v, want bob, alice, carol: %v", got, want)
	}

	desk.send(map[string]any{"type": "takeover", "id": "t1", "session_id": users["alice"].sid})
	if e := desk.next(isType("queue")); e.str("session_id") != users["alice"].sid || e["waiting"] != false {
		t.Fatalf("the takeover's queue event: %v", e)
	}
	if got := s.queue(t, admin); !slices.Equal(got, []string{users["bob"].sid, users["carol"].sid}) {
		t.Fatalf("queue after alice's takeover = %v", got)
	}
	var detail struct {
		Session map[string]any `json:"session"`
	}
	s.getJSON(t, admin, "/api/admin/sessions/"+users["alice"].sid, &detail)
	if _, ok := detail.Session["help_requested_at"]; ok || detail.Session["help_requested"] != false {
		t.Errorf("a taken-over session still shows a help request: %v", detail.Session)
	}

	carol := users["carol"]
	carol.c.send(map[string]any{"type": "end", "session_id": carol.sid})
	if e := desk.next(isType("queue")); e.str("session_id") != carol.sid {
		t.Fatalf("the end's queue event: %v", e)
	}
	if got := s.queue(t, admin); !slices.Equal(got, []string{users["bob"].sid}) {
		t.Fatalf("queue after carol's end = %v", got)
	}

	// The wait from request to takeover is in the histogram: one takeover.
	_, metrics := s.rawGet(t, "", "/metrics")
	if !strings.Contains(metrics, "chatbox_help_wait_seconds_count 1\n") ||
		!strings.Contains(metrics, `chatbox_help_wait_seconds_bucket{le="+Inf"} 1`) {
		t.Errorf("metrics lack one help wait observation:\n%s", grepLines(metrics, "chatbox_help_wait"))
	}
	if code := s.doJSON(t, "GET", signToken(t, "bob", "bob"), "/api/admin/queue", "", nil); code != http.StatusForbidden {
		t.Errorf("a user's GET /api/admin/queue: %d, want 403", code)
	}
}

func grepLines(text, substr string) string {
	var out []string
	for l := range strings.Lines(text) {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

func TestANoteReachesWatchingAdminsOnly(t *testing.T) {
	fake := openaitest.NewServer(openaitest.Config{Reply: func(r openaitest.Request) string { return "answer" }})
	defer fake.Close()
	s := startServer(t, t.TempDir(), `default_model = "gpt"
max_retries = 0`+openAIModel("gpt", fake.URL))
	aliceTok := signToken(t, "alice", "Alice")
	phone, sid := startChat(t, s, aliceTok, "my order is late")
	annTok, bobTok := signAdmin(t, "ann", "Ann"), signAdmin(t, "bob", "Bob")
	ann, bob := s.dial(t, annTok, false), s.dial(t, bobTok, false)
	ann.send(map[string]any{"type": "watch", "session_id": sid})
	bob.send(map[string]any{"type": "watch", "session_id": sid})
	ann.barrier()
	bob.barrier()

	const secret = "internal-only-VIP-customer"
	ann.send(map[string]any{"type": "note", "id": "n1", "session_id": sid, "text": secret})
	ack := ann.next(isType("ack"))
	if ack.str("id") != "n1" || ack.str("message_id") == "" {
		t.Fatalf("note ack: %v", ack)
	}
	for who, c := range map[string]*client{"ann": ann, "bob": bob} {
		m := c.next(func(e event) bool { return e.str("type") == "message" && e.msg().str("role") == "note" }).msg()
		if m.str("text") != secret || m.str("author") != "Ann" || m.str("id") != ack.str("message_id") {
			t.Errorf("%s got the note %v", who, m)
		}
	}
	// The note's event was delivered to the admins; the owner's device, by
	// its barrier after that, would have had it too.
	for _, e := range phone.barrier() {
		if strings.Contains(fmt.Sprint(e), secret) {
			t.Fatalf("the owner's device got %v", e)
		}
	}
	// Nor in a sync from the start, on a new device.
	laptop := s.dial(t, aliceTok, false)
	laptop.send(map[string]any{"type": "sync", "session_id": sid, "after_seq": 0})
	for _, e := range laptop.barrier() {
		if strings.Contains(fmt.Sprint(e), secret) {
			t.Fatalf("the owner's sync got %v", e)
		}
	}
	// Nor in the owner's HTTP lists, nor the export, nor the share view.
	for _, path := range []string{"/api/sessions/" + sid + "/messages", "/api/sessions", "/api/me/export"} {
		code, body := s.rawGet(t, aliceTok, path)
		if code != 200 || strings.Contains(body, secret) || strings.Contains(body, `"note"`) {
			t.Errorf("GET %s: %d, holds the note: %v", path, code, strings.Contains(body, secret))
		}
	}
	var list sessionList
	s.getJSON(t, aliceTok, "/api/sessions", &list)
	if n := list.Sessions[0]["message_count"]; n != float64(2) {
		t.Errorf("the owner's message_count is %v, want 2 (the note is not counted)", n)
	}
	var link map[string]string
	if code := s.doJSON(t, "POST", aliceTok, "/api/sessions/"+sid+"/share", "", &link); code != 200 {
		t.Fatalf("share: %d", code)
	}
	if code, body := s.rawGet(t, "", "/api/shared/"+link["share_id"]); code != 200 || strings.Contains(body, secret) {
		t.Errorf("share view: %d, holds the note: %v", code, strings.Contains(body, secret))
	}
	// The admins see it in the session view.
	var detail struct {
		Messages []listedMessage `json:"messages"`
	}
	s.getJSON(t, annTok, "/api/admin/sessions/"+sid, &detail)
	if !slices.ContainsFunc(detail.Messages, func(m listedMessage) bool { return m.Role == "note" && m.Text == secret }) {
		t.Errorf("the admin's session view lacks the note: %+v", detail.Messages)
	}
	// Nor does the model get it: the next reply's request carries the
	// conversation without it.
	phone.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "any news?"})
	phone.next(isFinal)
	reqs := fake.Requests()
	if got, want := roles(reqs[len(reqs)-1]), "system: You are a test.\nuser: my order is late\nassistant: answer\nuser: any news?"; got != want {
		t.Errorf("the model got\n%s\nwant\n%s", got, want)
	}
	// Only admins write notes; each is in the audit trail.
	phone.send(map[string]any{"type": "note", "id": "n2", "session_id": sid, "text": "mine"})
	if e := phone.next(isType("error")); e.str("code") != "forbidden" {
		t.Errorf("a user's note: %v, want forbidden", e)
	}
	var audit struct {
		Entries []map[string]any `json:"entries"`
	}
	s.getJSON(t, annTok, "/api/admin/audit", &audit)
	if !slices.ContainsFunc(audit.Entries, func(e map[string]any) bool {
		return e["action"] == "note" && e["admin_id"] == "ann" && e["session_id"] == sid
	}) {
		t.Errorf("no audit entry of the note: %v", audit.Entries)
	}
}

func watcherNames(e event) []string {
	var names []string
	ws, _ := e["watchers"].([]any)
	for _, w := range ws {
		m, _ := w.(map[string]any)
		names = append(names, fmt.Sprint(m["admin_id"], "/", m["name"]))
	}
	return names
}

func TestWatchersAreToldWhoElseWatches(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	_, sid := startChat(t, s, signToken(t, "alice", "Alice"), "hello")
	annTok := signAdmin(t, "ann", "Ann")
	ann, bob := s.dial(t, annTok, false), s.dial(t, signAdmin(t, "bob", "Bob"), false)
	isWatchers := func(e event) bool { return e.str("type") == "watchers" && e.str("session_id") == sid }

	ann.send(map[string]any{"type": "watch", "session_id": sid})
	if got := watcherNames(ann.next(isWatchers)); !slices.Equal(got, []string{"ann/Ann"}) {
		t.Fatalf("ann alone: %v", got)
	}
	bob.send(map[string]any{"type": "watch", "session_id": sid})
	for _, c := range []*client{ann, bob} {
		if got := watcherNames(c.next(isWatchers)); !slices.Equal(got, []string{"ann/Ann", "bob/Bob"}) {
			t.Fatalf("both: %v", got)
		}
	}
	var detail struct {
		Watchers []map[string]string `json:"watchers"`
	}
	s.getJSON(t, annTok, "/api/admin/sessions/"+sid, &detail)
	if len(detail.Watchers) != 2 || detail.Watchers[0]["admin_id"] != "ann" || detail.Watchers[1]["name"] != "Bob" {
		t.Errorf("session view watchers: %v", detail.Watchers)
	}
	bob.send(map[string]any{"type": "unwatch", "session_id": sid})
	if got := watcherNames(ann.next(isWatchers)); !slices.Equal(got, []string{"ann/Ann"}) {
		t.Fatalf("after bob unwatched: %v", got)
	}
	// A second tab of ann's counts once; closing one leaves her watching.
	ann2 := s.dial(t, annTok, false)
	ann2.send(map[string]any{"type": "watch", "session_id": sid})
	if got := watcherNames(ann2.next(isWatchers)); !slices.Equal(got, []string{"ann/Ann"}) {
		t.Fatalf("ann in two tabs: %v", got)
	}
	bob.send(map[string]any{"type": "watch", "session_id": sid})
	bob.next(isWatchers)
	ann2.conn.CloseNow()
	if got := watcherNames(bob.next(isWatchers)); !slices.Equal(got, []string{"ann/Ann", "bob/Bob"}) {
		t.Fatalf("after one of ann's tabs closed: %v", got)
	}
}

func TestCannedRepliesAreListedToAdmins(t *testing.T) {
	s := startServer(t, t.TempDir(), `
[[desk.replies]]
id = "hi"
title = "Greeting"
text = "Hello, I'm here to help."

[[desk.replies]]
id = "refund"
title = "Refund policy"
text = "Refunds within 30 days."
`)
	var got struct {
		Replies []map[string]string `json:"replies"`
	}
	if code := s.getJSON(t, signAdmin(t, "ann", "Ann"), "/api/admin/replies", &got); code != 200 {
		t.Fatalf("HTTP %d", code)
	}
	want := []map[string]string{
		{"id": "hi", "title": "Greeting", "text": "Hello, I'm here to help."},
		{"id": "refund", "title": "Refund policy", "text": "Refunds within 30 days."},
	}
	if fmt.Sprint(got.Replies) != fmt.Sprint(want) {
		t.Errorf("replies = %v, want %v", got.Replies, want)
	}
	if code := s.doJSON(t, "GET", signToken(t, "alice", "Alice"), "/api/admin/replies", "", nil); code != http.StatusForbidden {
		t.Errorf("a user's GET: %d, want 403", code)
	}
}

func TestARatingIsTheOwnersWithinBoundsAndCountsInTheStats(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	aliceTok := signToken(t, "alice", "Alice")
	annTok := signAdmin(t, "ann", "Ann")
	phone, sid := startChat(t, s, aliceTok, "hello")
	tablet := s.dial(t, aliceTok, false)

	for _, score := range []int{0, 6, -1} {
		phone.send(map[string]any{"type": "rate", "id": "r", "session_id": sid, "score": score})
		if e := phone.next(isType("error")); e.str("code") != "bad_request" {
			t.Errorf("score %d: %v, want bad_request", score, e)
		}
	}
	mallory := s.dial(t, signToken(t, "mallory", "Mallory"), false)
	mallory.send(map[string]any{"type": "rate", "id": "r", "session_id": sid, "score": 1})
	if e := mallory.next(isType("error")); e.str("code") != "not_found" {
		t.Errorf("another user's rating: %v, want not_found", e)
	}
	ann := s.dial(t, annTok, false)
	ann.send(map[string]any{"type": "rate", "id": "r", "session_id": sid, "score": 1})
	if e := ann.next(isType("error")); e.str("code") != "forbidden" {
		t.Errorf("an admin's rating: %v, want forbidden", e)
	}

	phone.send(map[string]any{"type": "rate", "id": "r", "session_id": sid, "score": 4, "comment": "quick, thanks"})
	rated := tablet.next(isType("rated"))
	if r, _ := rated["rating"].(map[string]any); r["score"] != float64(4) || r["comment"] != "quick, thanks" {
		t.Fatalf("the other device's rated event: %v", rated)
	}
	var list struct {
		Sessions []struct {
			Rating *rating `json:"rating"`
		} `json:"sessions"`
	}
	s.getJSON(t, aliceTok, "/api/sessions", &list)
	if r := list.Sessions[0].Rating; r == nil || *r != (rating{4, "quick, thanks"}) {
		t.Errorf("the session's rating: %+v", r)
	}
	_, sid2 := startChat(t, s, aliceTok, "again")
	phone.send(map[string]any{"type": "rate", "id": "r2", "session_id": sid2, "score": 5})
	phone.barrier()
	var stats struct {
		CSAT struct {
			Count   int64   `json:"count"`
			Average float64 `json:"average"`
		} `json:"csat"`
	}
	s.getJSON(t, annTok, "/api/admin/stats", &stats)
	if stats.CSAT.Count != 2 || stats.CSAT.Average != 4.5 {
		t.Errorf("csat = %+v, want 2 ratings averaging 4.5", stats.CSAT)
	}
	var detail struct {
		Session struct {
			Rating *rating `json:"rating"`
		} `json:"session"`
	}
	s.getJSON(t, annTok, "/api/admin/sessions/"+sid2, &detail)
	if r := detail.Session.Rating; r == nil || r.Score != 5 {
		t.Errorf("the admin's session view shows rating %+v, want 5", r)
	}
}

func TestAnAdminsTypingReachesTheOwner(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	phone, sid := startChat(t, s, signToken(t, "alice", "Alice"), "hello")
	ann := s.dial(t, signAdmin(t, "ann", "Ada"), false)
	ann.send(map[string]any{"type": "watch", "session_id": sid})
	ann.barrier()
	ann.send(map[string]any{"type": "typing", "session_id": sid})
	e := phone.next(isType("typing"))
	if e.str("role") != "admin" || e.str("author") != "Ada" || e.str("session_id") != sid {
		t.Errorf("the owner got %v, want Ada typing as admin", e)
	}
}
