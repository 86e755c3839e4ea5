package persistence

import "context"

// The interfaces below are what the operator commands (rekey, migrate,
// copy) need of a store beyond serving; both stores implement all of them.

// Rekeyer re-encrypts stored text under the keyring's current key.
type Rekeyer interface {
	// Rekey re-encrypts, under the current key, every message text and
	// session title stored under another key, opening them with the
	// previous keys. It is safe to run while servers write and to
	// interrupt: a newer write made meanwhile is never overwritten, and a
	// run cancelled through ctx keeps what it did. A record that cannot be
	// opened is left as it is and reported, which is not an error.
	// progress, when not nil, is called after each batch on the caller's
	// goroutine; batch <= 0 means DefaultRekeyBatch.
	Rekey(ctx context.Context, batch int, progress func(RekeyProgress)) (RekeyResult, error)
}

// DefaultRekeyBatch is how many records Rekey reads per query when its
// batch argument is not positive.
const DefaultRekeyBatch = 500

// MaxReportedUnreadable caps RekeyResult.Unreadable; the count goes on.
const MaxReportedUnreadable = 1000

// Phases of a rekey, in the order they run.
const (
	RekeyMessages = "messages"
	RekeyTitles   = "titles"
)

// RekeyProgress is reported after every batch: the phase running and the
// totals so far of the whole run.
type RekeyProgress struct {
	Phase      string // RekeyMessages or RekeyTitles
	Scanned    int64  // records read so far, both phases
	Messages   int64  // message texts re-encrypted so far
	Titles     int64  // session titles re-encrypted so far
	Unreadable int64  // records skipped because they cannot be opened
}

// RekeyResult is what a rekey did.
type RekeyResult struct {
	Messages int64 // message texts re-encrypted under the current key
	Titles   int64 // session titles re-encrypted under the current key
	// Changed counts records rewritten by another writer between the read
	// and the conditional update; the newer write was left as it is.
	Changed int64
	// UnreadableCount counts records whose text could not be opened: their
	// key is not configured, or the ciphertext does not authenticate. They
	// are left untouched. Unreadable lists the first MaxReportedUnreadable.
	UnreadableCount int64
	Unreadable      []UnreadableRecord
	// Remaining counts the records still not under the current key when the
	// run ended: the unreadable ones, plus any that a writer still holding
	// an older key as its current one wrote meanwhile (run again for those).
	// It is -1 when the run did not get as far as counting.
	Remaining int64
}

// UnreadableRecord names a record a rekey could not open, never its text.
type UnreadableRecord struct {
	SessionID string
	Seq       int64  // the message's seq; 0 for the session title
	KeyID     string // the key id stored with the ciphertext
	Reason    string // "key_missing" or "corrupt"
}

// Title reports whether the record is a session title rather than a message.
func (u UnreadableRecord) Title() bool { return u.Seq == 0 }

// Index describes one index a store keeps, for `chatbox migrate`.
type Index struct {
	Table  string // the collection or table
	Name   string
	Keys   string // e.g. "session_id: 1, seq: 1" or "session_id, seq"
	Unique bool
}

// Migrator creates what a store's queries rely on and says what it has.
type Migrator interface {
	// Migrate creates the schema and indexes, idempotently.
	Migrate(ctx context.Context) error
	// Indexes lists the indexes the store has.
	Indexes(ctx context.Context) ([]Index, error)
}

// Importer writes records exactly as another store holds them, for
// `chatbox copy`. Both methods replace what they find under the same ids,
// so a copy that was interrupted can run again.
type Importer interface {
	// PutSession writes every field of s as given, including LastSeq,
	// MessageCount, token totals and Version.
	PutSession(ctx context.Context, s *Session) error
	// PutMessages writes each message as given, at its own seq, with no
	// fence and without touching its session's header.
	PutMessages(ctx context.Context, msgs []Message) error
}
