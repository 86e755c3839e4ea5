package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/mongo"
)

// Keys of the rekey tests: A is the old key, B the new one, C a key that
// gets lost.
var (
	keyA = []byte("rekey test key A, exactly 32 by!")
	keyB = []byte("rekey test key B, exactly 32 by!")
	keyC = []byte("rekey test key C, exactly 32 by!")
)

func keyring(t *testing.T, current []byte, previous ...[]byte) *persistence.Keyring {
	t.Helper()
	k, err := persistence.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// rekeyFixture writes sessions s1..s3 of user u, each with three messages,
// under key A (titles and texts name their record), then s9 with two
// messages under key C. It returns the database name and the texts by
// "session/seq" ("session/title" for titles).
func rekeyFixture(t *testing.T) (string, map[string]string) {
	t.Helper()
	stA, _ := openLogged(t, "", keyring(t, keyA))
	database := stA.Database().Name()
	want := map[string]string{}
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("s%d", i)
		want[id+"/title"] = "title of " + id
		mustCreate(t, stA, persistence.Session{ID: id, UserID: "u", Title: want[id+"/title"], CreatedAt: at(i)})
		for seq := int64(1); seq <= 3; seq++ {
			text := fmt.Sprintf("text of %s/%d", id, seq)
			want[fmt.Sprintf("%s/%d", id, seq)] = text
			appendWithID(t, stA, id, seq, text)
		}
	}
	stC, _ := openLogged(t, database, keyring(t, keyC))
	mustCreate(t, stC, persistence.Session{ID: "s9", UserID: "u", Title: "secret title", CreatedAt: at(9)})
	appendWithID(t, stC, "s9", 1, "secret one")
	appendWithID(t, stC, "s9", 2, "secret two")
	return database, want
}

// appendWithID appends a message whose id is "session-seq", so that _id
// order (the order a rekey goes in) is session then seq.
func appendWithID(t *testing.T, st *mongo.Store, sessionID string, seq int64, text string) {
	t.Helper()
	m := &persistence.Message{
		ID: fmt.Sprintf("%s-%d", sessionID, seq), SessionID: sessionID, Seq: seq, Role: persistence.RoleUser,
		Author: "u", Text: text, Status: persistence.StatusComplete, CreatedAt: at(int(seq)),
	}
	if err := st.AppendMessage(t.Context(), m); err != nil {
		t.Fatalf("append %s/%d: %v", sessionID, seq, err)
	}
}

// readAll reads every session of user u and its messages, keyed like
// rekeyFixture's texts; unreadable records read as "UNREADABLE".
func readAll(t *testing.T, st *mongo.Store) map[string]string {
	t.Helper()
	ctx := t.Context()
	got := map[string]string{}
	sessions, _, err := st.ListSessions(ctx, "u", persistence.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		got[s.ID+"/title"] = s.Title
		msgs, err := st.ListMessages(ctx, s.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			text := m.Text
			if m.Unreadable {
				text = "UNREADABLE"
			}
			got[fmt.Sprintf("%s/%d", s.ID, m.Seq)] = text
		}
	}
	return got
}

// keyIDs counts the stored records of database by the key id they carry.
func keyIDs(t *testing.T, st *mongo.Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for coll, field := range map[string]string{"messages": "key_id", "sessions": "title_key_id"} {
		cur, err := st.Database().Collection(coll).Find(t.Context(), bson.M{})
		if err != nil {
			t.Fatal(err)
		}
		var docs []bson.M
		if err := cur.All(t.Context(), &docs); err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			id, _ := d[field].(string)
			out[id]++
		}
	}
	return out
}

func TestRekeyMovesEverythingToTheNewKeyAndReportsWhatItCannotOpen(t *testing.T) {
	t.Parallel()
	database, want := rekeyFixture(t)

	st, _ := openLogged(t, database, keyring(t, keyB, keyA))
	var reports []mongo.RekeyProgress
	res, err := st.Rekey(t.Context(), 4, func(p mongo.RekeyProgress) { reports = append(reports, p) })
	if err != nil {
		t.Fatalf("rekey: %v", err)
	}
	if res.Messages != 9 || res.Titles != 3 || res.Changed != 0 || res.UnreadableCount != 3 || res.Remaining != 3 {
		t.Fatalf("result %+v, want 9 messages, 3 titles, 3 unreadable and remaining", res)
	}
	var unreadable []string
	for _, u := range res.Unreadable {
		if u.KeyID != persistence.KeyID(keyC) || u.Reason != "key_missing" {
			t.Errorf("unreadable record %+v, want key C missing", u)
		}
		unreadable = append(unreadable, fmt.Sprintf("%s/%d", u.SessionID, u.Seq))
	}
	if got := strings.Join(unreadable, " "); got != "s9/1 s9/2 s9/0" {
		t.Errorf("unreadable %q, want s9's messages then its title", got)
	}
	if s := fmt.Sprintf("%+v", res); strings.Contains(s, "secret") {
		t.Errorf("the result shows text: %s", s)
	}
	// 11 messages in batches of 4, then 4 sessions: 3 + 1 batches.
	if len(reports) != 4 || reports[0].Phase != mongo.RekeyMessages || reports[3].Phase != mongo.RekeyTitles {
		t.Errorf("progress %+v, want 3 message batches and 1 title batch", reports)
	}
	if last := reports[len(reports)-1]; last.Messages != 9 || last.Titles != 3 || last.Unreadable != 3 || last.Scanned != 15 {
		t.Errorf("last progress %+v", last)
	}

	// Only key B now: everything A wrote reads back.
	onlyB, _ := openLogged(t, database, keyring(t, keyB))
	got := readAll(t, onlyB)
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
	if ids := keyIDs(t, onlyB); ids[persistence.KeyID(keyB)] != 12 || ids[persistence.KeyID(keyC)] != 3 || len(ids) != 2 {
		t.Errorf("stored key ids %v, want 12 under B and 3 under C", ids)
	}

	// The records under the lost key were left intact: with the key back,
	// they read.
	withC, _ := openLogged(t, database, keyring(t, keyC))
	if got := readAll(t, withC); got["s9/1"] != "secret one" || got["s9/2"] != "secret two" || got["s9/title"] != "secret title" {
		t.Errorf("records under key C after the rekey: %v", got)
	}

	// A second run has nothing to do but report the lost key again.
	res, err = st.Rekey(t.Context(), 0, nil)
	if err != nil || res.Messages != 0 || res.Titles != 0 || res.UnreadableCount != 3 || res.Remaining != 3 {
		t.Errorf("second run: %+v, %v", res, err)
	}
}

func TestRekeyInterruptedThenRunAgainFinishes(t *testing.T) {
	t.Parallel()
	database, want := rekeyFixture(t)
	st, _ := openLogged(t, database, keyring(t, keyB, keyA))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res, err := st.Rekey(ctx, 2, func(mongo.RekeyProgress) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	if res.Messages != 2 || res.Titles != 0 || res.Remaining != -1 {
		t.Fatalf("interrupted run did %+v, want the first batch of 2 messages", res)
	}
	if ids := keyIDs(t, st); ids[persistence.KeyID(keyB)] != 2 {
		t.Fatalf("after the interrupted run, key ids %v, want 2 records under B", ids)
	}

	res, err = st.Rekey(t.Context(), 2, nil)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if res.Messages != 7 || res.Titles != 3 || res.UnreadableCount != 3 || res.Remaining != 3 {
		t.Fatalf("second run did %+v, want the 7 messages and 3 titles left", res)
	}
	onlyB, _ := openLogged(t, database, keyring(t, keyB))
	got := readAll(t, onlyB)
	for k, text := range want {
		if got[k] != text {
			t.Errorf("%s reads %q, want %q", k, got[k], text)
		}
	}
}

func TestRekeyNeverOverwritesANewerWrite(t *testing.T) {
	t.Parallel()
	database, _ := rekeyFixture(t)
	st, _ := openLogged(t, database, keyring(t, keyB, keyA))
	newWriter, _ := openLogged(t, database, keyring(t, keyB, keyA))
	oldWriter, _ := openLogged(t, database, keyring(t, keyA)) // a node not yet given key B

	ctx := t.Context()
	wrote := false
	res, err := st.RekeyWithWriteBetween(ctx, 100, func() {
		if wrote {
			return
		}
		wrote = true
		// Between the rekey's read and its write, a server rewrites two
		// messages it has read: one under the new key, one under the old.
		for _, w := range []struct {
			st  *mongo.Store
			seq int64
		}{{newWriter, 1}, {oldWriter, 2}} {
			m := &persistence.Message{SessionID: "s1", Seq: w.seq, Text: fmt.Sprintf("newer %d", w.seq), Status: persistence.StatusComplete}
			if err := w.st.UpdateMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err != nil {
		t.Fatalf("rekey: %v", err)
	}
	if res.Messages != 7 || res.Changed != 2 || res.Remaining != 4 {
		t.Fatalf("result %+v, want 7 rekeyed, 2 left to their newer writes, 4 remaining (C's 3 and the old writer's)", res)
	}
	got := readAll(t, st)
	if got["s1/1"] != "newer 1" || got["s1/2"] != "newer 2" {
		t.Fatalf("after the rekey s1/1 = %q, s1/2 = %q: a newer write was overwritten", got["s1/1"], got["s1/2"])
	}

	// Run again once every node has the new key: the old writer's record moves.
	res, err = st.Rekey(ctx, 100, nil)
	if err != nil || res.Messages != 1 || res.Remaining != 3 {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	onlyB, _ := openLogged(t, database, keyring(t, keyB))
	if got := readAll(t, onlyB); got["s1/1"] != "newer 1" || got["s1/2"] != "newer 2" {
		t.Fatalf("with only key B: s1/1 = %q, s1/2 = %q", got["s1/1"], got["s1/2"])
	}
}
