package sqlite

import (
	"context"

	"github.com/chatbox/chatbox/persistence"
)

// PutSessions writes many sessions in one write request, for seeding
// benchmarks quickly.
func PutSessions(s *Store, ctx context.Context, xs []persistence.Session) error {
	return s.putSessions(ctx, xs)
}
