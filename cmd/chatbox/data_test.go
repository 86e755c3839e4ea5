package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/embedded"
	"github.com/chatbox/chatbox/persistence/mongo"
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
	ferret, err := embedded.Start(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ferret.Close() })
	for _, store := range []struct {
		name, uri string
		want      []string
	}{
		{"embedded", "", []string{
			"migrate: indexes of the embedded store in ",
			"messages: messages_session_seq {session_id, seq} unique\n",
			"sessions: sessions_user_updated {user_id, updated_at, id}\n",
			"sessions: sessions_updated {updated_at, id}\n",
			"sessions: sessions_share {share_id}\n",
		}},
		{"mongo", ferret.URI(), []string{
			"migrate: indexes of the MongoDB database chatbox\n",
			"messages: session_id_1_seq_1 {session_id: 1, seq: 1} unique\n",
			"sessions: user_id_1_updated_at_-1__id_-1 {user_id: 1, updated_at: -1, _id: -1}\n",
			"sessions: updated_at_-1__id_-1 {updated_at: -1, _id: -1}\n",
			"sessions: share_id_1 {share_id: 1}\n",
		}},
	} {
		t.Run(store.name, func(t *testing.T) {
			t.Setenv("CHATBOX_STORAGE_MONGO_URI", store.uri)
			dir := t.TempDir()
			out, err := runCommand(t, "migrate", "-config", writeConfig(t, dir, ""))
			if err != nil {
				t.Fatalf("migrate: %v\n%s", err, out)
			}
			for _, want := range store.want {
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
		})
	}
}

// TestCopyCommandMovesEveryMessageBetweenStoresAndResumes copies a
// conversation from the embedded store to MongoDB (FerretDB in-process
// as the stand-in) and back into a fresh data_dir, and serves it from each.
func TestCopyCommandMovesEveryMessageBetweenStoresAndResumes(t *testing.T) {
	key, _ := config.GenerateKey()
	t.Setenv("CHATBOX_STORAGE_ENCRYPTION_KEY", key)
	tok := signToken(t, "alice", "Alice")

	embeddedDir, backDir, mongoDir := t.TempDir(), t.TempDir(), t.TempDir()
	s := startServer(t, embeddedDir, "")
	c := s.dial(t, tok, false)
	c.send(map[string]any{"type": "send", "id": "c1", "text": "copy me across"})
	sessionID := c.next(isType("ack")).str("session_id")
	reply := c.next(isFinal).msg().str("text")
	s.stop(t)

	ferret, err := embedded.Start(context.Background(), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ferret.Close() })
	uri := ferret.URI()

	cfg := filepath.Join(embeddedDir, "chatbox.toml")
	out, err := runCommand(t, "copy", "-config", cfg, "-from", embeddedDir, "-to", uri)
	if err != nil || !strings.Contains(out, "copied 1 sessions and 2 messages, 0 sessions were already there") {
		t.Fatalf("copy to MongoDB: %v\n%s", err, out)
	}
	// Again: nothing to do, nothing written twice.
	out, err = runCommand(t, "copy", "-config", cfg, "-from", embeddedDir, "-to", uri)
	if err != nil || !strings.Contains(out, "copied 0 sessions and 0 messages, 1 sessions were already there") {
		t.Fatalf("second copy: %v\n%s", err, out)
	}

	want := func(s *testServer, where string) {
		t.Helper()
		stored := storedMessages(t, s, tok, sessionID)
		if len(stored) != 2 || stored[0].str("text") != "copy me across" || stored[1].str("text") != reply {
			t.Fatalf("%s: %v", where, stored)
		}
	}
	t.Setenv("CHATBOX_STORAGE_MONGO_URI", uri)
	s = startServer(t, mongoDir, "")
	want(s, "served from MongoDB")
	s.stop(t)
	t.Setenv("CHATBOX_STORAGE_MONGO_URI", "")

	out, err = runCommand(t, "copy", "-config", cfg, "-from", uri, "-to", backDir)
	if err != nil || !strings.Contains(out, "copied 1 sessions and 2 messages") {
		t.Fatalf("copy back: %v\n%s", err, out)
	}
	s = startServer(t, backDir, "")
	want(s, "served from the copy in a fresh data_dir")
}

// TestDataDirOfTheFerretDBStoreIsRefusedThenCopied writes a conversation
// the way Chatbox v1.0 did (FerretDB's SQLite files under data_dir/db),
// checks that serve refuses the directory without touching it, and that
// copy brings it to the new store.
func TestDataDirOfTheFerretDBStoreIsRefusedThenCopied(t *testing.T) {
	key, _ := config.GenerateKey()
	t.Setenv("CHATBOX_STORAGE_ENCRYPTION_KEY", key)
	old, fresh := t.TempDir(), t.TempDir()
	ctx := context.Background()

	// v1.0's layout: FerretDB in data_dir/db, database "chatbox".
	ferret, err := embedded.Start(ctx, filepath.Join(old, "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := persistence.NewKeyring(mustDecode(t, key))
	if err != nil {
		t.Fatal(err)
	}
	st, err := mongo.Open(ctx, mongo.Options{URI: ferret.URI(), Database: "chatbox", Keyring: keys})
	if err != nil {
		t.Fatal(err)
	}
	sess := &persistence.Session{ID: "s-old", UserID: "alice", Title: "from v1.0"}
	if err := st.CreateSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if err := st.AppendMessage(ctx, &persistence.Message{SessionID: "s-old", Seq: 1, Role: persistence.RoleUser, Text: "kept since v1.0", Status: persistence.StatusComplete}); err != nil {
		t.Fatal(err)
	}
	st.Close(ctx)
	ferret.Close()
	file := filepath.Join(old, "db", "chatbox.sqlite")
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("v1.0 layout: %v", err)
	}

	var errOut strings.Builder
	err = Run(ctx, []string{"serve", "-config", writeConfig(t, old, "")}, io.Discard, &errOut)
	if err == nil || !strings.Contains(err.Error(), "FerretDB") || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "chatbox copy") {
		t.Fatalf("serve on a v1.0 data_dir: %v", err)
	}
	if after, _ := os.ReadFile(file); string(after) != string(before) {
		t.Fatal("serve changed the v1.0 store it refused")
	}

	out, err := runCommand(t, "copy", "-config", filepath.Join(old, "chatbox.toml"), "-from", old, "-to", fresh)
	if err != nil || !strings.Contains(out, "copied 1 sessions and 1 messages") {
		t.Fatalf("copy from v1.0: %v\n%s", err, out)
	}
	s := startServer(t, fresh, "")
	stored := storedMessages(t, s, signToken(t, "alice", "Alice"), "s-old")
	if len(stored) != 1 || stored[0].str("text") != "kept since v1.0" {
		t.Fatalf("after the copy: %v", stored)
	}
}

func mustDecode(t *testing.T, key string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
