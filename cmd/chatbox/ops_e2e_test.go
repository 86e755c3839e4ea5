package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// dialStatus tries a WebSocket handshake and returns the HTTP status.
func (s *testServer) dialStatus(t *testing.T, tok string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if conn != nil {
		t.Cleanup(func() { conn.CloseNow() })
	}
	if resp == nil {
		t.Fatalf("no HTTP response: %v", err)
	}
	return resp.StatusCode
}

func TestMessageRateLimitPerUserAcrossDevices(t *testing.T) {
	s := startServer(t, t.TempDir(), "\n[limits]\nmessages_per_minute = 1\nmessage_burst = 2")
	alice := signToken(t, "alice", "Alice")
	phone, laptop := s.dial(t, alice, false), s.dial(t, alice, false)
	phone.send(map[string]any{"type": "send", "id": "1", "text": "one"})
	sid := phone.next(isType("ack")).str("session_id")
	phone.next(isFinal)
	laptop.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "two"})
	laptop.next(isType("ack"))
	laptop.next(isFinal)
	// The bucket of two is empty, whichever device asks.
	phone.send(map[string]any{"type": "send", "id": "3", "session_id": sid, "text": "three"})
	e := phone.next(isType("error"))
	if e.str("code") != "rate_limited" || e.str("id") != "3" || e.num("retry_after_ms") <= 0 {
		t.Fatalf("third message: %v, want rate_limited with a retry hint", e)
	}
	bob := s.dial(t, signToken(t, "bob", "Bob"), false)
	bob.send(map[string]any{"type": "send", "id": "b", "text": "unaffected"})
	bob.next(isType("ack"))
}

func TestConnectionLimits(t *testing.T) {
	t.Setenv("CHATBOX_SERVER_MAX_CONNECTIONS", "3")
	s := startServer(t, t.TempDir(), "\n[limits]\nconnections_per_user = 2")
	alice := signToken(t, "alice", "Alice")
	s.dial(t, alice, false)
	s.dial(t, alice, false)
	if code := s.dialStatus(t, alice); code != http.StatusTooManyRequests {
		t.Fatalf("alice's third connection: HTTP %d, want 429", code)
	}
	s.dial(t, signToken(t, "bob", "Bob"), false) // the third connection overall
	if code := s.dialStatus(t, signToken(t, "carol", "Carol")); code != http.StatusServiceUnavailable {
		t.Fatalf("a fourth connection overall: HTTP %d, want 503", code)
	}
}

func TestRepliesInFlightPerUser(t *testing.T) {
	s := startServer(t, t.TempDir(), "demo_delay = \"100ms\"\n[limits]\nreplies_in_flight = 1")
	alice := s.dial(t, signToken(t, "alice", "Alice"), false)
	alice.send(map[string]any{"type": "send", "id": "1", "text": "a slow one"})
	alice.next(isType("delta"))
	alice.send(map[string]any{"type": "send", "id": "2", "text": "another conversation"}) // a new session
	if e := alice.next(isType("error")); e.str("code") != "busy" || e.str("id") != "2" {
		t.Fatalf("second reply at once: %v, want busy", e)
	}
	bob := s.dial(t, signToken(t, "bob", "Bob"), false)
	bob.send(map[string]any{"type": "send", "id": "b", "text": "unaffected"})
	bob.next(isType("delta"))
}

func TestDailyTokenQuota(t *testing.T) {
	s := startServer(t, t.TempDir(), "\n[limits]\ndaily_tokens_per_user = 5")
	alice := s.dial(t, signToken(t, "alice", "Alice"), false)
	alice.send(map[string]any{"type": "send", "id": "1", "text": "spend it all"})
	sid := alice.next(isType("ack")).str("session_id")
	alice.next(isFinal) // the demo reply alone is well over 5 tokens
	alice.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "more"})
	if e := alice.next(isType("error")); e.str("code") != "rate_limited" || e.str("id") != "2" {
		t.Fatalf("over the quota: %v, want rate_limited", e)
	}
	bob := s.dial(t, signToken(t, "bob", "Bob"), false)
	bob.send(map[string]any{"type": "send", "id": "b", "text": "unaffected"})
	if m := bob.next(isFinal).msg(); m.str("status") != "complete" {
		t.Fatalf("bob: %v", m)
	}
}

// scrape reads /metrics into series → value, keyed by the series exactly as
// exposed (name and labels).
func (s *testServer) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	out := map[string]float64{}
	types := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			f := strings.Fields(rest)
			types[f[0]] = f[1]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	for name, typ := range types {
		out["TYPE "+name+" "+typ] = 1
	}
	return out
}

func TestMetricsAfterAConversation(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	alice := signToken(t, "alice", "Alice")
	a, b := s.dial(t, alice, false), s.dial(t, alice, true)
	a.send(map[string]any{"type": "send", "id": "1", "text": "count me"})
	a.next(isFinal)
	b.next(isFinal)

	m := s.scrape(t)
	want := map[string]float64{
		"TYPE chatbox_time_to_first_token_seconds histogram":                 1, // Prometheus le buckets, not vmrange
		"TYPE chatbox_connections gauge":                                     1,
		"chatbox_connections":                                                2,
		"chatbox_connects_total":                                             2,
		`chatbox_messages_total{role="user"}`:                                1,
		`chatbox_messages_total{role="assistant"}`:                           1,
		`chatbox_replies_total{model="demo",status="complete"}`:              1,
		`chatbox_time_to_first_token_seconds_count{model="demo"}`:            1,
		`chatbox_reply_duration_seconds_count{model="demo"}`:                 1,
		`chatbox_time_to_first_token_seconds_bucket{model="demo",le="+Inf"}`: 1,
	}
	for series, v := range want {
		if got, ok := m[series]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, v)
		}
	}
	if m[`chatbox_tokens_total{model="demo",direction="out"}`] <= 0 {
		t.Errorf("no output tokens counted")
	}
	if m[`chatbox_store_seconds_count{op="append_message"}`] != 2 {
		t.Errorf("store appends observed: %v, want 2 (user message and reply)", m[`chatbox_store_seconds_count{op="append_message"}`])
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	if _, ok := m["chatbox_provider_retries_total"]; !ok {
		t.Error("no provider retry counter")
	}
	a.conn.Close(websocket.StatusNormalClosure, "")
	pollUntil(t, "one connection left in chatbox_connections", func() bool { return s.scrape(t)["chatbox_connections"] == 1 })
}

func TestIdlePeerIsClosedAndALivelyOneIsNot(t *testing.T) {
	t.Setenv("CHATBOX_SERVER_IDLE_TIMEOUT", "600ms")
	t.Setenv("CHATBOX_SERVER_PING_INTERVAL", "150ms")
	s := startServer(t, t.TempDir(), "")
	tok := signToken(t, "alice", "Alice")

	// The lively client sends nothing; its read loop answers the server's
	// pings (coder/websocket does so while reading). It connects first, so
	// it has been quiet at least as long as the silent peer below.
	lively := s.dial(t, tok, false)

	// A peer that never reads answers no pings and is closed.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	silent, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	pollUntil(t, "an idle_timeout disconnect counted", func() bool {
		return s.scrape(t)[`chatbox_disconnects_total{reason="idle_timeout"}`] >= 1
	})
	lively.barrier() // still open after a whole idle timeout of silence
	if n := s.scrape(t)[`chatbox_disconnects_total{reason="idle_timeout"}`]; n != 1 {
		t.Fatalf("%v idle disconnects, want only the silent peer's", n)
	}
	// The server closed the silent socket (with 1001, though the client,
	// answering the pings it buffered, may fail on the dead socket first).
	for {
		if _, _, err := silent.Read(ctx); err != nil {
			if st := websocket.CloseStatus(err); st != -1 && st != websocket.StatusGoingAway {
				t.Fatalf("silent peer closed with %v, want 1001", st)
			}
			break
		}
	}
}
