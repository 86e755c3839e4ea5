package mongo_test

import (
	"fmt"
	"testing"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/mongo"
)

// Keys of the rekey test: A is the old key, B the new one, C a key that
// gets lost. The conformance suite tests the rest of Rekey.
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
