package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// TestDifyConversationIsKeptOnTheSession: the id Dify answers the first
// message with is stored on the session and sent with the next one, and
// only the newest message is sent (Dify keeps the history).
func TestDifyConversationIsKeptOnTheSession(t *testing.T) {
	var (
		mu    sync.Mutex
		chats []map[string]any
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		chats = append(chats, body)
		n := len(chats)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"event\": \"message\", \"task_id\": \"t%d\", \"conversation_id\": \"conv-42\", \"answer\": \"answer %d\"}\n\n", n, n)
		io.WriteString(w, "data: {\"event\": \"message_end\", \"task_id\": \"t1\", \"id\": \"m1\", \"conversation_id\": \"conv-42\", \"metadata\": {\"usage\": {\"prompt_tokens\": 5, \"completion_tokens\": 2}}}\n\n")
	}))
	defer srv.Close()
	t.Setenv("DIFY_TEST_KEY", "app-key")
	s := startServer(t, t.TempDir(), fmt.Sprintf(`default_model = "bot"
max_retries = 0
[[llm.models]]
id = "bot"
provider = "dify"
base_url = %q
api_key_env = "DIFY_TEST_KEY"
`, srv.URL+"/v1"))
	c := s.dial(t, signToken(t, "alice", "Alice"), false)
	c.send(map[string]any{"type": "send", "id": "1", "text": "first"})
	sid := c.next(isType("ack")).str("session_id")
	if m := c.next(isFinal).msg(); m.str("text") != "answer 1" {
		t.Fatalf("first reply %v", m)
	}
	c.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "second"})
	if m := c.next(isFinal).msg(); m.str("text") != "answer 2" {
		t.Fatalf("second reply %v", m)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(chats) != 2 || chats[0]["conversation_id"] != "" || chats[1]["conversation_id"] != "conv-42" ||
		chats[1]["query"] != "second" || chats[1]["user"] != "alice" {
		t.Errorf("Dify got %v", chats)
	}
}
