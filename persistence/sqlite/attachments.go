package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// encodeRefs is a message's attachments column: JSON, "" for none.
func encodeRefs(refs []persistence.AttachmentRef) string {
	if len(refs) == 0 {
		return ""
	}
	b, err := json.Marshal(refs)
	if err != nil {
		panic("sqlite: encode attachment refs: " + err.Error()) // strings and ints only
	}
	return string(b)
}

func decodeRefs(s string) ([]persistence.AttachmentRef, error) {
	if s == "" {
		return nil, nil
	}
	var refs []persistence.AttachmentRef
	return refs, json.Unmarshal([]byte(s), &refs)
}

// PutAttachment writes each sealed chunk as its own write request, so an
// upload never holds more than one chunk and never holds the writer for
// long, then the metadata row, which makes the attachment visible. A
// failure deletes the chunks written so far.
func (s *Store) PutAttachment(ctx context.Context, a *persistence.Attachment, r io.Reader) error {
	what := "put attachment " + a.ID
	if a.ID == "" || a.UserID == "" {
		return fmt.Errorf("%s: need an id and a user id", what)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	a.CreatedAt = ms(a.CreatedAt)
	size, chunks, err := persistence.SealChunks(s.keys, a.ID, r, func(c persistence.SealedChunk) error {
		wctx, cancel := s.call(ctx)
		defer cancel()
		return s.write(wctx, what, func(t *wtx) error {
			_, err := t.c.ExecContext(t.ctx, qInsertChunk, a.ID, c.N, c.KeyID, c.CT)
			return wrapIf(err, "%s: chunk %d", what, c.N)
		})
	})
	if err == nil {
		a.Size = size
		keyID, ct := s.keys.Seal([]byte(a.Transcript), persistence.TranscriptAD(a.ID))
		wctx, cancel := s.call(ctx)
		err = s.write(wctx, what, func(t *wtx) error {
			_, err := t.c.ExecContext(t.ctx, qInsertAttachment, a.ID, a.UserID, a.SessionID, a.Name, a.Type,
				a.Size, chunks, a.CreatedAt.UnixMilli(), keyID, ct)
			return wrapIf(err, "%s", what)
		})
		cancel()
	}
	if err != nil && chunks > 0 {
		// A context of its own: the caller's may be what ended the upload.
		dctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		if derr := s.write(dctx, what, func(t *wtx) error {
			_, err := t.c.ExecContext(t.ctx, qDeleteChunks, a.ID)
			return wrapIf(err, "%s: remove its chunks", what)
		}); derr != nil {
			s.log.Warn("chunks of a failed upload stay until the user is erased", "attachment_id", a.ID, "err", derr)
		}
		cancel()
	}
	return err
}

// GetAttachment reads the metadata row and opens the transcript.
func (s *Store) GetAttachment(ctx context.Context, id string) (*persistence.Attachment, error) {
	a, _, err := s.attachment(ctx, id)
	return a, err
}

func (s *Store) attachment(ctx context.Context, id string) (*persistence.Attachment, int64, error) {
	what := "get attachment " + id
	if err := s.open(what); err != nil {
		return nil, 0, err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var (
		a       persistence.Attachment
		chunks  int64
		created int64
		keyID   string
		ct      []byte
	)
	err := s.rdb.QueryRowContext(ctx, qGetAttachment, id).Scan(&a.ID, &a.UserID, &a.SessionID, &a.Name, &a.Type,
		&a.Size, &chunks, &created, &keyID, &ct)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("%s: %w", what, persistence.ErrNotFound)
	}
	if err != nil {
		return nil, 0, wrap(err, "%s", what)
	}
	a.CreatedAt = fromMillis(created)
	text, err := s.keys.Open(keyID, ct, persistence.TranscriptAD(id))
	if err != nil {
		s.unreadable(ctx, err, "attachment transcript unreadable", "attachment_id", id, "key_id", keyID)
	}
	a.Transcript = string(text)
	return &a, chunks, nil
}

// ReadAttachment reads and opens one chunk at a time.
func (s *Store) ReadAttachment(ctx context.Context, id string, w io.Writer) error {
	_, chunks, err := s.attachment(ctx, id)
	if err != nil {
		return err
	}
	what := "read attachment " + id
	for n := range chunks {
		var c persistence.SealedChunk
		cctx, cancel := s.call(ctx)
		err := s.rdb.QueryRowContext(cctx, qGetChunk, id, n).Scan(&c.N, &c.KeyID, &c.CT)
		cancel()
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s: chunk %d is missing: %w", what, n, persistence.ErrCorrupt)
		}
		if err != nil {
			return wrap(err, "%s: chunk %d", what, n)
		}
		plain, err := persistence.OpenChunk(s.keys, id, n, c)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := w.Write(plain); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// SetTranscript seals and stores the transcript.
func (s *Store) SetTranscript(ctx context.Context, id, transcript string) error {
	keyID, ct := s.keys.Seal([]byte(transcript), persistence.TranscriptAD(id))
	what := "set transcript of attachment " + id
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.write(ctx, what, func(t *wtx) error {
		res, err := t.c.ExecContext(t.ctx, qSetTranscript, id, keyID, ct)
		if err != nil {
			return wrap(err, "%s", what)
		}
		if affected(res) == 0 {
			return fmt.Errorf("%s: %w", what, persistence.ErrNotFound)
		}
		return nil
	})
}

// SessionConversation reads the session's vendor conversation id.
func (s *Store) SessionConversation(ctx context.Context, sessionID string) (string, error) {
	what := "get conversation of session " + sessionID
	if err := s.open(what); err != nil {
		return "", err
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var c string
	err := s.rdb.QueryRowContext(ctx, qGetConversation, sessionID).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return c, wrapIf(err, "%s", what)
}

// SetSessionConversation stores the session's vendor conversation id.
func (s *Store) SetSessionConversation(ctx context.Context, sessionID, conversationID string) error {
	what := "set conversation of session " + sessionID
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.write(ctx, what, func(t *wtx) error {
		_, err := t.c.ExecContext(t.ctx, qSetConversation, sessionID, conversationID)
		return wrapIf(err, "%s", what)
	})
}

// wrapIf is wrap for an err that may be nil.
func wrapIf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return wrap(err, format, args...)
}
