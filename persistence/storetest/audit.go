package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

var auditCases = []testCase{
	{"an audit entry reads back as stored", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		e := &persistence.AuditEntry{ID: "a1", At: time.Date(2026, 11, 2, 3, 4, 5, 678_901_234, time.FixedZone("CET", 3600)),
			AdminID: "ann", AdminName: "Ann", Role: persistence.AuditByAdmin, Action: persistence.AuditTakeover,
			SessionID: "s1", UserID: "u1"}
		if err := st.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		if !e.At.Equal(time.Date(2026, 11, 2, 2, 4, 5, 678_000_000, time.UTC)) {
			t.Errorf("At after append = %v, want it truncated to milliseconds", e.At)
		}
		got, next, err := st.ListAudit(ctx, persistence.Page{})
		if err != nil || next != "" || len(got) != 1 {
			t.Fatalf("list: %+v, %q, %v", got, next, err)
		}
		if got[0] != *e || got[0].At.Location() != time.UTC {
			t.Errorf("read back %+v, want %+v in UTC", got[0], *e)
		}
		if err := st.AppendAudit(ctx, &persistence.AuditEntry{ID: "a1", Action: "end"}); !errors.Is(err, persistence.ErrConflict) {
			t.Errorf("a second entry with the same id: err = %v, want ErrConflict", err)
		}
	}},
	{"the audit list is newest first and pages without gaps or repeats", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		var want []string
		// Pairs share a millisecond, so the id breaks ties.
		for i := range 23 {
			e := &persistence.AuditEntry{ID: fmt.Sprintf("a%02d", i), At: at(i / 2), Action: persistence.AuditEnd, UserID: "u1"}
			if err := st.AppendAudit(ctx, e); err != nil {
				t.Fatal(err)
			}
			want = append(want, e.ID)
		}
		slices.Reverse(want)
		var got []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			list, next, err := st.ListAudit(ctx, persistence.Page{Limit: 5, Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			if len(list) > 5 {
				t.Fatalf("a page of %d entries, limit 5", len(list))
			}
			for _, e := range list {
				got = append(got, e.ID)
			}
			if next == "" {
				break
			}
			cursor = next
		}
		if !slices.Equal(got, want) {
			t.Errorf("paged:\n got %v\nwant %v", got, want)
		}
	}},
	{"a bad audit cursor is refused", func(t *testing.T, s *suite) {
		st := s.open(t)
		_, _, err := st.ListAudit(t.Context(), persistence.Page{Cursor: "not-a-cursor"})
		if !errors.Is(err, persistence.ErrBadCursor) {
			t.Errorf("err = %v, want ErrBadCursor", err)
		}
		// A session list's cursor is not an audit cursor.
		for i := range 3 {
			mustCreate(t, st, persistence.Session{ID: fmt.Sprintf("s%d", i), UserID: "u1"})
		}
		_, next, err := st.ListSessions(t.Context(), "u1", persistence.Page{Limit: 1})
		if err != nil || next == "" {
			t.Fatalf("list sessions: %q, %v", next, err)
		}
		if _, _, err := st.ListAudit(t.Context(), persistence.Page{Cursor: next}); !errors.Is(err, persistence.ErrBadCursor) {
			t.Errorf("a session cursor: err = %v, want ErrBadCursor", err)
		}
	}},
	{"a deleted session's audit entries stay with its id emptied", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "deleted-s9", UserID: "u1"})
		mustCreate(t, st, persistence.Session{ID: "kept-s9", UserID: "u1"})
		for i, sid := range []string{"deleted-s9", "kept-s9"} {
			e := &persistence.AuditEntry{ID: fmt.Sprintf("t%d", i), At: at(i), Action: persistence.AuditEnd, SessionID: sid, UserID: "u1"}
			if err := st.AppendAudit(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.DeleteSession(ctx, "deleted-s9"); err != nil {
			t.Fatal(err)
		}
		got, _, err := st.ListAudit(ctx, persistence.Page{})
		if err != nil || len(got) != 2 || got[0].SessionID != "kept-s9" || got[1].ID != "t0" || got[1].SessionID != "" {
			t.Errorf("audit after the delete: %+v, %v; want t1 on kept-s9 and t0 with no session", got, err)
		}
	}},
}
