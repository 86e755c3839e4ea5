// Package persistence owns the stored shape of conversations: the Store
// interface the actors write through, the domain records, and encryption of
// message text at rest. Each technology is a subpackage: persistence/sqlite
// is the embedded default, persistence/mongo the production store, and
// persistence/storetest the one conformance suite both pass.
//
// A Store is safe for concurrent use. Only a session's SessionActor writes
// that session's records, and every write is fenced so that a second, stale
// writer loses (ErrConflict) instead of corrupting the session: message
// inserts by seq, header updates by Version.
package persistence

import (
	"context"
	"time"
)

// Role says who wrote a message.
type Role string

const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleAdmin     Role = "admin"
	RoleSystem    Role = "system"
)

// Status of a stored message. A reply checkpointed while it streams is stored
// as StatusInterrupted, so that if the process dies the partial text is there
// and says it was cut off; the final write replaces it.
type Status string

const (
	StatusComplete    Status = "complete"
	StatusStopped     Status = "stopped"
	StatusFailed      Status = "failed"
	StatusInterrupted Status = "interrupted"
)

// Session modes: who answers the user.
const (
	ModeBot   = "bot"
	ModeHuman = "human"
)

// Session is a conversation's header record.
type Session struct {
	ID            string
	UserID        string
	Title         string
	Model         string
	Status        string // SessionActive or SessionEnded
	Mode          string // ModeBot or ModeHuman
	AdminID       string
	AdminName     string
	HelpRequested bool
	MessageCount  int64
	LastSeq       int64 // seq of the newest stored message; 0 when empty
	// TokensIn and TokensOut are the totals of the session's messages'
	// usage; the store keeps them (AppendMessage and UpdateMessage add to
	// them), UpdateSession never writes them.
	TokensIn  int64
	TokensOut int64
	ShareID   string // non-empty while a read-only share link is live
	CreatedAt time.Time
	UpdatedAt time.Time
	// Version fences header updates: CreateSession stores 1, and each
	// successful UpdateSession advances it by one, in the store and in the
	// caller's struct.
	Version int64
	// HeadID is the newest message of the branch the session last moved
	// on: AppendMessage sets it to the message it appends (in the same
	// fenced write), UpdateSession never writes it. Empty while the session
	// has no message, and for a session stored before v1.1 (its head is
	// then its message at LastSeq).
	HeadID string
	// HelpRequestedAt is when the pending help request was made; zero
	// while none is (a takeover or an end clears both).
	HelpRequestedAt time.Time
	// Rating is the owner's satisfaction score, MinRating to MaxRating, or
	// 0 for none; RatingComment is their optional words, encrypted at rest
	// like the title. UpdateSession writes both.
	Rating        int
	RatingComment string
}

// Message is one stored message. Text is plaintext in memory and encrypted
// in the database.
type Message struct {
	ID        string
	SessionID string
	Seq       int64
	Role      Role
	Author    string // display name: the user's, the admin's, or the model's
	AuthorID  string // the user or admin id; empty for the model
	Text      string
	Status    Status
	CreatedAt time.Time
	TokensIn  int64
	TokensOut int64
	// Unreadable is set on a message read back whose text cannot be
	// decrypted (its key is no longer configured, or the record was
	// tampered with); Text is then empty.
	Unreadable bool
	// ParentID is the message this one follows in its branch of the
	// conversation, empty for a first message: the messages of a session
	// form a tree (edits and regenerated replies are siblings). Seq stays
	// the storage order of every message of every branch.
	ParentID string
	// Attachments are the files the message carries (CONTRACT §9).
	// AppendMessage assigns those not yet in a session to this one.
	Attachments []AttachmentRef
}

// Stats are stored totals for the admin dashboard.
type Stats struct {
	Sessions      int64
	Messages      int64
	TokensIn      int64
	TokensOut     int64
	HelpRequested int64
	TakenOver     int64
	// Ratings counts the rated sessions; RatingSum adds up their scores.
	Ratings   int64
	RatingSum int64
}

// Page asks for one page of a list. Cursor is the opaque NextCursor of the
// previous page, empty for the first one. Limit is capped by the store.
type Page struct {
	Limit  int
	Cursor string
}

// AdminFilter narrows and orders the admin's list of all sessions. Zero
// values mean "any"; Sort is "updated_at" (default), "created_at" or
// "message_count"; Order is "desc" (default) or "asc".
type AdminFilter struct {
	UserID        string
	Status        string
	HelpRequested *bool
	TakenOver     *bool
	From, To      time.Time // on created_at, inclusive; zero is unbounded
	Sort          string
	Order         string
}

// Store is the durable record of sessions and messages.
type Store interface {
	// CreateSession inserts a new session; s.ID must be set.
	CreateSession(ctx context.Context, s *Session) error
	// GetSession returns ErrNotFound when there is no such session.
	GetSession(ctx context.Context, id string) (*Session, error)
	// GetSessionByShareID finds the session a live share link points at.
	GetSessionByShareID(ctx context.Context, shareID string) (*Session, error)
	// UpdateSession writes the mutable header fields (title, model, status,
	// mode, admin, help flag and time, rating, share id; updated_at only
	// forward) of an
	// existing session, if the stored Version still equals s.Version; then
	// both advance by one. Another writer having got there first answers
	// ErrConflict and writes nothing; the caller must reload. It never
	// writes user_id, created_at, last_seq, message_count or token totals.
	UpdateSession(ctx context.Context, s *Session) error
	// DeleteSession deletes the session, every message of it and every
	// attachment assigned to it for real, and empties the session id of the audit entries about it; ErrNotFound
	// when there is none.
	DeleteSession(ctx context.Context, id string) error

	// AppendMessage stores m at m.Seq, which must be the session's LastSeq+1,
	// under the unique {session_id, seq} index, and advances the session's
	// last_seq, message_count and updated_at, and sets its head_id to m.ID,
	// only if last_seq is still m.Seq-1; m's usage is added to the session's
	// token totals. m.ParentID is stored as given: the session actor, not the
	// store, knows the tree. A lost race
	// answers ErrConflict and leaves nothing behind. Repeating an append of
	// the same m.ID after ErrUnavailable succeeds if the first one did.
	AppendMessage(ctx context.Context, m *Message) error
	// UpdateMessage rewrites the text, status and usage of a stored message
	// (a reply's checkpoint or its final state); the session's token totals
	// move by the difference between the new usage and the stored one.
	UpdateMessage(ctx context.Context, m *Message) error

	// ListMessages returns up to limit messages with seq > afterSeq, in seq order.
	ListMessages(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]Message, error)
	// ListSessions returns a user's sessions, newest updated_at first.
	ListSessions(ctx context.Context, userID string, p Page) (sessions []Session, nextCursor string, err error)
	// ListAllSessions is the admin's filtered, sorted, paginated list.
	ListAllSessions(ctx context.Context, f AdminFilter, p Page) (sessions []Session, nextCursor string, err error)

	// Stats counts what is stored, in the database.
	Stats(ctx context.Context) (Stats, error)

	Auditor
	Eraser
	Queue
	Attachments

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the connection; it is safe to call more than once.
	Close(ctx context.Context) error
}
