package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatbox/chatbox/lifecycle/leaktest"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/sqlite"
	"github.com/chatbox/chatbox/persistence/storetest"
)

func TestMain(m *testing.M) {
	storetest.Main(m) // runs the tests, then stops the shared store; exits if a test failed
	leaktest.Verify()
}

// TestConformance runs the one conformance suite on stores in fresh
// temporary directories.
func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T, keys *persistence.Keyring) persistence.Store {
			return openWith(t, t.TempDir(), keys)
		},
		Reopen: func(t *testing.T, st persistence.Store, keys *persistence.Keyring) persistence.Store {
			return openWith(t, filepath.Dir(st.(*sqlite.Store).Path()), keys)
		},
		Corrupt: func(t *testing.T, st persistence.Store, sessionID string, seq int64) {
			corrupt(t, st.(*sqlite.Store).Path(), sessionID, seq)
		},
		Dump: func(t *testing.T, st persistence.Store) []byte {
			return dumpDir(t, filepath.Dir(st.(*sqlite.Store).Path()))
		},
	})
}

func openWith(t *testing.T, dir string, keys *persistence.Keyring) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), sqlite.Options{Dir: dir, Keyring: keys})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(context.Background()); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

// corrupt flips a byte of a message's stored ciphertext through a
// connection of its own, as damage from outside the store would.
func corrupt(t *testing.T, path, sessionID string, seq int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ct []byte
	if err := db.QueryRow(`SELECT ct FROM messages WHERE session_id = ? AND seq = ?`, sessionID, seq).Scan(&ct); err != nil {
		t.Fatalf("corrupt message %d of %s: %v", seq, sessionID, err)
	}
	ct[len(ct)/2] ^= 0x01
	if _, err := db.Exec(`UPDATE messages SET ct = ? WHERE session_id = ? AND seq = ?`, ct, sessionID, seq); err != nil {
		t.Fatalf("corrupt message %d of %s: %v", seq, sessionID, err)
	}
}

// dumpDir is the bytes of every file under dir: the database, its WAL and
// shared-memory file, whatever the store left there.
func dumpDir(t testing.TB, dir string) []byte {
	t.Helper()
	var all bytes.Buffer
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		all.Write(b)
		return err
	})
	if err != nil {
		t.Fatalf("dump %s: %v", dir, err)
	}
	return all.Bytes()
}
