package mongo_test

import (
	"errors"
	"testing"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
)

func TestShareIDFindsTheSessionUntilRevoked(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	ctx := t.Context()
	s := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "shared"})
	if _, err := st.GetSessionByShareID(ctx, ""); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("empty share id: %v, want ErrNotFound (it must never match unshared sessions)", err)
	}
	s.ShareID = "link-1"
	if err := st.UpdateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetSessionByShareID(ctx, "link-1")
	if err != nil || got.ID != "s1" || got.Title != "shared" {
		t.Fatalf("by share id: %+v, %v", got, err)
	}
	s.ShareID = ""
	if err := st.UpdateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetSessionByShareID(ctx, "link-1"); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("revoked link still answers: %v", err)
	}
}

func TestAuthorIDIsStored(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	ctx := t.Context()
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	m := &persistence.Message{SessionID: "s1", Seq: 1, Role: persistence.RoleAdmin, Author: "Ann", AuthorID: "admin-7", Text: "hi", Status: persistence.StatusComplete, CreatedAt: t0}
	if err := st.AppendMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	msgs, err := st.ListMessages(ctx, "s1", 0, 10)
	if err != nil || len(msgs) != 1 || msgs[0].AuthorID != "admin-7" || msgs[0].Author != "Ann" || msgs[0].Role != persistence.RoleAdmin {
		t.Fatalf("read back %+v, %v", msgs, err)
	}
}

func TestStatsCountsInTheDatabase(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	ctx := t.Context()
	if got, err := st.Stats(ctx); err != nil || got != (persistence.Stats{}) {
		t.Fatalf("empty store: %+v, %v", got, err)
	}
	a := mustCreate(t, st, persistence.Session{ID: "a", UserID: "u1"})
	mustCreate(t, st, persistence.Session{ID: "b", UserID: "u2"})
	mustAppend(t, st, "a", 1, "one")
	mustAppend(t, st, "a", 2, "two")
	mustAppend(t, st, "b", 1, "three")
	a.TokensIn, a.TokensOut, a.HelpRequested, a.Mode = 10, 20, true, persistence.ModeHuman
	if err := st.UpdateSession(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, err := st.Stats(ctx)
	want := persistence.Stats{Sessions: 2, Messages: 3, TokensIn: 10, TokensOut: 20, HelpRequested: 1, TakenOver: 1}
	if err != nil || got != want {
		t.Fatalf("stats %+v (%v), want %+v", got, err, want)
	}
}
