package sqlite

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// A write made between a rekey's read and its update wins: the rekey
// counts it as changed and leaves it.
func TestRekeyLeavesANewerWriteAlone(t *testing.T) {
	ctx := context.Background()
	keyA, keyB := []byte("chatbox sqlite test key 32 bytes"), []byte("another sqlite test key 32 bytes")
	dir := t.TempDir()
	ringA, _ := persistence.NewKeyring(keyA)
	old, err := Open(ctx, Options{Dir: dir, Keyring: ringA})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.CreateSession(ctx, &persistence.Session{ID: "s1", UserID: "u", Title: "t"}); err != nil {
		t.Fatal(err)
	}
	for seq := int64(1); seq <= 3; seq++ {
		if err := old.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: seq, Text: "old"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}

	ringB, _ := persistence.NewKeyring(keyB, keyA)
	st, err := Open(ctx, Options{Dir: dir, Keyring: ringB})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	// Written under the old key by a node not yet rotated: reading the
	// batch has seen seq 2 under A, the update must not replace this.
	stale, wrote := old2(t, dir, ringA), false
	writeOld := func() {
		if wrote {
			return // only between the messages' read and write
		}
		wrote = true
		if err := stale.UpdateMessage(ctx, &persistence.Message{SessionID: "s1", Seq: 2, Text: "newer", Status: persistence.StatusComplete}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := st.rekey(ctx, 0, nil, writeOld)
	if err != nil {
		t.Fatal(err)
	}
	if res.Messages != 2 || res.Changed != 1 || res.Titles != 1 {
		t.Errorf("rekey: %+v; want 2 messages, 1 changed, 1 title", res)
	}
	if res.Remaining != 1 {
		t.Errorf("remaining %d, want 1: the newer write is still under the old key", res.Remaining)
	}
	msgs, err := st.ListMessages(ctx, "s1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || msgs[1].Text != "newer" || msgs[0].Text != "old" || msgs[2].Text != "old" {
		t.Errorf("messages after the rekey: %+v", msgs)
	}
}

// old2 opens a second store on dir keyed with ring, closed with the test.
func old2(t *testing.T, dir string, ring *persistence.Keyring) *Store {
	t.Helper()
	st, err := Open(context.Background(), Options{Dir: dir, Keyring: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}
