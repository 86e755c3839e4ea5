package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// Page sizes of the session lists, as in the MongoDB store.
const (
	defaultSessionLimit = 50
	maxSessionLimit     = 200
)

// ms truncates t to what is stored, milliseconds, in UTC.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// fromMillis is a stored time read back.
func fromMillis(v int64) time.Time { return time.UnixMilli(v).UTC() }

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanSession reads one row of sessionCols and opens its title; a title
// that cannot be opened is logged and left empty.
func (s *Store) scanSession(ctx context.Context, row scanner) (persistence.Session, error) {
	var (
		x                persistence.Session
		titleKey         string
		titleCT          []byte
		created, updated int64
		help             bool
		helpAt           int64
		ratingKey        string
		ratingCT         []byte
	)
	err := row.Scan(&x.ID, &x.UserID, &titleKey, &titleCT, &x.Model, &x.Status, &x.Mode, &x.AdminID,
		&x.AdminName, &help, &x.MessageCount, &x.LastSeq, &x.TokensIn, &x.TokensOut, &x.ShareID,
		&created, &updated, &x.Version, &x.HeadID, &helpAt, &x.Rating, &ratingKey, &ratingCT)
	if err != nil {
		return x, err
	}
	x.HelpRequested = help
	x.CreatedAt, x.UpdatedAt = fromMillis(created), fromMillis(updated)
	if helpAt != 0 {
		x.HelpRequestedAt = fromMillis(helpAt)
	}
	if ratingKey != "" {
		comment, err := s.keys.Open(ratingKey, ratingCT, persistence.RatingAD(x.ID))
		if err != nil {
			s.unreadable(ctx, err, "rating comment unreadable", "session_id", x.ID, "key_id", ratingKey)
		}
		x.RatingComment = string(comment)
	}
	title, err := s.keys.Open(titleKey, titleCT, persistence.TitleAD(x.ID))
	if err != nil {
		s.unreadable(ctx, err, "session title unreadable", "session_id", x.ID, "key_id", titleKey)
	}
	x.Title = string(title)
	return x, nil
}

// sessionArgs are the values of sessionCols for x, its title sealed.
func (s *Store) sessionArgs(x *persistence.Session) []any {
	keyID, ct := s.keys.Seal([]byte(x.Title), persistence.TitleAD(x.ID))
	return append([]any{x.ID, x.UserID, keyID, ct, x.Model, x.Status, x.Mode, x.AdminID, x.AdminName,
		x.HelpRequested, x.MessageCount, x.LastSeq, x.TokensIn, x.TokensOut, x.ShareID,
		ms(x.CreatedAt).UnixMilli(), ms(x.UpdatedAt).UnixMilli(), x.Version, x.HeadID}, s.deskArgs(x)...)
}

// deskArgs are the values of the help desk's columns for x: the help
// request's time (0 for none), the rating and its comment, sealed only
// when there is one.
func (s *Store) deskArgs(x *persistence.Session) []any {
	var helpAt int64
	if !x.HelpRequestedAt.IsZero() {
		helpAt = ms(x.HelpRequestedAt).UnixMilli()
	}
	keyID, ct := "", []byte{}
	if x.RatingComment != "" {
		keyID, ct = s.keys.Seal([]byte(x.RatingComment), persistence.RatingAD(x.ID))
	}
	return []any{helpAt, x.Rating, keyID, ct}
}

// CreateSession inserts x. A zero CreatedAt is now and a zero UpdatedAt is
// CreatedAt; both are truncated to milliseconds in x itself, so that x
// holds what is stored. An empty Status is "active" and an empty Mode is
// persistence.ModeBot, also in x; the stored Version is 1, and so is
// x.Version once stored. An existing id answers ErrConflict.
func (s *Store) CreateSession(ctx context.Context, x *persistence.Session) error {
	if x.ID == "" {
		return errors.New("create session: no id")
	}
	if x.CreatedAt.IsZero() {
		x.CreatedAt = time.Now()
	}
	if x.UpdatedAt.IsZero() {
		x.UpdatedAt = x.CreatedAt
	}
	x.CreatedAt, x.UpdatedAt = ms(x.CreatedAt), ms(x.UpdatedAt)
	if x.Status == "" {
		x.Status = "active"
	}
	if x.Mode == "" {
		x.Mode = persistence.ModeBot
	}
	stored := *x
	stored.Version = 1
	args := s.sessionArgs(&stored)

	ctx, cancel := s.call(ctx)
	defer cancel()
	what := "create session " + x.ID
	err := s.write(ctx, what, func(t *wtx) error {
		if _, err := t.exec(t.st.insertSession, args...); err != nil {
			return wrap(err, "%s", what)
		}
		return nil
	})
	if err != nil {
		return err
	}
	x.Version = 1
	return nil
}

// GetSession returns the session or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*persistence.Session, error) {
	if err := s.open("get session"); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	x, err := s.scanSession(ctx, s.r.getSession.QueryRowContext(ctx, id))
	if err != nil {
		return nil, wrap(err, "get session %s", id)
	}
	return &x, nil
}

// GetSessionByShareID returns the session whose live share link is shareID,
// or ErrNotFound (also for an empty id, which never names a link).
func (s *Store) GetSessionByShareID(ctx context.Context, shareID string) (*persistence.Session, error) {
	if shareID == "" {
		return nil, fmt.Errorf("get shared session: %w", persistence.ErrNotFound)
	}
	if err := s.open("get shared session"); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	x, err := s.scanSession(ctx, s.r.getSessionByShare.QueryRowContext(ctx, shareID))
	if err != nil {
		return nil, wrap(err, "get shared session")
	}
	return &x, nil
}

// UpdateSession writes the header fields of an existing session if its
// stored version is still x.Version, and advances both by one. A stored
// version that differs answers ErrConflict, a missing session ErrNotFound;
// either way nothing is written. It leaves user_id, created_at, last_seq,
// message_count and the token totals alone: those belong to CreateSession
// and AppendMessage. updated_at only moves forward (a zero UpdatedAt means
// now): a session must never slide back behind a page cursor that already
// passed it.
func (s *Store) UpdateSession(ctx context.Context, x *persistence.Session) error {
	updated := x.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	keyID, ct := s.keys.Seal([]byte(x.Title), persistence.TitleAD(x.ID))
	args := append([]any{x.ID, x.Version, keyID, ct, x.Model, x.Status, x.Mode, x.AdminID, x.AdminName,
		x.HelpRequested, x.ShareID, ms(updated).UnixMilli()}, s.deskArgs(x)...)

	ctx, cancel := s.call(ctx)
	defer cancel()
	what := "update session " + x.ID
	err := s.write(ctx, what, func(t *wtx) error {
		res, err := t.exec(t.st.updateSession, args...)
		if err != nil {
			return wrap(err, "%s", what)
		}
		if affected(res) == 1 {
			return nil
		}
		var stored int64
		switch err := t.queryRow(t.st.sessionVersion, x.ID).Scan(&stored); {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("%s: %w", what, persistence.ErrNotFound)
		case err != nil:
			return wrap(err, "%s: read its version", what)
		}
		return fmt.Errorf("%s: stored version is %d, not %d: %w", what, stored, x.Version, persistence.ErrConflict)
	})
	if err != nil {
		return err
	}
	x.Version++
	return nil
}

// DeleteSession deletes the session, all its messages and the attachments
// assigned to it in one transaction, and empties the session id of the audit entries about it;
// ErrNotFound when there is no such session. secure_delete
// zeroes what the rows occupied in the database file, and a checkpoint
// right after the delete truncates the WAL, which still held their old page
// images, so the deleted bytes are gone from every file under Dir. If that
// checkpoint cannot finish (a long read holds the WAL), the delete stands,
// a warning is logged, and the next Checkpoint finishes the job.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	what := "delete session " + id
	err := s.write(ctx, what, func(t *wtx) error {
		res, err := t.exec(t.st.deleteSession, id)
		if err != nil {
			return wrap(err, "%s", what)
		}
		if affected(res) == 0 {
			return fmt.Errorf("%s: %w", what, persistence.ErrNotFound)
		}
		if _, err := t.exec(t.st.deleteMessages, id); err != nil {
			return wrap(err, "%s: delete its messages", what)
		}
		if _, err := t.c.ExecContext(t.ctx, qForgetAuditSession, id); err != nil {
			return wrap(err, "%s: its audit entries", what)
		}
		for _, q := range []string{qDeleteSessionChunks, qDeleteSessionAttachments, qDeleteConversation} {
			if _, err := t.c.ExecContext(t.ctx, q, id); err != nil {
				return wrap(err, "%s: its attachments", what)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.Checkpoint(ctx); err != nil {
		s.log.Warn("deleted session's old pages stay in the WAL until the next checkpoint",
			"session_id", id, "err", err)
	}
	return nil
}

// ListSessions returns userID's sessions, most recently updated first.
func (s *Store) ListSessions(ctx context.Context, userID string, p persistence.Page) ([]persistence.Session, string, error) {
	what := "list sessions of user " + userID
	if err := s.open(what); err != nil {
		return nil, "", err
	}
	limit := sessionLimit(p.Limit)
	ctx, cancel := s.call(ctx)
	defer cancel()
	var rows *sql.Rows
	var err error
	if p.Cursor == "" {
		rows, err = s.r.listSessionsFirst.QueryContext(ctx, userID, limit+1)
	} else {
		c, cerr := persistence.DecodeCursor(p.Cursor, persistence.SortUpdatedAt, persistence.OrderDesc)
		if cerr != nil {
			return nil, "", fmt.Errorf("%s: %w", what, cerr)
		}
		rows, err = s.r.listSessionsAfter.QueryContext(ctx, userID, limit+1, c.Key, c.ID)
	}
	if err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	list, next, err := s.readPage(ctx, rows, limit, persistence.SortUpdatedAt, persistence.OrderDesc)
	if err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	return list, next, nil
}

func sessionLimit(n int) int {
	if n <= 0 {
		return defaultSessionLimit
	}
	return min(n, maxSessionLimit)
}

// ListAllSessions is the admin's list: every filter of f narrows it (AND),
// sorted by f.Sort then id, both in f.Order.
func (s *Store) ListAllSessions(ctx context.Context, f persistence.AdminFilter, p persistence.Page) ([]persistence.Session, string, error) {
	const what = "list all sessions"
	if err := s.open(what); err != nil {
		return nil, "", err
	}
	sh := adminShape{sort: f.Sort, order: f.Order}
	if sh.sort == "" {
		sh.sort = persistence.SortUpdatedAt
	}
	if sh.order == "" {
		sh.order = persistence.OrderDesc
	}
	if _, ok := sortKeys[sh.sort]; !ok {
		return nil, "", fmt.Errorf("%s: unknown sort %q", what, f.Sort)
	}
	if sh.order != persistence.OrderAsc && sh.order != persistence.OrderDesc {
		return nil, "", fmt.Errorf("%s: unknown order %q", what, f.Order)
	}

	var args []any
	if f.UserID != "" {
		sh.user = true
		args = append(args, f.UserID)
	}
	if f.Status != "" {
		sh.status = true
		args = append(args, f.Status)
	}
	if f.HelpRequested != nil {
		sh.help = true
		args = append(args, *f.HelpRequested)
	}
	if f.TakenOver != nil {
		sh.taken = true
		args = append(args, *f.TakenOver)
	}
	if !f.From.IsZero() {
		// A sub-millisecond From must not admit the millisecond it falls in.
		from := ms(f.From)
		if from.Before(f.From) {
			from = from.Add(time.Millisecond)
		}
		sh.from = true
		args = append(args, from.UnixMilli())
	}
	if !f.To.IsZero() {
		sh.to = true
		args = append(args, ms(f.To).UnixMilli())
	}
	if p.Cursor != "" {
		c, err := persistence.DecodeCursor(p.Cursor, sh.sort, sh.order)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		sh.after = true
		args = append(args, c.Key, c.ID)
	}
	limit := sessionLimit(p.Limit)
	args = append(args, limit+1)

	ctx, cancel := s.call(ctx)
	defer cancel()
	st, err := s.adminStmt(ctx, sh)
	if err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	list, next, err := s.readPage(ctx, rows, limit, sh.sort, sh.order)
	if err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	return list, next, nil
}

// adminStmt is the prepared statement of shape sh, prepared on first use.
func (s *Store) adminStmt(ctx context.Context, sh adminShape) (*sql.Stmt, error) {
	q := adminQuery(sh)
	s.listMu.Lock()
	st := s.listStmts[q]
	s.listMu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := s.rdb.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if s.closed.Load() {
		_ = st.Close()
		return nil, errClosed
	}
	if had := s.listStmts[q]; had != nil {
		_ = st.Close() // another call prepared it meanwhile
		return had, nil
	}
	s.listStmts[q] = st
	return st, nil
}

// readPage reads up to limit sessions from rows, which were asked for one
// more; that one's presence says there is a next page, whose cursor is the
// sort key and id of the last session returned.
func (s *Store) readPage(ctx context.Context, rows *sql.Rows, limit int, sort, order string) ([]persistence.Session, string, error) {
	defer rows.Close()
	out := make([]persistence.Session, 0, min(limit, 64))
	more := false
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		x, err := s.scanSession(ctx, rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	next := ""
	if more {
		last := &out[len(out)-1]
		next = persistence.EncodeCursor(persistence.Cursor{Sort: sort, Order: order, Key: sortKeys[sort](last), ID: last.ID})
	}
	return out, next, nil
}

// Stats reads the totals the triggers keep beside the sessions table.
func (s *Store) Stats(ctx context.Context) (persistence.Stats, error) {
	var st persistence.Stats
	if err := s.open("stats"); err != nil {
		return st, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	err := s.r.stats.QueryRowContext(ctx).Scan(&st.Sessions, &st.Messages, &st.TokensIn, &st.TokensOut,
		&st.HelpRequested, &st.TakenOver, &st.Ratings, &st.RatingSum)
	if err != nil {
		return persistence.Stats{}, wrap(err, "stats")
	}
	return st, nil
}

// ListQueue returns the sessions waiting for a human, oldest request
// first, from the sessions_queue index.
func (s *Store) ListQueue(ctx context.Context, limit int) ([]persistence.Session, error) {
	const what = "list the queue"
	if err := s.open(what); err != nil {
		return nil, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	rows, err := s.r.listQueue.QueryContext(ctx, sessionLimit(limit))
	if err != nil {
		return nil, wrap(err, "%s", what)
	}
	defer rows.Close()
	var out []persistence.Session
	for rows.Next() {
		x, err := s.scanSession(ctx, rows)
		if err != nil {
			return nil, wrap(err, "%s", what)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "%s", what)
	}
	return out, nil
}
