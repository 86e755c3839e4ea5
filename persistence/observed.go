package persistence

import (
	"context"
	"io"
	"time"
)

// Observer is told about every store call: its operation name, how long it
// took and its error (nil on success).
type Observer func(op string, took time.Duration, err error)

// Observe wraps s so that every call is reported to obs (metrics, for
// instance), keeping this package free of any metrics library.
func Observe(s Store, obs Observer) Store { return &observed{s: s, obs: obs} }

type observed struct {
	s   Store
	obs Observer
}

var _ Store = (*observed)(nil)

func (o *observed) done(op string, start time.Time, err error) error {
	o.obs(op, time.Since(start), err)
	return err
}

func (o *observed) CreateSession(ctx context.Context, s *Session) error {
	start := time.Now()
	return o.done("create_session", start, o.s.CreateSession(ctx, s))
}

func (o *observed) GetSession(ctx context.Context, id string) (*Session, error) {
	start := time.Now()
	s, err := o.s.GetSession(ctx, id)
	return s, o.done("get_session", start, err)
}

func (o *observed) GetSessionByShareID(ctx context.Context, shareID string) (*Session, error) {
	start := time.Now()
	s, err := o.s.GetSessionByShareID(ctx, shareID)
	return s, o.done("get_shared_session", start, err)
}

func (o *observed) UpdateSession(ctx context.Context, s *Session) error {
	start := time.Now()
	return o.done("update_session", start, o.s.UpdateSession(ctx, s))
}

func (o *observed) DeleteSession(ctx context.Context, id string) error {
	start := time.Now()
	return o.done("delete_session", start, o.s.DeleteSession(ctx, id))
}

func (o *observed) AppendMessage(ctx context.Context, m *Message) error {
	start := time.Now()
	return o.done("append_message", start, o.s.AppendMessage(ctx, m))
}

func (o *observed) UpdateMessage(ctx context.Context, m *Message) error {
	start := time.Now()
	return o.done("update_message", start, o.s.UpdateMessage(ctx, m))
}

func (o *observed) ListMessages(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]Message, error) {
	start := time.Now()
	m, err := o.s.ListMessages(ctx, sessionID, afterSeq, limit)
	return m, o.done("list_messages", start, err)
}

func (o *observed) ListSessions(ctx context.Context, userID string, p Page) ([]Session, string, error) {
	start := time.Now()
	s, next, err := o.s.ListSessions(ctx, userID, p)
	return s, next, o.done("list_sessions", start, err)
}

func (o *observed) ListAllSessions(ctx context.Context, f AdminFilter, p Page) ([]Session, string, error) {
	start := time.Now()
	s, next, err := o.s.ListAllSessions(ctx, f, p)
	return s, next, o.done("list_all_sessions", start, err)
}

func (o *observed) ListQueue(ctx context.Context, limit int) ([]Session, error) {
	start := time.Now()
	s, err := o.s.ListQueue(ctx, limit)
	return s, o.done("list_queue", start, err)
}

func (o *observed) Stats(ctx context.Context) (Stats, error) {
	start := time.Now()
	s, err := o.s.Stats(ctx)
	return s, o.done("stats", start, err)
}

func (o *observed) Ping(ctx context.Context) error {
	start := time.Now()
	return o.done("ping", start, o.s.Ping(ctx))
}

func (o *observed) Close(ctx context.Context) error { return o.s.Close(ctx) }

func (o *observed) AppendAudit(ctx context.Context, e *AuditEntry) error {
	start := time.Now()
	return o.done("append_audit", start, o.s.AppendAudit(ctx, e))
}

func (o *observed) ListAudit(ctx context.Context, p Page) ([]AuditEntry, string, error) {
	start := time.Now()
	e, next, err := o.s.ListAudit(ctx, p)
	return e, next, o.done("list_audit", start, err)
}

func (o *observed) EraseUser(ctx context.Context, userID string, record *AuditEntry) (EraseResult, error) {
	start := time.Now()
	r, err := o.s.EraseUser(ctx, userID, record)
	return r, o.done("erase_user", start, err)
}

func (o *observed) PutAttachment(ctx context.Context, a *Attachment, r io.Reader) error {
	start := time.Now()
	return o.done("put_attachment", start, o.s.PutAttachment(ctx, a, r))
}

func (o *observed) GetAttachment(ctx context.Context, id string) (*Attachment, error) {
	start := time.Now()
	a, err := o.s.GetAttachment(ctx, id)
	return a, o.done("get_attachment", start, err)
}

func (o *observed) ReadAttachment(ctx context.Context, id string, w io.Writer) error {
	start := time.Now()
	return o.done("read_attachment", start, o.s.ReadAttachment(ctx, id, w))
}

func (o *observed) SetTranscript(ctx context.Context, id, transcript string) error {
	start := time.Now()
	return o.done("set_transcript", start, o.s.SetTranscript(ctx, id, transcript))
}

func (o *observed) SessionConversation(ctx context.Context, sessionID string) (string, error) {
	start := time.Now()
	c, err := o.s.SessionConversation(ctx, sessionID)
	return c, o.done("session_conversation", start, err)
}

func (o *observed) SetSessionConversation(ctx context.Context, sessionID, conversationID string) error {
	start := time.Now()
	return o.done("set_session_conversation", start, o.s.SetSessionConversation(ctx, sessionID, conversationID))
}
