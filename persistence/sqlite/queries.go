package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/chatbox/chatbox/persistence"
)

// Every statement the store runs is here (ListAllSessions' are built by
// adminQuery from a bounded set of shapes), so that the EXPLAIN QUERY PLAN
// test can enumerate them all and prove none scans a table.

// sessionCols are the columns scanSession reads, in its order.
const sessionCols = `id, user_id, title_key_id, title_ct, model, status, mode, admin_id, admin_name,
	help_requested, message_count, last_seq, tokens_in, tokens_out, share_id, created_at, updated_at, version, head_id,
	help_requested_at, rating, rating_key_id, rating_ct`

// messageCols are the columns scanMessage reads, in its order.
const messageCols = `id, session_id, seq, role, author, author_id, key_id, ct, status, created_at, tokens_in, tokens_out, parent_id, attachments`

// Reads, on the reader pool.
const (
	qPing = `SELECT 1`

	qGetSession = `SELECT ` + sessionCols + ` FROM sessions WHERE id = ?1`

	// The partial index sessions_share applies only when the query implies
	// its condition, hence the second term.
	qGetSessionByShare = `SELECT ` + sessionCols + ` FROM sessions WHERE share_id = ?1 AND share_id <> ''`

	qSessionExists = `SELECT 1 FROM sessions WHERE id = ?1`

	// Messages past the session's last_seq cannot exist through
	// AppendMessage, but PutMessages may import them; like the MongoDB
	// store, the lists stop at last_seq.
	qListMessages = `SELECT ` + messageCols + ` FROM messages
		WHERE session_id = ?1 AND seq > ?2 AND seq <= (SELECT last_seq FROM sessions WHERE id = ?1)
		ORDER BY seq LIMIT ?3`

	qListSessionsFirst = `SELECT ` + sessionCols + ` FROM sessions
		WHERE user_id = ?1
		ORDER BY updated_at DESC, id DESC LIMIT ?2`
	qListSessionsAfter = `SELECT ` + sessionCols + ` FROM sessions
		WHERE user_id = ?1 AND (updated_at, id) < (?3, ?4)
		ORDER BY updated_at DESC, id DESC LIMIT ?2`

	qStats = `SELECT sessions, messages, tokens_in, tokens_out, help_requested, taken_over, ratings, rating_sum FROM totals WHERE id = 1`

	qListQueue = `SELECT ` + sessionCols + ` FROM sessions INDEXED BY sessions_queue
		WHERE help_requested = 1 ORDER BY help_requested_at, id LIMIT ?1`

	// Rekey reads the records not under the current key (?1) in two
	// keyset-paginated ranges, below it and above it, each from an index.
	qRekeyMessagesBelow = `SELECT id, session_id, seq, key_id, ct FROM messages
		WHERE key_id < ?1 AND (key_id, id) > (?2, ?3) ORDER BY key_id, id LIMIT ?4`
	qRekeyMessagesAbove = `SELECT id, session_id, seq, key_id, ct FROM messages
		WHERE key_id > ?1 AND (key_id, id) > (?2, ?3) ORDER BY key_id, id LIMIT ?4`
	qRekeyTitlesBelow = `SELECT id, id, 0, title_key_id, title_ct FROM sessions
		WHERE title_key_id < ?1 AND (title_key_id, id) > (?2, ?3) ORDER BY title_key_id, id LIMIT ?4`
	qRekeyTitlesAbove = `SELECT id, id, 0, title_key_id, title_ct FROM sessions
		WHERE title_key_id > ?1 AND (title_key_id, id) > (?2, ?3) ORDER BY title_key_id, id LIMIT ?4`
	qRekeyMessagesLeft = `SELECT (SELECT count(*) FROM messages WHERE key_id < ?1) + (SELECT count(*) FROM messages WHERE key_id > ?1)`
	qRekeyTitlesLeft   = `SELECT (SELECT count(*) FROM sessions WHERE title_key_id < ?1) + (SELECT count(*) FROM sessions WHERE title_key_id > ?1)`

	// Maintenance: the schema tables are small and scanned by design.
	qIndexes = `SELECT m.tbl_name, m.name, il."unique" FROM sqlite_schema AS m
		JOIN pragma_index_list(m.tbl_name) AS il ON il.name = m.name
		WHERE m.type = 'index' AND m.tbl_name IN ('sessions', 'messages')
		ORDER BY m.tbl_name, m.name`
	qIndexColumns = `SELECT name FROM pragma_index_info(?1) ORDER BY seqno`
)

// Writes, on the writer's connection inside a group commit.
const (
	qBegin      = `BEGIN IMMEDIATE`
	qCommit     = `COMMIT`
	qRollback   = `ROLLBACK`
	qSavepoint  = `SAVEPOINT request`
	qRollbackTo = `ROLLBACK TO request`
	qRelease    = `RELEASE request`

	qInsertSession = `INSERT INTO sessions (` + sessionCols + `)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)`

	// PutSession: every field as given, over whatever has the id.
	qUpsertSession = qInsertSession + ` ON CONFLICT (id) DO UPDATE SET
		user_id = excluded.user_id, title_key_id = excluded.title_key_id, title_ct = excluded.title_ct,
		model = excluded.model, status = excluded.status, mode = excluded.mode,
		admin_id = excluded.admin_id, admin_name = excluded.admin_name,
		help_requested = excluded.help_requested, message_count = excluded.message_count,
		last_seq = excluded.last_seq, tokens_in = excluded.tokens_in, tokens_out = excluded.tokens_out,
		share_id = excluded.share_id, created_at = excluded.created_at, updated_at = excluded.updated_at,
		version = excluded.version, head_id = excluded.head_id,
		help_requested_at = excluded.help_requested_at, rating = excluded.rating,
		rating_key_id = excluded.rating_key_id, rating_ct = excluded.rating_ct`

	// The header fence: only from the version the caller read.
	qUpdateSession = `UPDATE sessions SET
		title_key_id = ?3, title_ct = ?4, model = ?5, status = ?6, mode = ?7,
		admin_id = ?8, admin_name = ?9, help_requested = ?10, share_id = ?11,
		updated_at = max(updated_at, ?12), version = version + 1,
		help_requested_at = ?13, rating = ?14, rating_key_id = ?15, rating_ct = ?16
		WHERE id = ?1 AND version = ?2`

	qSessionVersion = `SELECT version FROM sessions WHERE id = ?1`

	qDeleteMessages = `DELETE FROM messages WHERE session_id = ?1`
	qDeleteSession  = `DELETE FROM sessions WHERE id = ?1`

	qLastSeq = `SELECT last_seq FROM sessions WHERE id = ?1`

	qMessageByID = `SELECT session_id, seq FROM messages WHERE id = ?1`

	qInsertMessage = `INSERT INTO messages (` + messageCols + `)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)`

	// PutMessages: every field as given, over whatever has the id.
	qUpsertMessage = qInsertMessage + ` ON CONFLICT (id) DO UPDATE SET
		session_id = excluded.session_id, seq = excluded.seq, role = excluded.role,
		author = excluded.author, author_id = excluded.author_id, key_id = excluded.key_id,
		ct = excluded.ct, status = excluded.status, created_at = excluded.created_at,
		tokens_in = excluded.tokens_in, tokens_out = excluded.tokens_out, parent_id = excluded.parent_id,
		attachments = excluded.attachments`

	// The append fence: last_seq moves only from seq-1; the head moves to
	// the message appended, and it is counted, unless it is a note (?7 = 0).
	qAdvanceSession = `UPDATE sessions SET
		last_seq = ?2, message_count = message_count + ?7, updated_at = max(updated_at, ?3),
		tokens_in = tokens_in + ?4, tokens_out = tokens_out + ?5, head_id = iif(?7, ?6, head_id)
		WHERE id = ?1 AND last_seq = ?2 - 1`

	qMessageUsage = `SELECT rowid, id, tokens_in, tokens_out FROM messages WHERE session_id = ?1 AND seq = ?2`

	qUpdateMessage = `UPDATE messages SET key_id = ?2, ct = ?3, status = ?4, tokens_in = ?5, tokens_out = ?6
		WHERE rowid = ?1`

	qAddSessionTokens = `UPDATE sessions SET tokens_in = tokens_in + ?2, tokens_out = tokens_out + ?3 WHERE id = ?1`

	// Rekey's conditional rewrites: only if the record is still what was read.
	qRekeyMessage = `UPDATE messages SET key_id = ?4, ct = ?5 WHERE id = ?1 AND key_id = ?2 AND ct = ?3`
	qRekeyTitle   = `UPDATE sessions SET title_key_id = ?4, title_ct = ?5 WHERE id = ?1 AND title_key_id = ?2 AND title_ct = ?3`

	qCheckpoint = `PRAGMA wal_checkpoint(TRUNCATE)`
	// The checkpointer's: copies what it can without waiting for readers
	// or the writer, so it never blocks a commit.
	qPassiveCheckpoint = `PRAGMA wal_checkpoint(PASSIVE)`
)

// The audit trail and erasure (CONTRACT §8). They are rare, so they are
// not prepared ahead: erase.go runs them as they are.
const (
	auditCols = `id, at, admin_id, admin_name, role, action, session_id, user_id`

	qInsertAudit = `INSERT INTO audit (` + auditCols + `) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)`

	qListAuditFirst = `SELECT ` + auditCols + ` FROM audit ORDER BY at DESC, id DESC LIMIT ?1`
	qListAuditAfter = `SELECT ` + auditCols + ` FROM audit
		WHERE (at, id) < (?1, ?2) ORDER BY at DESC, id DESC LIMIT ?3`

	// Erasure: the entries about the user's sessions lose their session
	// id, then the messages and sessions go, all in one transaction.
	qEraseAuditSessions = `UPDATE audit SET session_id = ''
		WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?1)`
	qEraseMessages = `DELETE FROM messages WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?1)`
	qEraseSessions = `DELETE FROM sessions WHERE user_id = ?1`
	// DeleteSession: the entries about the deleted session lose its id.
	qForgetAuditSession = `UPDATE audit SET session_id = '' WHERE session_id = ?1`

	// Attachments (attachments.go): rare next to messages, not prepared.
	attachmentCols = `id, user_id, session_id, name, type, size, chunks, created_at, transcript_key_id, transcript_ct`

	qInsertAttachment = `INSERT INTO attachments (` + attachmentCols + `)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`
	qGetAttachment    = `SELECT ` + attachmentCols + ` FROM attachments WHERE id = ?1`
	qInsertChunk      = `INSERT INTO attachment_chunks (attachment_id, n, key_id, ct) VALUES (?1, ?2, ?3, ?4)`
	qGetChunk         = `SELECT n, key_id, ct FROM attachment_chunks WHERE attachment_id = ?1 AND n = ?2`
	qDeleteChunks     = `DELETE FROM attachment_chunks WHERE attachment_id = ?1`
	qSetTranscript    = `UPDATE attachments SET transcript_key_id = ?2, transcript_ct = ?3 WHERE id = ?1`
	qAssignAttachment = `UPDATE attachments SET session_id = ?2 WHERE id = ?1 AND session_id = ''`
	qGetConversation  = `SELECT conversation_id FROM session_conversations WHERE session_id = ?1`
	qSetConversation  = `INSERT INTO session_conversations (session_id, conversation_id) VALUES (?1, ?2)
		ON CONFLICT (session_id) DO UPDATE SET conversation_id = excluded.conversation_id`
	qDeleteConversation = `DELETE FROM session_conversations WHERE session_id = ?1`
	// DeleteSession: the session's attachments, chunks first.
	qDeleteSessionChunks = `DELETE FROM attachment_chunks
		WHERE attachment_id IN (SELECT id FROM attachments WHERE session_id = ?1)`
	qDeleteSessionAttachments = `DELETE FROM attachments WHERE session_id = ?1`
	// EraseUser: every attachment the user uploaded, and the
	// conversation ids of the user's sessions.
	qEraseChunks        = `DELETE FROM attachment_chunks WHERE attachment_id IN (SELECT id FROM attachments WHERE user_id = ?1)`
	qEraseAttachments   = `DELETE FROM attachments WHERE user_id = ?1`
	qEraseConversations = `DELETE FROM session_conversations WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?1)`

	// Compaction after an erasure: the file is rebuilt from the live
	// records only.
	qVacuum = `VACUUM`
)

// readStmts are the hot reads, prepared once on the reader pool. (The
// driver, modernc.org/sqlite v1.32, compiles a statement's text again on
// each execution; holding *sql.Stmt keeps the call sites the same for a
// driver that caches, and saves database/sql's own preparing.)
type readStmts struct {
	ping, getSession, getSessionByShare, sessionExists, listMessages,
	listSessionsFirst, listSessionsAfter, stats, listQueue *sql.Stmt
}

func (r *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	return prepareAll(ctx, db.PrepareContext, []stmtDef{
		{&r.ping, qPing}, {&r.getSession, qGetSession}, {&r.getSessionByShare, qGetSessionByShare},
		{&r.sessionExists, qSessionExists}, {&r.listMessages, qListMessages},
		{&r.listSessionsFirst, qListSessionsFirst}, {&r.listSessionsAfter, qListSessionsAfter},
		{&r.stats, qStats}, {&r.listQueue, qListQueue},
	})
}

func (r *readStmts) close() {
	closeAll(r.ping, r.getSession, r.getSessionByShare, r.sessionExists, r.listMessages,
		r.listSessionsFirst, r.listSessionsAfter, r.stats, r.listQueue)
}

// writeStmts are the writes, prepared once on the writer's connection.
type writeStmts struct {
	begin, commit, rollback, savepoint, rollbackTo, release,
	insertSession, upsertSession, updateSession, sessionVersion,
	deleteMessages, deleteSession, lastSeq, messageByID, insertMessage,
	upsertMessage, advanceSession, messageUsage, updateMessage,
	addSessionTokens, rekeyMessage, rekeyTitle *sql.Stmt
}

func (w *writeStmts) prepare(ctx context.Context, c *sql.Conn) error {
	return prepareAll(ctx, c.PrepareContext, []stmtDef{
		{&w.begin, qBegin}, {&w.commit, qCommit}, {&w.rollback, qRollback},
		{&w.savepoint, qSavepoint}, {&w.rollbackTo, qRollbackTo}, {&w.release, qRelease},
		{&w.insertSession, qInsertSession}, {&w.upsertSession, qUpsertSession},
		{&w.updateSession, qUpdateSession}, {&w.sessionVersion, qSessionVersion},
		{&w.deleteMessages, qDeleteMessages}, {&w.deleteSession, qDeleteSession},
		{&w.lastSeq, qLastSeq}, {&w.messageByID, qMessageByID}, {&w.insertMessage, qInsertMessage},
		{&w.upsertMessage, qUpsertMessage}, {&w.advanceSession, qAdvanceSession},
		{&w.messageUsage, qMessageUsage}, {&w.updateMessage, qUpdateMessage},
		{&w.addSessionTokens, qAddSessionTokens}, {&w.rekeyMessage, qRekeyMessage},
		{&w.rekeyTitle, qRekeyTitle},
	})
}

func (w *writeStmts) close() {
	closeAll(w.begin, w.commit, w.rollback, w.savepoint, w.rollbackTo, w.release,
		w.insertSession, w.upsertSession, w.updateSession, w.sessionVersion,
		w.deleteMessages, w.deleteSession, w.lastSeq, w.messageByID, w.insertMessage,
		w.upsertMessage, w.advanceSession, w.messageUsage, w.updateMessage,
		w.addSessionTokens, w.rekeyMessage, w.rekeyTitle)
}

type stmtDef struct {
	into  **sql.Stmt
	query string
}

func prepareAll(ctx context.Context, prepare func(context.Context, string) (*sql.Stmt, error), defs []stmtDef) error {
	for _, d := range defs {
		st, err := prepare(ctx, d.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", firstLine(d.query), err)
		}
		*d.into = st
	}
	return nil
}

func closeAll(stmts ...*sql.Stmt) {
	for _, st := range stmts {
		if st != nil {
			_ = st.Close()
		}
	}
}

func firstLine(q string) string {
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i]
	}
	return q
}

// adminShape is what decides the text of a ListAllSessions query: which
// filters are present, the sort, the order and whether a cursor applies.
// Values are bound as parameters, so there are few shapes (3 sorts × 2
// orders × 2 × 2^6 filter sets) and each is prepared once.
type adminShape struct {
	user, status, help, taken, from, to, after bool
	sort, order                                string
}

// sortSuffix names each sort in the names of its indexes.
var sortSuffix = map[string]string{persistence.SortUpdatedAt: "updated", persistence.SortCreatedAt: "created", persistence.SortMessageCount: "count"}

// adminIndex is the index a ListAllSessions query of shape sh walks, named
// in the query (INDEXED BY) rather than left to the planner, which without
// statistics cannot tell a selective filter (one user) from one that
// matches nearly every session (taken_over = false) and may choose to sort
// most of the table. The rules: a user's sessions are few, so a user
// filter uses the user's index (in order under the default sort, sorted
// otherwise). Else, under a time sort, the help or else the takeover
// filter (the help queue and the taken-over sessions are the admin's
// narrow views) uses its index, which yields exactly its matches in order.
// Else the sort's own index is walked in order, a created_at range included
// (under the created_at sort it is a range of that index).
func adminIndex(sh adminShape) string {
	timeSort := sh.sort != persistence.SortMessageCount
	switch {
	case sh.user:
		return "sessions_user_updated"
	case sh.help && timeSort:
		return "sessions_help_" + sortSuffix[sh.sort]
	case sh.taken && timeSort:
		return "sessions_taken_" + sortSuffix[sh.sort]
	}
	return "sessions_" + sortSuffix[sh.sort]
}

// adminQuery builds the ListAllSessions query of shape sh. Parameters, in
// order, are those of the present filters (user, status, help, taken, from,
// to), then, with a cursor, the sort key and id after which to start, then
// the limit.
func adminQuery(sh adminShape) string {
	var where []string
	n := 0
	param := func() string { n++; return fmt.Sprintf("?%d", n) }
	if sh.user {
		where = append(where, "user_id = "+param())
	}
	if sh.status {
		where = append(where, "status = "+param())
	}
	if sh.help {
		where = append(where, "help_requested = "+param())
	}
	if sh.taken {
		where = append(where, "taken_over = "+param())
	}
	if sh.from {
		where = append(where, "created_at >= "+param())
	}
	if sh.to {
		where = append(where, "created_at <= "+param())
	}
	dir, cmp := "DESC", "<"
	if sh.order == persistence.OrderAsc {
		dir, cmp = "ASC", ">"
	}
	if sh.after {
		k := param()
		where = append(where, fmt.Sprintf("(%s, id) %s (%s, %s)", sh.sort, cmp, k, param()))
	}
	var b strings.Builder
	b.WriteString("SELECT " + sessionCols + " FROM sessions INDEXED BY " + adminIndex(sh))
	if len(where) > 0 {
		b.WriteString(" WHERE " + strings.Join(where, " AND "))
	}
	fmt.Fprintf(&b, " ORDER BY %s %s, id %s LIMIT %s", sh.sort, dir, dir, param())
	return b.String()
}
