package storetest

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// treeCases check what a store keeps of a conversation as a tree (CONTRACT
// §6): each message's parent_id as given, and the session's head_id, which
// every append moves to the message it appends and nothing else moves.
var treeCases = []testCase{
	{"parent ids are kept as given and every branch lists in seq order", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
		// 1 ← 2, then 1 ← 3 (a regenerated reply), then "" ← 4 (an edited
		// first message), 4 ← 5.
		parents := []string{"", "", "", "", ""}
		var ids []string
		for seq := int64(1); seq <= 5; seq++ {
			m := message("s1", seq, "m")
			switch seq {
			case 2, 3:
				m.ParentID = ids[0]
			case 5:
				m.ParentID = ids[3]
			}
			parents[seq-1] = m.ParentID
			if err := st.AppendMessage(context.Background(), m); err != nil {
				t.Fatalf("append %d: %v", seq, err)
			}
			ids = append(ids, m.ID)
			if got := mustGet(t, st, "s1").HeadID; got != m.ID {
				t.Fatalf("head after appending seq %d = %q, want that message, %q", seq, got, m.ID)
			}
		}
		got := mustList(t, st, "s1")
		if len(got) != 5 {
			t.Fatalf("listed %d messages, want 5", len(got))
		}
		for i, m := range got {
			if m.Seq != int64(i+1) || m.ID != ids[i] || m.ParentID != parents[i] {
				t.Errorf("message %d: seq %d id %s parent %q; want seq %d id %s parent %q",
					i, m.Seq, m.ID, m.ParentID, i+1, ids[i], parents[i])
			}
		}
	}},
	{"only an append moves the head: header and message updates leave it", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		x := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
		if x.HeadID != "" || mustGet(t, st, "s1").HeadID != "" {
			t.Fatalf("a new session has head %q (stored %q), want none", x.HeadID, mustGet(t, st, "s1").HeadID)
		}
		first := mustAppend(t, st, "s1", 1, "hello")
		reply := message("s1", 2, "partial")
		reply.ParentID, reply.Role, reply.Status = first.ID, persistence.RoleAssistant, persistence.StatusInterrupted
		if err := st.AppendMessage(ctx, reply); err != nil {
			t.Fatalf("append reply: %v", err)
		}
		reply.Text, reply.Status = "whole", persistence.StatusComplete
		if err := st.UpdateMessage(ctx, reply); err != nil {
			t.Fatalf("update reply: %v", err)
		}
		// The caller's copy names an old head: UpdateSession must not write it.
		x = mustGet(t, st, "s1")
		x.HeadID = first.ID
		x.Title = "renamed"
		if err := st.UpdateSession(ctx, x); err != nil {
			t.Fatalf("update session: %v", err)
		}
		got := mustGet(t, st, "s1")
		if got.HeadID != reply.ID || got.Title != "renamed" {
			t.Fatalf("after updates: head %q title %q; want head %q (the last append) and the new title", got.HeadID, got.Title, reply.ID)
		}
		msgs := mustList(t, st, "s1")
		if len(msgs) != 2 || msgs[1].ParentID != first.ID || msgs[1].Text != "whole" {
			t.Fatalf("reply after its update: %+v; want parent %s and the new text", msgs, first.ID)
		}
	}},
	{"a lost append fence moves no head", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
		first := mustAppend(t, st, "s1", 1, "hello")
		stale := message("s1", 1, "stale twin")
		if err := st.AppendMessage(context.Background(), stale); err == nil {
			t.Fatal("a second append at seq 1 succeeded")
		}
		if got := mustGet(t, st, "s1").HeadID; got != first.ID {
			t.Fatalf("head after a lost append = %q, want %q", got, first.ID)
		}
	}},
	{"an import keeps parents and the head", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		imp, ok := st.(persistence.Importer)
		if !ok {
			t.Fatal("the store is not a persistence.Importer")
		}
		x := &persistence.Session{ID: "s1", UserID: "u1", Status: "active", Mode: persistence.ModeBot,
			LastSeq: 3, MessageCount: 3, CreatedAt: at(0), UpdatedAt: at(3), Version: 1, HeadID: "m3"}
		if err := imp.PutSession(ctx, x); err != nil {
			t.Fatalf("put session: %v", err)
		}
		msgs := []persistence.Message{*message("s1", 1, "a"), *message("s1", 2, "b"), *message("s1", 3, "c")}
		msgs[0].ID, msgs[1].ID, msgs[2].ID = "m1", "m2", "m3"
		msgs[1].ParentID, msgs[2].ParentID = "m1", "m1"
		if err := imp.PutMessages(ctx, msgs); err != nil {
			t.Fatalf("put messages: %v", err)
		}
		if got := mustGet(t, st, "s1").HeadID; got != "m3" {
			t.Errorf("imported head = %q, want m3", got)
		}
		got := mustList(t, st, "s1")
		for i, m := range got {
			if m.ParentID != msgs[i].ParentID {
				t.Errorf("imported message %s: parent %q, want %q", m.ID, m.ParentID, msgs[i].ParentID)
			}
		}
	}},
}
