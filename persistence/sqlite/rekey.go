package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/chatbox/chatbox/persistence"
)

// Rekey re-encrypts, under the keyring's current key, every message text
// and session title stored under another key, opening them with the
// previous keys of the keyring. It is safe to run while servers write and
// to interrupt: it reads batches of records whose key id is not the current
// one, in (key id, id) order from an index, and rewrites each with an
// update conditional on its id, key id and ciphertext all being what was
// read, so a newer write made meanwhile is never overwritten. Each batch of
// updates commits on its own; a run that is cancelled (ctx) keeps what it
// did and returns it with ctx's error, and running again continues with
// what is left.
//
// A record that cannot be opened (its key is not configured, or it does not
// authenticate) is skipped, left exactly as it is, and reported in the
// result; that is not an error of Rekey. progress, when not nil, is called
// after each batch, on the caller's goroutine. batch <= 0 means
// persistence.DefaultRekeyBatch. Each query and each batch of updates is
// bounded by the store's timeout.
func (s *Store) Rekey(ctx context.Context, batch int, progress func(persistence.RekeyProgress)) (persistence.RekeyResult, error) {
	return s.rekey(ctx, batch, progress, nil)
}

// rekey is Rekey; beforeWrite, when not nil, runs between reading a batch
// and writing it (tests use it to write concurrently).
func (s *Store) rekey(ctx context.Context, batch int, progress func(persistence.RekeyProgress), beforeWrite func()) (persistence.RekeyResult, error) {
	if batch <= 0 {
		batch = persistence.DefaultRekeyBatch
	}
	r := &rekeyRun{s: s, batch: batch, progress: progress, beforeWrite: beforeWrite,
		res: persistence.RekeyResult{Remaining: -1}}
	phases := []rekeyPhase{
		{
			name: persistence.RekeyMessages, ranges: [2]string{qRekeyMessagesBelow, qRekeyMessagesAbove},
			left: qRekeyMessagesLeft, update: func(w *writeStmts) *sql.Stmt { return w.rekeyMessage },
			ad: persistence.MessageAD, count: &r.res.Messages,
		},
		{
			name: persistence.RekeyTitles, ranges: [2]string{qRekeyTitlesBelow, qRekeyTitlesAbove},
			left: qRekeyTitlesLeft, update: func(w *writeStmts) *sql.Stmt { return w.rekeyTitle },
			ad: func(sid string, _ int64) []byte { return persistence.TitleAD(sid) }, count: &r.res.Titles,
		},
	}
	for _, p := range phases {
		for _, q := range p.ranges {
			if err := r.run(ctx, p, q); err != nil {
				return r.res, err
			}
		}
	}
	remaining := int64(0)
	for _, p := range phases {
		n, err := r.remaining(ctx, p)
		if err != nil {
			return r.res, err
		}
		remaining += n
	}
	r.res.Remaining = remaining
	return r.res, nil
}

// rekeyPhase is one table's encrypted field: the queries that read the
// records not under the current key (below it and above it), the one that
// counts them, and the conditional update.
type rekeyPhase struct {
	name   string
	ranges [2]string
	left   string
	update func(*writeStmts) *sql.Stmt
	ad     func(sessionID string, seq int64) []byte
	count  *int64 // where the phase counts what it re-encrypted
}

// rekeyRec is the encrypted part of one record; seq is 0 for a title.
type rekeyRec struct {
	id, sessionID string
	seq           int64
	keyID         string
	ct            []byte
}

type rekeyRun struct {
	s           *Store
	batch       int
	progress    func(persistence.RekeyProgress)
	beforeWrite func()
	res         persistence.RekeyResult
	scanned     int64
}

// run rekeys one range of one table, batch by batch. The keyset on (key id,
// id), not an offset, moves past the records it leaves behind, the
// unreadable ones, which still match the query.
func (r *rekeyRun) run(ctx context.Context, p rekeyPhase, query string) error {
	current := r.s.keys.CurrentKeyID()
	afterKey, afterID := "", ""
	for {
		recs, err := r.read(ctx, p, query, current, afterKey, afterID)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		last := recs[len(recs)-1]
		afterKey, afterID = last.keyID, last.id
		r.scanned += int64(len(recs))

		type update struct {
			old   rekeyRec
			keyID string
			ct    []byte
		}
		var updates []update
		for _, d := range recs {
			ad := p.ad(d.sessionID, d.seq)
			plain, err := r.s.keys.Open(d.keyID, d.ct, ad)
			if err != nil {
				r.unreadable(d, err)
				continue
			}
			keyID, ct := r.s.keys.Seal(plain, ad)
			updates = append(updates, update{d, keyID, ct})
		}
		if r.beforeWrite != nil {
			r.beforeWrite()
		}
		if len(updates) > 0 {
			var matched int64
			wctx, cancel := r.s.call(ctx)
			what := "rekey " + p.name
			err := r.s.write(wctx, what, func(t *wtx) error {
				matched = 0
				st := p.update(t.st)
				for _, u := range updates {
					res, err := t.exec(st, u.old.id, u.old.keyID, u.old.ct, u.keyID, u.ct)
					if err != nil {
						return wrap(err, "%s: update", what)
					}
					matched += affected(res)
				}
				return nil
			})
			cancel()
			if err != nil {
				return err
			}
			*p.count += matched
			r.res.Changed += int64(len(updates)) - matched
		}
		if r.progress != nil {
			r.progress(persistence.RekeyProgress{
				Phase: p.name, Scanned: r.scanned, Messages: r.res.Messages, Titles: r.res.Titles,
				Unreadable: r.res.UnreadableCount,
			})
		}
		if len(recs) < r.batch {
			return nil
		}
	}
}

func (r *rekeyRun) read(ctx context.Context, p rekeyPhase, query, current, afterKey, afterID string) ([]rekeyRec, error) {
	if err := r.s.open("rekey " + p.name); err != nil {
		return nil, err
	}
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	rows, err := r.s.rdb.QueryContext(ctx, query, current, afterKey, afterID, r.batch)
	if err != nil {
		return nil, wrap(err, "rekey %s: read", p.name)
	}
	defer rows.Close()
	var recs []rekeyRec
	for rows.Next() {
		var d rekeyRec
		if err := rows.Scan(&d.id, &d.sessionID, &d.seq, &d.keyID, &d.ct); err != nil {
			return nil, wrap(err, "rekey %s: read", p.name)
		}
		recs = append(recs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "rekey %s: read", p.name)
	}
	return recs, nil
}

func (r *rekeyRun) unreadable(d rekeyRec, err error) {
	r.res.UnreadableCount++
	if len(r.res.Unreadable) >= persistence.MaxReportedUnreadable {
		return
	}
	reason := "corrupt"
	if errors.Is(err, persistence.ErrKeyMissing) {
		reason = "key_missing"
	}
	r.res.Unreadable = append(r.res.Unreadable, persistence.UnreadableRecord{
		SessionID: d.sessionID, Seq: d.seq, KeyID: d.keyID, Reason: reason})
}

// remaining counts p's records still not under the current key.
func (r *rekeyRun) remaining(ctx context.Context, p rekeyPhase) (int64, error) {
	if err := r.s.open("rekey " + p.name); err != nil {
		return 0, err
	}
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	var n int64
	if err := r.s.rdb.QueryRowContext(ctx, p.left, r.s.keys.CurrentKeyID()).Scan(&n); err != nil {
		return 0, wrap(err, "rekey %s: count what is left", p.name)
	}
	return n, nil
}

// Checkpoint copies the WAL into the database file and truncates the WAL
// to zero bytes (PRAGMA wal_checkpoint(TRUNCATE)), so that the old page
// images of deleted records, which secure_delete cannot reach inside the
// WAL, are gone from disk. It waits, within the timeout, for readers to
// finish with the WAL; if some still use it, it answers ErrUnavailable.
func (s *Store) Checkpoint(ctx context.Context) error {
	const what = "checkpoint"
	if err := s.open(what); err != nil {
		return err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.w.submit(&writeReq{ctx: ctx, what: what, done: make(chan error, 1),
		solo: func(ctx context.Context, c *sql.Conn) error {
			// Not while the checkpointer runs one: SQLite lets one
			// checkpoint at a time and answers the other busy.
			s.ckp.mu.Lock()
			defer s.ckp.mu.Unlock()
			var busy, logFrames, done int
			if err := c.QueryRowContext(ctx, qCheckpoint).Scan(&busy, &logFrames, &done); err != nil {
				return wrap(err, "%s", what)
			}
			if busy != 0 {
				return fmt.Errorf("%s: %w: readers still use the WAL (%d of %d frames copied)",
					what, persistence.ErrUnavailable, done, logFrames)
			}
			return nil
		}})
}
