package storetest

import (
	"errors"
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
}

var (
	messageCases     []testCase
	fencingCases     []testCase
	listCases        []testCase
	encryptionCases  []testCase
	maintenanceCases []testCase
)
