package mongo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/storetest"
)

func countMessages(t *testing.T, st *mongo.Store, sessionID string) int64 {
	t.Helper()
	n, err := st.Database().Collection("messages").CountDocuments(t.Context(), bson.M{"session_id": sessionID})
	if err != nil {
		t.Fatalf("count messages: %v", err)
	}
	return n
}

// insertRaw stores a message document as AppendMessage's insert would, with
// no fence: what a writer that died halfway leaves behind.
func insertRaw(t *testing.T, st *mongo.Store, id, sessionID string, seq int64, text string) {
	t.Helper()
	keyID, ct := storetest.Keyring(t).Seal([]byte(text), persistence.MessageAD(sessionID, seq))
	_, err := st.Database().Collection("messages").InsertOne(t.Context(), bson.M{
		"_id": id, "session_id": sessionID, "seq": seq, "role": "user", "author": "u",
		"key_id": keyID, "ct": ct, "status": "complete", "created_at": at(int(seq)),
		"tokens_in": int64(5), "tokens_out": int64(7),
	})
	if err != nil {
		t.Fatalf("insert raw message: %v", err)
	}
}

func TestUncommittedMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})
	mustAppend(t, st, "s1", 1, "one")
	insertRaw(t, st, "dead-writer", "s1", 2, "left behind")

	got, err := st.ListMessages(ctx, "s1", 0, 0)
	if err != nil || !slices.Equal(seqs(got), []int64{1}) {
		t.Fatalf("list = %v, %v; want only the committed seq 1", seqs(got), err)
	}

	// The next writer completes the dead writer's append and loses the seq.
	err = st.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: 2, Text: "mine"})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("append over an uncommitted message: err = %v, want ErrConflict", err)
	}
	s := mustGet(t, st, "s1")
	if s.LastSeq != 2 || s.MessageCount != 2 || s.TokensIn != 5 || s.TokensOut != 7 || !s.UpdatedAt.Equal(at(2)) {
		t.Fatalf("session after completing: %+v; want last_seq and count 2, the dead writer's tokens 5/7 and time", s)
	}
	got, err = st.ListMessages(ctx, "s1", 1, 0)
	if err != nil || len(got) != 1 || got[0].Text != "left behind" || got[0].ID != "dead-writer" {
		t.Fatalf("list after completion = %+v, %v", got, err)
	}
	// Had the first writer only been slow, its append now succeeds: its
	// message is the one at seq 2.
	slow := &persistence.Message{ID: "dead-writer", SessionID: "s1", Seq: 2, Text: "left behind", CreatedAt: at(2)}
	if err := st.AppendMessage(ctx, slow); err != nil {
		t.Fatalf("the slow writer's append: %v", err)
	}
	// Having reloaded, the second writer carries on.
	mustAppend(t, st, "s1", 3, "mine")
	if s := mustGet(t, st, "s1"); s.LastSeq != 3 || s.MessageCount != 3 || s.TokensIn != 5 {
		t.Fatalf("session at last_seq %d count %d tokens in %d, want 3, 3 and 5 (counted once)", s.LastSeq, s.MessageCount, s.TokensIn)
	}
}

// A lost append inserts first and then loses the fence: its document must
// be gone again, not merely hidden from ListMessages.
func TestLostAppendLeavesNoDocument(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	mustAppend(t, st, "s1", 1, "one")
	for name, tt := range map[string]struct {
		m    *persistence.Message
		want error
	}{
		"a gap":      {&persistence.Message{ID: "gap", SessionID: "s1", Seq: 3}, persistence.ErrConflict},
		"seq taken":  {&persistence.Message{ID: "taken", SessionID: "s1", Seq: 1}, persistence.ErrConflict},
		"no session": {&persistence.Message{ID: "ghost", SessionID: "ghost", Seq: 1}, persistence.ErrNotFound},
	} {
		if err := st.AppendMessage(ctx, tt.m); !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tt.want)
		}
		n, err := st.Database().Collection("messages").CountDocuments(ctx, bson.M{"_id": tt.m.ID})
		if err != nil || n != 0 {
			t.Errorf("%s: %d documents left (%v)", name, n, err)
		}
	}
	if n := countMessages(t, st, "s1"); n != 1 {
		t.Fatalf("%d messages stored, want 1", n)
	}
}

// commandCounter counts the commands the driver sends, by name.
type commandCounter struct {
	mu     sync.Mutex
	counts map[string]int // guarded by mu
}

func (c *commandCounter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.counts[e.CommandName]++
	}}
}

// take returns the counts so far and starts again.
func (c *commandCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

// TestRoundTripsPerWrite pins what each hot write costs: an append is an
// insert and one conditional update; a header update one update; a
// message update one findAndModify, plus an update of the totals only when
// the usage changed.
func TestRoundTripsPerWrite(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	direct := storetest.Open(t)
	c := &commandCounter{counts: map[string]int{}}
	st, err := mongo.Open(ctx, mongo.Options{URI: storetest.URI(t), Database: direct.Database().Name(),
		Keyring: storetest.Keyring(t), Monitor: c.monitor()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	s := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	c.take()

	for _, tt := range []struct {
		name  string
		write func() error
		want  map[string]int
	}{
		{"append", func() error {
			return st.AppendMessage(ctx, &persistence.Message{ID: "m1", SessionID: "s1", Seq: 1, TokensIn: 3})
		},
			map[string]int{"insert": 1, "update": 1}},
		{"checkpoint, same usage", func() error {
			return st.UpdateMessage(ctx, &persistence.Message{ID: "m1", SessionID: "s1", Seq: 1, Text: "more", TokensIn: 3})
		}, map[string]int{"findAndModify": 1}},
		{"final, new usage", func() error {
			return st.UpdateMessage(ctx, &persistence.Message{ID: "m1", SessionID: "s1", Seq: 1, Text: "done", TokensIn: 3, TokensOut: 9})
		}, map[string]int{"findAndModify": 1, "update": 1}},
		{"header update", func() error { s.Title = "t"; return st.UpdateSession(ctx, s) }, map[string]int{"update": 1}},
	} {
		if err := tt.write(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := c.take(); !maps.Equal(got, tt.want) {
			t.Errorf("%s sent %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := mustGet(t, st, "s1"); got.TokensIn != 3 || got.TokensOut != 9 || got.LastSeq != 1 {
		t.Fatalf("session after the writes: %+v", got)
	}
}

func TestSwappedCiphertextsDoNotRead(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, logs := openLogged(t, "", storetest.Keyring(t))
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	mustAppend(t, st, "s1", 1, "alpha says hello")
	mustAppend(t, st, "s1", 2, "beta says goodbye")

	messages := st.Database().Collection("messages")
	var one, two struct {
		CT []byte `bson:"ct"`
	}
	if err := messages.FindOne(ctx, bson.M{"session_id": "s1", "seq": 1}).Decode(&one); err != nil {
		t.Fatal(err)
	}
	if err := messages.FindOne(ctx, bson.M{"session_id": "s1", "seq": 2}).Decode(&two); err != nil {
		t.Fatal(err)
	}
	for seq, ct := range map[int64][]byte{1: two.CT, 2: one.CT} {
		if _, err := messages.UpdateOne(ctx, bson.M{"session_id": "s1", "seq": seq}, bson.M{"$set": bson.M{"ct": ct}}); err != nil {
			t.Fatal(err)
		}
	}

	got, err := st.ListMessages(ctx, "s1", 0, 0)
	if err != nil {
		t.Fatalf("a list with unreadable messages must not fail: %v", err)
	}
	if len(got) != 2 || got[0].Text != "" || got[1].Text != "" {
		t.Fatalf("swapped ciphertexts read as %+v; want both empty", got)
	}

	records := logs.attrs()
	if len(records) != 2 {
		t.Fatalf("logged %v, want one record per unreadable message", records)
	}
	for i, r := range records {
		if r["reason"] != "corrupt" || r["session_id"] != "s1" || r["seq"] == "" || r["level"] != "ERROR" {
			t.Errorf("record %d = %v", i, r)
		}
		for _, v := range r {
			if strings.Contains(v, "says") {
				t.Errorf("record %d logs message text: %v", i, r)
			}
		}
	}
}

func TestMissingKeyIsLoggedWithoutText(t *testing.T) {
	t.Parallel()
	writer, _ := openLogged(t, "", storetest.Keyring(t))
	mustCreate(t, writer, persistence.Session{ID: "s1", UserID: "u1", Title: "about cats"})
	mustAppend(t, writer, "s1", 1, "cats are great")

	newKey, err := persistence.NewKeyring(bytes.Repeat([]byte{9}, persistence.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	reader, logs := openLogged(t, writer.Database().Name(), newKey)
	mustGet(t, reader, "s1")
	if _, err := reader.ListMessages(t.Context(), "s1", 0, 0); err != nil {
		t.Fatalf("list: %v", err)
	}
	records := logs.attrs()
	if len(records) != 2 || records[0]["reason"] != "key_missing" || records[0]["level"] != "WARN" || records[1]["seq"] != "1" {
		t.Fatalf("logged %v, want a warning for the title, then one for seq 1", records)
	}
	for i, r := range records {
		for _, v := range r {
			if strings.Contains(v, "cats") {
				t.Errorf("record %d logs text: %v", i, r)
			}
		}
	}
}

// The benchmarks below run against the in-process FerretDB unless
// CHATBOX_TEST_MONGO_URI is set, so their allocations include the server's.

func BenchmarkAppendMessage(b *testing.B) {
	ctx := context.Background()
	st := storetest.Open(b)
	mustCreate(b, st, persistence.Session{ID: "s1", UserID: "u1"})
	text := strings.Repeat("x", 1024)
	b.ReportAllocs()
	seq := int64(0)
	for b.Loop() {
		seq++
		if err := st.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: seq, Text: text, CreatedAt: t0}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListSessions(b *testing.B) {
	ctx := context.Background()
	st := storetest.Open(b)
	for i := range 200 {
		mustCreate(b, st, persistence.Session{ID: fmt.Sprintf("s%03d", i), UserID: "u1", Title: "a title", UpdatedAt: at(i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		page, _, err := st.ListSessions(ctx, "u1", persistence.Page{Limit: 50})
		if err != nil || len(page) != 50 {
			b.Fatal(len(page), err)
		}
	}
}
