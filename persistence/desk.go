package persistence

import (
	"context"
	"time"
)

// The help desk (CONTRACT §11): internal notes, the queue of sessions
// waiting for a human, and the owner's satisfaction rating.

// RoleNote is an admin's internal note. It is stored in the session's seq
// order like any message but is not part of the conversation: an append of
// a note moves neither the session's head nor its message_count, and only
// admins ever read it (WithoutNotes is what everyone else gets).
const RoleNote Role = "note"

// Rating bounds: a score is 1 to 5; 0 on a session means none yet.
const (
	MinRating = 1
	MaxRating = 5
)

// Queue lists the sessions waiting for a human.
type Queue interface {
	// ListQueue returns up to limit sessions whose help is requested,
	// oldest HelpRequestedAt first (then id), from an index.
	ListQueue(ctx context.Context, limit int) ([]Session, error)
}

// WithoutNotes returns msgs without the internal notes, reusing msgs'
// array: what the owner, the share page and the model may see.
func WithoutNotes(msgs []Message) []Message {
	out := msgs[:0]
	for _, m := range msgs {
		if m.Role != RoleNote {
			out = append(out, m)
		}
	}
	return out
}

// RatingAD is the associated data of a session's rating comment: "rating",
// a NUL and the session id.
func RatingAD(sessionID string) []byte {
	b := make([]byte, 0, len("rating\x00")+len(sessionID))
	b = append(b, "rating\x00"...)
	return append(b, sessionID...)
}

// WaitingSince is how long the session has waited for a human at now; 0
// when no help is requested.
func (s *Session) WaitingSince(now time.Time) time.Duration {
	if !s.HelpRequested || s.HelpRequestedAt.IsZero() {
		return 0
	}
	return max(0, now.Sub(s.HelpRequestedAt))
}

// AuditNote is the audit action of an admin's internal note.
const AuditNote = "note"
