package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// Page sizes of ListMessages, as in the MongoDB store.
const (
	defaultMessageLimit = 100
	maxMessageLimit     = 1000
)

// scanMessage reads one row of messageCols and opens its text; a text that
// cannot be opened is logged and the message marked Unreadable.
func (s *Store) scanMessage(ctx context.Context, row scanner) (persistence.Message, error) {
	var (
		m            persistence.Message
		role, status string
		keyID        string
		ct           []byte
		created      int64
		refs         string
	)
	err := row.Scan(&m.ID, &m.SessionID, &m.Seq, &role, &m.Author, &m.AuthorID, &keyID, &ct, &status,
		&created, &m.TokensIn, &m.TokensOut, &m.ParentID, &refs)
	if err != nil {
		return m, err
	}
	if m.Attachments, err = decodeRefs(refs); err != nil {
		return m, fmt.Errorf("message %d of session %s: attachments: %w", m.Seq, m.SessionID, err)
	}
	m.Role, m.Status, m.CreatedAt = persistence.Role(role), persistence.Status(status), fromMillis(created)
	text, err := s.keys.Open(keyID, ct, persistence.MessageAD(m.SessionID, m.Seq))
	if err != nil {
		s.unreadable(ctx, err, "message text unreadable", "session_id", m.SessionID, "seq", m.Seq, "key_id", keyID)
		m.Unreadable = true
	}
	m.Text = string(text)
	return m, nil
}

// messageArgs are the values of messageCols for m, its text sealed.
func (s *Store) messageArgs(m *persistence.Message) []any {
	keyID, ct := s.keys.Seal([]byte(m.Text), persistence.MessageAD(m.SessionID, m.Seq))
	return []any{m.ID, m.SessionID, m.Seq, string(m.Role), m.Author, m.AuthorID, keyID, ct,
		string(m.Status), ms(m.CreatedAt).UnixMilli(), m.TokensIn, m.TokensOut, m.ParentID, encodeRefs(m.Attachments)}
}

// AppendMessage stores m at m.Seq and advances the session to it, in one
// transaction: the message row, last_seq (only from m.Seq-1),
// message_count, updated_at (forward to m.CreatedAt), head_id (m.ID) and the
// token totals (a note, persistence.RoleNote, moves neither head_id nor
// message_count) (plus m's usage) commit together or not at all. An empty m.ID is set to
// a fresh random id, and a zero CreatedAt to now; CreatedAt is truncated to
// milliseconds in m.
//
// It answers ErrConflict when the session's last_seq is not m.Seq-1 (or
// the id is taken by another message), ErrNotFound when the session does
// not exist. Repeating an append with the same m.ID after an
// ErrUnavailable is safe: it succeeds if the first attempt did.
func (s *Store) AppendMessage(ctx context.Context, m *persistence.Message) error {
	if m.SessionID == "" || m.Seq < 1 {
		return fmt.Errorf("append message %d to session %q: need a session id and a seq from 1", m.Seq, m.SessionID)
	}
	if m.ID == "" {
		m.ID = rand.Text()
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	m.CreatedAt = ms(m.CreatedAt)
	// Sealing happens here, on the caller's goroutine, not the writer's.
	args := s.messageArgs(m)
	id, sid, seq, refs := m.ID, m.SessionID, m.Seq, m.Attachments
	created, tin, tout := m.CreatedAt.UnixMilli(), m.TokensIn, m.TokensOut
	counted := m.Role != persistence.RoleNote // a note moves neither head nor count

	ctx, cancel := s.call(ctx)
	defer cancel()
	what := fmt.Sprintf("append message %d to session %s", seq, sid)
	return s.write(ctx, what, func(t *wtx) error {
		// The fence first: in the common case it holds, and the insert
		// follows; if the insert fails, the savepoint takes the advance
		// back with it.
		res, err := t.exec(t.st.advanceSession, sid, seq, created, tin, tout, id, counted)
		if err != nil {
			return wrap(err, "%s: advance last_seq", what)
		}
		if affected(res) == 1 {
			if _, err := t.exec(t.st.insertMessage, args...); err != nil {
				return wrap(err, "%s", what) // a unique index says the id or seq is taken: ErrConflict
			}
			for _, a := range refs {
				if _, err := t.c.ExecContext(t.ctx, qAssignAttachment, a.ID, sid); err != nil {
					return wrap(err, "%s: assign attachment %s", what, a.ID)
				}
			}
			return nil
		}
		var last int64
		switch err := t.queryRow(t.st.lastSeq, sid).Scan(&last); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s: %w", what, persistence.ErrNotFound)
		case err != nil:
			return wrap(err, "%s: read last_seq", what)
		case last >= seq:
			return alreadyAppended(t, what, id, sid, seq)
		}
		return fmt.Errorf("%s: last_seq is %d: %w", what, last, persistence.ErrConflict)
	})
}

// alreadyAppended answers an append whose seq the session has passed: a
// repeat of one that succeeded (the same message id at that seq) is a
// success, anything else lost the seq.
func alreadyAppended(t *wtx, what, id, sid string, seq int64) error {
	var hasSID string
	var hasSeq int64
	switch err := t.queryRow(t.st.messageByID, id).Scan(&hasSID, &hasSeq); {
	case err == nil && hasSID == sid && hasSeq == seq:
		return nil
	case err != nil && !errors.Is(err, sql.ErrNoRows):
		return wrap(err, "%s: look for an earlier attempt", what)
	}
	return fmt.Errorf("%s: seq taken: %w", what, persistence.ErrConflict)
}

// UpdateMessage rewrites the text, status and usage of the message at
// (m.SessionID, m.Seq), which must also be m.ID if that is set, and moves
// the session's token totals by the change in usage, in one transaction.
// ErrNotFound when there is no such message.
func (s *Store) UpdateMessage(ctx context.Context, m *persistence.Message) error {
	keyID, ct := s.keys.Seal([]byte(m.Text), persistence.MessageAD(m.SessionID, m.Seq))
	id, sid, seq, status, tin, tout := m.ID, m.SessionID, m.Seq, string(m.Status), m.TokensIn, m.TokensOut

	ctx, cancel := s.call(ctx)
	defer cancel()
	what := fmt.Sprintf("update message %d of session %s", seq, sid)
	return s.write(ctx, what, func(t *wtx) error {
		var (
			rowid         int64
			hasID         string
			oldIn, oldOut int64
		)
		err := t.queryRow(t.st.messageUsage, sid, seq).Scan(&rowid, &hasID, &oldIn, &oldOut)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s: %w", what, persistence.ErrNotFound)
		case err != nil:
			return wrap(err, "%s", what)
		case id != "" && hasID != id:
			return fmt.Errorf("%s: it is message %s, not %s: %w", what, hasID, id, persistence.ErrNotFound)
		}
		if _, err := t.exec(t.st.updateMessage, rowid, keyID, ct, status, tin, tout); err != nil {
			return wrap(err, "%s", what)
		}
		if tin == oldIn && tout == oldOut {
			return nil
		}
		if _, err := t.exec(t.st.addSessionTokens, sid, tin-oldIn, tout-oldOut); err != nil {
			return wrap(err, "%s: add its usage to the session", what)
		}
		return nil
	})
}

// ListMessages returns up to limit messages with seq > afterSeq, in seq
// order; limit defaults to 100 and is capped at 1000. An unknown session
// answers ErrNotFound.
func (s *Store) ListMessages(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]persistence.Message, error) {
	what := "list messages of session " + sessionID
	if err := s.open(what); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = defaultMessageLimit
	}
	limit = min(limit, maxMessageLimit)

	ctx, cancel := s.call(ctx)
	defer cancel()
	rows, err := s.r.listMessages.QueryContext(ctx, sessionID, afterSeq, limit)
	if err != nil {
		return nil, wrap(err, "%s", what)
	}
	defer rows.Close()
	out := []persistence.Message{}
	for rows.Next() {
		m, err := s.scanMessage(ctx, rows)
		if err != nil {
			return nil, wrap(err, "%s", what)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "%s", what)
	}
	if len(out) > 0 {
		return out, nil
	}
	// Nothing after afterSeq: an empty page, or no such session.
	var one int
	if err := s.r.sessionExists.QueryRowContext(ctx, sessionID).Scan(&one); err != nil {
		return nil, wrap(err, "%s", what)
	}
	return out, nil
}
