package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatbox/chatbox/providers/openai/openaitest"
)

// roles renders what a request carried, one "role: text" a line.
func roles(r openaitest.Request) string {
	var lines []string
	for _, m := range r.Messages {
		lines = append(lines, m.Role+": "+m.Content)
	}
	return strings.Join(lines, "\n")
}

type listedMessage struct {
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	Role     string `json:"role"`
	Text     string `json:"text"`
	ParentID string `json:"parent_id"`
}

func TestEditAndRegenerateSendTheModelOnlyTheirBranch(t *testing.T) {
	n := 0
	fake := openaitest.NewServer(openaitest.Config{Reply: func(r openaitest.Request) string {
		n++ // the fake calls Reply from one handler at a time here: one request in flight
		return fmt.Sprintf("answer%d", n)
	}})
	defer fake.Close()
	s := startServer(t, t.TempDir(), `default_model = "gpt"
max_retries = 0`+openAIModel("gpt", fake.URL))
	tok := signToken(t, "alice", "Alice")
	c := s.dial(t, tok, false)

	c.send(map[string]any{"type": "send", "id": "1", "text": "q1"})
	sid := c.next(isType("ack")).str("session_id")
	r1 := c.next(isFinal).msg()
	c.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "q2"})
	q2 := c.next(func(e event) bool { return e.str("type") == "message" && e.msg().str("role") == "user" }).msg()
	r2 := c.next(isFinal).msg()
	if q2.str("parent_id") != r1.str("id") || r2.str("parent_id") != q2.str("id") {
		t.Fatalf("without edits each message follows the one before: q2 %v, r2 %v", q2, r2)
	}

	// Regenerate r2: acked with the new reply's id, which answers q2.
	c.send(map[string]any{"type": "regenerate", "id": "3", "session_id": sid, "message_id": r2.str("id")})
	ack := c.next(isType("ack"))
	r2b := c.next(isFinal).msg()
	if ack.str("id") != "3" || ack.str("message_id") != r2b.str("id") || ack.num("seq") != r2b.num("seq") ||
		r2b.str("parent_id") != q2.str("id") || r2b.str("status") != "complete" {
		t.Fatalf("regenerate: ack %v, reply %v", ack, r2b)
	}
	const root = "system: You are a test.\nuser: q1\nassistant: answer1"
	reqs := fake.Requests()
	if got, want := roles(reqs[2]), root+"\nuser: q2"; got != want {
		t.Fatalf("the regenerate request carried\n%s\nwant\n%s", got, want)
	}

	// Edit q2: a sibling of q2 with a reply of its own; the model sees
	// neither q2 nor its replies.
	c.send(map[string]any{"type": "edit", "id": "4", "session_id": sid, "message_id": q2.str("id"), "text": "q2 better"})
	ack = c.next(isType("ack"))
	q2b := c.next(func(e event) bool { return e.str("type") == "message" && e.msg().str("role") == "user" }).msg()
	r3 := c.next(isFinal).msg()
	if ack.str("message_id") != q2b.str("id") || q2b.str("parent_id") != r1.str("id") || r3.str("parent_id") != q2b.str("id") {
		t.Fatalf("edit: ack %v, user message %v, reply %v", ack, q2b, r3)
	}
	if got, want := roles(fake.Requests()[3]), root+"\nuser: q2 better"; got != want {
		t.Fatalf("the edit's request carried\n%s\nwant\n%s", got, want)
	}

	// Continue the first branch from its second reply.
	c.send(map[string]any{"type": "send", "id": "5", "session_id": sid, "text": "q3", "parent_id": r2b.str("id")})
	q3 := c.next(func(e event) bool { return e.str("type") == "message" && e.msg().str("role") == "user" }).msg()
	c.next(isFinal)
	if q3.str("parent_id") != r2b.str("id") {
		t.Fatalf("send with parent_id: %v", q3)
	}
	if got, want := roles(fake.Requests()[4]), root+"\nuser: q2\nassistant: answer3\nuser: q3"; got != want {
		t.Fatalf("continuing a branch carried\n%s\nwant\n%s", got, want)
	}

	// Over HTTP every version is listed in seq order, with its parent.
	var page struct {
		Messages []listedMessage `json:"messages"`
	}
	if code := s.getJSON(t, tok, "/api/sessions/"+sid+"/messages", &page); code != 200 {
		t.Fatalf("list messages: %d", code)
	}
	var got []string
	for i, m := range page.Messages {
		if m.Seq != int64(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
		got = append(got, m.Text+"<"+m.ParentID)
	}
	id := func(e event) string { return e.str("id") }
	want := []string{"q1<", "answer1<" + id(c1(page.Messages)), "q2<" + id(r1), "answer2<" + id(q2), "answer3<" + id(q2),
		"q2 better<" + id(r1), "answer4<" + id(q2b), "q3<" + id(r2b), "answer5<" + id(q3)}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("listed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var sessions struct {
		Sessions []struct {
			ID     string `json:"id"`
			HeadID string `json:"head_id"`
		} `json:"sessions"`
	}
	s.getJSON(t, tok, "/api/sessions", &sessions)
	if len(sessions.Sessions) != 1 || sessions.Sessions[0].HeadID != page.Messages[8].ID {
		t.Fatalf("sessions %+v: want the head to be the newest message, %s", sessions.Sessions, page.Messages[8].ID)
	}

	// A message id of another session, or none, is not found.
	c.send(map[string]any{"type": "edit", "id": "6", "session_id": sid, "message_id": "nope", "text": "x"})
	if e := c.next(isType("error")); e.str("code") != "not_found" || e.str("id") != "6" {
		t.Fatalf("edit of an unknown message: %v", e)
	}
	c.send(map[string]any{"type": "regenerate", "id": "7", "session_id": sid, "message_id": q3.str("id")})
	if e := c.next(isType("error")); e.str("code") != "bad_request" || e.str("id") != "7" {
		t.Fatalf("regenerate of a user message: %v", e)
	}
}

// c1 is the first listed message as an event, for its id.
func c1(msgs []listedMessage) event { return event{"id": msgs[0].ID} }

func TestRenameAndDeleteOverHTTPAreTheOwnersOnly(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "")
	alice, bob := signToken(t, "alice", "Alice"), signToken(t, "bob", "Bob")
	phone := s.dial(t, alice, false)
	phone.send(map[string]any{"type": "send", "id": "1", "text": "plan my trip"})
	sid := phone.next(isType("ack")).str("session_id")
	phone.next(isFinal)

	var body map[string]any
	if code := s.doJSON(t, "PATCH", bob, "/api/sessions/"+sid, `{"title":"mine now"}`, &body); code != 404 {
		t.Fatalf("another user's rename: %d %v, want 404", code, body)
	}
	if code := s.doJSON(t, "DELETE", bob, "/api/sessions/"+sid, "", nil); code != 404 {
		t.Fatalf("another user's delete: %d, want 404", code)
	}
	var list struct {
		Sessions []struct {
			ID    string `json:"id"`
			Title string `json:"title"`
		} `json:"sessions"`
	}
	s.getJSON(t, alice, "/api/sessions", &list)
	if len(list.Sessions) != 1 || list.Sessions[0].Title != "plan my trip" {
		t.Fatalf("after another user's attempts: %+v, want the session unchanged", list.Sessions)
	}
	if code := s.doJSON(t, "PATCH", alice, "/api/sessions/"+sid, `{"title":"  "}`, &body); code != 400 {
		t.Fatalf("rename to blank: %d, want 400", code)
	}

	if code := s.doJSON(t, "PATCH", alice, "/api/sessions/"+sid, `{"title":"Lisbon in May"}`, &body); code != 200 {
		t.Fatalf("rename: %d %v", code, body)
	}
	if got := body["session"].(map[string]any)["title"]; got != "Lisbon in May" {
		t.Fatalf("rename answered %v", body)
	}
	if e := phone.next(isType("renamed")); e.str("title") != "Lisbon in May" {
		t.Fatalf("renamed event %v", e)
	}
	s.getJSON(t, alice, "/api/sessions", &list)
	if list.Sessions[0].Title != "Lisbon in May" {
		t.Fatalf("listed title %q", list.Sessions[0].Title)
	}

	if code := s.doJSON(t, "DELETE", alice, "/api/sessions/"+sid, "", nil); code != 204 {
		t.Fatalf("delete: %d, want 204", code)
	}
	phone.next(isType("deleted"))
	s.getJSON(t, alice, "/api/sessions", &list)
	if len(list.Sessions) != 0 {
		t.Fatalf("sessions after delete: %+v", list.Sessions)
	}
	if code := s.getJSON(t, alice, "/api/sessions/"+sid+"/messages", nil); code != 404 {
		t.Fatalf("messages of the deleted session: %d, want 404", code)
	}
	for _, m := range []string{"PATCH", "DELETE"} {
		if code := s.doJSON(t, m, alice, "/api/sessions/"+sid, `{"title":"x"}`, nil); code != 404 {
			t.Fatalf("%s of the deleted session: %d, want 404", m, code)
		}
	}
	phone.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "still there?"})
	if e := phone.next(isType("error")); e.str("code") != "not_found" {
		t.Fatalf("send to the deleted session: %v", e)
	}
	// Deleted for real: no file of the store holds the session's id.
	pollUntil(t, "the deleted session's id gone from every file under data_dir", func() bool {
		found := false
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(sid)) {
					found = true
				}
			}
			return nil
		})
		return !found
	})
}

func TestTypingIsRelayedOnceASecondAndThinkingPrecedesTheFirstDelta(t *testing.T) {
	s := startServer(t, t.TempDir(), "")
	tok := signToken(t, "alice", "Ada")
	phone, laptop := s.dial(t, tok, false), s.dial(t, tok, false)
	phone.send(map[string]any{"type": "send", "id": "1", "text": "hi"})
	sid := phone.next(isType("ack")).str("session_id")
	laptop.next(isFinal)

	phone.send(map[string]any{"type": "typing", "session_id": sid})
	phone.send(map[string]any{"type": "typing", "session_id": sid}) // within the second: dropped
	phone.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "and?"})
	events := laptop.collect(func(e event) bool { return e.str("type") == "delta" })
	var user, thinking []event
	sawMessage := false
	for _, e := range events {
		switch {
		case e.str("type") == "typing" && e.str("role") == "user":
			if sawMessage {
				t.Fatalf("a typing notice after the message: %v", events)
			}
			user = append(user, e)
		case e.str("type") == "typing" && e.str("role") == "assistant":
			thinking = append(thinking, e)
		case e.str("type") == "message":
			sawMessage = true
		}
	}
	delta := events[len(events)-1]
	if len(user) != 1 || user[0].str("author") != "Ada" {
		t.Fatalf("the other device saw typing %v, want one notice from Ada", user)
	}
	if len(thinking) != 1 || thinking[0].str("author") != "Demo (offline)" || thinking[0].str("message_id") != delta.str("message_id") {
		t.Fatalf("before the first delta %v: want the model thinking about reply %s", thinking, delta.str("message_id"))
	}
	for _, e := range phone.barrier() {
		if e.str("type") == "typing" && e.str("role") == "user" {
			t.Fatalf("the typing device got its own notice: %v", e)
		}
	}
}

func TestAReplyGoesOnWithNoDeviceAndAReopenedPageGetsTheRest(t *testing.T) {
	words := strings.Repeat("word ", 120)
	fake := openaitest.NewServer(openaitest.Config{
		Reply:      func(openaitest.Request) string { return strings.TrimSpace(words) },
		TokenDelay: 15 * time.Millisecond,
	})
	defer fake.Close()
	s := startServer(t, t.TempDir(), `default_model = "gpt"
max_retries = 0`+openAIModel("gpt", fake.URL))
	tok := signToken(t, "alice", "Alice")
	c := s.dial(t, tok, false)
	c.send(map[string]any{"type": "send", "id": "1", "text": "tell me a lot"})
	ack := c.next(isType("ack"))
	c.next(isType("delta"))
	c.conn.CloseNow() // the only device goes away mid-reply

	page := s.dial(t, tok, true)
	page.send(map[string]any{"type": "sync", "session_id": ack.str("session_id"), "after_seq": ack.num("seq")})
	events := page.collect(isFinal)
	final := events[len(events)-1].msg()
	if final.str("status") != "complete" || final.str("text") != strings.TrimSpace(words) {
		t.Fatalf("the reply after reopening: %v", final)
	}
	// The catch-up is one delta from offset 0 with the text so far; live
	// deltas, which may repeat what it holds, continue it by offset.
	var text string
	caughtUp := false
	for _, e := range events {
		if e.str("type") != "delta" {
			continue
		}
		off := int(e.num("offset"))
		if !caughtUp {
			if off != 0 {
				continue // live text that reached the page before its sync
			}
			caughtUp = true
			if e.str("text") == "" || len(e.str("text")) >= len(final.str("text")) {
				t.Fatalf("the catch-up delta %v: want the text so far, the rest still to come", e)
			}
		}
		if off > len(text) {
			t.Fatalf("gap: delta at %d with %d bytes known", off, len(text))
		}
		text = text[:off] + e.str("text")
	}
	if !caughtUp || text != final.str("text") {
		t.Fatalf("the reopened page joined %q (caught up: %t), want %q", text, caughtUp, final.str("text"))
	}
}
