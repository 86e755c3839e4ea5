package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

type sessionList struct {
	Sessions   []map[string]any `json:"sessions"`
	NextCursor string           `json:"next_cursor"`
}

// startChat has alice send one message and returns her device and session id.
func startChat(t *testing.T, s *testServer, tok, text string) (*client, string) {
	t.Helper()
	c := s.dial(t, tok, false)
	c.send(map[string]any{"type": "send", "id": "c1", "text": text})
	sid := c.next(isType("ack")).str("session_id")
	c.next(isFinal)
	return c, sid
}

func TestAdminRoutesNeedTheAdminRole(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	user := signToken(t, "alice", "Alice")
	_, sid := startChat(t, s, user, "hello")
	routes := []struct{ method, path, body string }{
		{"GET", "/api/admin/sessions", ""},
		{"GET", "/api/admin/sessions/" + sid, ""},
		{"POST", "/api/admin/sessions/" + sid + "/takeover", ""},
		{"POST", "/api/admin/sessions/" + sid + "/release", ""},
		{"POST", "/api/admin/sessions/" + sid + "/messages", `{"text":"hi"}`},
		{"GET", "/api/admin/stats", ""},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			var e apiErr
			if code := s.doJSON(t, r.method, "", r.path, r.body, &e); code != http.StatusUnauthorized || e.Error.Code != "unauthorized" {
				t.Errorf("no token: %d %+v, want 401 unauthorized", code, e)
			}
			if code := s.doJSON(t, r.method, user, r.path, r.body, &e); code != http.StatusForbidden || e.Error.Code != "forbidden" {
				t.Errorf("user token: %d %+v, want 403 forbidden", code, e)
			}
		})
	}
}

func TestAdminListFiltersSortsAndRejectsBadParameters(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	admin := signAdmin(t, "ann", "Ann")
	alice, sidA := startChat(t, s, signToken(t, "alice", "Alice"), "from alice")
	_, sidB := startChat(t, s, signToken(t, "bob", "Bob"), "from bob")
	alice.send(map[string]any{"type": "help", "session_id": sidA})
	alice.barrier()

	ids := func(query string) []string {
		t.Helper()
		var l sessionList
		if code := s.getJSON(t, admin, "/api/admin/sessions?"+query, &l); code != 200 {
			t.Fatalf("%s: HTTP %d", query, code)
		}
		var out []string
		for _, x := range l.Sessions {
			out = append(out, x["id"].(string))
		}
		return out
	}
	// Asking for help is activity: alice's session is now the newest.
	if got := ids(""); len(got) != 2 || got[0] != sidA {
		t.Errorf("all sessions newest first: %v", got)
	}
	if got := ids("order=asc"); len(got) != 2 || got[0] != sidB {
		t.Errorf("oldest first: %v", got)
	}
	if got := ids("sort=created_at"); len(got) != 2 || got[0] != sidB {
		t.Errorf("newest created first: %v", got)
	}
	if got := ids("user_id=alice"); len(got) != 1 || got[0] != sidA {
		t.Errorf("user filter: %v", got)
	}
	if got := ids("help=true"); len(got) != 1 || got[0] != sidA {
		t.Errorf("help filter: %v", got)
	}
	if got := ids("taken_over=true"); len(got) != 0 {
		t.Errorf("taken_over before any takeover: %v", got)
	}
	if got := ids("from=2000-01-01T00:00:00Z&to=2001-01-01T00:00:00Z"); len(got) != 0 {
		t.Errorf("date range in the past: %v", got)
	}
	if got := ids("sort=message_count&limit=1"); len(got) != 1 {
		t.Errorf("limit 1: %v", got)
	}
	// Walk pages of one.
	var l sessionList
	s.getJSON(t, admin, "/api/admin/sessions?limit=1", &l)
	var l2 sessionList
	s.getJSON(t, admin, "/api/admin/sessions?limit=1&cursor="+url.QueryEscape(l.NextCursor), &l2)
	if l.NextCursor == "" || len(l2.Sessions) != 1 || l2.Sessions[0]["id"] != sidB || l2.NextCursor != "" {
		t.Errorf("paging: %v then %v (next %q)", l.Sessions, l2.Sessions, l2.NextCursor)
	}

	for query, field := range map[string]string{
		"help=maybe": "help", "taken_over=2": "taken_over", "from=yesterday": "from", "to=1": "to",
		"sort=title": "sort", "order=up": "order", "limit=-1": "limit", "cursor=garbage": "cursor",
	} {
		var e apiErr
		if code := s.getJSON(t, admin, "/api/admin/sessions?"+query, &e); code != 400 || e.Error.Code != "bad_request" || !strings.Contains(e.Error.Message, field) {
			t.Errorf("%s: %d %+v, want 400 naming %s", query, code, e, field)
		}
	}
}

func TestAdminTakesOverRepliesAndReleasesOverHTTP(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	ann, bert := signAdmin(t, "ann", "Ann"), signAdmin(t, "bert", "Bert")
	alice, sid := startChat(t, s, signToken(t, "alice", "Alice"), "I need a person")

	var detail struct {
		Session  map[string]any   `json:"session"`
		Messages []map[string]any `json:"messages"`
	}
	if code := s.getJSON(t, ann, "/api/admin/sessions/"+sid, &detail); code != 200 || len(detail.Messages) != 2 || detail.Session["user_id"] != "alice" {
		t.Fatalf("detail: %d %+v", code, detail)
	}
	if code := s.getJSON(t, ann, "/api/admin/sessions/nope", nil); code != 404 {
		t.Errorf("missing session: %d, want 404", code)
	}

	var e apiErr
	if code := s.doJSON(t, "POST", ann, "/api/admin/sessions/"+sid+"/messages", `{"text":"hi"}`, &e); code != 403 {
		t.Errorf("message before takeover: %d %+v, want 403", code, e)
	}
	var taken struct {
		Session map[string]any `json:"session"`
	}
	if code := s.doJSON(t, "POST", ann, "/api/admin/sessions/"+sid+"/takeover", "", &taken); code != 200 || taken.Session["mode"] != "human" || taken.Session["admin_name"] != "Ann" {
		t.Fatalf("takeover: %d %+v", code, taken)
	}
	if ev := alice.next(isType("takeover")); ev.str("admin_name") != "Ann" {
		t.Fatalf("user saw %v", ev)
	}
	if code := s.doJSON(t, "POST", bert, "/api/admin/sessions/"+sid+"/takeover", "", &e); code != 409 || e.Error.Code != "busy" {
		t.Errorf("second admin: %d %+v, want 409 busy", code, e)
	}

	for _, body := range []string{`not json`, `{"text":""}`, `{"text":" \n\t "}`, `{}`} {
		if code := s.doJSON(t, "POST", ann, "/api/admin/sessions/"+sid+"/messages", body, &e); code != 400 {
			t.Errorf("body %s: %d, want 400", body, code)
		}
	}
	var sent map[string]any
	if code := s.doJSON(t, "POST", ann, "/api/admin/sessions/"+sid+"/messages", `{"text":"Hello, I am Ann"}`, &sent); code != 201 || sent["seq"] == nil {
		t.Fatalf("admin message: %d %v", code, sent)
	}
	m := alice.next(func(e event) bool { return e.str("type") == "message" && e.msg().str("role") == "admin" }).msg()
	if m.str("author") != "Ann" || m.str("text") != "Hello, I am Ann" {
		t.Fatalf("user saw %v", m)
	}
	if code := s.doJSON(t, "POST", bert, "/api/admin/sessions/"+sid+"/release", "", &e); code != 403 {
		t.Errorf("release by a non-holder: %d, want 403", code)
	}
	if code := s.doJSON(t, "POST", ann, "/api/admin/sessions/"+sid+"/release", "", &taken); code != 200 || taken.Session["mode"] != "bot" {
		t.Fatalf("release: %d %+v", code, taken)
	}
	alice.next(isType("release"))

	var stats struct {
		Live          map[string]float64 `json:"live"`
		Stored        map[string]float64 `json:"stored"`
		ResponseTimes map[string]float64 `json:"response_times"`
	}
	if code := s.getJSON(t, ann, "/api/admin/stats", &stats); code != 200 {
		t.Fatalf("stats: %d", code)
	}
	if stats.Live["connections"] < 1 || stats.Stored["sessions"] != 1 || stats.Stored["messages"] < 5 || stats.ResponseTimes["ttft_p50_ms"] <= 0 {
		t.Errorf("stats %+v", stats)
	}
}

func TestShareLinkIsReadOnlyAndRevocable(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	alice := signToken(t, "alice", "Alice")
	_, sid := startChat(t, s, alice, "worth sharing")
	var e apiErr
	if code := s.doJSON(t, "POST", signToken(t, "bob", "Bob"), "/api/sessions/"+sid+"/share", "", &e); code != 404 {
		t.Errorf("sharing another user's session: %d, want 404", code)
	}
	var link map[string]string
	if code := s.doJSON(t, "POST", alice, "/api/sessions/"+sid+"/share", "", &link); code != 200 || link["share_id"] == "" || !strings.HasSuffix(link["url"], link["share_id"]) {
		t.Fatalf("share: %d %v", code, link)
	}
	var shared struct {
		Session  map[string]any   `json:"session"`
		Messages []map[string]any `json:"messages"`
	}
	if code := s.doJSON(t, "GET", "", "/api/shared/"+link["share_id"], "", &shared); code != 200 || len(shared.Messages) != 2 || shared.Messages[0]["text"] != "worth sharing" {
		t.Fatalf("shared view: %d %+v", code, shared)
	}
	if code := s.doJSON(t, "DELETE", alice, "/api/sessions/"+sid+"/share", "", nil); code != 204 {
		t.Fatalf("revoke: %d", code)
	}
	if code := s.doJSON(t, "GET", "", "/api/shared/"+link["share_id"], "", nil); code != 404 {
		t.Fatalf("revoked link: %d, want 404", code)
	}
}

func TestCORSOnlyForConfiguredOrigins(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	preflight := func(origin string) string {
		req, _ := http.NewRequest("OPTIONS", s.base+"/api/sessions", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "GET")
		req.Header.Set("Access-Control-Request-Headers", "authorization")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Access-Control-Allow-Origin")
	}
	if got := preflight("http://app.example"); got != "http://app.example" {
		t.Errorf("allowed origin: Access-Control-Allow-Origin %q", got)
	}
	if got := preflight("http://evil.example"); got != "" {
		t.Errorf("foreign origin got Access-Control-Allow-Origin %q", got)
	}
}
