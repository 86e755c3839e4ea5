package sqlite

import (
	"context"
	"database/sql"

	"github.com/chatbox/chatbox/persistence"
)

// PutSessions writes many sessions in one write request, for seeding
// benchmarks quickly.
func PutSessions(s *Store, ctx context.Context, xs []persistence.Session) error {
	return s.putSessions(ctx, xs)
}

// CheckpointedAll reports whether the checkpointer's last run copied every
// frame of a non-empty WAL into the database file.
func CheckpointedAll(s *Store) bool { return s.ckp.copied.Load() == 1 && s.ckp.walFrames.Load() > 0 }

// WriterPragma reads one pragma's value on the writer's own connection.
func WriterPragma(s *Store, name string, v any) error {
	return s.w.submit(&writeReq{ctx: context.Background(), what: "read " + name, done: make(chan error, 1),
		solo: func(ctx context.Context, c *sql.Conn) error {
			return c.QueryRowContext(ctx, "PRAGMA "+name).Scan(v)
		}})
}
