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
// package doc for the fence and its two round trips. An empty m.ID is set
// to a fresh random id, and a zero CreatedAt to now; CreatedAt is truncated
// to milliseconds in m. The session's updated_at moves forward to
// m.CreatedAt, and m's usage is added to its token totals.
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

	doc := s.messageToDoc(m)
	_, err := s.messages.InsertOne(ctx, doc)
	if mongodriver.IsDuplicateKeyError(err) {
		return s.seqTaken(ctx, m)
	}
	if err != nil {
		return wrap(err, "append message %d to session %s", m.Seq, m.SessionID)
	}
	if err := s.commit(ctx, m, &doc); err != nil {
		return err
	}
	return s.assignAttachments(ctx, m)
}

// commit advances the session over m, whose document d is stored and so
// owns its seq: the second round trip of an append. If the fence does not
// hold, one read of the session says why: it already covers seq (a repeat,
// or another writer completed this append), it is gone, or it is behind
// (a gap; m is deleted again).
func (s *Store) commit(ctx context.Context, m *persistence.Message, d *messageDoc) error {
	ok, err := s.advance(ctx, d)
	if err != nil {
		// The update may or may not have applied: leave m in place. A repeat
		// with the same id completes it, the next writer completes it, or
		// ListMessages keeps it out of sight.
		return wrap(err, "append message %d to session %s: advance last_seq", m.Seq, m.SessionID)
	}
	if ok {
		return nil
	}
	var sess sessionDoc
	err = s.sessions.FindOne(ctx, bson.M{"_id": m.SessionID},
		options.FindOne().SetProjection(bson.M{"last_seq": 1})).Decode(&sess)
	switch {
	case errors.Is(err, mongodriver.ErrNoDocuments):
		return s.withdraw(ctx, m, persistence.ErrNotFound, "no session")
	case err != nil:
		return wrap(err, "append message %d to session %s: read last_seq", m.Seq, m.SessionID)
	case sess.LastSeq >= m.Seq:
		// m's document holds seq under the unique index, so the message the
		// session covers at seq is m.
		return nil
	}
	return s.withdraw(ctx, m, persistence.ErrConflict, fmt.Sprintf("last_seq is %d", sess.LastSeq))
}

// withdraw deletes m, stored but not committed, and answers sentinel: m
// must leave nothing behind. Between the failed fence and this delete,
// other writers may have brought the session up to m.Seq-1 and completed
// m; if the session covers m.Seq afterwards, m is put back and the append
// succeeded after all.
func (s *Store) withdraw(ctx context.Context, m *persistence.Message, sentinel error, why string) error {
	if _, err := s.messages.DeleteOne(ctx, bson.M{"_id": m.ID}); err != nil {
		return wrap(err, "append message %d to session %s: %s; delete the message", m.Seq, m.SessionID, why)
	}
	if sentinel == persistence.ErrConflict {
		var sess sessionDoc
		err := s.sessions.FindOne(ctx, bson.M{"_id": m.SessionID},
			options.FindOne().SetProjection(bson.M{"last_seq": 1})).Decode(&sess)
		if err == nil && sess.LastSeq >= m.Seq {
			if _, err := s.messages.InsertOne(ctx, s.messageToDoc(m)); err != nil {
				return wrap(err, "append message %d to session %s: completed meanwhile; restore the message", m.Seq, m.SessionID)
			}
			return nil
		}
	}
	return fmt.Errorf("append message %d to session %s: %s: %w", m.Seq, m.SessionID, why, sentinel)
}

// seqTaken handles an insert that hit a unique index: m.Seq (or m.ID) is
// taken. If by m itself, this is a repeated append and proceeds to the
// fence. If by another writer's message, it may be one that never got
// committed because its writer died before the fence; completing that
// append (the fence only matches while last_seq is seq-1, so a committed
// one is never counted twice) frees the session to move on. Either way the
// caller lost seq.
func (s *Store) seqTaken(ctx context.Context, m *persistence.Message) error {
	var other messageDoc
	err := s.messages.FindOne(ctx,
		bson.M{"session_id": m.SessionID, "seq": m.Seq},
		options.FindOne().SetProjection(bson.M{"ct": 0}),
	).Decode(&other)
	switch {
	case errors.Is(err, mongodriver.ErrNoDocuments):
		// m.ID is taken by a message elsewhere (or the seq's holder was
		// withdrawn meanwhile): either way this writer must reload.
		return fmt.Errorf("append message %d to session %s: id %s: %w", m.Seq, m.SessionID, m.ID, persistence.ErrConflict)
	case err != nil:
		return wrap(err, "append message %d to session %s: find the message holding the seq", m.Seq, m.SessionID)
	case other.ID == m.ID:
		doc := s.messageToDoc(m)
		return s.commit(ctx, m, &doc)
	}
	if _, err := s.advance(ctx, &other); err != nil {
		return wrap(err, "append message %d to session %s: complete the append holding the seq", m.Seq, m.SessionID)
	}
	return fmt.Errorf("append message %d to session %s: seq taken: %w", m.Seq, m.SessionID, persistence.ErrConflict)
}

// advance is the fence: it commits the stored message d by moving its
// session's last_seq from d.Seq-1 to d.Seq, counting it, adding its usage
// to the token totals and moving updated_at forward to its time, all in
// one update that matches only while last_seq is d.Seq-1 (a note moves
// neither the head nor the count). So a message is
// counted once, however many writers try to commit it. It reports whether
// the update matched.
func (s *Store) advance(ctx context.Context, d *messageDoc) (bool, error) {
	set := bson.M{"last_seq": d.Seq, "head_id": d.ID}
	inc := bson.M{"message_count": int64(1), "tokens_in": d.TokensIn, "tokens_out": d.TokensOut}
	if d.Role == string(persistence.RoleNote) {
		// A note is not part of the conversation: no head, no count.
		delete(set, "head_id")
		delete(inc, "message_count")
	}
	res, err := s.sessions.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: d.SessionID}, {Key: "last_seq", Value: d.Seq - 1}},
		bson.D{
			{Key: "$set", Value: set},
			{Key: "$inc", Value: inc},
			{Key: "$max", Value: bson.M{"updated_at": d.CreatedAt}},
		})
	if err != nil {
		return false, err
	}
	return res.MatchedCount == 1, nil
}

// UpdateMessage rewrites the text, status and usage of the message at
// (m.SessionID, m.Seq), which must also be m.ID if that is set, and moves
// its session's token totals by the difference in usage. ErrNotFound when
// there is none.
//
// The message is rewritten with FindOneAndUpdate returning the old usage;
// only when the usage changed does a second update $inc the session's
// totals by the difference. The two are not atomic: a process that dies
// between them leaves the totals short of that one difference.
func (s *Store) UpdateMessage(ctx context.Context, m *persistence.Message) error {
	// With _id when it is known (always, from the actors): the lookup the
	// embedded store answers from an index. session_id and seq stay in the
	// filter, since the ciphertext is bound to them.
	filter := bson.D{{Key: "session_id", Value: m.SessionID}, {Key: "seq", Value: m.Seq}}
	if m.ID != "" {
		filter = append(bson.D{{Key: "_id", Value: m.ID}}, filter...)
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
	var old messageDoc // whole: FerretDB's findAndModify takes no projection
	err := s.messages.FindOneAndUpdate(ctx, filter, update,
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&old)
	if err != nil {
		return wrap(err, "update message %d of session %s", m.Seq, m.SessionID)
	}
	dIn, dOut := m.TokensIn-old.TokensIn, m.TokensOut-old.TokensOut
	if dIn == 0 && dOut == 0 {
		return nil
	}
	if _, err := s.sessions.UpdateOne(ctx, bson.M{"_id": m.SessionID},
		bson.M{"$inc": bson.M{"tokens_in": dIn, "tokens_out": dOut}}); err != nil {
		return wrap(err, "update message %d of session %s: token totals", m.Seq, m.SessionID)
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
	if err := s.parentsOfLegacy(ctx, docs, out); err != nil {
		return nil, wrap(err, "list messages of session %s: parents of messages from before v1.1", sessionID)
	}
	return out, nil
}

// parentsOfLegacy fills in the parent of each message in out whose document
// (docs, in seq order, one session's) was written before v1.1 and so holds
// none: then there were no branches, and a message's parent is the message
// at the seq before it. Only when the first such message opens the page does
// that cost a read.
func (s *Store) parentsOfLegacy(ctx context.Context, docs []messageDoc, out []persistence.Message) error {
	for i := range docs {
		if docs[i].ParentID != nil || docs[i].Seq <= 1 {
			continue
		}
		if i > 0 && docs[i-1].Seq == docs[i].Seq-1 {
			out[i].ParentID = docs[i-1].ID
			continue
		}
		var prev messageDoc
		err := s.messages.FindOne(ctx, bson.M{"session_id": docs[i].SessionID, "seq": docs[i].Seq - 1},
			options.FindOne().SetProjection(bson.M{"_id": 1})).Decode(&prev)
		if err != nil && !errors.Is(err, mongodriver.ErrNoDocuments) {
			return err
		}
		out[i].ParentID = prev.ID
	}
	return nil
}
