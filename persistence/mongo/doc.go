// Package mongo is the persistence.Store over MongoDB, through
// mongo-driver v2. The same code serves a real MongoDB (replica set or
// sharded) and the in-process FerretDB of persistence/embedded, so it uses
// only what both support: single-document CRUD, sort and limit, indexes,
// $set/$inc/$max and $or filters. No transactions, change streams,
// $lookup or $facet.
//
// # Documents
//
// Two collections. sessions: _id is the session id; the title is stored
// only encrypted (title_key_id, title_ct). messages: _id is the message id;
// session_id and seq are unique together; the text is stored only encrypted
// (key_id, ct). Times are BSON datetimes, truncated to milliseconds before
// they are written, so that what a caller holds, what is stored and what a
// page cursor carries compare exactly. They are read back in UTC.
//
// # Fenced appends without transactions
//
// AppendMessage first reads the session's last_seq (it must be seq-1: no
// gaps), then inserts the message under the unique {session_id, seq} index,
// which settles a race between two writers of the same seq, then advances
// the session with $max (last_seq and message_count to seq). A message is
// committed once last_seq covers its seq; readers see only committed
// messages (ListMessages stops at last_seq). Because the two writes are not
// atomic, a writer can die between them and leave an uncommitted message
// occupying its seq. Nothing deletes that message behind its writer's back,
// since the writer may only be slow: the next writer to hit it on the unique
// index completes the dead writer's append ($max is idempotent) and answers
// ErrConflict, so that it reloads from the store and carries on at the next
// seq.
//
// Every hot write addresses a document by _id alone: FerretDB's SQLite
// backend answers only that lookup (and unique-index checks) from an index,
// and scans the collection for any other filter.
//
// # Unreadable text
//
// A message or title whose key is no longer configured, or whose ciphertext
// does not authenticate (damaged, or copied from another record), reads with
// empty text; the record is otherwise returned and a warning naming the
// session and seq (never any text) is logged. A list is never failed for
// one unreadable record.
//
// # Concurrency
//
// A Store is safe for concurrent use by any number of goroutines. Every call
// is bounded by Options.Timeout. Database trouble (no server, network
// errors, timeouts) answers an error wrapping persistence.ErrUnavailable.
package mongo
