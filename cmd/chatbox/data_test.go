package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/config"
)

// runCommand runs one chatbox command in-process and returns its stdout.
func runCommand(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, &out, &errOut)
	if strings.Contains(out.String()+errOut.String(), "secret") {
		t.Errorf("%s printed message text:\n%s\n%s", args[0], out.String(), errOut.String())
	}
	return out.String(), err
}

func TestRekeyCommandRotatesTheKeyAndReportsLostOnes(t *testing.T) {
	dir := t.TempDir()
	tok := signToken(t, "alice", "Alice")

	// A conversation under the dev key that serve generated (key A).
	s := startServer(t, dir, "")
	c := s.dial(t, tok, false)
	c.send(map[string]any{"type": "send", "id": "c1", "text": "a secret worth keeping"})
	sessionID := c.next(isType("ack")).str("session_id")
	reply := c.next(isFinal).msg().str("text")
	s.stop(t)
	raw, err := os.ReadFile(filepath.Join(dir, "encryption_key"))
	if err != nil {
		t.Fatal(err)
	}
	keyA := strings.TrimSpace(string(raw))
	keyB, _ := config.GenerateKey()
	cfg := filepath.Join(dir, "chatbox.toml") // written by startServer

	// Rotate: B encrypts, A still decrypts; rekey moves everything to B.
	t.Setenv("CHATBOX_STORAGE_ENCRYPTION_KEY", keyB)
	t.Setenv("CHATBOX_STORAGE_PREVIOUS_ENCRYPTION_KEYS", keyA)
	out, err := runCommand(t, "rekey", "-config", cfg, "-batch", "1")
	if err != nil {
		t.Fatalf("rekey: %v\n%s", err, out)
	}
	if !strings.Contains(out, "rekeyed 2 messages, 1 titles, 0 unreadable") || !strings.Contains(out, "previous keys can be removed") {
		t.Fatalf("rekey output:\n%s", out)
	}

	// Only B from now on: the conversation reads back.
	t.Setenv("CHATBOX_STORAGE_PREVIOUS_ENCRYPTION_KEYS", "")
	s = startServer(t, dir, "")
	stored := storedMessages(t, s, tok, sessionID)
	if len(stored) != 2 || stored[0].str("text") != "a secret worth keeping" || stored[1].str("text") != reply {
		t.Fatalf("with only the new key: %v", stored)
	}
	var list struct {
		Sessions []event `json:"sessions"`
	}
	s.getJSON(t, tok, "/api/sessions", &list)
	if len(list.Sessions) != 1 || list.Sessions[0].str("title") != "a secret worth keeping" {
		t.Fatalf("sessions with only the new key: %v", list.Sessions)
	}
	s.stop(t)

	// Key B lost: rekey to C reports every record by session and seq,
	// leaves them alone, and fails.
	keyC, _ := config.GenerateKey()
	t.Setenv("CHATBOX_STORAGE_ENCRYPTION_KEY", keyC)
	out, err = runCommand(t, "rekey", "-config", cfg)
	if err == nil || !strings.Contains(err.Error(), "3 records cannot be read") {
		t.Fatalf("rekey with the key lost: err = %v, want 3 unreadable\n%s", err, out)
	}
	for _, line := range []string{
		"rekeyed 0 messages, 0 titles, 3 unreadable",
		"unreadable: session " + sessionID + " message seq 1: key ",
		"unreadable: session " + sessionID + " message seq 2: key ",
		"unreadable: session " + sessionID + " title: key ",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("rekey output lacks %q:\n%s", line, out)
		}
	}
	// Nothing was damaged: with B back, everything reads.
	t.Setenv("CHATBOX_STORAGE_ENCRYPTION_KEY", keyB)
	s = startServer(t, dir, "")
	if stored := storedMessages(t, s, tok, sessionID); len(stored) != 2 || stored[0].str("text") != "a secret worth keeping" {
		t.Fatalf("after the failed rekey, with key B: %v", stored)
	}
}

func TestMigrateCommandCreatesAndListsTheIndexes(t *testing.T) {
	dir := t.TempDir()
	out, err := runCommand(t, "migrate", "-config", writeConfig(t, dir, ""))
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	for _, want := range []string{
		"migrate: indexes of database chatbox",
		"messages: session_id_1_seq_1 {session_id: 1, seq: 1} unique\n",
		"sessions: user_id_1_updated_at_-1__id_-1 {user_id: 1, updated_at: -1, _id: -1}\n",
		"sessions: updated_at_-1__id_-1 {updated_at: -1, _id: -1}\n",
		"sessions: share_id_1 {share_id: 1}\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("migrate output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "listening") {
		t.Errorf("migrate served:\n%s", out)
	}
	// Again: idempotent.
	if out2, err := runCommand(t, "migrate", "-config", filepath.Join(dir, "chatbox.toml")); err != nil || out2 != out {
		t.Fatalf("second migrate: %v\n%s", err, out2)
	}
}
