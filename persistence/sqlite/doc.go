// Package sqlite is the embedded default persistence.Store: one SQLite file
// (FileName) under the data directory, through modernc.org/sqlite (pure Go,
// no cgo). It implements the same contract as persistence/mongo and passes
// the same conformance suite (persistence/storetest), and also
// persistence.Rekeyer, Migrator and Importer for the operator commands.
//
// # Layout
//
// store.go opens the file (pragmas, the two database handles) and closes
// it; writer.go is the group-commit writer; schema.go the tables, indexes
// and migrations; queries.go every SQL statement; sessions.go and
// messages.go the Store methods; rekey.go, import.go and oldstore.go the
// operator side.
//
// # Storage
//
// WAL mode, synchronous=NORMAL (a process crash never loses a committed
// write; Options.Sync "full" adds power-loss durability), secure_delete on
// (deleted records are zeroed in the file; DeleteSession then checkpoints
// and truncates the WAL, which still held their old page images; Checkpoint
// does the same on demand), busy_timeout equal to the call timeout. Every
// filtered or sorted field is a real column with an index; ListAllSessions
// names the index it walks (see adminIndex), and a test runs EXPLAIN QUERY
// PLAN over every statement to prove that none scans a table. Stats reads
// one row of totals that triggers keep in step with the sessions table. Text and titles are stored only encrypted with
// the persistence.Keyring, bound to their record by persistence.MessageAD
// and TitleAD. Times are integer milliseconds, read back in UTC. The schema
// version is PRAGMA user_version.
//
// A directory holding the FerretDB-based store of Chatbox v1.0 is refused
// (ErrOldStore), never opened or changed.
//
// # Fencing
//
// Each write request is one transaction step on the single writer
// connection, so the fences of the contract are exact: AppendMessage
// inserts the message and advances last_seq (only from seq-1), head_id,
// message_count, updated_at and the token totals together or not at all;
// UpdateSession applies only at the caller's Version. Nothing is ever left
// half-written.
//
// # Concurrency
//
// A Store is safe for concurrent use by any number of goroutines; every
// call is bounded by Options.Timeout.
//
// Reads run on the caller's goroutine, on a pool of read-only (query_only)
// connections; in WAL mode they never wait for the writer.
//
// Writes go through one goroutine, the writer, which Open starts and Close
// stops and waits for. It alone owns the writer connection and its prepared
// statements. A write (AppendMessage, UpdateSession, ...) prepares its
// values on the caller's goroutine (encryption included), queues a request
// and waits. The writer takes every request waiting (up to maxBatch), runs
// them in one transaction, each under its own savepoint so that a request
// that fails (ErrConflict, say) rolls back alone, commits once, and then
// releases each caller with its own result; a failed COMMIT fails the whole
// batch. A caller whose ctx ends while its request still waits abandons it,
// and the request never runs; once the writer has taken a request, its
// result is definite and the caller waits for it. Options.OnBatch sees each
// batch's size, Writes counts the commits.
//
// Close sets the closed flag (calls after it answer ErrUnavailable), closes
// the queue under the writer's mutex, lets the writer run what was queued,
// waits for it, then closes both database handles. writer.mu guards the
// queue's closing against concurrent sends; Store.listMu guards the cache
// of ListAllSessions statements.
package sqlite
