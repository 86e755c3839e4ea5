package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/chatbox/chatbox/persistence"
)

// PutSession writes every field of x as given, including LastSeq,
// MessageCount, the token totals and Version, over any session with the
// same id; times are truncated to milliseconds. It is for `chatbox copy`,
// not for serving: it bypasses the fences.
func (s *Store) PutSession(ctx context.Context, x *persistence.Session) error {
	return s.putSessions(ctx, []persistence.Session{*x})
}

// putSessions is PutSession for many sessions in one write request.
func (s *Store) putSessions(ctx context.Context, xs []persistence.Session) error {
	args := make([][]any, len(xs))
	for i := range xs {
		if xs[i].ID == "" {
			return errors.New("put session: no id")
		}
		args[i] = s.sessionArgs(&xs[i])
	}
	what := "put session " + xs[0].ID
	if len(xs) > 1 {
		what = fmt.Sprintf("put %d sessions", len(xs))
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.write(ctx, what, func(t *wtx) error {
		for i, a := range args {
			if _, err := t.exec(t.st.upsertSession, a...); err != nil {
				return wrap(err, "put session %s", xs[i].ID)
			}
		}
		return nil
	})
}

// PutMessages writes each message as given, at its own seq, over any
// message with the same id, all in one transaction, with no fence and
// without touching its session's header. A message whose (session, seq) is
// held by a message with another id answers ErrConflict.
func (s *Store) PutMessages(ctx context.Context, msgs []persistence.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	args := make([][]any, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.ID == "" || m.SessionID == "" || m.Seq < 1 {
			return fmt.Errorf("put message %d of session %q: need an id, a session id and a seq from 1", m.Seq, m.SessionID)
		}
		args[i] = s.messageArgs(m)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	what := fmt.Sprintf("put %d messages", len(msgs))
	return s.write(ctx, what, func(t *wtx) error {
		for i, a := range args {
			if _, err := t.exec(t.st.upsertMessage, a...); err != nil {
				return wrap(err, "put message %d of session %s", msgs[i].Seq, msgs[i].SessionID)
			}
		}
		return nil
	})
}
