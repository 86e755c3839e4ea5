package mongo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence"
)

// Page sizes of ListMessages.
const (
	defaultMessageLimit = 100
	maxMessageLimit     = 1000
)

// AppendMessage stores m at m.Seq and advances the session to it; see the
// package doc for the fence. An empty m.ID is set to a fresh random id, and
// a zero CreatedAt to now; CreatedAt is truncated to milliseconds in m. The
// session's updated_at moves forward to m.CreatedAt.
//
// It answers ErrConflict when seq is taken or the session's last_seq is not
// m.Seq-1, ErrNotFound when the session does not exist. Repeating an append
// with the same m.ID after an ErrUnavailable is safe: it succeeds if the
// first attempt did.
func (s *Store) AppendMessage(ctx context.Context, m *persistence.Message) error {
	if m.SessionID == "" || m.Seq < 1 {
		return fmt.Errorf("append message %d to session %q: need a session id and a seq from 1", m.Seq, m.SessionID)
	}
	if m.ID == "" {
		m.ID = rand.Text()
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	m.CreatedAt = ms(m.CreatedAt)

	ctx, cancel := s.call(ctx)
	defer cancel()

	// The session must be exactly one behind: no gaps. This read and every
	// write below address a document by _id alone, the one lookup FerretDB's
	// SQLite backend answers from an index; the race between two writers of
	// the same seq is settled by the unique {session_id, seq} index.
	var sess sessionDoc
	err := s.sessions.FindOne(ctx, bson.M{"_id": m.SessionID},
		options.FindOne().SetProjection(bson.M{"last_seq": 1})).Decode(&sess)
	if err != nil {
		return wrap(err, "append message %d to session %s", m.Seq, m.SessionID)
	}
	switch {
	case sess.LastSeq >= m.Seq:
		return s.alreadyAppended(ctx, m)
	case sess.LastSeq < m.Seq-1:
		return fmt.Errorf("append message %d to session %s: last_seq is %d: %w", m.Seq, m.SessionID, sess.LastSeq, persistence.ErrConflict)
	}

	_, err = s.messages.InsertOne(ctx, s.messageToDoc(m))
	if mongodriver.IsDuplicateKeyError(err) {
		return s.seqTaken(ctx, m)
	}
	if err != nil {
		return wrap(err, "append message %d to session %s", m.Seq, m.SessionID)
	}
	return s.commit(ctx, m)
}

// seqTaken handles an insert that hit the unique index: m.Seq (or m.ID) is
// taken. If by m itself, this is a repeated append and proceeds to the
// fence. If by another writer's message, it may be one that never got
// committed because its writer died before the fence; completing that
// append (the fence only applies while last_seq is seq-1) frees the session
// to move on. Either way the caller lost seq.
func (s *Store) seqTaken(ctx context.Context, m *persistence.Message) error {
	var other messageDoc
	err := s.messages.FindOne(ctx,
		bson.M{"session_id": m.SessionID, "seq": m.Seq},
		options.FindOne().SetProjection(bson.M{"_id": 1, "created_at": 1}),
	).Decode(&other)
	switch {
	case errors.Is(err, mongodriver.ErrNoDocuments):
		// m.ID is taken by a message elsewhere.
		return fmt.Errorf("append message %d to session %s: id %s: %w", m.Seq, m.SessionID, m.ID, persistence.ErrConflict)
	case err != nil:
		return wrap(err, "append message %d to session %s: find the message holding the seq", m.Seq, m.SessionID)
	case other.ID == m.ID:
		return s.commit(ctx, m)
	}
	if _, err := s.advance(ctx, m.SessionID, m.Seq, other.CreatedAt); err != nil {
		return wrap(err, "append message %d to session %s: complete the append holding the seq", m.Seq, m.SessionID)
	}
	return fmt.Errorf("append message %d to session %s: seq taken: %w", m.Seq, m.SessionID, persistence.ErrConflict)
}

// alreadyAppended answers an append whose seq the session has passed: a
// repeat of one that succeeded (the same message id at that seq) is a
// success, anything else lost the seq.
func (s *Store) alreadyAppended(ctx context.Context, m *persistence.Message) error {
	var mine messageDoc
	err := s.messages.FindOne(ctx, bson.M{"_id": m.ID},
		options.FindOne().SetProjection(bson.M{"session_id": 1, "seq": 1})).Decode(&mine)
	switch {
	case err == nil && mine.SessionID == m.SessionID && mine.Seq == m.Seq:
		return nil
	case err != nil && !errors.Is(err, mongodriver.ErrNoDocuments):
		return wrap(err, "append message %d to session %s: look for an earlier attempt", m.Seq, m.SessionID)
	}
	return fmt.Errorf("append message %d to session %s: seq taken: %w", m.Seq, m.SessionID, persistence.ErrConflict)
}

// commit advances the session over m, whose document is stored and so owns
// its seq. If the session is gone, m is deleted again.
func (s *Store) commit(ctx context.Context, m *persistence.Message) error {
	ok, err := s.advance(ctx, m.SessionID, m.Seq, m.CreatedAt)
	if err != nil {
		// The update may or may not have applied: leave m in place. A repeat
		// with the same id completes it, the next writer completes it, or
		// ListMessages keeps it out of sight.
		return wrap(err, "append message %d to session %s: advance last_seq", m.Seq, m.SessionID)
	}
	if ok {
		return nil
	}
	if _, err := s.messages.DeleteOne(ctx, bson.M{"_id": m.ID}); err != nil {
		return wrap(err, "append message %d to session %s: session gone; delete the message", m.Seq, m.SessionID)
	}
	return fmt.Errorf("append message %d to session %s: %w", m.Seq, m.SessionID, persistence.ErrNotFound)
}

// advance moves the session's last_seq (and message_count, which equals it:
// seqs start at 1 and have no gaps) forward to seq and updated_at forward to
// at. $max makes it idempotent, so completing a dead writer's append and
// that writer's own late commit cannot count a message twice. It reports
// whether the session exists.
func (s *Store) advance(ctx context.Context, sessionID string, seq int64, at time.Time) (bool, error) {
	res, err := s.sessions.UpdateOne(ctx,
		bson.M{"_id": sessionID},
		bson.M{"$max": bson.M{"last_seq": seq, "message_count": seq, "updated_at": ms(at)}})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// UpdateMessage rewrites the text, status and usage of the message at
// (m.SessionID, m.Seq), which must also be m.ID if that is set.
// ErrNotFound when there is none.
func (s *Store) UpdateMessage(ctx context.Context, m *persistence.Message) error {
	// By _id alone when it is known (always, from the actors): the lookup
	// the embedded store answers from an index.
	filter := bson.M{"session_id": m.SessionID, "seq": m.Seq}
	if m.ID != "" {
		filter = bson.M{"_id": m.ID}
	}
	keyID, ct := s.keys.Seal([]byte(m.Text), persistence.MessageAD(m.SessionID, m.Seq))
	update := bson.M{"$set": bson.M{
		"key_id":     keyID,
		"ct":         ct,
		"status":     string(m.Status),
		"tokens_in":  m.TokensIn,
		"tokens_out": m.TokensOut,
	}}

	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.messages.UpdateOne(ctx, filter, update)
	if err != nil {
		return wrap(err, "update message %d of session %s", m.Seq, m.SessionID)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("update message %d of session %s: %w", m.Seq, m.SessionID, persistence.ErrNotFound)
	}
	return nil
}

// ListMessages returns up to limit committed messages with seq > afterSeq,
// in seq order; limit defaults to 100 and is capped at 1000. Messages past
// the session's last_seq are not committed and are left out. An unknown
// session answers ErrNotFound.
func (s *Store) ListMessages(ctx context.Context, sessionID string, afterSeq int64, limit int) ([]persistence.Message, error) {
	if limit <= 0 {
		limit = defaultMessageLimit
	}
	limit = min(limit, maxMessageLimit)

	ctx, cancel := s.call(ctx)
	defer cancel()

	var sess sessionDoc
	err := s.sessions.FindOne(ctx, bson.M{"_id": sessionID},
		options.FindOne().SetProjection(bson.M{"last_seq": 1})).Decode(&sess)
	if err != nil {
		return nil, wrap(err, "list messages of session %s", sessionID)
	}
	if afterSeq >= sess.LastSeq {
		return []persistence.Message{}, nil
	}

	cur, err := s.messages.Find(ctx,
		bson.M{"session_id": sessionID, "seq": bson.M{"$gt": afterSeq, "$lte": sess.LastSeq}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, wrap(err, "list messages of session %s", sessionID)
	}
	var docs []messageDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(err, "list messages of session %s: read", sessionID)
	}
	out := make([]persistence.Message, len(docs))
	for i := range docs {
		out[i] = s.messageFromDoc(ctx, &docs[i])
	}
	return out, nil
}
