package mongo_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

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

func TestAppendAndListMessages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", CreatedAt: at(0)})

	var appended []*persistence.Message
	for seq := int64(1); seq <= 10; seq++ {
		appended = append(appended, mustAppend(t, st, "s1", seq, "message text"))
	}
	if appended[0].ID == "" {
		t.Fatal("AppendMessage did not assign an id")
	}
	s := mustGet(t, st, "s1")
	if s.LastSeq != 10 || s.MessageCount != 10 || !s.UpdatedAt.Equal(at(10)) {
		t.Fatalf("session after 10 appends: last_seq %d, count %d, updated %v", s.LastSeq, s.MessageCount, s.UpdatedAt)
	}

	got, err := st.ListMessages(ctx, "s1", 0, 0)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(got) != 10 || got[0] != *appended[0] || got[9] != *appended[9] {
		t.Fatalf("list = %+v", got)
	}
	if got[0].CreatedAt.Location() != time.UTC {
		t.Errorf("created_at read back in %v, want UTC", got[0].CreatedAt.Location())
	}

	for _, tt := range []struct {
		after int64
		limit int
		want  []int64
	}{
		{3, 4, []int64{4, 5, 6, 7}},
		{8, 100, []int64{9, 10}},
		{10, 5, []int64{}},
		{50, 5, []int64{}},
		{-5, 2, []int64{1, 2}},
	} {
		got, err := st.ListMessages(ctx, "s1", tt.after, tt.limit)
		if err != nil || !slices.Equal(seqs(got), tt.want) || got == nil {
			t.Errorf("after %d limit %d: %v, %v; want %v", tt.after, tt.limit, seqs(got), err, tt.want)
		}
	}

	if _, err := st.ListMessages(ctx, "nope", 0, 0); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("list unknown session: err = %v, want ErrNotFound", err)
	}
}

func TestListMessagesLimitIsCapped(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	// 1001 appends take seconds under -race; insert them in one batch and
	// commit them by setting last_seq.
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	k := storetest.Keyring(t)
	docs := make([]any, 1001)
	for i := range docs {
		seq := int64(i + 1)
		keyID, ct := k.Seal(nil, persistence.MessageAD("s1", seq))
		docs[i] = bson.M{"_id": fmt.Sprint(seq), "session_id": "s1", "seq": seq, "key_id": keyID, "ct": ct, "created_at": t0}
	}
	db := st.Database()
	if _, err := db.Collection("messages").InsertMany(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("sessions").UpdateOne(t.Context(), bson.M{"_id": "s1"}, bson.M{"$set": bson.M{"last_seq": int64(1001)}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ limit, want int }{{0, 100}, {-3, 100}, {5000, 1000}} {
		got, err := st.ListMessages(t.Context(), "s1", 0, tt.limit)
		if err != nil || len(got) != tt.want {
			t.Errorf("limit %d: %d messages, err %v; want %d", tt.limit, len(got), err, tt.want)
		}
	}
}

func TestAppendConflicts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	mustAppend(t, st, "s1", 1, "one")

	t.Run("seq taken", func(t *testing.T) {
		err := st.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: 1, Text: "another one"})
		if !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
	})
	t.Run("last_seq moved", func(t *testing.T) {
		// A writer that believes the session is at 2 when it is at 1.
		err := st.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: 3, Text: "three"})
		if !errors.Is(err, persistence.ErrConflict) {
			t.Fatalf("err = %v, want ErrConflict", err)
		}
		if n := countMessages(t, st, "s1"); n != 1 {
			t.Fatalf("%d messages stored, want 1: the losing insert must not stay", n)
		}
		mustAppend(t, st, "s1", 2, "two") // the session carries on
	})
	t.Run("no session", func(t *testing.T) {
		err := st.AppendMessage(ctx, &persistence.Message{SessionID: "ghost", Seq: 1, Text: "boo"})
		if !errors.Is(err, persistence.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
		if n := countMessages(t, st, "ghost"); n != 0 {
			t.Fatalf("%d messages left for a missing session", n)
		}
	})
	t.Run("bad seq", func(t *testing.T) {
		if err := st.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: 0}); err == nil {
			t.Fatal("seq 0 accepted")
		}
	})
	if s := mustGet(t, st, "s1"); s.LastSeq != 2 || s.MessageCount != 2 {
		t.Fatalf("session at last_seq %d count %d, want 2 and 2", s.LastSeq, s.MessageCount)
	}
}

func TestAppendRepeatedAfterSuccess(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	m := mustAppend(t, st, "s1", 1, "one")

	// As after an ErrUnavailable whose write had in fact gone through.
	again := *m
	if err := st.AppendMessage(ctx, &again); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if s := mustGet(t, st, "s1"); s.LastSeq != 1 || s.MessageCount != 1 {
		t.Fatalf("after a repeat: last_seq %d count %d, want 1 and 1", s.LastSeq, s.MessageCount)
	}
}

// insertRaw stores a message document as AppendMessage's insert would, with
// no fence: what a writer that died halfway leaves behind.
func insertRaw(t *testing.T, st *mongo.Store, id, sessionID string, seq int64, text string) {
	t.Helper()
	keyID, ct := storetest.Keyring(t).Seal([]byte(text), persistence.MessageAD(sessionID, seq))
	_, err := st.Database().Collection("messages").InsertOne(t.Context(), bson.M{
		"_id": id, "session_id": sessionID, "seq": seq, "role": "user", "author": "u",
		"key_id": keyID, "ct": ct, "status": "complete", "created_at": at(int(seq)),
		"tokens_in": int64(0), "tokens_out": int64(0),
	})
	if err != nil {
		t.Fatalf("insert raw message: %v", err)
	}
}

func TestUncommittedMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
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
	if s.LastSeq != 2 || s.MessageCount != 2 {
		t.Fatalf("session at last_seq %d count %d, want 2 and 2", s.LastSeq, s.MessageCount)
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
	if s := mustGet(t, st, "s1"); s.LastSeq != 3 || s.MessageCount != 3 {
		t.Fatalf("session at last_seq %d count %d, want 3 and 3", s.LastSeq, s.MessageCount)
	}
}

func TestUpdateMessage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	m := &persistence.Message{SessionID: "s1", Seq: 1, Role: persistence.RoleAssistant, Author: "demo",
		Text: "Once upon", Status: persistence.StatusInterrupted, CreatedAt: at(1)}
	if err := st.AppendMessage(ctx, m); err != nil {
		t.Fatalf("append: %v", err)
	}

	m.Text, m.Status, m.TokensIn, m.TokensOut = "Once upon a time.", persistence.StatusComplete, 12, 5
	if err := st.UpdateMessage(ctx, m); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err := st.ListMessages(ctx, "s1", 0, 0)
	if err != nil || len(got) != 1 || got[0] != *m {
		t.Fatalf("after update = %+v, %v\nwant %+v", got, err, *m)
	}

	byKey := *m
	byKey.ID, byKey.Text = "", "by session and seq"
	if err := st.UpdateMessage(ctx, &byKey); err != nil {
		t.Fatalf("update without id: %v", err)
	}

	for name, bad := range map[string]persistence.Message{
		"other id":   {ID: "other", SessionID: "s1", Seq: 1},
		"no seq":     {SessionID: "s1", Seq: 2},
		"no session": {SessionID: "nope", Seq: 1},
	} {
		if err := st.UpdateMessage(ctx, &bad); !errors.Is(err, persistence.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
}

func TestNoPlaintextAtRest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	const title, text, updated = "TITLE-PLAINTEXT-7f3a", "MESSAGE-PLAINTEXT-91bc", "UPDATED-PLAINTEXT-0d2e"
	s := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "first " + title})
	s.Title = title
	if err := st.UpdateSession(ctx, s); err != nil {
		t.Fatal(err)
	}
	m := mustAppend(t, st, "s1", 1, text)
	mustAppend(t, st, "s1", 2, text)
	m.Text = updated
	if err := st.UpdateMessage(ctx, m); err != nil {
		t.Fatal(err)
	}

	for _, coll := range []string{"sessions", "messages"} {
		cur, err := st.Database().Collection(coll).Find(ctx, bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.Raw
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		if len(docs) == 0 {
			t.Fatalf("no %s documents", coll)
		}
		for _, d := range docs {
			for _, secret := range []string{title, text, updated, "PLAINTEXT"} {
				if bytes.Contains(d, []byte(secret)) {
					t.Errorf("%s document holds %q in the clear: %v", coll, secret, d)
				}
			}
			for _, field := range []string{"text", "title"} {
				if _, err := d.LookupErr(field); err == nil {
					t.Errorf("%s document has a %q field", coll, field)
				}
			}
		}
	}
	if got := mustGet(t, st, "s1"); got.Title != title {
		t.Fatalf("title reads back as %q", got.Title)
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

func TestMissingKeyReadsEmpty(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	oldKey := storetest.Keyring(t)
	writer, _ := openLogged(t, "", oldKey)
	mustCreate(t, writer, persistence.Session{ID: "s1", UserID: "u1", Title: "about cats"})
	mustAppend(t, writer, "s1", 1, "cats are great")

	newKey, err := persistence.NewKeyring(bytes.Repeat([]byte{9}, persistence.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	reader, logs := openLogged(t, writer.Database().Name(), newKey)
	s := mustGet(t, reader, "s1")
	msgs, err := reader.ListMessages(ctx, "s1", 0, 0)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if s.Title != "" || len(msgs) != 1 || msgs[0].Text != "" || msgs[0].Status != persistence.StatusComplete || !msgs[0].Unreadable {
		t.Fatalf("read without the key: title %q, messages %+v", s.Title, msgs)
	}
	records := logs.attrs()
	if len(records) != 2 || records[0]["reason"] != "key_missing" || records[1]["seq"] != "1" {
		t.Fatalf("logged %v", records)
	}

	// Rotated: the new key writes, the old one still reads.
	rotated, err := persistence.NewKeyring(bytes.Repeat([]byte{9}, persistence.KeySize), storetest.Key())
	if err != nil {
		t.Fatal(err)
	}
	both, _ := openLogged(t, writer.Database().Name(), rotated)
	if s := mustGet(t, both, "s1"); s.Title != "about cats" {
		t.Fatalf("title after rotation %q", s.Title)
	}
	mustAppend(t, both, "s1", 2, "and dogs")
	msgs, err = both.ListMessages(ctx, "s1", 0, 0)
	if err != nil || len(msgs) != 2 || msgs[0].Text != "cats are great" || msgs[1].Text != "and dogs" {
		t.Fatalf("after rotation: %+v, %v", msgs, err)
	}
	var raw struct {
		KeyID string `bson:"key_id"`
	}
	if err := both.Database().Collection("messages").FindOne(ctx, bson.M{"seq": 2}).Decode(&raw); err != nil || raw.KeyID != rotated.CurrentKeyID() {
		t.Fatalf("new message under key %q (%v), want the current %q", raw.KeyID, err, rotated.CurrentKeyID())
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

// TestRacingWritersStayConsistent: writers that race for each next seq
// (as two activations of one session would) never both win a seq, and
// what is stored is exactly what was acknowledged.
func TestRacingWritersStayConsistent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})

	const writers, target = 4, 40
	var (
		mu    sync.Mutex
		acked = map[string]int64{} // message id → seq; guarded by mu
	)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for attempt := 0; ; attempt++ {
				s, err := st.GetSession(ctx, "s1")
				if err != nil {
					t.Errorf("writer %d: get: %v", w, err)
					return
				}
				if s.LastSeq >= target {
					return
				}
				m := &persistence.Message{SessionID: "s1", Seq: s.LastSeq + 1, Text: fmt.Sprintf("w%d a%d", w, attempt)}
				switch err := st.AppendMessage(ctx, m); {
				case err == nil:
					mu.Lock()
					acked[m.ID] = m.Seq
					mu.Unlock()
				case errors.Is(err, persistence.ErrConflict):
					// Lost the race: reload and go again.
				default:
					t.Errorf("writer %d: append: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()

	s := mustGet(t, st, "s1")
	msgs, err := st.ListMessages(ctx, "s1", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if s.LastSeq != int64(len(msgs)) || s.MessageCount != s.LastSeq || len(acked) != len(msgs) {
		t.Fatalf("last_seq %d, count %d, %d messages listed, %d acknowledged", s.LastSeq, s.MessageCount, len(msgs), len(acked))
	}
	for i, m := range msgs {
		if m.Seq != int64(i+1) || acked[m.ID] != m.Seq {
			t.Fatalf("message %d: seq %d, acknowledged at %d", i, m.Seq, acked[m.ID])
		}
	}
	if n := countMessages(t, st, "s1"); n != int64(len(msgs)) {
		t.Fatalf("%d message documents for %d committed messages", n, len(msgs))
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
