package sqlite_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// TestErasureCompactsTheFile checks the compaction half of EraseUser: the
// file shrinks to what the remaining records need, instead of keeping the
// erased user's pages as free space.
func TestErasureCompactsTheFile(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir)
	ctx := t.Context()
	big := strings.Repeat("a long message of the user who leaves ", 50)
	for i := range 20 {
		sid := fmt.Sprintf("leaver-%02d", i)
		mustCreate(t, st, sid, "leaver")
		msgs := make([]persistence.Message, 50)
		for j := range msgs {
			msgs[j] = persistence.Message{ID: fmt.Sprintf("%s-%02d", sid, j), SessionID: sid, Seq: int64(j + 1),
				Role: persistence.RoleUser, Text: big, Status: persistence.StatusComplete}
		}
		if err := st.PutMessages(ctx, msgs); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, st, "stayer-1", "stayer")
	mustAppend(t, st, "stayer-1", 1)
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	before := fileSize(t, st.Path())
	if _, err := st.EraseUser(ctx, "leaver", &persistence.AuditEntry{ID: "e1", Action: persistence.AuditErase, UserID: "leaver"}); err != nil {
		t.Fatal(err)
	}
	after := fileSize(t, st.Path())
	if after*4 > before {
		t.Errorf("the file is %d bytes after erasing most of its %d: not compacted", after, before)
	}
	if wal := fileSize(t, st.Path()+"-wal"); wal != 0 {
		t.Errorf("the WAL holds %d bytes after the erasure, want it truncated", wal)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
