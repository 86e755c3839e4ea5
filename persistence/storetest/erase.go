package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// eraseFixture stores, through the Importer so that it is quick on every
// store, sessions sessions of messages messages each for user, with ids
// ending in suffix (so that two users' ids interleave in every index); it
// returns every id it stored.
func eraseFixture(t *testing.T, st persistence.Store, user, suffix string, sessions, messages int) []string {
	t.Helper()
	imp := importer(t, st)
	var stored []string
	for i := range sessions {
		sid := fmt.Sprintf("sess-%03d-%s", i, suffix)
		x := &persistence.Session{ID: sid, UserID: user, Title: "t", Model: "demo", Status: persistence.SessionActive,
			Mode: persistence.ModeBot, LastSeq: int64(messages), MessageCount: int64(messages),
			CreatedAt: at(i), UpdatedAt: at(i), Version: 1}
		if err := imp.PutSession(t.Context(), x); err != nil {
			t.Fatalf("put session %s: %v", sid, err)
		}
		stored = append(stored, sid)
		msgs := make([]persistence.Message, messages)
		for j := range msgs {
			m := message(sid, int64(j+1), "some text")
			m.ID = fmt.Sprintf("msg-%03d-%03d-%s", i, j, suffix)
			msgs[j] = *m
			stored = append(stored, m.ID)
		}
		if err := imp.PutMessages(t.Context(), msgs); err != nil {
			t.Fatalf("put messages of %s: %v", sid, err)
		}
	}
	return stored
}

var eraseCases = []testCase{
	{"erasing a user deletes every session and message of theirs, and nothing of anyone else", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		// Enough records for several pages of each index in the embedded
		// store, few enough for FerretDB, which scans for every query.
		erased := eraseFixture(t, st, "leaver", "gone7f", 15, 12)
		kept := eraseFixture(t, st, "stayer", "kept1b", 8, 12)
		shared := mustGet(t, st, "sess-000-gone7f")
		shared.ShareID = "gone7f-share-link"
		if err := st.UpdateSession(ctx, shared); err != nil {
			t.Fatal(err)
		}
		dump := s.f.Dump(t, st)
		for _, id := range []string{erased[0], erased[len(erased)-1], "gone7f-share-link"} {
			if !bytes.Contains(dump, []byte(id)) {
				t.Fatalf("%q is not in the dump before the erasure: the search shows nothing", id)
			}
		}

		record := &persistence.AuditEntry{ID: "audit-erase-1", AdminID: "ann", AdminName: "Ann",
			Role: persistence.AuditByAdmin, Action: persistence.AuditErase, UserID: "leaver", At: at(5000)}
		res, err := st.EraseUser(ctx, "leaver", record)
		if err != nil {
			t.Fatalf("erase: %v", err)
		}
		if want := (persistence.EraseResult{Sessions: 15, Messages: 15 * 12}); res != want {
			t.Errorf("erase result %+v, want %+v", res, want)
		}
		if _, err := st.GetSession(ctx, "sess-007-gone7f"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("get an erased session: err = %v, want ErrNotFound", err)
		}
		if _, err := st.GetSessionByShareID(ctx, "gone7f-share-link"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("share link of an erased session: err = %v, want ErrNotFound", err)
		}
		if list, _, err := st.ListSessions(ctx, "leaver", persistence.Page{}); err != nil || len(list) != 0 {
			t.Errorf("sessions of the erased user: %v, %v; want none", ids(list), err)
		}
		if list, _, err := st.ListSessions(ctx, "stayer", persistence.Page{Limit: 100}); err != nil || len(list) != 8 {
			t.Errorf("sessions of the other user: %d, %v; want 8", len(list), err)
		}
		if got := mustList(t, st, "sess-007-kept1b"); len(got) != 12 || got[11].ID != "msg-007-011-kept1b" || got[0].Text != "some text" {
			t.Errorf("the other user's messages: %d of them, want 12 intact", len(got))
		}
		if stats, err := st.Stats(ctx); err != nil || stats.Sessions != 8 || stats.Messages != 8*12 {
			t.Errorf("stats after erasure: %+v, %v; want 8 sessions and 96 messages", stats, err)
		}
		dump = s.f.Dump(t, st)
		for _, id := range append(erased, "gone7f-share-link") {
			if bytes.Contains(dump, []byte(id)) {
				t.Errorf("%q is still stored after the erasure", id)
			}
		}
		for _, id := range []string{kept[0], kept[len(kept)-1]} {
			if !bytes.Contains(dump, []byte(id)) {
				t.Errorf("%q of the other user is gone from the dump", id)
			}
		}
	}},
	{"messages whose key is gone are erased too", func(t *testing.T, s *suite) {
		ctx := t.Context()
		old := s.f.Open(t, keyring(t, keyA))
		mustCreate(t, old, persistence.Session{ID: "lost-key-session", UserID: "leaver"})
		mustAppend(t, old, "lost-key-session", 1, "under a lost key")
		st := s.f.Reopen(t, old, keyring(t, keyB))
		if msgs := mustList(t, st, "lost-key-session"); len(msgs) != 1 || !msgs[0].Unreadable {
			t.Fatalf("the fixture's message reads %+v, want unreadable", msgs)
		}
		res, err := st.EraseUser(ctx, "leaver", &persistence.AuditEntry{ID: "a1", Action: persistence.AuditErase, UserID: "leaver"})
		if err != nil || res.Sessions != 1 || res.Messages != 1 {
			t.Fatalf("erase: %+v, %v; want 1 session and 1 message", res, err)
		}
		if bytes.Contains(s.f.Dump(t, st), []byte("lost-key-session")) {
			t.Error("the session is still stored")
		}
	}},
	{"audit entries about erased sessions stay with their session id emptied", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "erased-s1", UserID: "leaver"})
		mustCreate(t, st, persistence.Session{ID: "kept-s1", UserID: "stayer"})
		for i, sid := range []string{"erased-s1", "kept-s1"} {
			e := &persistence.AuditEntry{ID: fmt.Sprintf("t%d", i), At: at(i), AdminID: "ann", AdminName: "Ann",
				Role: persistence.AuditByAdmin, Action: persistence.AuditTakeover, SessionID: sid, UserID: "x"}
			if err := st.AppendAudit(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		record := &persistence.AuditEntry{ID: "erase-1", At: at(10), AdminID: "ann", AdminName: "Ann",
			Role: persistence.AuditByAdmin, Action: persistence.AuditErase, UserID: "leaver"}
		if _, err := st.EraseUser(ctx, "leaver", record); err != nil {
			t.Fatal(err)
		}
		got, _, err := st.ListAudit(ctx, persistence.Page{})
		if err != nil {
			t.Fatal(err)
		}
		want := []persistence.AuditEntry{*record,
			{ID: "t1", At: at(1), AdminID: "ann", AdminName: "Ann", Role: persistence.AuditByAdmin, Action: persistence.AuditTakeover, SessionID: "kept-s1", UserID: "x"},
			{ID: "t0", At: at(0), AdminID: "ann", AdminName: "Ann", Role: persistence.AuditByAdmin, Action: persistence.AuditTakeover, SessionID: "", UserID: "x"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("audit after erasure:\n got %+v\nwant %+v", got, want)
		}
		if bytes.Contains(s.f.Dump(t, st), []byte("erased-s1")) {
			t.Error("the erased session's id is still stored")
		}
	}},
	{"erasing a user with no data deletes nothing and records the erasure", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "stayer"})
		res, err := st.EraseUser(ctx, "nobody", &persistence.AuditEntry{ID: "e1", Action: persistence.AuditErase, UserID: "nobody"})
		if err != nil || res != (persistence.EraseResult{}) {
			t.Fatalf("erase: %+v, %v; want nothing erased", res, err)
		}
		if got := mustGet(t, st, "s1"); *got != *x {
			t.Errorf("another user's session changed: %+v", *got)
		}
		if got, _, err := st.ListAudit(ctx, persistence.Page{}); err != nil || len(got) != 1 || got[0].ID != "e1" || got[0].UserID != "nobody" {
			t.Errorf("audit: %+v, %v; want the erase record", got, err)
		}
	}},
}
