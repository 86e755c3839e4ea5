package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/chatbox/chatbox/persistence"
)

// DefaultTimeout bounds each call when Options.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// URI is the mongodb:// connection string. Required.
	URI string
	// Database holds the sessions and messages collections. Required.
	Database string
	// Keyring encrypts message text and titles. Required.
	Keyring *persistence.Keyring
	// Timeout bounds every call, and server selection; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Logger receives warnings about unreadable records; nil discards.
	Logger *slog.Logger
	// Monitor, when not nil, is told about every command sent (tests count
	// round trips with it; tracing could too).
	Monitor *event.CommandMonitor
}

// Store is the persistence.Store over MongoDB. See the package doc.
type Store struct {
	client   *mongodriver.Client
	db       *mongodriver.Database
	sessions *mongodriver.Collection
	messages *mongodriver.Collection
	keys     *persistence.Keyring
	timeout  time.Duration
	log      *slog.Logger

	closeOnce sync.Once
	closeErr  error // the result of the one Disconnect
}

var (
	_ persistence.Store    = (*Store)(nil)
	_ persistence.Rekeyer  = (*Store)(nil)
	_ persistence.Migrator = (*Store)(nil)
	_ persistence.Importer = (*Store)(nil)
)

// Open connects to the database and checks that it answers within the
// timeout; an unreachable server wraps persistence.ErrUnavailable. It does
// not create indexes: call Migrate.
func Open(ctx context.Context, o Options) (*Store, error) {
	switch {
	case o.URI == "":
		return nil, errors.New("open store: no URI")
	case o.Database == "":
		return nil, errors.New("open store: no database name")
	case o.Keyring == nil:
		return nil, errors.New("open store: no keyring")
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := mongodriver.Connect(options.Client().
		ApplyURI(o.URI).
		SetServerSelectionTimeout(o.Timeout).
		SetConnectTimeout(o.Timeout).
		SetMonitor(o.Monitor))
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db := client.Database(o.Database)
	s := &Store{
		client:   client,
		db:       db,
		sessions: db.Collection("sessions"),
		messages: db.Collection("messages"),
		keys:     o.Keyring,
		timeout:  o.Timeout,
		log:      o.Logger.With("component", "store"),
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close(ctx)
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// Database is the driver's handle on the store's database, for tools and
// tests that must look at raw documents or drop the database. The
// application goes through the Store methods.
func (s *Store) Database() *mongodriver.Database { return s.db }

// Ping checks that the database answers within the timeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.db.RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return wrap(err, "ping")
	}
	return nil
}

// Close disconnects, waiting for in-use connections up to ctx. It is safe
// to call more than once; later calls return the first call's result.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if err := s.client.Disconnect(ctx); err != nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return s.closeErr
}

// Migrate creates the indexes the queries rely on (MongoDB has no schema
// beyond them). It is idempotent: creating an index that exists with the
// same keys and options is a no-op.
func (s *Store) Migrate(ctx context.Context) error { return s.EnsureIndexes(ctx) }

// EnsureIndexes is Migrate, under the name serve and the tests have called
// it by since v1.0.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	indexes := []struct {
		coll  *mongodriver.Collection
		model mongodriver.IndexModel
	}{
		// The fence of AppendMessage: a seq is taken once per session.
		// Also serves ListMessages: session_id == x, seq in (after, last_seq],
		// sorted by seq.
		{s.messages, mongodriver.IndexModel{
			Keys:    bson.D{{Key: "session_id", Value: 1}, {Key: "seq", Value: 1}},
			Options: options.Index().SetUnique(true),
		}},
		// ListSessions: user_id == x, sorted updated_at desc, _id desc, with
		// the keyset cursor on (updated_at, _id). Also ListAllSessions
		// filtered by user.
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "user_id", Value: 1}, {Key: "updated_at", Value: -1}, {Key: "_id", Value: -1}}}},
		// ListAllSessions with no narrowing filter, sorted by updated_at
		// (the admin default) either way, with the keyset cursor.
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "updated_at", Value: -1}, {Key: "_id", Value: -1}}}},
		// ListAllSessions sorted by created_at, and its from/to range.
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}}},
		// ListAllSessions sorted by message_count (busiest first or last).
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "message_count", Value: -1}, {Key: "_id", Value: -1}}}},
		// ListAllSessions help=true|false: the admin's queue of sessions
		// asking for a human, newest activity first.
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "help_requested", Value: 1}, {Key: "updated_at", Value: -1}}}},
		// ListAllSessions taken_over=true|false (mode human or not), newest
		// activity first.
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "mode", Value: 1}, {Key: "updated_at", Value: -1}}}},
		// ListQueue: help_requested == true, oldest request first.
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "help_requested", Value: 1}, {Key: "help_requested_at", Value: 1}, {Key: "_id", Value: 1}}}},
		// GetSessionByShareID: the read-only view behind a share link.
		{s.sessions, mongodriver.IndexModel{Keys: bson.D{{Key: "share_id", Value: 1}}}},
		// ListAudit: newest first, with the keyset cursor on (at, _id).
		{s.audit(), mongodriver.IndexModel{Keys: bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}}},
		// EraseUser: the entries about the erased sessions.
		{s.audit(), mongodriver.IndexModel{Keys: bson.D{{Key: "session_id", Value: 1}}}},
	}
	// One index per command: FerretDB v1.24 panics on a createIndexes that
	// lists two or more indexes which already exist.
	for _, ix := range indexes {
		if _, err := ix.coll.Indexes().CreateOne(ctx, ix.model); err != nil {
			return wrap(err, "create index %v on %s", ix.model.Keys, ix.coll.Name())
		}
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
	what := fmt.Sprintf(format, args...)
	switch {
	case errors.Is(err, mongodriver.ErrNoDocuments):
		return fmt.Errorf("%s: %w", what, persistence.ErrNotFound)
	case mongodriver.IsDuplicateKeyError(err):
		return fmt.Errorf("%s: %w: %w", what, persistence.ErrConflict, err)
	case unavailable(err):
		return fmt.Errorf("%s: %w: %w", what, persistence.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// unavailable reports errors that mean the database could not be reached or
// did not answer in time, as opposed to errors in the request.
func unavailable(err error) bool {
	var sse topology.ServerSelectionError
	return mongodriver.IsNetworkError(err) ||
		mongodriver.IsTimeout(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.As(err, &sse) ||
		errors.Is(err, mongodriver.ErrClientDisconnected)
}
