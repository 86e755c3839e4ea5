package sqlite_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/sqlite"
)

// testKey is fixed so that a test can reopen what another store wrote.
var testKey = []byte("chatbox sqlite test key 32 bytes")

func keyring(t testing.TB, current []byte, previous ...[]byte) *persistence.Keyring {
	t.Helper()
	k, err := persistence.NewKeyring(current, previous...)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	return k
}

// open opens a store in dir with the test key, closed when the test ends.
func open(t testing.TB, dir string, mod ...func(*sqlite.Options)) *sqlite.Store {
	t.Helper()
	o := sqlite.Options{Dir: dir, Keyring: keyring(t, testKey)}
	for _, f := range mod {
		f(&o)
	}
	st, err := sqlite.Open(context.Background(), o)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(context.Background()); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

var t0 = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

func mustCreate(t testing.TB, st persistence.Store, id, user string) *persistence.Session {
	t.Helper()
	s := &persistence.Session{ID: id, UserID: user, Title: "title of " + id, CreatedAt: t0}
	if err := st.CreateSession(context.Background(), s); err != nil {
		t.Fatalf("create session %s: %v", id, err)
	}
	return s
}

func msg(sessionID string, seq int64) *persistence.Message {
	return &persistence.Message{
		ID: fmt.Sprintf("%s-m%d", sessionID, seq), SessionID: sessionID, Seq: seq,
		Role: persistence.RoleUser, Author: "Ann", AuthorID: "u1", Text: fmt.Sprintf("text %d of %s", seq, sessionID),
		Status: persistence.StatusComplete, CreatedAt: t0.Add(time.Duration(seq) * time.Second), TokensIn: 2, TokensOut: 3,
	}
}

func mustAppend(t testing.TB, st persistence.Store, sessionID string, seq int64) *persistence.Message {
	t.Helper()
	m := msg(sessionID, seq)
	if err := st.AppendMessage(context.Background(), m); err != nil {
		t.Fatalf("append %d to %s: %v", seq, sessionID, err)
	}
	return m
}
