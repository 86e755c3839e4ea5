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
// # Fenced writes without transactions
//
// AppendMessage takes two round trips when nothing races it. It first
// inserts the message under the unique {session_id, seq} index, which
// settles a race between two writers of the same seq, then commits it with
// one update of the session conditional on last_seq being seq-1: $set
// last_seq to seq and head_id to the message's id, $inc message_count and the token totals by the message's
// usage, $max updated_at. A message is committed once last_seq covers its
// seq; readers see only committed messages (ListMessages stops at
// last_seq). When the condition fails, one read of the session says why: a
// repeat of an append that succeeded (the session already covers seq, and
// the unique index says the message there is this one) succeeds; a gap, or
// a session that is gone, deletes the inserted message again and answers
// ErrConflict or ErrNotFound, leaving nothing behind.
//
// Because the two writes are not atomic, a writer can die between them and
// leave an uncommitted message occupying its seq. Nothing deletes that
// message behind its writer's back, since the writer may only be slow: the
// next writer to hit it on the unique index completes the dead writer's
// append (the same conditional update, with that message's usage; the
// condition makes sure it is counted once) and answers ErrConflict, so that
// it reloads from the store and carries on at the next seq.
//
// UpdateSession is one update conditional on _id and version ($set of the
// header and version+1); when it matches nothing, one read tells
// ErrNotFound from ErrConflict. A session written by v1.0 has no version
// field and counts as version 1. UpdateMessage is one findAndModify that
// returns the old usage, plus one $inc of the session's totals when the
// usage changed. So a streamed reply costs O(1) round trips: two for its
// append, one or two per checkpoint.
//
// The fences rely on MongoDB applying each single-document update
// atomically. FerretDB v1 does not (it reads, then writes the whole
// document); persistence/embedded passes it one command at a time so that
// it does.
//
// Every hot write addresses a document by _id (with further conditions
// beside it): FerretDB's SQLite backend answers only that lookup (and
// unique-index checks) from an index, and scans the collection for any
// other filter.
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
