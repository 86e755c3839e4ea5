package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// fileBytes is a recognizable file of n bytes: a marker repeated, so that
// a dump of the store would show any plaintext piece of it.
func fileBytes(marker string, n int) []byte {
	b := bytes.Repeat([]byte(marker), n/len(marker)+1)
	return b[:n]
}

func mustPut(t *testing.T, st persistence.Store, id, user string, data []byte) *persistence.Attachment {
	t.Helper()
	a := &persistence.Attachment{ID: id, UserID: user, Name: id + ".bin", Type: "application/pdf", CreatedAt: at(0)}
	if err := st.PutAttachment(t.Context(), a, bytes.NewReader(data)); err != nil {
		t.Fatalf("put attachment %s: %v", id, err)
	}
	return a
}

func readBack(t *testing.T, st persistence.Store, id string) ([]byte, error) {
	t.Helper()
	var buf bytes.Buffer
	err := st.ReadAttachment(t.Context(), id, &buf)
	return buf.Bytes(), err
}

var attachmentCases = []testCase{
	{"an attachment reads back whole, its metadata as stored", func(t *testing.T, s *suite) {
		st := s.open(t)
		for _, n := range []int{0, 1, persistence.ChunkSize, 2*persistence.ChunkSize + persistence.ChunkSize/2} {
			id := fmt.Sprintf("att-%d", n)
			data := fileBytes("0123456789abcdef", n)
			put := mustPut(t, st, id, "u1", data)
			if put.Size != int64(n) {
				t.Errorf("%s: size %d after put, want %d", id, put.Size, n)
			}
			got, err := st.GetAttachment(t.Context(), id)
			want := persistence.Attachment{ID: id, UserID: "u1", Name: id + ".bin", Type: "application/pdf", Size: int64(n), CreatedAt: at(0)}
			if err != nil || !reflect.DeepEqual(*got, want) {
				t.Errorf("%s: get %+v, %v; want %+v", id, got, err, want)
			}
			back, err := readBack(t, st, id)
			if err != nil || !bytes.Equal(back, data) {
				t.Errorf("%s: read %d bytes, %v; want the %d stored", id, len(back), err, n)
			}
		}
	}},
	{"attachment bytes and transcripts are stored encrypted", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustPut(t, st, "secret-file", "u1", fileBytes("PLAINTEXT-ATTACHMENT-MARKER", 3*persistence.ChunkSize))
		if err := st.SetTranscript(t.Context(), "secret-file", "SPOKEN-TRANSCRIPT-MARKER"); err != nil {
			t.Fatal(err)
		}
		if a, err := st.GetAttachment(t.Context(), "secret-file"); err != nil || a.Transcript != "SPOKEN-TRANSCRIPT-MARKER" {
			t.Fatalf("transcript read back as %+v, %v", a, err)
		}
		dump := s.f.Dump(t, st)
		for _, marker := range []string{"PLAINTEXT-ATTACHMENT-MARKER", "SPOKEN-TRANSCRIPT-MARKER"} {
			if bytes.Contains(dump, []byte(marker)) {
				t.Errorf("%s is stored in plain text", marker)
			}
		}
	}},
	{"an unknown attachment is not found", func(t *testing.T, s *suite) {
		st := s.open(t)
		if _, err := st.GetAttachment(t.Context(), "nope"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("get: %v, want ErrNotFound", err)
		}
		if _, err := readBack(t, st, "nope"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("read: %v, want ErrNotFound", err)
		}
		if err := st.SetTranscript(t.Context(), "nope", "x"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("set transcript: %v, want ErrNotFound", err)
		}
	}},
	{"a message keeps its attachments and gives them to its session, once", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		mustCreate(t, st, persistence.Session{ID: "s2", UserID: "u1"})
		a := mustPut(t, st, "a1", "u1", []byte("hello"))
		m := message("s1", 1, "see file")
		m.Attachments = []persistence.AttachmentRef{a.Ref()}
		if err := st.AppendMessage(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if got := mustList(t, st, "s1"); len(got) != 1 || !reflect.DeepEqual(got[0].Attachments, m.Attachments) {
			t.Fatalf("listed %+v, want attachments %+v", got, m.Attachments)
		}
		m2 := message("s2", 1, "again")
		m2.Attachments = m.Attachments
		if err := st.AppendMessage(t.Context(), m2); err != nil {
			t.Fatal(err)
		}
		if got, err := st.GetAttachment(t.Context(), "a1"); err != nil || got.SessionID != "s1" {
			t.Errorf("the attachment is in session %q (%v), want s1, where it was first sent", got.SessionID, err)
		}
	}},
	{"deleting a session deletes its attachments and its conversation id", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "gone", UserID: "u1"})
		mustCreate(t, st, persistence.Session{ID: "kept", UserID: "u1"})
		for _, sid := range []string{"gone", "kept"} {
			a := mustPut(t, st, "file-of-"+sid, "u1", fileBytes("DELETED-BYTES-"+sid, persistence.ChunkSize+10))
			m := message(sid, 1, "x")
			m.Attachments = []persistence.AttachmentRef{a.Ref()}
			if err := st.AppendMessage(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			if err := st.SetSessionConversation(t.Context(), sid, "conv-"+sid); err != nil {
				t.Fatal(err)
			}
		}
		mustPut(t, st, "unsent", "u1", []byte("not in any session"))
		if err := st.DeleteSession(t.Context(), "gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.GetAttachment(t.Context(), "file-of-gone"); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("the deleted session's attachment: %v, want ErrNotFound", err)
		}
		for _, id := range []string{"file-of-kept", "unsent"} {
			if _, err := st.GetAttachment(t.Context(), id); err != nil {
				t.Errorf("attachment %s: %v, want it kept", id, err)
			}
		}
		if c, err := st.SessionConversation(t.Context(), "kept"); err != nil || c != "conv-kept" {
			t.Errorf("kept session's conversation %q, %v", c, err)
		}
		if bytes.Contains(s.f.Dump(t, st), []byte("file-of-gone")) {
			t.Error("the deleted attachment's id is still stored")
		}
	}},
	{"erasing a user deletes and counts every attachment they uploaded", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "leaver-s", UserID: "leaver"})
		a := mustPut(t, st, "leaver-sent", "leaver", []byte("sent"))
		m := message("leaver-s", 1, "x")
		m.Attachments = []persistence.AttachmentRef{a.Ref()}
		if err := st.AppendMessage(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		if err := st.SetSessionConversation(t.Context(), "leaver-s", "leaver-conv"); err != nil {
			t.Fatal(err)
		}
		mustPut(t, st, "leaver-unsent", "leaver", []byte("unsent"))
		mustPut(t, st, "stayer-file", "stayer", []byte("kept"))
		res, err := st.EraseUser(t.Context(), "leaver", &persistence.AuditEntry{ID: "e1", Action: persistence.AuditErase, UserID: "leaver"})
		if err != nil || res.Attachments != 2 || res.Sessions != 1 || res.Messages != 1 {
			t.Fatalf("erase: %+v, %v; want 1 session, 1 message, 2 attachments", res, err)
		}
		for _, id := range []string{"leaver-sent", "leaver-unsent"} {
			if _, err := st.GetAttachment(t.Context(), id); !errors.Is(err, persistence.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", id, err)
			}
		}
		if back, err := readBack(t, st, "stayer-file"); err != nil || string(back) != "kept" {
			t.Errorf("another user's attachment: %q, %v", back, err)
		}
		dump := s.f.Dump(t, st)
		for _, id := range []string{"leaver-sent", "leaver-unsent", "leaver-conv"} {
			if bytes.Contains(dump, []byte(id)) {
				t.Errorf("%s is still stored", id)
			}
		}
	}},
	{"a session's conversation id round-trips", func(t *testing.T, s *suite) {
		st := s.open(t)
		mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
		if c, err := st.SessionConversation(t.Context(), "s1"); err != nil || c != "" {
			t.Fatalf("before any: %q, %v", c, err)
		}
		for _, want := range []string{"c1", "c2"} {
			if err := st.SetSessionConversation(t.Context(), "s1", want); err != nil {
				t.Fatal(err)
			}
			if c, err := st.SessionConversation(t.Context(), "s1"); err != nil || c != want {
				t.Errorf("got %q, %v; want %q", c, err, want)
			}
		}
	}},
}
