package storetest

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// deskCases are the help desk's promises (CONTRACT §11): the queue, notes
// kept out of the conversation's head and count, and the rating.
var deskCases = []testCase{
	{"the queue lists only sessions asking for help, oldest request first", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		// Created in one order, asking for help in another: the queue
		// follows the requests.
		for i, id := range []string{"q1", "q2", "q3", "q4"} {
			mustCreate(t, st, persistence.Session{ID: id, UserID: "u1", CreatedAt: at(i)})
		}
		for i, id := range []string{"q3", "q1", "q4"} {
			x := mustGet(t, st, id)
			x.HelpRequested, x.HelpRequestedAt = true, at(100+i)
			if err := st.UpdateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		if got := queueIDs(t, st); !slices.Equal(got, []string{"q3", "q1", "q4"}) {
			t.Fatalf("queue = %v, want [q3 q1 q4]", got)
		}
		x := mustGet(t, st, "q1")
		if !x.HelpRequestedAt.Equal(at(101)) {
			t.Errorf("help_requested_at = %v, want %v", x.HelpRequestedAt, at(101))
		}
		x.HelpRequested, x.HelpRequestedAt = false, time.Time{}
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		if got := queueIDs(t, st); !slices.Equal(got, []string{"q3", "q4"}) {
			t.Fatalf("queue after q1 was answered = %v, want [q3 q4]", got)
		}
		if x := mustGet(t, st, "q1"); !x.HelpRequestedAt.IsZero() {
			t.Errorf("a cleared request reads back at %v, want zero", x.HelpRequestedAt)
		}
	}},
	{"a note takes a seq but moves neither the head nor the message count", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "n1", UserID: "u1"})
		first := mustAppend(t, st, "n1", 1, "hello")
		note := &persistence.Message{SessionID: "n1", Seq: 2, Role: persistence.RoleNote, Author: "Ann", AuthorID: "ann",
			Text: "VIP customer", Status: persistence.StatusComplete, CreatedAt: at(2), ParentID: first.ID}
		if err := st.AppendMessage(ctx, note); err != nil {
			t.Fatal(err)
		}
		x := mustGet(t, st, "n1")
		if x.LastSeq != 2 || x.HeadID != first.ID || x.MessageCount != 1 {
			t.Fatalf("after a note: last_seq %d head %q count %d, want 2, %q, 1", x.LastSeq, x.HeadID, x.MessageCount, first.ID)
		}
		msgs := mustList(t, st, "n1")
		if len(msgs) != 2 || msgs[1].Role != persistence.RoleNote || msgs[1].Text != "VIP customer" || msgs[1].Author != "Ann" {
			t.Fatalf("messages = %+v, want the note second, as stored", msgs)
		}
		mustAppend(t, st, "n1", 3, "still there?")
		if x := mustGet(t, st, "n1"); x.MessageCount != 2 || x.LastSeq != 3 {
			t.Errorf("after the next message: count %d last_seq %d, want 2 and 3", x.MessageCount, x.LastSeq)
		}
		if got, _ := st.Stats(ctx); got.Messages != 2 {
			t.Errorf("stats count %d messages, want 2 (notes are not counted)", got.Messages)
		}
	}},
	{"a rating and its comment read back, the comment encrypted, and stats count them", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		const comment = "quick-and-kind-zebra"
		for i, r := range []int{5, 2, 0} {
			id := []string{"r1", "r2", "r3"}[i]
			mustCreate(t, st, persistence.Session{ID: id, UserID: "u1"})
			if r == 0 {
				continue
			}
			x := mustGet(t, st, id)
			x.Rating = r
			if id == "r1" {
				x.RatingComment = comment
			}
			if err := st.UpdateSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		if x := mustGet(t, st, "r1"); x.Rating != 5 || x.RatingComment != comment {
			t.Errorf("r1 reads back rating %d %q", x.Rating, x.RatingComment)
		}
		if x := mustGet(t, st, "r3"); x.Rating != 0 || x.RatingComment != "" {
			t.Errorf("an unrated session reads back rating %d %q", x.Rating, x.RatingComment)
		}
		got, err := st.Stats(ctx)
		if err != nil || got.Ratings != 2 || got.RatingSum != 7 {
			t.Fatalf("stats ratings %d sum %d (%v), want 2 and 7", got.Ratings, got.RatingSum, err)
		}
		x := mustGet(t, st, "r2")
		x.Rating = 4
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.Stats(ctx); got.Ratings != 2 || got.RatingSum != 9 {
			t.Errorf("after a changed rating: %d and %d, want 2 and 9", got.Ratings, got.RatingSum)
		}
		if bytes.Contains(s.f.Dump(t, st), []byte(comment)) {
			t.Error("the rating comment is stored in the clear")
		}
	}},
}

func queueIDs(t *testing.T, st persistence.Store) []string {
	t.Helper()
	list, err := st.ListQueue(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range list {
		if !x.HelpRequested || x.HelpRequestedAt.IsZero() {
			t.Errorf("queued %s: help %v at %v", x.ID, x.HelpRequested, x.HelpRequestedAt)
		}
		ids = append(ids, x.ID)
	}
	return ids
}
