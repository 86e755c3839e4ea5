package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/sqlite"
)

func TestConcurrentAppendsShareTransactions(t *testing.T) {
	st := open(t, t.TempDir())
	ctx := context.Background()
	const sessions, perSession = 32, 10
	for i := range sessions {
		mustCreate(t, st, fmt.Sprintf("s%d", i), "u")
	}
	before := st.Writes()
	errs := make([][]error, sessions)
	var wg sync.WaitGroup
	for i := range sessions {
		errs[i] = make([]error, perSession)
		wg.Go(func() {
			// One writer per session, as the session actors are.
			for seq := int64(1); seq <= perSession; seq++ {
				errs[i][seq-1] = st.AppendMessage(ctx, msg(fmt.Sprintf("s%d", i), seq))
			}
		})
	}
	wg.Wait()
	calls := uint64(sessions * perSession)
	for i := range sessions {
		for j, err := range errs[i] {
			if err != nil {
				t.Errorf("append %d to s%d: %v", j+1, i, err)
			}
		}
	}
	writes := st.Writes() - before
	t.Logf("%d appends in %d transactions", calls, writes)
	if writes >= calls {
		t.Errorf("%d appends took %d transactions: no group commit", calls, writes)
	}
	for i := range sessions {
		x, err := st.GetSession(ctx, fmt.Sprintf("s%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if x.LastSeq != perSession || x.MessageCount != perSession || x.TokensIn != 2*perSession {
			t.Errorf("s%d: last_seq %d, count %d, tokens in %d", i, x.LastSeq, x.MessageCount, x.TokensIn)
		}
	}
}

func TestAcknowledgedWritesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Dir: dir, Keyring: keyring(t, testKey), Sync: "full"})
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, st, "s1", "u")
	var wg sync.WaitGroup
	acked := make([]bool, 50)
	wg.Go(func() {
		for seq := int64(1); seq <= 50; seq++ {
			if err := st.AppendMessage(ctx, msg("s1", seq)); err != nil {
				if !errors.Is(err, persistence.ErrUnavailable) {
					t.Errorf("append %d: %v", seq, err)
				}
				return
			}
			acked[seq-1] = true
		}
	})
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := st.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	err = st.AppendMessage(ctx, msg("s1", 51))
	if !errors.Is(err, persistence.ErrUnavailable) || !strings.Contains(err.Error(), "closed") {
		t.Errorf("append after close: err = %v, want ErrUnavailable saying the store is closed", err)
	}
	if _, err := st.GetSession(ctx, "s1"); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("get after close: err = %v, want ErrUnavailable", err)
	}

	again := open(t, dir)
	msgs, err := again.ListMessages(ctx, "s1", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < len(acked) && acked[n] {
		n++
	}
	if len(msgs) < n {
		t.Errorf("reopened: %d messages, but %d were acknowledged", len(msgs), n)
	}
	for i, m := range msgs {
		if want := msg("s1", int64(i+1)); m.ID != want.ID || m.Text != want.Text {
			t.Errorf("message %d reads back as %+v", i+1, m)
		}
	}
}

// ferretDB makes a database as FerretDB v1's SQLite backend leaves one:
// a .sqlite file with its metadata table. inWAL leaves that table only in
// the -wal file, as a process that died before a checkpoint would.
func ferretDB(t *testing.T, dir string, inWAL bool) string {
	t.Helper()
	path := filepath.Join(dir, "chatbox.sqlite")
	src := path
	if inWAL {
		src = filepath.Join(t.TempDir(), "chatbox.sqlite")
	}
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`PRAGMA wal_autocheckpoint = 0`,
		`CREATE TABLE _ferretdb_collections (_ferretdb_sjson TEXT)`,
		`INSERT INTO _ferretdb_collections VALUES ('{"_id":"sessions"}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if inWAL {
		// Copy the files while the connection still holds them open, so
		// the WAL has not been checkpointed into the main file.
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(src + suffix)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("_ferretdb_collections")) != (suffix == "-wal") {
				t.Fatalf("the fixture's marker is not only in the WAL")
			}
			if err := os.WriteFile(path+suffix, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return path
}

func TestAnOldFerretDBStoreIsRefusedAndLeftAlone(t *testing.T) {
	for _, inWAL := range []bool{false, true} {
		t.Run(fmt.Sprintf("marker in WAL %v", inWAL), func(t *testing.T) {
			dir := t.TempDir()
			old := ferretDB(t, dir, inWAL)
			before := dumpFiles(t, dir)

			st, err := sqlite.Open(context.Background(), sqlite.Options{Dir: dir, Keyring: keyring(t, testKey)})
			if err == nil {
				st.Close(context.Background())
				t.Fatal("Open accepted a directory with a FerretDB store")
			}
			if !errors.Is(err, sqlite.ErrOldStore) {
				t.Errorf("err = %v, want ErrOldStore", err)
			}
			for _, want := range []string{old, "chatbox copy -from " + dir, "storage.data_dir"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("the error does not say %q: %v", want, err)
				}
			}
			after := dumpFiles(t, dir)
			if len(after) != len(before) {
				t.Errorf("files before: %v, after: %v", keys(before), keys(after))
			}
			for name, b := range before {
				if !bytes.Equal(after[name], b) {
					t.Errorf("%s changed", name)
				}
			}
			file, found, err := sqlite.DetectOldStore(dir)
			if err != nil || !found || file != old {
				t.Errorf("DetectOldStore = %q, %v, %v; want %q, true, nil", file, found, err, old)
			}
		})
	}
}

func TestASQLiteFileThatIsNotFerretDBIsNoOldStore(t *testing.T) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "notes.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE notes (text TEXT)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.WriteFile(filepath.Join(dir, "empty.sqlite"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, found, err := sqlite.DetectOldStore(dir); found || err != nil {
		t.Errorf("DetectOldStore = %v, %v; want false, nil", found, err)
	}
	if _, found, err := sqlite.DetectOldStore(filepath.Join(dir, "missing")); found || err != nil {
		t.Errorf("DetectOldStore of a missing dir = %v, %v; want false, nil", found, err)
	}
	open(t, dir)
}

func TestADeletedSessionLeavesNoBytesInAnyFile(t *testing.T) {
	dir := t.TempDir()
	st := open(t, dir)
	ctx := context.Background()
	mustCreate(t, st, "doomed-7f3a", "u")
	mustCreate(t, st, "kept-1b2c", "u")
	var secrets []string
	for seq := int64(1); seq <= 30; seq++ {
		m := msg("doomed-7f3a", seq)
		m.ID = fmt.Sprintf("doomed-msg-%03d", seq)
		m.Author = fmt.Sprintf("doomed-author-%03d", seq)
		if err := st.AppendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, m.ID, m.Author)
		mustAppend(t, st, "kept-1b2c", seq)
	}
	secrets = append(secrets, "doomed-7f3a")
	// The control: before the delete, the files hold every one.
	dump := dumpDir(t, dir)
	for _, s := range secrets {
		if !bytes.Contains(dump, []byte(s)) {
			t.Fatalf("%q is not in the files before the delete: the search shows nothing", s)
		}
	}
	if err := st.DeleteSession(ctx, "doomed-7f3a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	dump = dumpDir(t, dir)
	for _, s := range secrets {
		if bytes.Contains(dump, []byte(s)) {
			t.Errorf("%q is still in the files after the delete", s)
		}
	}
	if !bytes.Contains(dump, []byte("kept-1b2c")) {
		t.Error("the kept session is not in the files either: the search shows nothing")
	}
}

func dumpFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The writer never checkpoints (wal_autocheckpoint is off, so no commit
// waits for one); the checkpointer copies the WAL into the database file
// on its own. Without it nothing would: the WAL would only grow.
func TestTheCheckpointerCopiesTheWALOffTheCommitPath(t *testing.T) {
	st := open(t, t.TempDir())
	mustCreate(t, st, "s", "u")
	for seq := int64(1); seq <= 200; seq++ {
		if err := st.AppendMessage(context.Background(), msg("s", seq)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !sqlite.CheckpointedAll(st) {
		if time.Now().After(deadline) {
			t.Fatal("the checkpointer did not copy the WAL into the database file")
		}
		time.Sleep(20 * time.Millisecond) // polling, not ordering
	}
	var auto int
	if err := sqlite.WriterPragma(st, "wal_autocheckpoint", &auto); err != nil || auto != 0 {
		t.Fatalf("the writer's wal_autocheckpoint is %d (%v), want 0", auto, err)
	}
}
