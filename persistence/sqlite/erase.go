package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// Page sizes of the audit list.
const (
	defaultAuditLimit = 50
	maxAuditLimit     = 200
)

// sortAuditAt names the audit list's order in its cursors.
const sortAuditAt = "audit_at"

// AppendAudit stores e. A zero At is now; At is truncated to milliseconds
// in e. An id already stored answers ErrConflict.
func (s *Store) AppendAudit(ctx context.Context, e *persistence.AuditEntry) error {
	if e.ID == "" {
		return errors.New("append audit entry: no id")
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = ms(e.At)
	args := auditArgs(e)
	ctx, cancel := s.call(ctx)
	defer cancel()
	what := "append audit entry " + e.ID
	return s.write(ctx, what, func(t *wtx) error {
		if _, err := t.c.ExecContext(t.ctx, qInsertAudit, args...); err != nil {
			return wrap(err, "%s", what)
		}
		return nil
	})
}

func auditArgs(e *persistence.AuditEntry) []any {
	return []any{e.ID, e.At.UnixMilli(), e.AdminID, e.AdminName, e.Role, e.Action, e.SessionID, e.UserID}
}

// ListAudit returns the audit trail newest first, keyset-paginated on
// (at, id).
func (s *Store) ListAudit(ctx context.Context, p persistence.Page) ([]persistence.AuditEntry, string, error) {
	const what = "list audit entries"
	if err := s.open(what); err != nil {
		return nil, "", err
	}
	limit := defaultAuditLimit
	if p.Limit > 0 {
		limit = min(p.Limit, maxAuditLimit)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var rows *sql.Rows
	var err error
	if p.Cursor == "" {
		rows, err = s.rdb.QueryContext(ctx, qListAuditFirst, limit+1)
	} else {
		c, cerr := persistence.DecodeCursor(p.Cursor, sortAuditAt, persistence.OrderDesc)
		if cerr != nil {
			return nil, "", fmt.Errorf("%s: %w", what, cerr)
		}
		rows, err = s.rdb.QueryContext(ctx, qListAuditAfter, c.Key, c.ID, limit+1)
	}
	if err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	defer rows.Close()
	out := make([]persistence.AuditEntry, 0, min(limit, 64))
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		var e persistence.AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.AdminID, &e.AdminName, &e.Role, &e.Action, &e.SessionID, &e.UserID); err != nil {
			return nil, "", wrap(err, "%s", what)
		}
		e.At = fromMillis(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	next := ""
	if more {
		last := &out[len(out)-1]
		next = persistence.EncodeCursor(persistence.Cursor{Sort: sortAuditAt, Order: persistence.OrderDesc, Key: last.At.UnixMilli(), ID: last.ID})
	}
	return out, next, nil
}

// EraseUser deletes the user's sessions, their messages and the user's
// attachments, empties the
// session id of the audit entries about them and stores record, all in one
// transaction; secure_delete zeroes what the deleted rows occupied. Then it
// compacts: VACUUM rebuilds the file from the live records only (the freed
// pages go back to the file system and no page of the old layout is left),
// and a checkpoint truncates the WAL, which held the rebuild and the old
// page images. Both run on the writer connection outside any transaction,
// within ctx but not the call timeout: VACUUM takes time in proportion to
// the size of the database, not of what was erased. A failed compaction is
// returned (the records are deleted already); erasing again runs it again.
func (s *Store) EraseUser(ctx context.Context, userID string, record *persistence.AuditEntry) (persistence.EraseResult, error) {
	var res persistence.EraseResult
	if record.ID == "" {
		return res, errors.New("erase user: the audit record has no id")
	}
	if record.At.IsZero() {
		record.At = time.Now()
	}
	record.At = ms(record.At)
	args := auditArgs(record)
	what := "erase user " + userID
	wctx, cancel := s.call(ctx)
	err := s.write(wctx, what, func(t *wtx) error {
		if _, err := t.c.ExecContext(t.ctx, qEraseAuditSessions, userID); err != nil {
			return wrap(err, "%s: audit entries", what)
		}
		if _, err := t.c.ExecContext(t.ctx, qEraseConversations, userID); err != nil {
			return wrap(err, "%s: conversation ids", what)
		}
		if _, err := t.c.ExecContext(t.ctx, qEraseChunks, userID); err != nil {
			return wrap(err, "%s: attachment chunks", what)
		}
		r, err := t.c.ExecContext(t.ctx, qEraseAttachments, userID)
		if err != nil {
			return wrap(err, "%s: attachments", what)
		}
		res.Attachments = affected(r)
		r, err = t.c.ExecContext(t.ctx, qEraseMessages, userID)
		if err != nil {
			return wrap(err, "%s: messages", what)
		}
		res.Messages = affected(r)
		if r, err = t.c.ExecContext(t.ctx, qEraseSessions, userID); err != nil {
			return wrap(err, "%s: sessions", what)
		}
		res.Sessions = affected(r)
		if _, err := t.c.ExecContext(t.ctx, qInsertAudit, args...); err != nil {
			return wrap(err, "%s: audit record", what)
		}
		return nil
	})
	cancel()
	if err != nil {
		return persistence.EraseResult{}, err
	}
	if err := s.compact(ctx); err != nil {
		return res, fmt.Errorf("%s: deleted, not yet compacted: %w", what, err)
	}
	return res, nil
}

// compact rebuilds the database file and truncates the WAL.
func (s *Store) compact(ctx context.Context) error {
	const what = "compact"
	if err := s.open(what); err != nil {
		return err
	}
	err := s.w.submit(&writeReq{ctx: ctx, what: what, done: make(chan error, 1),
		solo: func(ctx context.Context, c *sql.Conn) error {
			if _, err := c.ExecContext(ctx, qVacuum); err != nil {
				return wrap(err, "%s: vacuum", what)
			}
			return nil
		}})
	if err != nil {
		return err
	}
	return s.Checkpoint(ctx)
}
