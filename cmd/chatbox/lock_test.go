package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chatbox/chatbox/persistence/sqlite"
)

// storeLock is another process's write lock on the embedded store's file:
// while it is held, every write the program makes waits, then fails as
// unavailable. It is how a busy or stuck embedded store looks from inside.
type storeLock struct {
	t    *testing.T
	path string

	mu   sync.Mutex
	db   *sql.DB   // guarded by mu; opened on the first cut, once the file exists
	conn *sql.Conn // guarded by mu; non-nil while the lock is held
}

// lockedStore returns the outage of the embedded store under dataDir.
func lockedStore(t *testing.T, dataDir string) *storeLock {
	l := &storeLock{t: t, path: filepath.Join(dataDir, "db", sqlite.FileName)}
	t.Cleanup(func() {
		l.restore()
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.db != nil {
			l.db.Close()
		}
	})
	return l
}

func (l *storeLock) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	ctx := context.Background()
	if l.db == nil {
		db, err := sql.Open("sqlite", "file:"+l.path+"?_pragma=busy_timeout(5000)")
		if err != nil {
			l.t.Fatal(err)
		}
		l.db = db
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		l.t.Fatal(err)
	}
	// IMMEDIATE takes the write lock now; in WAL mode readers go on.
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		l.t.Fatalf("lock the embedded store: %v", err)
	}
	l.conn = conn
}

func (l *storeLock) restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return
	}
	if _, err := l.conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		l.t.Errorf("unlock the embedded store: %v", err)
	}
	l.conn.Close()
	l.conn = nil
}
