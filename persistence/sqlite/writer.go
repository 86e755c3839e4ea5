package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/chatbox/chatbox/persistence"
)

// Sizes of the group-commit queue.
const (
	// maxBatch caps the write requests committed in one transaction, so
	// that a burst cannot hold its first callers for long.
	maxBatch = 256
	// queueLen is how many requests may wait for the writer before
	// submitters block (each within its own ctx).
	queueLen = 1024
)

// States of a writeReq, moved only by CompareAndSwap: the caller abandons a
// queued request when its ctx ends, the writer takes it when its batch
// starts; whichever comes first decides.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// writeReq is one caller's write, waiting in the queue. Exactly one of fn
// and solo is set.
type writeReq struct {
	ctx  context.Context
	what string // names the write in batch-level errors
	// fn runs inside the batch's transaction, under its own savepoint: an
	// error rolls back only this request.
	fn func(t *wtx) error
	// solo runs alone, outside any transaction (a checkpoint cannot run
	// inside one).
	solo  func(ctx context.Context, c *sql.Conn) error
	state atomic.Int32
	done  chan error // buffered: the writer never blocks on it
}

// writer is the single writer connection and the goroutine that owns it.
// Requests come in on queue; the goroutine takes every request waiting (up
// to maxBatch), runs them in one transaction with a savepoint each, commits
// once, and only then tells each caller its own result.
type writer struct {
	conn    *sql.Conn  // used by the goroutine only
	st      writeStmts // prepared on conn; used by the goroutine only
	onBatch func(int)
	writes  atomic.Uint64 // transactions committed

	// mu guards stopping and the sends on queue: submitters hold it for
	// reading while they send, stop holds it for writing to close queue, so
	// no send can hit a closed channel.
	mu       sync.RWMutex
	stopping bool
	queue    chan *writeReq

	exited chan struct{} // closed when the goroutine has returned
}

// startWriter prepares the write statements on conn and starts the writer
// goroutine, which stop ends.
func startWriter(ctx context.Context, conn *sql.Conn, onBatch func(int)) (*writer, error) {
	w := &writer{
		conn:    conn,
		onBatch: onBatch,
		queue:   make(chan *writeReq, queueLen),
		exited:  make(chan struct{}),
	}
	if err := w.st.prepare(ctx, conn); err != nil {
		w.st.close()
		return nil, err
	}
	go w.run()
	return w, nil
}

// stop refuses new requests, waits until the goroutine has run every queued
// one and returned, then releases the connection. It is safe to call more
// than once.
func (w *writer) stop() {
	w.mu.Lock()
	if !w.stopping {
		w.stopping = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.exited
}

// run is the writer goroutine.
func (w *writer) run() {
	defer func() {
		w.st.close()
		_ = w.conn.Close()
		close(w.exited)
	}()
	batch := make([]*writeReq, 0, maxBatch)
	for {
		first, ok := <-w.queue
		if !ok {
			return
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-w.queue:
				if !ok {
					break fill // closed: run what we have, then the loop returns
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		// Runs of transactional requests commit together; a solo request
		// runs between them, in queue order.
		start := 0
		for i, r := range batch {
			if r.solo != nil {
				w.commit(batch[start:i])
				w.runSolo(r)
				start = i + 1
			}
		}
		w.commit(batch[start:])
		clear(batch) // drop references to finished requests
	}
}

// take claims r for running, unless its caller has given up or its ctx has
// ended already; in the latter case the caller is told so.
func take(r *writeReq) bool {
	if !r.state.CompareAndSwap(reqQueued, reqTaken) {
		return false // abandoned: the caller has returned its ctx error
	}
	if err := r.ctx.Err(); err != nil {
		r.done <- timeoutError(r.what, err)
		return false
	}
	return true
}

func (w *writer) runSolo(r *writeReq) {
	if !take(r) {
		return
	}
	r.done <- r.solo(r.ctx, w.conn)
}

// commit runs group in one transaction. Statements run on a context that
// is never cancelled: interrupting a statement inside an explicit
// transaction rolls back the whole transaction, batch-mates included.
func (w *writer) commit(group []*writeReq) {
	live := make([]*writeReq, 0, len(group))
	for _, r := range group {
		if take(r) {
			live = append(live, r)
		}
	}
	if len(live) == 0 {
		return
	}
	ctx := context.Background()
	t := &wtx{ctx: ctx, c: w.conn, st: &w.st}
	errs := make([]error, len(live))
	finish := func() {
		for i, r := range live {
			r.done <- errs[i]
		}
	}
	// failAll gives err to every request that has not failed on its own: a
	// broken transaction takes their work with it.
	failAll := func(step string, err error) {
		_, _ = w.st.rollback.ExecContext(ctx)
		for i, r := range live {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("%s: %s: %w", r.what, step, classify(err))
			}
		}
		finish()
	}

	if _, err := w.st.begin.ExecContext(ctx); err != nil {
		failAll("begin", err)
		return
	}
	ok := 0
	for i, r := range live {
		if len(live) == 1 {
			// Alone in its transaction: no savepoint needed, a failure
			// rolls the transaction back below.
			if errs[i] = r.fn(t); errs[i] == nil {
				ok++
			}
			break
		}
		if _, err := w.st.savepoint.ExecContext(ctx); err != nil {
			failAll("savepoint", err)
			return
		}
		if errs[i] = r.fn(t); errs[i] != nil {
			// If the failure took the transaction down (SQLite rolls back
			// on some I/O errors), the savepoint is gone too.
			if _, err := w.st.rollbackTo.ExecContext(ctx); err != nil {
				failAll("roll back to savepoint", err)
				return
			}
		}
		if _, err := w.st.release.ExecContext(ctx); err != nil {
			failAll("release savepoint", err)
			return
		}
		if errs[i] == nil {
			ok++
		}
	}
	if ok == 0 {
		_, _ = w.st.rollback.ExecContext(ctx)
		finish()
		return
	}
	if _, err := w.st.commit.ExecContext(ctx); err != nil {
		failAll("commit", err)
		return
	}
	w.writes.Add(1)
	if w.onBatch != nil {
		w.onBatch(len(live))
	}
	finish()
}

// submit queues r and waits for its result. A caller whose ctx ends while r
// still waits in the queue abandons it (it will not run) and gets a timeout;
// once the writer has taken r, its result is definite and the caller waits
// for it, which is at most one batch.
func (w *writer) submit(r *writeReq) error {
	w.mu.RLock()
	if w.stopping {
		w.mu.RUnlock()
		return fmt.Errorf("%s: %w", r.what, errClosed)
	}
	select {
	case w.queue <- r:
		w.mu.RUnlock()
	case <-r.ctx.Done():
		w.mu.RUnlock()
		return timeoutError(r.what, r.ctx.Err())
	}
	select {
	case err := <-r.done:
		return err
	case <-r.ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return timeoutError(r.what, r.ctx.Err())
		}
		return <-r.done
	}
}

func timeoutError(what string, err error) error {
	return fmt.Errorf("%s: waiting for the writer: %w: %w", what, persistence.ErrUnavailable, err)
}

// write runs fn in the next group commit and returns its result, or the
// batch's if the transaction failed. fn must wrap its own errors; it runs on
// the writer goroutine and must not call the Store.
func (s *Store) write(ctx context.Context, what string, fn func(t *wtx) error) error {
	if err := s.open(what); err != nil {
		return err
	}
	return s.w.submit(&writeReq{ctx: ctx, what: what, fn: fn, done: make(chan error, 1)})
}

// wtx is what a write request's fn works with: the writer's connection,
// inside the batch's transaction, and its prepared statements.
type wtx struct {
	ctx context.Context
	c   *sql.Conn
	st  *writeStmts
}

func (t *wtx) exec(st *sql.Stmt, args ...any) (sql.Result, error) {
	return st.ExecContext(t.ctx, args...)
}

func (t *wtx) queryRow(st *sql.Stmt, args ...any) *sql.Row {
	return st.QueryRowContext(t.ctx, args...)
}

// affected is the number of rows res changed.
func affected(res sql.Result) int64 {
	n, err := res.RowsAffected()
	if err != nil {
		panic(fmt.Sprintf("rows affected: %v", err)) // the sqlite driver always knows
	}
	return n
}
