package sqlite

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// checkpointEvery is how often the checkpointer copies committed WAL frames
// into the database file.
const checkpointEvery = 500 * time.Millisecond

// checkpointer moves WAL checkpoints off the commit path. SQLite's
// automatic checkpoint runs inside the COMMIT that crosses its threshold
// (1000 pages), so one caller in a few hundred waited for a checkpoint and
// its fsyncs: the tail of send → ack. The writer connection has
// wal_autocheckpoint off; this goroutine, on a connection of its own, runs
// a PASSIVE checkpoint every checkpointEvery, concurrently with the writer.
// A crash loses nothing by it: committed frames are in the WAL either way.
//
// The Store owns it: Open starts it, Close stops it (before the writer
// connection closes) and waits for it.
type checkpointer struct {
	db   *sql.DB // one connection, used by the goroutine only
	log  *slog.Logger
	stop chan struct{} // closed by close
	done chan struct{} // closed when the goroutine has returned

	// mu is held while a checkpoint runs, this goroutine's or the Store's
	// own TRUNCATE one (Checkpoint): SQLite runs one checkpoint at a time
	// and answers a second one busy.
	mu sync.Mutex

	// copied is 1 while the last checkpoint had copied the whole WAL, for
	// tests; walFrames the WAL's size in frames at that checkpoint.
	copied, walFrames atomic.Int64
}

func startCheckpointer(db *sql.DB, log *slog.Logger) *checkpointer {
	c := &checkpointer{db: db, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c
}

func (c *checkpointer) run() {
	defer close(c.done)
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), checkpointEvery)
		var busy, logFrames, done int
		c.mu.Lock()
		err := c.db.QueryRowContext(ctx, qPassiveCheckpoint).Scan(&busy, &logFrames, &done)
		c.mu.Unlock()
		cancel()
		if err != nil {
			c.log.Warn("checkpoint the WAL", "err", err)
			continue
		}
		c.walFrames.Store(int64(logFrames))
		if done == logFrames {
			c.copied.Store(1)
		} else {
			c.copied.Store(0)
		}
	}
}

// close stops the goroutine and waits for it; safe to call more than once.
func (c *checkpointer) close() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	<-c.done
}
