package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/chatbox/chatbox/persistence"
)

// The schema. Everything a query filters or sorts on is a real column with
// an index; the text is only stored encrypted (key id beside ciphertext).
// Times are integer milliseconds since the Unix epoch, UTC.
//
// sessions is a WITHOUT ROWID table keyed by id: every hot write addresses
// one session by id, and each secondary index carries id as its last key,
// which is the keyset pagination tie-break. taken_over is generated from
// mode so that the admin's taken_over filter is an indexed equality.
//
// messages is a rowid table, so appends go to the end of its b-tree; the
// unique (session_id, seq) index is the append fence and the ListMessages
// range, the unique id index makes a repeated append recognizable.
//
// totals holds Stats in one row, kept by triggers on sessions in the same
// transaction as every change, so Stats reads one row instead of summing
// the table.
var schemaV1 = []string{
	`CREATE TABLE IF NOT EXISTS sessions (
		id             TEXT    NOT NULL PRIMARY KEY,
		user_id        TEXT    NOT NULL,
		title_key_id   TEXT    NOT NULL,
		title_ct       BLOB    NOT NULL,
		model          TEXT    NOT NULL,
		status         TEXT    NOT NULL,
		mode           TEXT    NOT NULL,
		taken_over     INTEGER NOT NULL GENERATED ALWAYS AS (mode = 'human') VIRTUAL,
		admin_id       TEXT    NOT NULL,
		admin_name     TEXT    NOT NULL,
		help_requested INTEGER NOT NULL,
		message_count  INTEGER NOT NULL,
		last_seq       INTEGER NOT NULL,
		tokens_in      INTEGER NOT NULL,
		tokens_out     INTEGER NOT NULL,
		share_id       TEXT    NOT NULL,
		created_at     INTEGER NOT NULL,
		updated_at     INTEGER NOT NULL,
		version        INTEGER NOT NULL,
		head_id        TEXT    NOT NULL DEFAULT '',
		help_requested_at INTEGER NOT NULL DEFAULT 0,
		rating         INTEGER NOT NULL DEFAULT 0,
		rating_key_id  TEXT    NOT NULL DEFAULT '',
		rating_ct      BLOB    NOT NULL DEFAULT x''
	) STRICT, WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS messages (
		id         TEXT    NOT NULL,
		session_id TEXT    NOT NULL,
		seq        INTEGER NOT NULL,
		role       TEXT    NOT NULL,
		author     TEXT    NOT NULL,
		author_id  TEXT    NOT NULL,
		key_id     TEXT    NOT NULL,
		ct         BLOB    NOT NULL,
		status     TEXT    NOT NULL,
		created_at INTEGER NOT NULL,
		tokens_in  INTEGER NOT NULL,
		tokens_out INTEGER NOT NULL,
		parent_id  TEXT    NOT NULL DEFAULT '',
		attachments TEXT   NOT NULL DEFAULT ''
	) STRICT`,
	`CREATE TABLE IF NOT EXISTS totals (
		id             INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
		sessions       INTEGER NOT NULL,
		messages       INTEGER NOT NULL,
		tokens_in      INTEGER NOT NULL,
		tokens_out     INTEGER NOT NULL,
		help_requested INTEGER NOT NULL,
		taken_over     INTEGER NOT NULL,
		ratings        INTEGER NOT NULL DEFAULT 0,
		rating_sum     INTEGER NOT NULL DEFAULT 0
	) STRICT`,
	`INSERT INTO totals VALUES (1, 0, 0, 0, 0, 0, 0, 0, 0) ON CONFLICT DO NOTHING`,
	// audit is the trail of admin actions and users' erasures of their own
	// data (CONTRACT §8); an erased session's entries stay with session_id
	// emptied.
	`CREATE TABLE IF NOT EXISTS audit (
		id         TEXT    NOT NULL,
		at         INTEGER NOT NULL,
		admin_id   TEXT    NOT NULL,
		admin_name TEXT    NOT NULL,
		role       TEXT    NOT NULL,
		action     TEXT    NOT NULL,
		session_id TEXT    NOT NULL,
		user_id    TEXT    NOT NULL
	) STRICT`,
	// attachments are uploaded files' metadata (CONTRACT §9), the
	// transcript sealed; attachment_chunks their bytes, sealed one chunk a
	// row (a rowid table: the rows are large). session_id is empty until a
	// message carries the attachment.
	`CREATE TABLE IF NOT EXISTS attachments (
		id                TEXT    NOT NULL PRIMARY KEY,
		user_id           TEXT    NOT NULL,
		session_id        TEXT    NOT NULL,
		name              TEXT    NOT NULL,
		type              TEXT    NOT NULL,
		size              INTEGER NOT NULL,
		chunks            INTEGER NOT NULL,
		created_at        INTEGER NOT NULL,
		transcript_key_id TEXT    NOT NULL,
		transcript_ct     BLOB    NOT NULL
	) STRICT, WITHOUT ROWID`,
	`CREATE TABLE IF NOT EXISTS attachment_chunks (
		attachment_id TEXT    NOT NULL,
		n             INTEGER NOT NULL,
		key_id        TEXT    NOT NULL,
		ct            BLOB    NOT NULL
	) STRICT`,
	// session_conversations holds the conversation id of a vendor that
	// keeps its own history (Dify), one per session.
	`CREATE TABLE IF NOT EXISTS session_conversations (
		session_id      TEXT NOT NULL PRIMARY KEY,
		conversation_id TEXT NOT NULL
	) STRICT, WITHOUT ROWID`,
	`CREATE TRIGGER IF NOT EXISTS sessions_totals_insert AFTER INSERT ON sessions BEGIN
		UPDATE totals SET
			sessions = sessions + 1,
			messages = messages + NEW.message_count,
			tokens_in = tokens_in + NEW.tokens_in,
			tokens_out = tokens_out + NEW.tokens_out,
			help_requested = help_requested + NEW.help_requested,
			taken_over = taken_over + NEW.taken_over,
			ratings = ratings + (NEW.rating > 0),
			rating_sum = rating_sum + NEW.rating
		WHERE id = 1;
	END`,
	`CREATE TRIGGER IF NOT EXISTS sessions_totals_delete AFTER DELETE ON sessions BEGIN
		UPDATE totals SET
			sessions = sessions - 1,
			messages = messages - OLD.message_count,
			tokens_in = tokens_in - OLD.tokens_in,
			tokens_out = tokens_out - OLD.tokens_out,
			help_requested = help_requested - OLD.help_requested,
			taken_over = taken_over - OLD.taken_over,
			ratings = ratings - (OLD.rating > 0),
			rating_sum = rating_sum - OLD.rating
		WHERE id = 1;
	END`,
	`CREATE TRIGGER IF NOT EXISTS sessions_totals_update
	AFTER UPDATE OF message_count, tokens_in, tokens_out, help_requested, mode, rating ON sessions BEGIN
		UPDATE totals SET
			messages = messages + NEW.message_count - OLD.message_count,
			tokens_in = tokens_in + NEW.tokens_in - OLD.tokens_in,
			tokens_out = tokens_out + NEW.tokens_out - OLD.tokens_out,
			help_requested = help_requested + NEW.help_requested - OLD.help_requested,
			taken_over = taken_over + NEW.taken_over - OLD.taken_over,
			ratings = ratings + (NEW.rating > 0) - (OLD.rating > 0),
			rating_sum = rating_sum + NEW.rating - OLD.rating
		WHERE id = 1;
	END`,
}

// indexes are every index the queries rely on; queries.go names, for each
// query, the one it uses. Migrate creates any that is missing.
var indexes = []string{
	// The append fence (a seq is taken once per session) and ListMessages:
	// session_id = ? AND seq > ? ORDER BY seq.
	`CREATE UNIQUE INDEX IF NOT EXISTS messages_session_seq ON messages (session_id, seq)`,
	// A repeated append is recognized by its message id; PutMessages
	// upserts on it.
	`CREATE UNIQUE INDEX IF NOT EXISTS messages_id ON messages (id)`,
	// Rekey: messages not under the current key, in keyset order.
	`CREATE INDEX IF NOT EXISTS messages_key ON messages (key_id, id)`,
	// ListSessions, and ListAllSessions filtered by user (under another
	// sort, that user's sessions are sorted: a user has few).
	`CREATE INDEX IF NOT EXISTS sessions_user_updated ON sessions (user_id, updated_at, id)`,
	// ListAllSessions, each index named by adminIndex: unfiltered (or by
	// created_at range, or by status, which has one value in practice)
	// under each sort, and filtered by the help flag or takeover under the
	// two time sorts. Other filters of the same query are checked on the
	// rows the index yields, in order. Every append moves updated_at and
	// message_count, and so rewrites its session's entry in each index that
	// holds either: the ones of (filter, message_count) are left out as
	// the rarest view for that cost.
	`CREATE INDEX IF NOT EXISTS sessions_updated ON sessions (updated_at, id)`,
	`CREATE INDEX IF NOT EXISTS sessions_created ON sessions (created_at, id)`,
	`CREATE INDEX IF NOT EXISTS sessions_count ON sessions (message_count, id)`,
	`CREATE INDEX IF NOT EXISTS sessions_help_updated ON sessions (help_requested, updated_at, id)`,
	`CREATE INDEX IF NOT EXISTS sessions_help_created ON sessions (help_requested, created_at, id)`,
	`CREATE INDEX IF NOT EXISTS sessions_taken_updated ON sessions (taken_over, updated_at, id)`,
	`CREATE INDEX IF NOT EXISTS sessions_taken_created ON sessions (taken_over, created_at, id)`,
	// ListQueue: the sessions waiting for a human, oldest request first.
	`CREATE INDEX IF NOT EXISTS sessions_queue ON sessions (help_requested, help_requested_at, id)`,
	// GetSessionByShareID; only live links are indexed.
	`CREATE INDEX IF NOT EXISTS sessions_share ON sessions (share_id) WHERE share_id <> ''`,
	// Rekey: titles not under the current key, in keyset order.
	`CREATE INDEX IF NOT EXISTS sessions_title_key ON sessions (title_key_id, id)`,
	// ListAudit, newest first in keyset order; ids are unique.
	`CREATE INDEX IF NOT EXISTS audit_at ON audit (at, id)`,
	`CREATE UNIQUE INDEX IF NOT EXISTS audit_id ON audit (id)`,
	// EraseUser empties the session id of the erased sessions' entries.
	`CREATE INDEX IF NOT EXISTS audit_session ON audit (session_id)`,
	// An attachment's chunks in order; one chunk per place.
	`CREATE UNIQUE INDEX IF NOT EXISTS attachment_chunks_place ON attachment_chunks (attachment_id, n)`,
	// DeleteSession and EraseUser delete attachments by session and by user.
	`CREATE INDEX IF NOT EXISTS attachments_session ON attachments (session_id)`,
	`CREATE INDEX IF NOT EXISTS attachments_user ON attachments (user_id)`,
}

// migrations[i] takes the schema from version i to i+1; the version is
// PRAGMA user_version.
var migrations = [][]string{
	append(append([]string(nil), schemaV1...), indexes...),
}

// schemaVersion is the version this code writes.
var schemaVersion = len(migrations)

// execer is a connection or transaction to run DDL on.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// migrate brings the schema on x to schemaVersion, in one transaction, and
// creates any index missing from it. It is idempotent.
func migrate(ctx context.Context, c *sql.Conn) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	if err := migrateIn(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// migrateIn is migrate inside a transaction the caller owns.
func migrateIn(ctx context.Context, x execer) error {
	var v int
	if err := x.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("migrate: the database has schema version %d, newer than this chatbox's %d: run a newer chatbox", v, schemaVersion)
	}
	for i := v; i < schemaVersion; i++ {
		for _, q := range migrations[i] {
			if _, err := x.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate to schema version %d: %w", i+1, err)
			}
		}
	}
	if v == schemaVersion {
		for _, q := range indexes {
			if _, err := x.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migrate: create index: %w", err)
			}
		}
		return nil
	}
	// PRAGMA takes no parameters; the value is an int of ours.
	if _, err := x.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("migrate: write schema version: %w", err)
	}
	return nil
}

// Migrate creates the schema and indexes, idempotently. Open has done it
// already; `chatbox migrate` calls it to report and repair.
func (s *Store) Migrate(ctx context.Context) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.write(ctx, "migrate", func(t *wtx) error {
		return migrateIn(t.ctx, t.c)
	})
}

// Indexes lists the indexes of the sessions and messages tables, as
// sqlite_master holds them; Keys lists the indexed columns in order.
func (s *Store) Indexes(ctx context.Context) ([]persistence.Index, error) {
	if err := s.open("list indexes"); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	rows, err := s.rdb.QueryContext(ctx, qIndexes)
	if err != nil {
		return nil, wrap(err, "list indexes")
	}
	var out []persistence.Index
	for rows.Next() {
		var ix persistence.Index
		if err := rows.Scan(&ix.Table, &ix.Name, &ix.Unique); err != nil {
			rows.Close()
			return nil, wrap(err, "list indexes")
		}
		out = append(out, ix)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "list indexes")
	}
	for i := range out {
		cols, err := s.indexColumns(ctx, out[i].Name)
		if err != nil {
			return nil, err
		}
		out[i].Keys = strings.Join(cols, ", ")
	}
	return out, nil
}

func (s *Store) indexColumns(ctx context.Context, index string) ([]string, error) {
	rows, err := s.rdb.QueryContext(ctx, qIndexColumns, index)
	if err != nil {
		return nil, wrap(err, "list columns of index %s", index)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, wrap(err, "list columns of index %s", index)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "list columns of index %s", index)
	}
	return cols, nil
}
