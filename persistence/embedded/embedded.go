// Package embedded runs FerretDB v1 with its SQLite backend inside this
// process, on a loopback port, so that dev mode and tests get a real MongoDB
// wire protocol with no setup and no other process. Clients reach it with the
// ordinary mongo-driver through URI; persistence/mongo does not know the
// difference.
//
// Clients do not talk to FerretDB directly but through a serializer that
// passes one command at a time (serialize.go): FerretDB v1 does not apply a
// single-document update atomically, and the store's fences need that.
//
// It is sized for tests, demos and small installs: FerretDB v1's SQLite
// backend uses SQLite indexes for none of the store's queries, so filters,
// sorts and updates scan the collection in FerretDB (measured: with 20,000
// messages stored, a message update takes ~75ms and a page of history
// ~0.9s). The indexes are still created, for MongoDB.
//
// A Server owns the goroutine that runs FerretDB and the serializer's;
// Close stops them and waits for them. Server methods are safe for concurrent use. Only one Server may use
// a given directory at a time: FerretDB caches the SQLite metadata in memory.
package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// newMu serializes ferretdb.New, which writes package-level state in
// FerretDB (its version info) and so races when two servers start at once.
var newMu sync.Mutex

// Server is a running in-process FerretDB.
type Server struct {
	dir    string // absolute; one SQLite file per database
	uri    string // the serializer's
	ser    *serializer
	cancel context.CancelFunc
	done   chan struct{} // closed when FerretDB's Run has returned
}

// Start creates dir (mode 0700) if needed and starts FerretDB storing its
// databases there, one SQLite file each, listening on 127.0.0.1 at a free
// port. Data in dir from an earlier run is kept. FerretDB logs through log
// at Warn level and above only (it is chatty below); a nil log discards.
//
// ctx bounds only the start: the server runs until Close.
func Start(ctx context.Context, dir string, log *slog.Logger) (*Server, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start embedded ferretdb: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("start embedded ferretdb: resolve %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("start embedded ferretdb: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = slog.New(warnOnly{log.Handler()}).With("component", "ferretdb")

	// FerretDB wants a "file:" URI naming a directory, with a trailing slash;
	// building it with net/url escapes odd characters in the path.
	sqliteURL := (&url.URL{Scheme: "file", Path: abs + "/"}).String()

	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    log,
		Handler:   "sqlite",
		SQLiteURL: sqliteURL,
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("start embedded ferretdb in %s: %w", abs, err)
	}

	// The listener is bound inside New, so the URI (and its port) is known
	// before Run, and connections queue until Run accepts them.
	direct, err := url.Parse(f.MongoDBURI())
	if err != nil {
		return nil, fmt.Errorf("start embedded ferretdb: its uri: %w", err)
	}
	ser, err := newSerializer(direct.Host)
	if err != nil {
		stopped, stop := context.WithCancel(context.Background())
		stop()
		_ = f.Run(stopped) // closes the listener New bound
		return nil, fmt.Errorf("start embedded ferretdb: %w", err)
	}
	direct.Host = ser.addr()
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{dir: abs, uri: direct.String(), ser: ser, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		// Run always returns nil; it returns once every connection is closed.
		_ = f.Run(runCtx)
	}()
	return s, nil
}

// URI is the mongodb:// connection string of the server.
func (s *Server) URI() string { return s.uri }

// Close stops the server and waits until it has closed its listener, its
// connections and its SQLite files. It is safe to call more than once and
// from several goroutines. Disconnect clients first: FerretDB gives
// connections still open up to 3 seconds to go away.
func (s *Server) Close() error {
	s.ser.close()
	s.cancel()
	<-s.done
	return nil
}

// warnOnly passes records at Warn and above to the wrapped handler, except
// FerretDB's dumps of responses to failed commands. Those are Warn, and the
// client already gets (and reports) the error; the driver's endSessions,
// which FerretDB does not implement, would log one at every disconnect.
type warnOnly struct{ h slog.Handler }

func (w warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.h.Enabled(ctx, l)
}

func (w warnOnly) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && (strings.HasPrefix(r.Message, "Response header:") || strings.HasPrefix(r.Message, "Response message:")) {
		return nil
	}
	return w.h.Handle(ctx, r)
}

func (w warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{w.h.WithAttrs(as)} }

func (w warnOnly) WithGroup(name string) slog.Handler { return warnOnly{w.h.WithGroup(name)} }
