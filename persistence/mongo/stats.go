package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/chatbox/chatbox/persistence"
)

// Stats counts sessions and sums their counters in the database. Each sum
// is its own $group with a single $sum: FerretDB v1 runs every accumulator
// of one $group over a shared cursor, so all but the first see no documents.
func (s *Store) Stats(ctx context.Context) (persistence.Stats, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var st persistence.Stats
	var err error
	if st.Sessions, err = s.sessions.CountDocuments(ctx, bson.M{}); err != nil {
		return st, wrap(err, "count sessions")
	}
	for _, f := range []struct {
		field string
		into  *int64
	}{{"message_count", &st.Messages}, {"tokens_in", &st.TokensIn}, {"tokens_out", &st.TokensOut}} {
		if *f.into, err = s.sum(ctx, f.field); err != nil {
			return st, err
		}
	}
	if st.HelpRequested, err = s.sessions.CountDocuments(ctx, bson.M{"help_requested": true}); err != nil {
		return st, wrap(err, "count help requests")
	}
	if st.TakenOver, err = s.sessions.CountDocuments(ctx, bson.M{"mode": persistence.ModeHuman}); err != nil {
		return st, wrap(err, "count taken-over sessions")
	}
	if st.Ratings, err = s.sessions.CountDocuments(ctx, bson.M{"rating": bson.M{"$gt": 0}}); err != nil {
		return st, wrap(err, "count rated sessions")
	}
	if st.RatingSum, err = s.sum(ctx, "rating"); err != nil {
		return st, err
	}
	return st, nil
}

// sum adds up one numeric field over all sessions, in the database.
func (s *Store) sum(ctx context.Context, field string) (int64, error) {
	cur, err := s.sessions.Aggregate(ctx, bson.A{
		bson.M{"$group": bson.M{"_id": nil, "total": bson.M{"$sum": "$" + field}}},
	})
	if err != nil {
		return 0, wrap(err, "sum %s", field)
	}
	var rows []struct {
		Total int64 `bson:"total"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return 0, wrap(err, "sum %s", field)
	}
	if len(rows) == 0 {
		return 0, nil
	}
	return rows[0].Total, nil
}
