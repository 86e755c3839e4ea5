package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

var messageCases = []testCase{
	{"appended messages list back in seq order and advance the session", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
		var appended []*persistence.Message
		for seq := int64(1); seq <= 10; seq++ {
			appended = append(appended, mustAppend(t, st, "s1", seq, fmt.Sprintf("message %d", seq)))
		}
		for _, m := range appended {
			if m.ID == "" {
				t.Fatalf("AppendMessage did not assign an id to seq %d", m.Seq)
			}
		}
		x := mustGet(t, st, "s1")
		if x.LastSeq != 10 || x.MessageCount != 10 || !x.UpdatedAt.Equal(at(10)) {
			t.Fatalf("session after 10 appends: last_seq %d, count %d, updated %v", x.LastSeq, x.MessageCount, x.UpdatedAt)
		}
		got := mustList(t, st, "s1")
		if len(got) != 10 {
			t.Fatalf("listed %d messages, want 10", len(got))
		}
		for i, m := range got {
			if !reflect.DeepEqual(m, *appended[i]) {
				t.Errorf("message %d = %+v\nwant %+v", i, m, *appended[i])
			}
		}
		for _, tt := range []struct {
			after int64
			limit int
			want  []int64
		}{
			{0, 10, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
			{3, 4, []int64{4, 5, 6, 7}},
			{8, 100, []int64{9, 10}},
			{10, 5, []int64{}},
			{50, 5, []int64{}},
			{-5, 2, []int64{1, 2}},
			{0, 0, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, // the store's default limit
			{7, -1, []int64{8, 9, 10}},
		} {
			got, err := st.ListMessages(ctx, "s1", tt.after, tt.limit)
			if err != nil || got == nil || !slices.Equal(seqs(got), tt.want) {
				t.Errorf("after %d limit %d: %v (nil %t), %v; want %v", tt.after, tt.limit, seqs(got), got == nil, err, tt.want)
			}
		}
		if _, err := st.ListMessages(ctx, "nope", 0, 0); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("list unknown session: err = %v, want ErrNotFound", err)
		}
	}},
	{"sessions keep their messages apart", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "a", UserID: "u1", CreatedAt: at(0)})
		mustCreate(t, st, persistence.Session{ID: "b", UserID: "u2", CreatedAt: at(0)})
		var inA, inB []persistence.Message
		for seq := int64(1); seq <= 3; seq++ {
			inA = append(inA, *mustAppend(t, st, "a", seq, fmt.Sprintf("a%d", seq)))
			inB = append(inB, *mustAppend(t, st, "b", seq, fmt.Sprintf("b%d", seq)))
		}
		// b's message 2, addressed by its id but as a's: not a's to change.
		foreign := inB[1]
		foreign.SessionID, foreign.Text = "a", "moved"
		if err := st.UpdateMessage(ctx, &foreign); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("update of b's message as a's: err = %v, want ErrNotFound", err)
		}
		if got := mustList(t, st, "a"); !reflect.DeepEqual(got, inA) {
			t.Errorf("a lists %+v\nwant %+v", got, inA)
		}
		if got := mustList(t, st, "b"); !reflect.DeepEqual(got, inB) {
			t.Errorf("b lists %+v\nwant %+v", got, inB)
		}
		for _, id := range []string{"a", "b"} {
			if x := mustGet(t, st, id); x.LastSeq != 3 || x.MessageCount != 3 {
				t.Errorf("session %s at last_seq %d, count %d; want 3 and 3", id, x.LastSeq, x.MessageCount)
			}
		}
		if list, _, err := st.ListSessions(ctx, "u1", persistence.Page{}); err != nil || !slices.Equal(ids(list), []string{"a"}) {
			t.Errorf("u1's sessions: %v, %v; want only a", ids(list), err)
		}
	}},
	{"a message keeps every field, its time in milliseconds and UTC", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
		created := time.Date(2026, 11, 2, 3, 4, 5, 678_901_234, time.FixedZone("CET", 3600))
		m := &persistence.Message{ID: "m-1", SessionID: "s1", Seq: 1, Role: persistence.RoleAdmin, Author: "Ann", AuthorID: "admin-7",
			Text: "hello, héllo \x00 ✓", Status: persistence.StatusStopped, CreatedAt: created, TokensIn: 5, TokensOut: 6}
		if err := st.AppendMessage(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if !m.CreatedAt.Equal(created.Truncate(time.Millisecond)) || m.CreatedAt.Location() != time.UTC {
			t.Errorf("CreatedAt after append = %v, want %v in UTC", m.CreatedAt, created.Truncate(time.Millisecond))
		}
		got := mustList(t, st, "s1")
		if len(got) != 1 || !reflect.DeepEqual(got[0], *m) {
			t.Fatalf("read back %+v\nwant %+v", got, *m)
		}
		if got[0].CreatedAt.Location() != time.UTC {
			t.Errorf("created_at read back in %v, want UTC", got[0].CreatedAt.Location())
		}
	}},
	{"an append with a zero time is stamped now", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
		before := time.Now().Truncate(time.Millisecond)
		m := &persistence.Message{SessionID: "s1", Seq: 1, Role: persistence.RoleUser, Text: "now", Status: persistence.StatusComplete}
		if err := st.AppendMessage(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if m.CreatedAt.Before(before) || m.CreatedAt != m.CreatedAt.Truncate(time.Millisecond) {
			t.Errorf("CreatedAt %v, want now (after %v) in milliseconds", m.CreatedAt, before)
		}
		if x := mustGet(t, st, "s1"); !x.UpdatedAt.Equal(m.CreatedAt) {
			t.Errorf("session updated_at %v, want the message's %v", x.UpdatedAt, m.CreatedAt)
		}
	}},
	{"an append never moves the session's updated_at back", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0), UpdatedAt: at(5000)})
		mustAppend(t, st, "s1", 1, "from the past") // created at(1)
		if x := mustGet(t, st, "s1"); !x.UpdatedAt.Equal(at(5000)) || x.LastSeq != 1 {
			t.Errorf("after an older append: updated_at %v, last_seq %d; want %v and 1", x.UpdatedAt, x.LastSeq, at(5000))
		}
	}},
	{"a lost append is a conflict and leaves nothing behind", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		first := mustAppend(t, st, "s1", 1, "one")
		for name, m := range map[string]*persistence.Message{
			"seq taken":                message("s1", 1, "another one"),
			"a gap":                    message("s1", 3, "three"),
			"far ahead":                message("s1", 100, "hundred"),
			"the same id at a new seq": {ID: first.ID, SessionID: "s1", Seq: 2, Text: "reused id", Status: persistence.StatusComplete},
		} {
			m.TokensIn = 7
			if err := st.AppendMessage(ctx, m); !errors.Is(err, persistence.ErrConflict) {
				t.Errorf("%s: err = %v, want ErrConflict", name, err)
			}
		}
		if got := mustList(t, st, "s1"); len(got) != 1 || !reflect.DeepEqual(got[0], *first) {
			t.Fatalf("after lost appends: %+v, want only the first message", got)
		}
		if x := mustGet(t, st, "s1"); x.LastSeq != 1 || x.MessageCount != 1 || x.TokensIn != 0 {
			t.Fatalf("session after lost appends: last_seq %d, count %d, tokens in %d; want 1, 1, 0", x.LastSeq, x.MessageCount, x.TokensIn)
		}
		// The session carries on at the next seq, and nothing sits at 3.
		mustAppend(t, st, "s1", 2, "two")
		mustAppend(t, st, "s1", 3, "three")
		if got := mustList(t, st, "s1"); !slices.Equal(seqs(got), []int64{1, 2, 3}) || got[2].Text != "three" {
			t.Fatalf("carrying on: %+v", got)
		}
	}},
	{"an append to an unknown session is not found and leaves nothing behind", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		if err := st.AppendMessage(ctx, message("ghost", 1, "boo")); !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		mustCreate(t, st, persistence.Session{ID: "ghost", UserID: "u1"})
		if got := mustList(t, st, "ghost"); len(got) != 0 {
			t.Fatalf("a session created later lists %+v", got)
		}
		mustAppend(t, st, "ghost", 1, "first for real")
	}},
	{"an append needs a session id and a seq from 1", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		for name, m := range map[string]*persistence.Message{
			"seq 0":      {SessionID: "s1", Seq: 0},
			"seq -1":     {SessionID: "s1", Seq: -1},
			"no session": {Seq: 1},
		} {
			if err := st.AppendMessage(t.Context(), m); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		if x := mustGet(t, st, "s1"); x.LastSeq != 0 {
			t.Errorf("last_seq %d after refused appends", x.LastSeq)
		}
	}},
	{"repeating a successful append succeeds once more and counts once", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		m := message("s1", 1, "one")
		m.TokensIn, m.TokensOut = 5, 7
		if err := st.AppendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		// As after an ErrUnavailable whose write had in fact gone through,
		// before and after the session moved on.
		again := *m
		if err := st.AppendMessage(ctx, &again); err != nil {
			t.Fatalf("repeat: %v", err)
		}
		mustAppend(t, st, "s1", 2, "two")
		again = *m
		if err := st.AppendMessage(ctx, &again); err != nil {
			t.Fatalf("repeat after the session moved on: %v", err)
		}
		x := mustGet(t, st, "s1")
		if x.LastSeq != 2 || x.MessageCount != 2 || x.TokensIn != 5 || x.TokensOut != 7 {
			t.Fatalf("after repeats: last_seq %d count %d tokens %d/%d, want 2, 2, 5/7", x.LastSeq, x.MessageCount, x.TokensIn, x.TokensOut)
		}
		if got := mustList(t, st, "s1"); len(got) != 2 || !reflect.DeepEqual(got[0], *m) {
			t.Fatalf("after repeats: %+v", got)
		}
	}},
	{"the store keeps the session's token totals", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		totals := func(in, out int64) {
			t.Helper()
			x := mustGet(t, st, "s1")
			if x.TokensIn != in || x.TokensOut != out {
				t.Fatalf("totals %d/%d, want %d/%d", x.TokensIn, x.TokensOut, in, out)
			}
		}
		u := message("s1", 1, "question")
		u.TokensIn = 10
		if err := st.AppendMessage(ctx, u); err != nil {
			t.Fatal(err)
		}
		totals(10, 0)
		r := &persistence.Message{SessionID: "s1", Seq: 2, Role: persistence.RoleAssistant, Text: "Once", Status: persistence.StatusInterrupted, TokensIn: 10, TokensOut: 1}
		if err := st.AppendMessage(ctx, r); err != nil {
			t.Fatal(err)
		}
		totals(20, 1)
		r.Text, r.TokensOut = "Once upon", 4
		if err := st.UpdateMessage(ctx, r); err != nil {
			t.Fatal(err)
		}
		totals(20, 4)
		r.Text, r.Status, r.TokensIn, r.TokensOut = "Once upon a time.", persistence.StatusComplete, 12, 9
		if err := st.UpdateMessage(ctx, r); err != nil {
			t.Fatal(err)
		}
		totals(22, 9)
		r.TokensIn, r.TokensOut = 3, 2 // a usage revised down moves the totals down
		if err := st.UpdateMessage(ctx, r); err != nil {
			t.Fatal(err)
		}
		totals(13, 2)
		if err := st.UpdateMessage(ctx, r); err != nil { // the same usage again: no change
			t.Fatal(err)
		}
		totals(13, 2)
		// A header update carrying stale totals does not touch them.
		x := mustGet(t, st, "s1")
		x.TokensIn, x.TokensOut, x.Title = 0, 0, "titled"
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		totals(13, 2)
	}},
	{"an update rewrites a message's text, status and usage only", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		m := &persistence.Message{SessionID: "s1", Seq: 1, Role: persistence.RoleAssistant, Author: "demo", AuthorID: "",
			Text: "Once upon", Status: persistence.StatusInterrupted, CreatedAt: at(1)}
		if err := st.AppendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		x := mustGet(t, st, "s1")
		m.Text, m.Status, m.TokensIn, m.TokensOut = "Once upon a time.", persistence.StatusComplete, 12, 5
		changed := *m
		changed.Role, changed.Author, changed.CreatedAt = persistence.RoleUser, "someone", at(999) // not an update's to change
		if err := st.UpdateMessage(ctx, &changed); err != nil {
			t.Fatalf("update: %v", err)
		}
		if got := mustList(t, st, "s1"); len(got) != 1 || !reflect.DeepEqual(got[0], *m) {
			t.Fatalf("after update = %+v\nwant %+v", got, *m)
		}
		if y := mustGet(t, st, "s1"); y.LastSeq != x.LastSeq || y.MessageCount != x.MessageCount || y.Version != x.Version {
			t.Errorf("a message update moved the header: %+v, was %+v", *y, *x)
		}

		byKey := *m
		byKey.ID, byKey.Text = "", "by session and seq"
		if err := st.UpdateMessage(ctx, &byKey); err != nil {
			t.Fatalf("update without id: %v", err)
		}
		if got := mustList(t, st, "s1"); got[0].Text != "by session and seq" || got[0].ID != m.ID {
			t.Fatalf("after update without id: %+v", got[0])
		}
	}},
	{"an update of an unknown message is not found", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		m := mustAppend(t, st, "s1", 1, "one")
		for name, bad := range map[string]persistence.Message{
			"other id":    {ID: "other", SessionID: "s1", Seq: 1, Text: "x"},
			"no such seq": {SessionID: "s1", Seq: 2, Text: "x"},
			"no session":  {SessionID: "nope", Seq: 1, Text: "x"},
		} {
			if err := st.UpdateMessage(ctx, &bad); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", name, err)
			}
		}
		if got := mustList(t, st, "s1"); len(got) != 1 || !reflect.DeepEqual(got[0], *m) {
			t.Fatalf("after failed updates: %+v", got)
		}
	}},
	{"a message list is capped by the store", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		im := importer(t, st)
		const n = MaxMessageLimit + 1
		msgs := make([]persistence.Message, n)
		for i := range msgs {
			msgs[i] = persistence.Message{ID: fmt.Sprintf("m%04d", i+1), SessionID: "s1", Seq: int64(i + 1),
				Role: persistence.RoleUser, Status: persistence.StatusComplete, CreatedAt: t0}
		}
		if err := im.PutSession(ctx, &persistence.Session{ID: "s1", UserID: "u1", Status: "active", Mode: persistence.ModeBot,
			LastSeq: n, MessageCount: n, CreatedAt: t0, UpdatedAt: t0, Version: 1}); err != nil {
			t.Fatal(err)
		}
		if err := im.PutMessages(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ limit, want int }{{0, DefaultMessageLimit}, {-3, DefaultMessageLimit}, {5000, MaxMessageLimit}, {MaxMessageLimit, MaxMessageLimit}} {
			got, err := st.ListMessages(ctx, "s1", 0, tt.limit)
			if err != nil || len(got) != tt.want || got[0].Seq != 1 {
				t.Errorf("limit %d: %d messages, err %v; want %d from seq 1", tt.limit, len(got), err, tt.want)
			}
		}
	}},
}

// The page sizes every store uses, so that clients see one behaviour.
const (
	DefaultMessageLimit = 100
	MaxMessageLimit     = 1000
	DefaultSessionLimit = 50
	MaxSessionLimit     = 200
)

func importer(t *testing.T, st persistence.Store) persistence.Importer {
	t.Helper()
	im, ok := st.(persistence.Importer)
	if !ok {
		t.Fatalf("%T does not implement persistence.Importer", st)
	}
	return im
}
