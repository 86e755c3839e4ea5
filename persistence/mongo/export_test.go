package mongo

import (
	"context"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// RekeyWithWriteBetween is Rekey calling between after reading each batch
// and before writing it, so a test can write concurrently at the worst
// moment.
func (s *Store) RekeyWithWriteBetween(ctx context.Context, batch int, between func()) (persistence.RekeyResult, error) {
	return s.rekey(ctx, batch, nil, between)
}

// SessionDocument is the document CreateSession would insert for x, title
// encrypted, for benchmarks that insert sessions in bulk.
func (s *Store) SessionDocument(x *persistence.Session) any { return s.sessionToDoc(x) }

// UpdatedAtCursor is the cursor a newest-first session list returns after
// the session with id, updated at.
func UpdatedAtCursor(at time.Time, id string) string {
	return persistence.EncodeCursor(persistence.Cursor{Sort: persistence.SortUpdatedAt, Order: persistence.OrderDesc, Key: at.UnixMilli(), ID: id})
}
