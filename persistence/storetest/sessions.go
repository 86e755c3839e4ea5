package storetest

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

var sessionCases = []testCase{
	{"a created session reads back as stored, with defaults filled in", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		created := time.Date(2026, 11, 2, 3, 4, 5, 678_901_234, time.FixedZone("CET", 3600))
		x := &persistence.Session{
			ID: "s1", UserID: "u1", Title: "Trip to Lisbon", Model: "demo",
			AdminID: "a1", AdminName: "Ann", HelpRequested: true, ShareID: "link",
			CreatedAt: created,
		}
		if err := st.CreateSession(ctx, x); err != nil {
			t.Fatalf("create: %v", err)
		}
		if !x.CreatedAt.Equal(created.Truncate(time.Millisecond)) || x.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt after create = %v, want %v in UTC", x.CreatedAt, created.Truncate(time.Millisecond))
		}
		if x.UpdatedAt != x.CreatedAt || x.Status != "active" || x.Mode != persistence.ModeBot || x.Version != 1 {
			t.Errorf("defaults not filled in: %+v", x)
		}
		got := mustGet(t, st, "s1")
		if *got != *x {
			t.Fatalf("get = %+v\nwant  %+v", *got, *x)
		}
		if got.CreatedAt.Location() != time.UTC || got.UpdatedAt.Location() != time.UTC {
			t.Errorf("times read back in %v and %v, want UTC", got.CreatedAt.Location(), got.UpdatedAt.Location())
		}
	}},
	{"a session keeps the status, mode and updated_at it is created with", func(t *testing.T, s *suite) {
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Status: "closed", Mode: persistence.ModeHuman,
			CreatedAt: at(0), UpdatedAt: at(500).Add(time.Microsecond)})
		if x.UpdatedAt != at(500) {
			t.Errorf("UpdatedAt after create = %v, want %v", x.UpdatedAt, at(500))
		}
		if got := mustGet(t, st, "s1"); *got != *x {
			t.Fatalf("get = %+v\nwant  %+v", *got, *x)
		}
	}},
	{"creating an existing id is a conflict and changes nothing", func(t *testing.T, s *suite) {
		st := s.open(t)
		first := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "first"})
		err := st.CreateSession(t.Context(), &persistence.Session{ID: "s1", UserID: "u2", Title: "second"})
		if !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("create existing id: err = %v, want ErrConflict", err)
		}
		if got := mustGet(t, st, "s1"); *got != *first {
			t.Fatalf("after the second create: %+v, want %+v", *got, *first)
		}
	}},
	{"a session without an id is refused", func(t *testing.T, s *suite) {
		if err := s.open(t).CreateSession(t.Context(), &persistence.Session{UserID: "u1"}); err == nil {
			t.Fatal("created a session with no id")
		}
	}},
	{"an unknown session is not found", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		for _, id := range []string{"nope", "", "S1", "s1 "} {
			if _, err := st.GetSession(t.Context(), id); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("get %q: err = %v, want ErrNotFound", id, err)
			}
		}
	}},
	{"an update writes the header, advances the version and leaves the counters alone", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "old", CreatedAt: at(0)})
		m := message("s1", 1, "one")
		m.TokensIn, m.TokensOut = 3, 4
		if err := st.AppendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		x := mustGet(t, st, "s1")
		stored := *x

		x.Title, x.Model, x.Mode, x.Status = "new title", "gpt", persistence.ModeHuman, "closed"
		x.AdminID, x.AdminName, x.HelpRequested, x.ShareID = "a9", "Bo", true, "link-9"
		x.UpdatedAt = at(5000)
		// Not the header's to change:
		x.UserID, x.CreatedAt = "someone else", at(99)
		x.MessageCount, x.LastSeq, x.TokensIn, x.TokensOut = 99, 99, 1000, 2000
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatalf("update: %v", err)
		}
		if x.Version != stored.Version+1 {
			t.Errorf("Version in the struct after update = %d, want %d", x.Version, stored.Version+1)
		}
		want := *x
		want.UserID, want.CreatedAt = stored.UserID, stored.CreatedAt
		want.MessageCount, want.LastSeq, want.TokensIn, want.TokensOut = 1, 1, 3, 4
		if got := mustGet(t, st, "s1"); *got != want {
			t.Fatalf("after update = %+v\nwant          %+v", *got, want)
		}
	}},
	{"an update never moves updated_at back", func(t *testing.T, s *suite) {
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0), UpdatedAt: at(5000)})
		x.UpdatedAt = at(1000)
		if err := st.UpdateSession(t.Context(), x); err != nil {
			t.Fatalf("update: %v", err)
		}
		if got := mustGet(t, st, "s1"); !got.UpdatedAt.Equal(at(5000)) || got.Version != 2 {
			t.Errorf("after an update to an older time: updated_at %v, version %d; want %v and 2", got.UpdatedAt, got.Version, at(5000))
		}
	}},
	{"an update with a zero updated_at moves it to now", func(t *testing.T, s *suite) {
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
		before := time.Now().Truncate(time.Millisecond)
		x.UpdatedAt = time.Time{}
		if err := st.UpdateSession(t.Context(), x); err != nil {
			t.Fatalf("update: %v", err)
		}
		if got := mustGet(t, st, "s1"); got.UpdatedAt.Before(before) {
			t.Errorf("updated_at %v after an update at %v with no time", got.UpdatedAt, before)
		}
	}},
	{"an update with a stale version is a conflict and writes nothing", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "first", CreatedAt: at(0)})
		mine, theirs := mustGet(t, st, "s1"), mustGet(t, st, "s1")
		theirs.Title, theirs.Mode = "theirs", persistence.ModeHuman
		if err := st.UpdateSession(ctx, theirs); err != nil {
			t.Fatalf("first update: %v", err)
		}
		stored := mustGet(t, st, "s1")

		mine.Title, mine.AdminID, mine.UpdatedAt = "mine", "a1", at(9000)
		if err := st.UpdateSession(ctx, mine); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("update with version %d after another writer's: err = %v, want ErrConflict", mine.Version, err)
		}
		if mine.Version != 1 {
			t.Errorf("a lost update changed the struct's Version to %d", mine.Version)
		}
		if got := mustGet(t, st, "s1"); *got != *stored {
			t.Fatalf("a lost update wrote: %+v\nwant %+v", *got, *stored)
		}
		for _, v := range []int64{0, 3, 100} {
			x := *stored
			x.Version, x.Title = v, "wrong version"
			if err := st.UpdateSession(ctx, &x); !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("update with version %d when the store has %d: err = %v, want ErrConflict", v, stored.Version, err)
			}
		}
		// Reloaded, the writer goes on.
		mine = mustGet(t, st, "s1")
		mine.Title = "mine, after reloading"
		if err := st.UpdateSession(ctx, mine); err != nil || mine.Version != 3 {
			t.Fatalf("update after reloading: %v, version %d; want version 3", err, mine.Version)
		}
	}},
	{"an update of an unknown session is not found", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		if err := st.UpdateSession(t.Context(), &persistence.Session{ID: "nope", Version: 1}); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("update unknown: err = %v, want ErrNotFound", err)
		}
	}},
	{"a share id finds its session until it is revoked", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "shared"})
		mustCreate(t, st, persistence.Session{ID: "s2", UserID: "u1", Title: "other"})
		if _, err := st.GetSessionByShareID(ctx, ""); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("empty share id: %v, want ErrNotFound (it must never match unshared sessions)", err)
		}
		x.ShareID = "link-1"
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetSessionByShareID(ctx, "link-1")
		if err != nil || *got != *x {
			t.Fatalf("by share id: %+v, %v; want %+v", got, err, x)
		}
		if _, err := st.GetSessionByShareID(ctx, "link-2"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("unknown link: %v, want ErrNotFound", err)
		}
		x.ShareID = ""
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetSessionByShareID(ctx, "link-1"); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("revoked link still answers: %v", err)
		}
	}},
	{"a deleted session and its messages are gone for real", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "doomed-session", UserID: "u1", Title: "doomed"})
		mustCreate(t, st, persistence.Session{ID: "kept", UserID: "u1", Title: "kept"})
		var doomed []string
		for seq := int64(1); seq <= 3; seq++ {
			m := message("doomed-session", seq, "doomed text")
			m.ID = "doomed-message-" + string(rune('a'+seq))
			if err := st.AppendMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
			doomed = append(doomed, m.ID)
		}
		kept := mustAppend(t, st, "kept", 1, "kept text")
		keep := mustGet(t, st, "kept")

		if err := st.DeleteSession(ctx, "doomed-session"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if _, err := st.GetSession(ctx, "doomed-session"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("get after delete: err = %v, want ErrNotFound", err)
		}
		if _, err := st.ListMessages(ctx, "doomed-session", 0, 0); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("list messages after delete: err = %v, want ErrNotFound", err)
		}
		if err := st.DeleteSession(ctx, "doomed-session"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("delete again: err = %v, want ErrNotFound", err)
		}
		if list, _, err := st.ListSessions(ctx, "u1", persistence.Page{}); err != nil || !slices.Equal(ids(list), []string{"kept"}) {
			t.Errorf("sessions after delete: %v, %v; want only kept", ids(list), err)
		}
		if got := mustGet(t, st, "kept"); *got != *keep {
			t.Errorf("the other session changed: %+v, want %+v", *got, *keep)
		}
		if got := mustList(t, st, "kept"); len(got) != 1 || !reflect.DeepEqual(got[0], *kept) {
			t.Errorf("the other session's messages: %+v", got)
		}
		dump := s.f.Dump(t, st)
		for _, id := range append(doomed, "doomed-session") {
			if bytes.Contains(dump, []byte(id)) {
				t.Errorf("%q is still stored after the delete", id)
			}
		}
		// The id is free again, with nothing of the old session in it.
		mustCreate(t, st, persistence.Session{ID: "doomed-session", UserID: "u1"})
		mustAppend(t, st, "doomed-session", 1, "a new start")
		if got := mustList(t, st, "doomed-session"); len(got) != 1 || got[0].Text != "a new start" {
			t.Errorf("messages of the recreated session: %+v", got)
		}
		if stats, err := st.Stats(ctx); err != nil || stats.Sessions != 2 || stats.Messages != 2 {
			t.Errorf("stats after delete and recreate: %+v, %v; want 2 sessions, 2 messages", stats, err)
		}
	}},
	{"an unknown session cannot be deleted", func(t *testing.T, s *suite) {
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		if err := st.DeleteSession(t.Context(), "nope"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("delete unknown: err = %v, want ErrNotFound", err)
		}
		if got := mustGet(t, st, "s1"); *got != *x {
			t.Errorf("deleting another id changed s1: %+v", *got)
		}
	}},
	{"stats count what is stored", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		if got, err := st.Stats(ctx); err != nil || got != (persistence.Stats{}) {
			t.Fatalf("empty store: %+v, %v", got, err)
		}
		a := mustCreate(t, st, persistence.Session{ID: "a", UserID: "u1"})
		mustCreate(t, st, persistence.Session{ID: "b", UserID: "u2", HelpRequested: true})
		mustCreate(t, st, persistence.Session{ID: "c", UserID: "u2", Mode: persistence.ModeHuman})
		for i, m := range []*persistence.Message{message("a", 1, "one"), message("a", 2, "two"), message("b", 1, "three")} {
			m.TokensIn, m.TokensOut = int64(i+1), int64(10*(i+1))
			if err := st.AppendMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		a.HelpRequested, a.Mode = true, persistence.ModeHuman
		if err := st.UpdateSession(ctx, a); err != nil {
			t.Fatal(err)
		}
		got, err := st.Stats(ctx)
		want := persistence.Stats{Sessions: 3, Messages: 3, TokensIn: 6, TokensOut: 60, HelpRequested: 2, TakenOver: 2}
		if err != nil || got != want {
			t.Fatalf("stats %+v (%v), want %+v", got, err, want)
		}
	}},
	{"a store answers ping", func(t *testing.T, s *suite) {
		if err := s.open(t).Ping(t.Context()); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}},
}
