package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"
)

func errorAs(err error, target any) bool { return errors.As(err, target) }

// replyText joins the deltas of one reply as a client would, by offset.
func replyText(t *testing.T, events []event, messageID string) string {
	t.Helper()
	var b strings.Builder
	for _, e := range events {
		if e.str("type") != "delta" || e.str("message_id") != messageID {
			continue
		}
		if int(e.num("offset")) != b.Len() {
			t.Fatalf("delta at offset %d, have %d bytes: a gap or an overlap", e.num("offset"), b.Len())
		}
		b.WriteString(e.str("text"))
	}
	return b.String()
}

// shape is the order-relevant part of an event, to compare two devices.
func shape(e event) string {
	switch e.str("type") {
	case "delta":
		return fmt.Sprintf("delta %s@%d", e.str("message_id"), e.num("offset"))
	case "message":
		return fmt.Sprintf("message %d %s", e.msg().num("seq"), e.msg().str("status"))
	}
	return e.str("type")
}

func TestTwoDevicesOfOneUserSeeTheSameStreamAndOthersSeeNothing(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	alice := signToken(t, "alice", "Alice")
	phone := s.dial(t, alice, false) // device client: Authorization header
	laptop := s.dial(t, alice, true) // browser style: subprotocol
	bob := s.dial(t, signToken(t, "bob", "Bob"), false)

	phone.send(map[string]any{"type": "send", "id": "c1", "text": "hello from the phone"})
	phoneEvents := phone.collect(isFinal)
	laptopEvents := laptop.collect(isFinal)

	ack := phoneEvents[0]
	if ack.str("type") != "ack" || ack.str("id") != "c1" || ack.num("seq") != 1 {
		t.Fatalf("first event on the sending device is %v, want the ack of c1 at seq 1", ack)
	}
	sessionID := ack.str("session_id")
	final := phoneEvents[len(phoneEvents)-1].msg()
	if final.str("status") != "complete" || final.num("seq") != 2 || final.str("text") == "" {
		t.Fatalf("final reply %v, want complete at seq 2 with text", final)
	}
	for name, evs := range map[string][]event{"phone": phoneEvents, "laptop": laptopEvents} {
		if got := replyText(t, evs, final.str("id")); got != final.str("text") {
			t.Errorf("%s: deltas add up to %q, final message says %q", name, got, final.str("text"))
		}
	}
	var phoneShape, laptopShape []string
	for _, e := range phoneEvents[1:] { // the ack goes only to the sender
		phoneShape = append(phoneShape, shape(e))
	}
	for _, e := range laptopEvents {
		laptopShape = append(laptopShape, shape(e))
	}
	if strings.Join(phoneShape, "\n") != strings.Join(laptopShape, "\n") {
		t.Errorf("devices saw different orders:\nphone:  %v\nlaptop: %v", phoneShape, laptopShape)
	}

	var stored struct {
		Messages []map[string]any `json:"messages"`
	}
	if code := s.getJSON(t, alice, "/api/sessions/"+sessionID+"/messages", &stored); code != 200 || len(stored.Messages) != 2 {
		t.Fatalf("stored messages: HTTP %d, %d messages, want 200 with 2", code, len(stored.Messages))
	}
	if got := stored.Messages[1]["text"]; got != final.str("text") {
		t.Errorf("stored reply %q differs from the streamed one %q", got, final.str("text"))
	}

	for _, e := range bob.barrier() {
		if e.str("type") != "pong" {
			t.Errorf("bob received %v from alice's session", e)
		}
	}
}

func TestHandshakeRejections(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	valid := signToken(t, "alice", "Alice")
	sign := func(claims jwt.MapClaims, key string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	b64 := base64.RawURLEncoding.EncodeToString
	algNone := b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + b64([]byte(fmt.Sprintf(`{"sub":"alice","exp":%d}`, time.Now().Add(time.Hour).Unix()))) + "."

	tests := []struct {
		name   string
		token  string
		origin string
		want   int
	}{
		{"no token", "", "", http.StatusUnauthorized},
		{"expired", sign(jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()}, testSecret), "", http.StatusUnauthorized},
		{"wrong key", sign(jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}, "another-secret-entirely-0123456789abcdef"), "", http.StatusUnauthorized},
		{"alg none", algNone, "", http.StatusUnauthorized},
		{"no exp", sign(jwt.MapClaims{"sub": "alice"}, testSecret), "", http.StatusUnauthorized},
		{"garbage", "not.a.jwt", "", http.StatusUnauthorized},
		{"foreign origin", valid, "http://evil.example", http.StatusForbidden},
		{"look-alike origin", valid, "http://allowed.example.evil", http.StatusForbidden},
		{"origin with another port", valid, "http://allowed.example:8080", http.StatusForbidden},
		{"null origin", valid, "null", http.StatusForbidden},
		{"allowed origin", valid, "http://allowed.example", http.StatusSwitchingProtocols},
		{"no origin (device)", valid, "", http.StatusSwitchingProtocols},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/ws", &websocket.DialOptions{HTTPHeader: h})
			if conn != nil {
				conn.CloseNow()
			}
			if resp == nil {
				t.Fatalf("no HTTP response: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestBadInputGetsAnErrorAndTheConnectionStays(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	alice := s.dial(t, signToken(t, "alice", "Alice"), false)
	bobTok := signToken(t, "bob", "Bob")
	bob := s.dial(t, bobTok, false)

	alice.send(map[string]any{"type": "send", "id": "a1", "text": "private"})
	sessionID := alice.next(isType("ack")).str("session_id")
	alice.next(isFinal)

	tests := []struct {
		name  string
		frame string
		code  string
	}{
		{"broken JSON", `{"type":"send","text":`, "bad_request"},
		{"two objects in one frame", `{"type":"ping"}` + "\n" + `{"type":"ping"}`, "bad_request"},
		{"unknown type", `{"type":"teleport","id":"x"}`, "bad_request"},
		{"another user's session: send", `{"type":"send","id":"b1","session_id":"` + sessionID + `","text":"hi"}`, "not_found"},
		{"another user's session: sync", `{"type":"sync","session_id":"` + sessionID + `","after_seq":0}`, "not_found"},
		{"another user's session: stop", `{"type":"stop","session_id":"` + sessionID + `"}`, "not_found"},
		{"unknown session", `{"type":"sync","session_id":"nope","after_seq":0}`, "not_found"},
		{"admin command from a user", `{"type":"takeover","session_id":"` + sessionID + `"}`, "forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bob.sendRaw([]byte(tt.frame))
			e := bob.next(isType("error"))
			if e.str("code") != tt.code || e.str("message") == "" {
				t.Fatalf("got %v, want an error with code %s and a message", e, tt.code)
			}
			for _, e := range bob.barrier() { // still open, nothing leaked
				if e.str("type") != "pong" && e.str("type") != "error" {
					t.Fatalf("unexpected %v", e)
				}
			}
		})
	}
	if code := s.getJSON(t, bobTok, "/api/sessions/"+sessionID+"/messages", nil); code != http.StatusNotFound {
		t.Errorf("bob reading alice's messages over HTTP: %d, want 404", code)
	}

	t.Run("frame over the cap closes with 1009", func(t *testing.T) {
		bob.sendRaw([]byte(`{"type":"send","text":"` + strings.Repeat("x", 5000) + `"}`))
		select {
		case ce := <-bob.closed:
			if ce.Code != 1009 {
				t.Fatalf("closed with %d, want 1009", ce.Code)
			}
		case <-time.After(waitFor):
			t.Fatal("connection not closed")
		}
	})
}

func TestStopFromAnotherDeviceKeepsThePartialReply(t *testing.T) {
	s := startServer(t, t.TempDir(), `demo_delay = "40ms"`)
	tok := signToken(t, "alice", "Alice")
	phone, laptop := s.dial(t, tok, false), s.dial(t, tok, true)

	phone.send(map[string]any{"type": "send", "id": "c1", "text": "tell me a long story"})
	sessionID := phone.next(isType("ack")).str("session_id")
	events := laptop.collect(isType("delta"))
	laptop.send(map[string]any{"type": "stop", "session_id": sessionID})
	events = append(events, laptop.collect(isFinal)...)
	final := events[len(events)-1].msg()
	if final.str("status") != "stopped" {
		t.Fatalf("status %q, want stopped", final.str("status"))
	}
	if got := replyText(t, events, final.str("id")); got != final.str("text") || got == "" {
		t.Fatalf("partial reply %q, deltas %q", final.str("text"), got)
	}
	var stored struct {
		Messages []map[string]any `json:"messages"`
	}
	s.getJSON(t, tok, "/api/sessions/"+sessionID+"/messages?after_seq=1", &stored)
	if len(stored.Messages) != 1 || stored.Messages[0]["status"] != "stopped" || stored.Messages[0]["text"] != final.str("text") {
		t.Fatalf("stored %v, want the stopped partial reply", stored.Messages)
	}
}

func TestSyncJoinsAReplyInFlightWithoutGaps(t *testing.T) {
	s := startServer(t, t.TempDir(), `demo_delay = "20ms"`)
	tok := signToken(t, "alice", "Alice")
	phone := s.dial(t, tok, false)
	phone.send(map[string]any{"type": "send", "id": "c1", "text": "stream please"})
	sessionID := phone.next(isType("ack")).str("session_id")
	phone.next(isType("delta"))

	late := s.dial(t, tok, true) // joins mid-reply, as after a reconnect
	late.send(map[string]any{"type": "sync", "session_id": sessionID, "after_seq": 0})
	events := late.collect(isFinal)
	if first := events[0]; first.str("type") != "message" || first.msg().num("seq") != 1 {
		t.Fatalf("sync began with %v, want the stored user message", first)
	}
	final := events[len(events)-1].msg()
	// Deltas after the catch-up may repeat text the client has: drop by offset.
	var text string
	for _, e := range events {
		if e.str("type") != "delta" {
			continue
		}
		off := int(e.num("offset"))
		if off > len(text) {
			t.Fatalf("gap: delta at %d with %d bytes known", off, len(text))
		}
		text = text[:off] + e.str("text")
	}
	if text != final.str("text") || final.str("status") != "complete" {
		t.Fatalf("joined text %q, final %q (%s)", text, final.str("text"), final.str("status"))
	}
}

func TestConversationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	tok := signToken(t, "alice", "Alice")
	s := startServer(t, dir, "")
	c := s.dial(t, tok, false)
	c.send(map[string]any{"type": "send", "id": "c1", "text": "remember me"})
	sessionID := c.next(isType("ack")).str("session_id")
	want := c.next(isFinal).msg().str("text")
	s.stop(t)

	s = startServer(t, dir, "")
	var list struct {
		Sessions []map[string]any `json:"sessions"`
	}
	if code := s.getJSON(t, tok, "/api/sessions", &list); code != 200 || len(list.Sessions) != 1 || list.Sessions[0]["id"] != sessionID {
		t.Fatalf("after restart: HTTP %d, sessions %v", code, list.Sessions)
	}
	if list.Sessions[0]["title"] != "remember me" || list.Sessions[0]["message_count"] != float64(2) {
		t.Errorf("session after restart: %v", list.Sessions[0])
	}
	c = s.dial(t, tok, true)
	c.send(map[string]any{"type": "sync", "session_id": sessionID, "after_seq": 0})
	user := c.next(isType("message")).msg()
	reply := c.next(isType("message")).msg()
	if user.str("text") != "remember me" || reply.str("text") != want {
		t.Fatalf("sync after restart: %v then %v", user, reply)
	}
	// The session goes on where it was.
	c.send(map[string]any{"type": "send", "id": "c2", "session_id": sessionID, "text": "again"})
	if ack := c.next(isType("ack")); ack.num("seq") != 3 {
		t.Fatalf("next message acked at seq %d, want 3", ack.num("seq"))
	}
}
