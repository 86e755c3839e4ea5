package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chatbox/chatbox/persistence"
)

// DefaultTimeout bounds each call when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// FileName is the database file inside Options.Dir.
const FileName = "chatbox.db"

// readConns is the size of the reader pool: enough for the lists and
// lookups of a busy server on a few cores; readers never wait for the
// writer in WAL mode.
const readConns = 4

// Sync modes of Options.Sync.
const (
	SyncNormal = "normal"
	SyncFull   = "full"
)

// Options configure Open.
type Options struct {
	// Dir holds the database file (FileName) and its -wal and -shm files.
	// Required; created with mode 0700 if missing.
	Dir string
	// Keyring encrypts message text and titles. Required.
	Keyring *persistence.Keyring
	// Sync is "normal" (the default; "" means it): a process crash never
	// loses a committed write. "full" also survives power loss, at the
	// cost of an fsync per group commit.
	Sync string
	// Timeout bounds every call; zero means DefaultTimeout. It is also
	// SQLite's busy_timeout.
	Timeout time.Duration
	// Logger receives warnings about unreadable records; nil discards.
	Logger *slog.Logger
	// OnBatch, when not nil, is called by the writer goroutine after each
	// group commit with the number of write requests it committed, for a
	// histogram of batch sizes. It must be quick and must not call the
	// Store.
	OnBatch func(n int)
}

// Store is the persistence.Store over one SQLite file. See the package doc.
type Store struct {
	path    string
	keys    *persistence.Keyring
	timeout time.Duration
	log     *slog.Logger

	wdb *sql.DB // the writer's database handle, one connection
	rdb *sql.DB // the reader pool, query_only
	cdb *sql.DB // the checkpointer's handle, one connection
	w   *writer // the group-commit queue and its goroutine
	ckp *checkpointer
	r   readStmts // prepared statements of the hot reads, on rdb

	// listStmts caches the prepared statements of ListAllSessions, one per
	// shape of filter (a bounded set, see adminQuery).
	listMu    sync.Mutex // guards listStmts
	listStmts map[string]*sql.Stmt

	closed    atomic.Bool // set first thing by Close; calls after it fail fast
	closeOnce sync.Once
	closeErr  error // the result of the one close
}

var (
	_ persistence.Store    = (*Store)(nil)
	_ persistence.Rekeyer  = (*Store)(nil)
	_ persistence.Migrator = (*Store)(nil)
	_ persistence.Importer = (*Store)(nil)
)

// Open opens the database in o.Dir, creating it (and the directory) if
// needed, applies the pragmas, creates or migrates the schema and starts the
// writer goroutine. A directory that holds the FerretDB-based store of
// Chatbox v1.0 is refused with an error wrapping ErrOldStore, and left
// untouched.
func Open(ctx context.Context, o Options) (*Store, error) {
	switch {
	case o.Dir == "":
		return nil, errors.New("open store: no data directory")
	case o.Keyring == nil:
		return nil, errors.New("open store: no keyring")
	}
	syncMode := "NORMAL"
	switch strings.ToLower(o.Sync) {
	case "", SyncNormal:
	case SyncFull:
		syncMode = "FULL"
	default:
		return nil, fmt.Errorf("open store: sync is %q, want %q or %q", o.Sync, SyncNormal, SyncFull)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}

	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if file, found, err := DetectOldStore(o.Dir); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	} else if found {
		return nil, oldStoreError(o.Dir, file)
	}
	path := filepath.Join(o.Dir, FileName)
	// SQLite would create the file world-readable; its -wal and -shm files
	// take the main file's mode, so creating it 0600 here covers all three.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}

	busy := fmt.Sprint(o.Timeout.Milliseconds())
	wdb, err := sql.Open("sqlite", dsn(path,
		"busy_timeout("+busy+")",
		"journal_mode(WAL)",
		"synchronous("+syncMode+")",
		"secure_delete(ON)",
		// No foreign keys: PutMessages may import a session's messages
		// before its header; DeleteSession deletes both itself.
		"foreign_keys(OFF)",
		"cache_size(-16384)",
		"temp_store(MEMORY)",
		// The checkpointer does it, off the commit path.
		"wal_autocheckpoint(0)",
	))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	s := &Store{
		path:      path,
		keys:      o.Keyring,
		timeout:   o.Timeout,
		log:       o.Logger.With("component", "store"),
		wdb:       wdb,
		listStmts: make(map[string]*sql.Stmt),
	}
	fail := func(err error) (*Store, error) {
		s.closeDBs()
		return nil, fmt.Errorf("open store %s: %w", path, classify(err))
	}

	octx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := wdb.Conn(octx)
	if err != nil {
		return fail(err)
	}
	var mode string
	if err := conn.QueryRowContext(octx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		_ = conn.Close()
		return fail(err)
	}
	if !strings.EqualFold(mode, "wal") {
		_ = conn.Close()
		return fail(fmt.Errorf("journal_mode is %q, want wal", mode))
	}
	if err := migrate(octx, conn); err != nil {
		_ = conn.Close()
		return fail(err)
	}

	s.rdb, err = sql.Open("sqlite", dsn(path,
		"busy_timeout("+busy+")",
		"query_only(1)",
		"cache_size(-8192)",
		"temp_store(MEMORY)",
	))
	if err != nil {
		_ = conn.Close()
		return fail(err)
	}
	s.rdb.SetMaxOpenConns(readConns)
	s.rdb.SetMaxIdleConns(readConns)
	s.rdb.SetConnMaxLifetime(0)
	s.rdb.SetConnMaxIdleTime(0)
	if err := s.r.prepare(octx, s.rdb); err != nil {
		_ = conn.Close()
		return fail(err)
	}

	s.cdb, err = sql.Open("sqlite", dsn(path, "busy_timeout("+busy+")"))
	if err != nil {
		_ = conn.Close()
		return fail(err)
	}
	s.cdb.SetMaxOpenConns(1)
	s.cdb.SetMaxIdleConns(1)
	s.cdb.SetConnMaxLifetime(0)
	s.cdb.SetConnMaxIdleTime(0)

	s.w, err = startWriter(octx, conn, o.OnBatch)
	if err != nil {
		_ = conn.Close()
		return fail(err)
	}
	s.ckp = startCheckpointer(s.cdb, s.log)
	return s, nil
}

// dsn is the driver's connection string for path with pragmas, each run on
// every new connection.
func dsn(path string, pragmas ...string) string {
	q := url.Values{"_pragma": pragmas}
	u := url.URL{Scheme: "file", OmitHost: true, Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Writes counts the write transactions committed since Open: one per group
// commit, however many requests it held.
func (s *Store) Writes() uint64 { return s.w.writes.Load() }

// Ping checks that the database answers within the timeout.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.open("ping"); err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var one int
	if err := s.r.ping.QueryRowContext(ctx).Scan(&one); err != nil {
		return wrap(err, "ping")
	}
	// Reads never wait for the write lock, so they cannot tell that writes
	// are stuck (another process holding the lock, a full disk): an empty
	// write through the writer takes the lock as every write does. It
	// shares a batch with whatever else is waiting and writes nothing.
	return s.write(ctx, "ping the writer", func(*wtx) error { return nil })
}

// Close stops taking writes, lets the writer goroutine commit every write
// already queued, waits for it, and closes the database. It is safe to call
// more than once; later calls return the first call's result. It does not
// give up on ctx: the writer's last batch is bounded by the busy timeout.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.w.stop()
		s.ckp.close()
		s.listMu.Lock()
		for _, st := range s.listStmts {
			_ = st.Close()
		}
		clear(s.listStmts)
		s.listMu.Unlock()
		s.r.close()
		if err := s.closeDBs(); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// closeDBs closes both database handles, whichever exist.
func (s *Store) closeDBs() error {
	var errs []error
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.cdb != nil {
		errs = append(errs, s.cdb.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	return errors.Join(errs...)
}

// errClosed is what calls on a closed Store answer.
var errClosed = fmt.Errorf("%w: store is closed", persistence.ErrUnavailable)

// open fails fast once Close has begun.
func (s *Store) open(what string) error {
	if s.closed.Load() {
		return fmt.Errorf("%s: %w", what, errClosed)
	}
	return nil
}

// call bounds one Store call by the timeout.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// unreadable logs a record whose ciphertext could not be opened. The
// caller returns the record with empty text; attrs name the record, never
// its contents.
func (s *Store) unreadable(ctx context.Context, err error, msg string, attrs ...any) {
	persistence.LogUnreadable(ctx, s.log, err, msg, attrs...)
}

// wrap says what was being done and classifies err for callers, who test
// with errors.Is against the persistence sentinels. The driver error stays
// in the chain.
func wrap(err error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), classify(err))
}

// classify wraps err with the persistence sentinel it means, if any; errors
// already classified are returned as they are.
func classify(err error) error {
	switch {
	case errors.Is(err, persistence.ErrNotFound), errors.Is(err, persistence.ErrConflict),
		errors.Is(err, persistence.ErrUnavailable), errors.Is(err, persistence.ErrBadCursor):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return persistence.ErrNotFound
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, sql.ErrConnDone), isClosedDB(err):
		return fmt.Errorf("%w: %w", persistence.ErrUnavailable, err)
	}
	var se *sqlitedriver.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return fmt.Errorf("%w: %w", persistence.ErrConflict, err)
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_PROTOCOL,
		sqlite3.SQLITE_READONLY:
		return fmt.Errorf("%w: %w", persistence.ErrUnavailable, err)
	}
	return err
}

// isClosedDB recognizes database/sql's unexported "database is closed".
func isClosedDB(err error) bool {
	return err != nil && strings.Contains(err.Error(), "sql: database is closed")
}
