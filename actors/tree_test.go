package actors

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"slices"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// echoModel answers every call at once with a reply of its own, and keeps
// the conversation each call was given.
type echoModel struct {
	mu    sync.Mutex // guards convo
	convo [][]providers.Message
}

func (m *echoModel) Models() []providers.ModelInfo {
	return []providers.ModelInfo{{ID: "echo", Name: "Echo"}}
}
func (m *echoModel) Default() string    { return "echo" }
func (m *echoModel) Has(id string) bool { return id == "echo" }

func (m *echoModel) Stream(_ context.Context, _ string, msgs []providers.Message) iter.Seq2[providers.Chunk, error] {
	m.mu.Lock()
	m.convo = append(m.convo, slices.Clone(msgs))
	n := len(m.convo)
	m.mu.Unlock()
	return func(yield func(providers.Chunk, error) bool) {
		yield(providers.Chunk{Text: fmt.Sprintf("reply %d", n)}, nil)
	}
}

func (m *echoModel) last() []providers.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.convo[len(m.convo)-1]
}

// refMessage is the test's own record of a message of the tree.
type refMessage struct {
	id, parent string
	role       persistence.Role
	text       string
}

// chain is what the model must see for a reply to id: the path from id up
// to the root, oldest first, its newest limit messages, not starting with
// a reply (providers.Trim drops one there).
func chain(msgs map[string]refMessage, id string, limit int) []providers.Message {
	var out []providers.Message
	for id != "" && len(out) < limit {
		m := msgs[id]
		role := providers.RoleUser
		if m.role == persistence.RoleAssistant {
			role = providers.RoleAssistant
		}
		out = append(out, providers.Message{Role: role, Text: m.text})
		id = m.parent
	}
	slices.Reverse(out)
	for len(out) > 1 && out[0].Role == providers.RoleAssistant {
		out = out[1:]
	}
	return out
}

// Whatever tree a conversation grows into — sends continuing any message,
// edits of any user message, regenerated replies — the model is sent
// exactly the chain from the message it answers up to the root (cut to the
// history window), never a message of another branch. The window is small
// so that the actor's tree prunes itself and loads older messages back.
func TestTheModelSeesOnlyThePathFromTheNewMessageToTheRoot(t *testing.T) {
	const window = 3
	model := &echoModel{}
	h, _ := newTestHub(t, model, func(c *Config) {
		c.Store = storetest.SQLite(t)
		c.HistoryWindow = window
	})
	d := connect(t, h, alice)
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		msgs := map[string]refMessage{}
		var users, replies []string
		n++
		// do runs one command and records the user message (when one is
		// stored) and the reply it gets.
		do := func(cmd protocol.Command, userParent string) {
			cmd.ID = fmt.Sprint("c", n, "-", len(msgs))
			d.do(cmd)
			var user, reply map[string]any
			for reply == nil {
				e := d.next(func(e map[string]any) bool { return e["type"] == "message" || e["type"] == "error" })
				if e["type"] == "error" {
					rt.Fatalf("%s: error %v", cmd.Type, e)
				}
				m := e["message"].(map[string]any)
				if m["role"] == "user" {
					user = m
				} else if m["status"] == "complete" {
					reply = m
				}
			}
			answered := reply["parent_id"].(string)
			if user != nil {
				id := user["id"].(string)
				if user["parent_id"] != userParent || answered != id {
					rt.Fatalf("%s: user message parent %v (want %q), reply parent %s (want %s)", cmd.Type, user["parent_id"], userParent, answered, id)
				}
				msgs[id] = refMessage{id, userParent, persistence.RoleUser, user["text"].(string)}
				users = append(users, id)
				if got, want := model.last(), chain(msgs, id, window+1); !reflect.DeepEqual(got, want) {
					rt.Fatalf("%s: the model got %v, want the path %v", cmd.Type, got, want)
				}
			} else if got, want := model.last(), chain(msgs, answered, window); !reflect.DeepEqual(got, want) {
				rt.Fatalf("%s: the model got %v, want the path %v", cmd.Type, got, want)
			}
			id := reply["id"].(string)
			msgs[id] = refMessage{id, answered, persistence.RoleAssistant, reply["text"].(string)}
			replies = append(replies, id)
		}

		d.do(protocol.Command{Type: protocol.TypeSend, ID: fmt.Sprint("first", n), Text: "first"})
		sid := d.next(typ("ack"))["session_id"].(string)
		first := d.next(func(e map[string]any) bool { return e["type"] == "message" })["message"].(map[string]any)
		msgs[first["id"].(string)] = refMessage{first["id"].(string), "", persistence.RoleUser, "first"}
		users = append(users, first["id"].(string))
		reply := d.next(isReply("complete"))["message"].(map[string]any)
		msgs[reply["id"].(string)] = refMessage{reply["id"].(string), first["id"].(string), persistence.RoleAssistant, reply["text"].(string)}
		replies = append(replies, reply["id"].(string))

		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for i := range steps {
			text := fmt.Sprintf("text %d", i)
			switch rapid.IntRange(0, 2).Draw(rt, "op") {
			case 0:
				all := append(slices.Clone(users), replies...)
				parent := rapid.SampledFrom(all).Draw(rt, "parent")
				do(protocol.Command{Type: protocol.TypeSend, SessionID: sid, Text: text, ParentID: parent}, parent)
			case 1:
				target := rapid.SampledFrom(users).Draw(rt, "edited")
				do(protocol.Command{Type: protocol.TypeEdit, SessionID: sid, Text: text, MessageID: target}, msgs[target].parent)
			case 2:
				target := rapid.SampledFrom(replies).Draw(rt, "regenerated")
				do(protocol.Command{Type: protocol.TypeRegenerate, SessionID: sid, MessageID: target}, "")
			}
		}
		// The store holds the same tree, every branch, in seq order.
		stored, err := h.cfg.Store.ListMessages(context.Background(), sid, 0, 1000)
		if err != nil || len(stored) != len(msgs) {
			rt.Fatalf("stored %d messages (%v), want %d", len(stored), err, len(msgs))
		}
		for _, m := range stored {
			if m.ParentID != msgs[m.ID].parent {
				rt.Fatalf("stored message %s has parent %q, want %q", m.ID, m.ParentID, msgs[m.ID].parent)
			}
		}
	})
}

func TestThinkingComesBeforeTheFirstDeltaAndNamesTheReply(t *testing.T) {
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = storetest.SQLite(t) })
	user := connect(t, h, alice)
	other := connect(t, h, alice)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	stream := model.stream(t, 0)
	stream.chunks <- "Hel"
	for _, d := range []*device{user, other} {
		events := d.until(typ("delta"))
		var thinking map[string]any
		for _, e := range events {
			if e["type"] == "typing" {
				thinking = e
			}
		}
		delta := events[len(events)-1]
		if thinking == nil || thinking["role"] != "assistant" || thinking["author"] != "Step" ||
			thinking["message_id"] != delta["message_id"] {
			t.Fatalf("events before the first delta %v: want a typing event of the assistant Step naming reply %v", events, delta["message_id"])
		}
	}
	close(stream.chunks)
	user.next(isReply("complete"))
}

func TestTypingReachesTheOtherPartiesOnlyAndIsRateLimited(t *testing.T) {
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = storetest.SQLite(t) })
	h.typingEvery = 1 << 40 // a second notice is always within the interval
	phone, laptop := connect(t, h, alice), connect(t, h, alice)
	admin := connect(t, h, ann)
	sid := exchange(t, phone, model, 0, "", "hi", "hello")
	admin.do(protocol.Command{Type: protocol.TypeWatch, SessionID: sid})
	admin.do(protocol.Command{Type: protocol.TypePing, ID: "w"})
	admin.next(typ("pong"))

	phone.do(protocol.Command{Type: protocol.TypeTyping, SessionID: sid})
	phone.do(protocol.Command{Type: protocol.TypeTyping, SessionID: sid}) // dropped: within the interval
	phone.do(protocol.Command{Type: protocol.TypePing, ID: "p"})
	for _, e := range phone.until(typ("pong")) {
		if e["type"] == "typing" || e["type"] == "error" {
			t.Fatalf("the typing device got %v", e)
		}
	}
	// A stored message after the notices: each party sees one notice before it.
	phone.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "so"})
	for name, d := range map[string]*device{"laptop": laptop, "admin": admin} {
		var typing []map[string]any
		for _, e := range d.until(func(e map[string]any) bool {
			return e["type"] == "message" && e["message"].(map[string]any)["text"] == "so"
		}) {
			if e["type"] == "typing" && e["role"] != "assistant" { // the model's thinking follows the message
				typing = append(typing, e)
			}
		}
		if len(typing) != 1 || typing[0]["role"] != "user" || typing[0]["author"] != "Alice" || typing[0]["session_id"] != sid {
			t.Fatalf("%s saw typing %v, want one notice of the user Alice", name, typing)
		}
	}
	s := model.stream(t, 1)
	close(s.chunks)
	phone.next(isReply("complete"))

	// The watching admin's typing reaches the owner's devices; an admin
	// who does not watch the session reaches nobody.
	admin.do(protocol.Command{Type: protocol.TypeTyping, SessionID: sid})
	if e := laptop.next(func(e map[string]any) bool { return e["type"] == "typing" && e["role"] != "assistant" }); e["role"] != "admin" || e["author"] != "Ann" {
		t.Fatalf("the owner saw %v, want the admin Ann typing", e)
	}
	phone.next(func(e map[string]any) bool { return e["type"] == "typing" && e["role"] == "admin" })
	stranger := connect(t, h, bert)
	stranger.do(protocol.Command{Type: protocol.TypeTyping, SessionID: sid})
	stranger.do(protocol.Command{Type: protocol.TypePing, ID: "s"})
	stranger.next(typ("pong"))
	phone.do(protocol.Command{Type: protocol.TypePing, ID: "p2"})
	for _, e := range phone.until(typ("pong")) {
		if e["type"] == "typing" {
			t.Fatalf("a notice from an admin who does not watch the session reached the owner: %v", e)
		}
	}
}

func TestDeleteRemovesTheSessionForRealAndItIsGoneForEveryCommand(t *testing.T) {
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = storetest.SQLite(t) })
	phone, laptop := connect(t, h, alice), connect(t, h, alice)
	sid := exchange(t, phone, model, 0, "", "hi", "hello")

	phone.do(protocol.Command{Type: protocol.TypeRename, ID: "r", SessionID: sid, Title: "Greetings"})
	if e := laptop.next(typ("renamed")); e["title"] != "Greetings" {
		t.Fatalf("renamed event %v", e)
	}
	if s, err := h.cfg.Store.GetSession(context.Background(), sid); err != nil || s.Title != "Greetings" {
		t.Fatalf("stored session after rename: %+v, %v", s, err)
	}

	// A reply in flight when the session is deleted is not stored.
	phone.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "more"})
	phone.next(typ("ack"))
	model.stream(t, 1).chunks <- "partial"
	phone.next(typ("delta"))
	phone.do(protocol.Command{Type: protocol.TypeDelete, ID: "d", SessionID: sid})
	laptop.next(typ("deleted"))
	if _, err := h.cfg.Store.GetSession(context.Background(), sid); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("get the deleted session: %v, want not found", err)
	}
	if _, err := h.cfg.Store.ListMessages(context.Background(), sid, 0, 10); !errors.Is(err, persistence.ErrNotFound) {
		t.Fatalf("list the deleted session's messages: %v, want not found", err)
	}
	for _, cmd := range []protocol.Command{
		{Type: protocol.TypeSend, ID: "x1", SessionID: sid, Text: "again"},
		{Type: protocol.TypeSync, ID: "x2", SessionID: sid},
		{Type: protocol.TypeRegenerate, ID: "x3", SessionID: sid},
		{Type: protocol.TypeRename, ID: "x4", SessionID: sid, Title: "x"},
		{Type: protocol.TypeDelete, ID: "x5", SessionID: sid},
	} {
		phone.do(cmd)
		if e := phone.next(typ("error")); e["code"] != "not_found" || e["id"] != cmd.ID {
			t.Fatalf("%s on the deleted session: %v, want not_found", cmd.Type, e)
		}
	}
}
