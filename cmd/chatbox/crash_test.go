package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatbox/chatbox/providers/demo"
)

// TestCrashKeepsAckedMessagesAndThePartialReply kills the real binary with
// SIGKILL in the middle of a reply that has been checkpointed, restarts it
// on the same data directory, and reads back what was stored.
func TestCrashKeepsAckedMessagesAndThePartialReply(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	// ~22 words at 200ms: a reply takes ~4.5 s, past the 3 s checkpoint.
	p := startProcess(t, dir, `demo_delay = "200ms"`)
	tok := signToken(t, "alice", "Alice")
	c := p.dial(t, tok, false)

	// Two messages, acked; their replies are stopped to keep the test short.
	sessionID := ""
	want := map[int64]string{}
	for i, text := range []string{"first message", "second message"} {
		cmd := map[string]any{"type": "send", "id": fmt.Sprintf("c%d", i+1), "text": text}
		if sessionID != "" {
			cmd["session_id"] = sessionID
		}
		c.send(cmd)
		ack := c.next(isType("ack"))
		sessionID = ack.str("session_id")
		want[ack.num("seq")] = text
		c.send(map[string]any{"type": "stop", "session_id": sessionID})
		c.next(isFinal)
	}

	// The third reply streams until a checkpoint is stored, then the
	// process dies without any chance to write.
	const third = "third message, to be cut off"
	c.send(map[string]any{"type": "send", "id": "c3", "session_id": sessionID, "text": third})
	ack := c.next(isType("ack"))
	want[ack.num("seq")] = third
	replySeq := ack.num("seq") + 1
	c.next(isType("delta"))
	var checkpoint string
	pollUntil(t, "a checkpoint of the reply stored as interrupted", func() bool {
		for _, m := range storedMessages(t, p.testServer, tok, sessionID) {
			if m.num("seq") == replySeq && m.str("status") == "interrupted" {
				checkpoint = m.str("text")
				return true
			}
		}
		return false
	})
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t, 5*time.Second); err == nil {
		t.Fatal("killed process exited with status 0")
	}

	p2 := startProcess(t, dir, `demo_delay = "200ms"`)
	stored := storedMessages(t, p2.testServer, tok, sessionID)
	bySeq := map[int64]event{}
	for _, m := range stored {
		bySeq[m.num("seq")] = m
	}
	for seq, text := range want {
		if m, ok := bySeq[seq]; !ok || m.str("text") != text || m.str("role") != "user" {
			t.Errorf("acked message at seq %d (%q) after the crash: %v", seq, text, m)
		}
	}
	reply, ok := bySeq[replySeq]
	switch {
	case !ok:
		t.Fatalf("the partial reply at seq %d was lost; stored %v", replySeq, stored)
	case reply.str("status") != "interrupted" || reply.str("role") != "assistant":
		t.Errorf("partial reply after the crash: %v, want an interrupted assistant message", reply)
	case reply.str("text") == "" || !strings.HasPrefix(demo.Reply(third), reply.str("text")):
		t.Errorf("partial reply text %q, want a non-empty prefix of the demo reply", reply.str("text"))
	case reply.str("text") != checkpoint:
		t.Errorf("partial reply text %q, the checkpoint seen before the crash was %q", reply.str("text"), checkpoint)
	}
	if len(stored) != int(replySeq) {
		t.Errorf("stored %d messages, want %d", len(stored), replySeq)
	}

	// The conversation goes on after the interrupted reply.
	c2 := p2.dial(t, tok, false)
	c2.send(map[string]any{"type": "send", "id": "c4", "session_id": sessionID, "text": "are you back?"})
	if ack := c2.next(isType("ack")); ack.num("seq") != replySeq+1 {
		t.Fatalf("next message acked at seq %d, want %d", ack.num("seq"), replySeq+1)
	}
	t.Logf("crash test took %v", time.Since(start).Round(time.Millisecond))
}

// storedMessages reads a session's stored messages over HTTP.
func storedMessages(t *testing.T, s *testServer, tok, sessionID string) []event {
	t.Helper()
	var body struct {
		Messages []event `json:"messages"`
	}
	if code := s.getJSON(t, tok, "/api/sessions/"+sessionID+"/messages", &body); code != http.StatusOK {
		t.Fatalf("messages of %s: HTTP %d", sessionID, code)
	}
	return body.Messages
}

// TestKillRightAfterAckNeverLosesTheMessage sends a message, kills the
// real binary with SIGKILL the moment its ack arrives, and restarts it on
// the same data_dir, 20 times: every acked message is there after every
// crash (storage.sync = "normal": WAL with synchronous=NORMAL survives a
// process crash).
func TestKillRightAfterAckNeverLosesTheMessage(t *testing.T) {
	const rounds = 20
	dir := t.TempDir()
	tok := signToken(t, "alice", "Alice")
	sessionID := ""
	var acked []string
	for i := range rounds + 1 {
		p := startProcess(t, dir, "")
		if sessionID != "" {
			stored := storedMessages(t, p.testServer, tok, sessionID)
			have := map[string]bool{}
			for _, m := range stored {
				have[m.str("text")] = true
			}
			for _, text := range acked {
				if !have[text] {
					t.Fatalf("after crash %d the acked message %q is gone; stored %v", i, text, stored)
				}
			}
		}
		if i == rounds {
			break
		}
		c := p.dial(t, tok, false)
		text := fmt.Sprintf("message %d, acked then killed", i)
		cmd := map[string]any{"type": "send", "id": fmt.Sprint(i), "text": text}
		if sessionID != "" {
			cmd["session_id"] = sessionID
		}
		c.send(cmd)
		ack := c.next(isType("ack"))
		if err := p.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		sessionID = ack.str("session_id")
		acked = append(acked, text)
		if err := p.wait(t, 5*time.Second); err == nil {
			t.Fatal("killed process exited with status 0")
		}
	}
}
