package storetest

import (
	"bytes"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// Keys of the key rotation cases: A is the old key, B the new one, C a key
// that gets lost.
var (
	keyA = []byte("rekey test key A, exactly 32 by!")
	keyB = []byte("rekey test key B, exactly 32 by!")
	keyC = []byte("rekey test key C, exactly 32 by!")
)

var encryptionCases = []testCase{
	{"no title or text is stored in the clear", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		const title, text, updated = "TITLE-PLAINTEXT-7f3a", "MESSAGE-PLAINTEXT-91bc", "UPDATED-PLAINTEXT-0d2e"
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "first " + title})
		x.Title = title
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		m := mustAppend(t, st, "s1", 1, text)
		mustAppend(t, st, "s1", 2, text)
		m.Text = updated
		if err := st.UpdateMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		dump := s.f.Dump(t, st)
		if !bytes.Contains(dump, []byte("s1")) {
			t.Fatal("the dump does not hold the session id: it shows nothing of the store")
		}
		for _, secret := range []string{title, text, updated, "PLAINTEXT"} {
			if bytes.Contains(dump, []byte(secret)) {
				t.Errorf("%q is stored in the clear", secret)
			}
		}
		if got := mustGet(t, st, "s1"); got.Title != title {
			t.Fatalf("title reads back as %q", got.Title)
		}
	}},
	{"text under a key no longer configured reads empty and unreadable, not as an error", func(t *testing.T, s *suite) {
		ctx := t.Context()
		writer := s.f.Open(t, keyring(t, keyA))
		mustCreate(t, writer, persistence.Session{ID: "s1", UserID: "u1", Title: "about cats"})
		mustAppend(t, writer, "s1", 1, "cats are great")

		reader := s.f.Reopen(t, writer, keyring(t, keyB))
		x := mustGet(t, reader, "s1")
		msgs := mustList(t, reader, "s1")
		if x.Title != "" || len(msgs) != 1 || msgs[0].Text != "" || !msgs[0].Unreadable || msgs[0].Status != persistence.StatusComplete || msgs[0].Seq != 1 {
			t.Fatalf("read without the key: title %q, messages %+v", x.Title, msgs)
		}
		if list, _, err := reader.ListSessions(ctx, "u1", persistence.Page{}); err != nil || len(list) != 1 || list[0].Title != "" {
			t.Fatalf("list without the key: %+v, %v", list, err)
		}
		if got := mustList(t, writer, "s1"); got[0].Unreadable || got[0].Text != "cats are great" {
			t.Fatalf("with the key: %+v", got[0])
		}
	}},
	{"after a key rotation old text reads and new text is written under the new key", func(t *testing.T, s *suite) {
		old := s.f.Open(t, keyring(t, keyA))
		mustCreate(t, old, persistence.Session{ID: "s1", UserID: "u1", Title: "about cats"})
		mustAppend(t, old, "s1", 1, "cats are great")

		rotated := s.f.Reopen(t, old, keyring(t, keyB, keyA))
		if x := mustGet(t, rotated, "s1"); x.Title != "about cats" {
			t.Fatalf("title after rotation %q", x.Title)
		}
		mustAppend(t, rotated, "s1", 2, "and dogs")
		msgs := mustList(t, rotated, "s1")
		if len(msgs) != 2 || msgs[0].Text != "cats are great" || msgs[1].Text != "and dogs" {
			t.Fatalf("after rotation: %+v", msgs)
		}
		onlyB := s.f.Reopen(t, old, keyring(t, keyB))
		if msgs := mustList(t, onlyB, "s1"); !msgs[0].Unreadable || msgs[1].Unreadable || msgs[1].Text != "and dogs" {
			t.Fatalf("with only the new key: %+v; want the old message unreadable, the new one read", msgs)
		}
	}},
	{"a tampered ciphertext reads empty and unreadable, and the rest reads", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		mustAppend(t, st, "s1", 1, "alpha says hello")
		mustAppend(t, st, "s1", 2, "beta says goodbye")
		mustAppend(t, st, "s1", 3, "gamma says nothing")
		s.f.Corrupt(t, st, "s1", 2)
		msgs := mustList(t, st, "s1")
		if len(msgs) != 3 || msgs[1].Text != "" || !msgs[1].Unreadable {
			t.Fatalf("tampered message reads %+v", msgs)
		}
		if msgs[0].Text != "alpha says hello" || msgs[0].Unreadable || msgs[2].Text != "gamma says nothing" || msgs[2].Unreadable {
			t.Fatalf("the untampered messages read %+v and %+v", msgs[0], msgs[2])
		}
		// Rewriting it heals it.
		m := msgs[1]
		m.Text = "beta, rewritten"
		if err := st.UpdateMessage(t.Context(), &m); err != nil {
			t.Fatal(err)
		}
		if got := mustList(t, st, "s1"); got[1].Text != "beta, rewritten" || got[1].Unreadable {
			t.Fatalf("after rewriting: %+v", got[1])
		}
	}},
}
