package mongo

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence"
)

// Indexes lists the indexes of the sessions and messages collections, _id
// included, as the database reports them.
func (s *Store) Indexes(ctx context.Context) ([]persistence.Index, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var out []persistence.Index
	for _, coll := range []*mongodriver.Collection{s.sessions, s.messages} {
		specs, err := coll.Indexes().ListSpecifications(ctx)
		if err != nil {
			return nil, wrap(err, "list the indexes of %s", coll.Name())
		}
		for _, ix := range specs {
			out = append(out, persistence.Index{
				Table:  coll.Name(),
				Name:   ix.Name,
				Keys:   indexKeys(ix.KeysDocument),
				Unique: ix.Unique != nil && *ix.Unique,
			})
		}
	}
	return out, nil
}

// indexKeys shows an index's keys document as "field: 1, other: -1".
func indexKeys(doc bson.Raw) string {
	elems, err := doc.Elements()
	if err != nil {
		return doc.String()
	}
	parts := make([]string, len(elems))
	for i, e := range elems {
		v := e.Value()
		if n, ok := v.AsInt64OK(); ok {
			parts[i] = fmt.Sprintf("%s: %d", e.Key(), n)
		} else {
			parts[i] = fmt.Sprintf("%s: %s", e.Key(), v)
		}
	}
	return strings.Join(parts, ", ")
}

// PutSession writes every field of x as given, replacing any session with
// its id (an upsert by _id): LastSeq, MessageCount, token totals and
// Version included. Times are truncated to milliseconds in UTC.
func (s *Store) PutSession(ctx context.Context, x *persistence.Session) error {
	if x.ID == "" {
		return fmt.Errorf("put session: no id")
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.sessions.ReplaceOne(ctx, bson.M{"_id": x.ID}, s.sessionToDoc(x), options.Replace().SetUpsert(true))
	if err != nil {
		return wrap(err, "put session %s", x.ID)
	}
	return nil
}

// putBatch is how many messages one bulk write of PutMessages carries, so
// that each stays well within the timeout.
const putBatch = 200

// PutMessages writes each message as given, replacing any with its id, in
// unordered bulk writes of upserts by _id, putBatch at a time, each bounded
// by the timeout. It does not fence and does not touch the sessions. A
// message at a seq another id holds fails the unique index and answers
// ErrConflict; the others of its batch are written.
func (s *Store) PutMessages(ctx context.Context, msgs []persistence.Message) error {
	for batch := range slices.Chunk(msgs, putBatch) {
		if err := s.putMessages(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) putMessages(ctx context.Context, msgs []persistence.Message) error {
	models := make([]mongodriver.WriteModel, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.ID == "" || m.SessionID == "" || m.Seq < 1 {
			return fmt.Errorf("put message %d of session %q: need an id, a session id and a seq from 1", m.Seq, m.SessionID)
		}
		models[i] = mongodriver.NewReplaceOneModel().
			SetFilter(bson.M{"_id": m.ID}).
			SetReplacement(s.messageToDoc(m)).
			SetUpsert(true)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.messages.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false)); err != nil {
		return wrap(err, "put %d messages", len(msgs))
	}
	return nil
}
