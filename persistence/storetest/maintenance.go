package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

func rekeyer(t *testing.T, st persistence.Store) persistence.Rekeyer {
	t.Helper()
	r, ok := st.(persistence.Rekeyer)
	if !ok {
		t.Fatalf("%T does not implement persistence.Rekeyer", st)
	}
	return r
}

func migrator(t *testing.T, st persistence.Store) persistence.Migrator {
	t.Helper()
	m, ok := st.(persistence.Migrator)
	if !ok {
		t.Fatalf("%T does not implement persistence.Migrator", st)
	}
	return m
}

// rekeyFixture writes sessions s1..s3 of user u, each with three messages,
// under key A (titles and texts name their record), then s9 with two
// messages under key C. It returns the store (keyed with A) and the texts by
// "session/seq" ("session/title" for titles).
func rekeyFixture(t *testing.T, s *suite) (persistence.Store, map[string]string) {
	t.Helper()
	stA := s.f.Open(t, keyring(t, keyA))
	want := map[string]string{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("s%d", i)
		want[id+"/title"] = "title of " + id
		mustCreate(t, stA, persistence.Session{ID: id, UserID: "u", Title: want[id+"/title"], CreatedAt: at(i)})
		for seq := int64(1); seq <= 3; seq++ {
			text := fmt.Sprintf("text of %s/%d", id, seq)
			want[fmt.Sprintf("%s/%d", id, seq)] = text
			mustAppend(t, stA, id, seq, text)
		}
	}
	stC := s.f.Reopen(t, stA, keyring(t, keyC))
	mustCreate(t, stC, persistence.Session{ID: "s9", UserID: "u", Title: "secret title", CreatedAt: at(9)})
	mustAppend(t, stC, "s9", 1, "secret one")
	mustAppend(t, stC, "s9", 2, "secret two")
	return stA, want
}

// readAll reads every session of user u and its messages, keyed like
// rekeyFixture's texts; unreadable messages read as "UNREADABLE".
func readAll(t *testing.T, st persistence.Store) map[string]string {
	t.Helper()
	got := map[string]string{}
	sessions, _, err := st.ListSessions(t.Context(), "u", persistence.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range sessions {
		got[x.ID+"/title"] = x.Title
		for _, m := range mustList(t, st, x.ID) {
			text := m.Text
			if m.Unreadable {
				text = "UNREADABLE"
			}
			got[fmt.Sprintf("%s/%d", x.ID, m.Seq)] = text
		}
	}
	return got
}

var maintenanceCases = []testCase{
	{"a rekey moves everything it can open to the current key and reports the rest", func(t *testing.T, s *suite) {
		stA, want := rekeyFixture(t, s)
		st := s.f.Reopen(t, stA, keyring(t, keyB, keyA))
		var reports []persistence.RekeyProgress
		res, err := rekeyer(t, st).Rekey(t.Context(), 4, func(p persistence.RekeyProgress) { reports = append(reports, p) })
		if err != nil {
			t.Fatalf("rekey: %v", err)
		}
		if res.Messages != 9 || res.Titles != 3 || res.Changed != 0 || res.UnreadableCount != 3 || res.Remaining != 3 {
			t.Fatalf("result %+v, want 9 messages, 3 titles, 3 unreadable and remaining", res)
		}
		var unreadable []string
		for _, u := range res.Unreadable {
			if u.KeyID != persistence.KeyID(keyC) || u.Reason != "key_missing" || u.SessionID != "s9" {
				t.Errorf("unreadable record %+v, want s9's, key C missing", u)
			}
			unreadable = append(unreadable, fmt.Sprint(u.Seq))
		}
		slices.Sort(unreadable)
		if got := strings.Join(unreadable, " "); got != "0 1 2" {
			t.Errorf("unreadable seqs %q, want s9's messages 1 and 2 and its title (0)", got)
		}
		if out := fmt.Sprintf("%+v", res); strings.Contains(out, "secret") {
			t.Errorf("the result shows text: %s", out)
		}
		if len(reports) == 0 {
			t.Fatal("no progress reported")
		}
		if reports[0].Phase != persistence.RekeyMessages || reports[len(reports)-1].Phase != persistence.RekeyTitles {
			t.Errorf("progress phases %+v, want messages first and titles last", reports)
		}
		if last := reports[len(reports)-1]; last.Messages != 9 || last.Titles != 3 || last.Unreadable != 3 || last.Scanned != 15 {
			t.Errorf("last progress %+v, want 9 messages, 3 titles, 3 unreadable, 15 scanned", last)
		}

		// Only key B now: everything A wrote reads back.
		got := readAll(t, s.f.Reopen(t, stA, keyring(t, keyB)))
		for k, text := range want {
			if got[k] != text {
				t.Errorf("%s reads %q with only the new key, want %q", k, got[k], text)
			}
		}
		for _, k := range []string{"s9/1", "s9/2"} {
			if got[k] != "UNREADABLE" {
				t.Errorf("%s reads %q without its key, want unreadable", k, got[k])
			}
		}
		// The records under the lost key were left intact: with the key back,
		// they read.
		if got := readAll(t, s.f.Reopen(t, stA, keyring(t, keyC))); got["s9/1"] != "secret one" || got["s9/2"] != "secret two" || got["s9/title"] != "secret title" {
			t.Errorf("records under key C after the rekey: %v", got)
		}
		// A second run has nothing to do but report the lost key again.
		res, err = rekeyer(t, st).Rekey(t.Context(), 0, nil)
		if err != nil || res.Messages != 0 || res.Titles != 0 || res.UnreadableCount != 3 || res.Remaining != 3 {
			t.Errorf("second run: %+v, %v", res, err)
		}
	}},
	{"a rekey reports a tampered record as corrupt and leaves it", func(t *testing.T, s *suite) {
		stA := s.f.Open(t, keyring(t, keyA))
		mustCreate(t, stA, persistence.Session{ID: "s1", UserID: "u", Title: "t"})
		mustAppend(t, stA, "s1", 1, "one")
		mustAppend(t, stA, "s1", 2, "two")
		s.f.Corrupt(t, stA, "s1", 2)
		st := s.f.Reopen(t, stA, keyring(t, keyB, keyA))
		res, err := rekeyer(t, st).Rekey(t.Context(), 0, nil)
		if err != nil {
			t.Fatalf("rekey: %v", err)
		}
		want := persistence.UnreadableRecord{SessionID: "s1", Seq: 2, KeyID: persistence.KeyID(keyA), Reason: "corrupt"}
		if res.Messages != 1 || res.Titles != 1 || res.UnreadableCount != 1 || res.Remaining != 1 || len(res.Unreadable) != 1 || res.Unreadable[0] != want {
			t.Fatalf("result %+v, want 1 message and 1 title moved, %+v reported", res, want)
		}
		msgs := mustList(t, s.f.Reopen(t, stA, keyring(t, keyB)), "s1")
		if msgs[0].Text != "one" || !msgs[1].Unreadable {
			t.Fatalf("after the rekey with only key B: %+v", msgs)
		}
	}},
	{"a rekey interrupted through its context keeps what it did and a second run finishes", func(t *testing.T, s *suite) {
		stA, want := rekeyFixture(t, s)
		st := s.f.Reopen(t, stA, keyring(t, keyB, keyA))
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		first, err := rekeyer(t, st).Rekey(ctx, 2, func(persistence.RekeyProgress) { cancel() })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
		}
		if first.Remaining != -1 || first.Messages+first.Titles >= 12 {
			t.Fatalf("interrupted run did %+v: want it stopped before the end, remaining -1", first)
		}
		second, err := rekeyer(t, st).Rekey(t.Context(), 2, nil)
		if err != nil {
			t.Fatalf("second run: %v", err)
		}
		if first.Messages+second.Messages != 9 || first.Titles+second.Titles != 3 || second.UnreadableCount != 3 || second.Remaining != 3 {
			t.Fatalf("runs did %+v and %+v, want 9 messages and 3 titles between them", first, second)
		}
		got := readAll(t, s.f.Reopen(t, stA, keyring(t, keyB)))
		for k, text := range want {
			if got[k] != text {
				t.Errorf("%s reads %q, want %q", k, got[k], text)
			}
		}
	}},
	{"migrating again changes nothing and the indexes are listed", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "kept"})
		mustAppend(t, st, "s1", 1, "kept")
		mg := migrator(t, st)
		for range 2 {
			if err := mg.Migrate(ctx); err != nil {
				t.Fatalf("migrate again: %v", err)
			}
		}
		if got := mustGet(t, st, "s1"); got.Title != x.Title || got.LastSeq != 1 {
			t.Fatalf("after migrating: %+v", got)
		}
		if got := mustList(t, st, "s1"); len(got) != 1 || got[0].Text != "kept" {
			t.Fatalf("messages after migrating: %+v", got)
		}
		// The fence still holds.
		if err := st.AppendMessage(ctx, message("s1", 1, "again")); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("duplicate seq after migrating: err = %v, want ErrConflict", err)
		}
		ixs, err := mg.Indexes(ctx)
		if err != nil || len(ixs) == 0 {
			t.Fatalf("indexes: %v, %v", ixs, err)
		}
		fence := false
		for _, ix := range ixs {
			if ix.Table == "" || ix.Name == "" || ix.Keys == "" {
				t.Errorf("index %+v is missing its table, name or keys", ix)
			}
			fence = fence || ix.Unique && strings.Contains(ix.Keys, "session_id") && strings.Contains(ix.Keys, "seq")
		}
		if !fence {
			t.Errorf("no unique index on session_id and seq among %+v", ixs)
		}
	}},
	{"imported sessions and messages read back exactly, and importing again changes nothing", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		im := importer(t, st)
		x := persistence.Session{
			ID: "s1", UserID: "u1", Title: "imported", Model: "gpt", Status: "closed", Mode: persistence.ModeHuman,
			AdminID: "a1", AdminName: "Ann", HelpRequested: true, MessageCount: 2, LastSeq: 2,
			TokensIn: 30, TokensOut: 40, ShareID: "link", CreatedAt: at(1), UpdatedAt: at(2), Version: 7,
		}
		msgs := []persistence.Message{
			{ID: "m1", SessionID: "s1", Seq: 1, Role: persistence.RoleUser, Author: "Uma", AuthorID: "u1", Text: "hi", Status: persistence.StatusComplete, CreatedAt: at(1), TokensIn: 10},
			{ID: "m2", SessionID: "s1", Seq: 2, Role: persistence.RoleAssistant, Author: "gpt", Text: "hello", Status: persistence.StatusStopped, CreatedAt: at(2), TokensIn: 20, TokensOut: 40},
		}
		for round := range 2 {
			if err := im.PutSession(ctx, &x); err != nil {
				t.Fatalf("round %d: put session: %v", round, err)
			}
			if err := im.PutMessages(ctx, msgs); err != nil {
				t.Fatalf("round %d: put messages: %v", round, err)
			}
			if got := mustGet(t, st, "s1"); *got != x {
				t.Fatalf("round %d: session %+v\nwant %+v", round, *got, x)
			}
			if got := mustList(t, st, "s1"); !reflect.DeepEqual(got, msgs) {
				t.Fatalf("round %d: messages %+v\nwant %+v", round, got, msgs)
			}
			if stats, err := st.Stats(ctx); err != nil || stats != (persistence.Stats{Sessions: 1, Messages: 2, TokensIn: 30, TokensOut: 40, HelpRequested: 1, TakenOver: 1}) {
				t.Fatalf("round %d: stats %+v, %v", round, stats, err)
			}
		}
		// An import replaces what it finds; the store then carries on from it.
		x.Title, msgs[1].Text = "imported again", "hello again"
		if err := im.PutSession(ctx, &x); err != nil {
			t.Fatal(err)
		}
		if err := im.PutMessages(ctx, msgs[1:]); err != nil {
			t.Fatal(err)
		}
		if got := mustGet(t, st, "s1"); got.Title != "imported again" {
			t.Fatalf("replaced session reads %q", got.Title)
		}
		if got := mustList(t, st, "s1"); len(got) != 2 || got[1].Text != "hello again" {
			t.Fatalf("replaced messages: %+v", got)
		}
		mustAppend(t, st, "s1", 3, "after the import")
		y := mustGet(t, st, "s1")
		y.Title = "updated after the import"
		if err := st.UpdateSession(ctx, y); err != nil || y.Version != 8 {
			t.Fatalf("update at the imported version: %v, version %d; want 8", err, y.Version)
		}
		if err := st.AppendMessage(ctx, message("s1", 2, "stale")); !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("append at an imported seq: %v, want ErrConflict", err)
		}
	}},
}
