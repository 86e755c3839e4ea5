package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence"
)

// Page sizes of the session lists.
const (
	defaultSessionLimit = 50
	maxSessionLimit     = 200
)

// CreateSession inserts s at Version 1. A zero CreatedAt is now and a zero
// UpdatedAt is CreatedAt; both are truncated to milliseconds in s itself,
// so that s holds what is stored. An empty Status is "active" and an empty
// Mode is persistence.ModeBot, also in s. An existing id answers
// ErrConflict.
func (s *Store) CreateSession(ctx context.Context, x *persistence.Session) error {
	if x.ID == "" {
		return errors.New("create session: no id")
	}
	if x.CreatedAt.IsZero() {
		x.CreatedAt = time.Now()
	}
	if x.UpdatedAt.IsZero() {
		x.UpdatedAt = x.CreatedAt
	}
	x.CreatedAt, x.UpdatedAt = ms(x.CreatedAt), ms(x.UpdatedAt)
	if x.Status == "" {
		x.Status = "active"
	}
	if x.Mode == "" {
		x.Mode = persistence.ModeBot
	}
	x.Version = 1

	ctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.sessions.InsertOne(ctx, s.sessionToDoc(x)); err != nil {
		return wrap(err, "create session %s", x.ID)
	}
	return nil
}

// GetSession returns the session or ErrNotFound.
func (s *Store) GetSession(ctx context.Context, id string) (*persistence.Session, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var d sessionDoc
	if err := s.sessions.FindOne(ctx, bson.M{"_id": id}).Decode(&d); err != nil {
		return nil, wrap(err, "get session %s", id)
	}
	x := s.sessionFromDoc(ctx, &d)
	return &x, nil
}

// GetSessionByShareID returns the session whose live share link is shareID,
// or ErrNotFound (also for an empty id, which never names a link).
func (s *Store) GetSessionByShareID(ctx context.Context, shareID string) (*persistence.Session, error) {
	if shareID == "" {
		return nil, fmt.Errorf("get shared session: %w", persistence.ErrNotFound)
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	var d sessionDoc
	if err := s.sessions.FindOne(ctx, bson.M{"share_id": shareID}).Decode(&d); err != nil {
		return nil, wrap(err, "get shared session")
	}
	x := s.sessionFromDoc(ctx, &d)
	return &x, nil
}

// UpdateSession writes the header fields of an existing session if its
// stored version is still x.Version, and advances both by one: one update,
// conditional on _id and version, whose filter the unique _id answers. It
// leaves user_id, created_at, last_seq, message_count and the token totals
// alone: those belong to CreateSession, AppendMessage and UpdateMessage.
// updated_at only moves forward (a zero UpdatedAt means now): a session
// must never slide back behind a page cursor that already passed it.
//
// When nothing matched, one more read tells ErrNotFound (no such session)
// from ErrConflict (another writer advanced the version first).
func (s *Store) UpdateSession(ctx context.Context, x *persistence.Session) error {
	updated := x.UpdatedAt
	if updated.IsZero() {
		updated = time.Now()
	}
	keyID, ct := s.keys.Seal([]byte(x.Title), persistence.TitleAD(x.ID))
	var desk sessionDoc
	s.setDesk(&desk, x)
	update := bson.M{
		"$set": bson.M{
			"help_requested_at": desk.HelpRequestedAt,
			"rating":            desk.Rating,
			"rating_key_id":     desk.RatingKeyID,
			"rating_ct":         desk.RatingCT,
			"title_key_id":      keyID,
			"title_ct":          ct,
			"model":             x.Model,
			"status":            x.Status,
			"mode":              x.Mode,
			"admin_id":          x.AdminID,
			"admin_name":        x.AdminName,
			"help_requested":    x.HelpRequested,
			"share_id":          x.ShareID,
			// $set rather than $inc: the filter pins the version, and a
			// document without one (v1.0) must land at 2, not 1.
			"version": x.Version + 1,
		},
		"$max": bson.M{"updated_at": ms(updated)},
	}

	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.sessions.UpdateOne(ctx, versionFilter(x.ID, x.Version), update)
	if err != nil {
		return wrap(err, "update session %s", x.ID)
	}
	if res.MatchedCount == 1 {
		x.Version++
		return nil
	}
	var cur sessionDoc
	err = s.sessions.FindOne(ctx, bson.M{"_id": x.ID}, options.FindOne().SetProjection(bson.M{"version": 1})).Decode(&cur)
	if err != nil {
		return wrap(err, "update session %s", x.ID)
	}
	return fmt.Errorf("update session %s at version %d: stored version is %d: %w",
		x.ID, x.Version, storedVersion(cur.Version), persistence.ErrConflict)
}

// versionFilter matches session id at version v. A document written before
// versions existed has no version field and is at version 1.
func versionFilter(id string, v int64) bson.D {
	if v != 1 {
		return bson.D{{Key: "_id", Value: id}, {Key: "version", Value: v}}
	}
	return bson.D{{Key: "_id", Value: id}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "version", Value: int64(1)}},
		bson.D{{Key: "version", Value: bson.D{{Key: "$exists", Value: false}}}},
	}}}
}

// ListSessions returns userID's sessions, most recently updated first.
func (s *Store) ListSessions(ctx context.Context, userID string, p persistence.Page) ([]persistence.Session, string, error) {
	list, next, err := s.listSessions(ctx, bson.D{{Key: "user_id", Value: userID}}, persistence.SortUpdatedAt, persistence.OrderDesc, p)
	if err != nil {
		return nil, "", fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	return list, next, nil
}

// ListAllSessions is the admin's list: every filter of f narrows it (AND),
// sorted by f.Sort then _id, both in f.Order.
func (s *Store) ListAllSessions(ctx context.Context, f persistence.AdminFilter, p persistence.Page) ([]persistence.Session, string, error) {
	field, dir := f.Sort, f.Order
	if field == "" {
		field = persistence.SortUpdatedAt
	}
	if dir == "" {
		dir = persistence.OrderDesc
	}
	if _, ok := sortFields[field]; !ok {
		return nil, "", fmt.Errorf("list all sessions: unknown sort %q", f.Sort)
	}
	if dir != persistence.OrderAsc && dir != persistence.OrderDesc {
		return nil, "", fmt.Errorf("list all sessions: unknown order %q", f.Order)
	}

	filter := bson.D{}
	if f.UserID != "" {
		filter = append(filter, bson.E{Key: "user_id", Value: f.UserID})
	}
	if f.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: f.Status})
	}
	if f.HelpRequested != nil {
		filter = append(filter, bson.E{Key: "help_requested", Value: *f.HelpRequested})
	}
	if f.TakenOver != nil {
		if *f.TakenOver {
			filter = append(filter, bson.E{Key: "mode", Value: persistence.ModeHuman})
		} else {
			filter = append(filter, bson.E{Key: "mode", Value: bson.M{"$ne": persistence.ModeHuman}})
		}
	}
	if !f.From.IsZero() || !f.To.IsZero() {
		created := bson.D{}
		if !f.From.IsZero() {
			// A sub-millisecond From must not admit the millisecond it falls in.
			from := ms(f.From)
			if from.Before(f.From) {
				from = from.Add(time.Millisecond)
			}
			created = append(created, bson.E{Key: "$gte", Value: from})
		}
		if !f.To.IsZero() {
			created = append(created, bson.E{Key: "$lte", Value: ms(f.To)})
		}
		filter = append(filter, bson.E{Key: "created_at", Value: created})
	}

	list, next, err := s.listSessions(ctx, filter, field, dir, p)
	if err != nil {
		return nil, "", fmt.Errorf("list all sessions: %w", err)
	}
	return list, next, nil
}

// listSessions runs one page of a keyset-paginated session query: sorted
// by (field, _id) in dir, starting after the cursor's (key, id). Fetching
// one more than the limit tells whether there is a next page.
func (s *Store) listSessions(ctx context.Context, filter bson.D, field, dir string, p persistence.Page) ([]persistence.Session, string, error) {
	limit := p.Limit
	if limit <= 0 {
		limit = defaultSessionLimit
	}
	limit = min(limit, maxSessionLimit)

	if p.Cursor != "" {
		c, err := persistence.DecodeCursor(p.Cursor, field, dir)
		if err != nil {
			return nil, "", err
		}
		after := sortFields[field].value(c.Key)
		op := "$lt"
		if dir == persistence.OrderAsc {
			op = "$gt"
		}
		filter = append(filter[:len(filter):len(filter)], bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: field, Value: bson.D{{Key: op, Value: after}}}},
			bson.D{{Key: field, Value: after}, {Key: "_id", Value: bson.D{{Key: op, Value: c.ID}}}},
		}})
	}
	order := -1
	if dir == persistence.OrderAsc {
		order = 1
	}
	opts := options.Find().
		SetSort(bson.D{{Key: field, Value: order}, {Key: "_id", Value: order}}).
		SetLimit(int64(limit) + 1)

	ctx, cancel := s.call(ctx)
	defer cancel()
	cur, err := s.sessions.Find(ctx, filter, opts)
	if err != nil {
		return nil, "", wrap(err, "find")
	}
	var docs []sessionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", wrap(err, "read")
	}

	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		last := &docs[limit-1]
		next = persistence.EncodeCursor(persistence.Cursor{Sort: field, Order: dir, Key: sortFields[field].key(last), ID: last.ID})
	}
	out := make([]persistence.Session, len(docs))
	for i := range docs {
		out[i] = s.sessionFromDoc(ctx, &docs[i])
	}
	return out, next, nil
}

// DeleteSession deletes the session's messages, then the session itself,
// so that an interrupted delete leaves a session that can be deleted again
// rather than orphaned messages; then the audit entries about it lose its
// id.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.messages.DeleteMany(ctx, bson.M{"session_id": id}); err != nil {
		return wrap(err, "delete messages of session %s", id)
	}
	res, err := s.sessions.DeleteOne(ctx, bson.M{"_id": id})
	if err != nil {
		return wrap(err, "delete session %s", id)
	}
	if res.DeletedCount == 0 {
		return fmt.Errorf("delete session %s: %w", id, persistence.ErrNotFound)
	}
	if _, err := s.audit().UpdateMany(ctx, bson.M{"session_id": id}, bson.M{"$set": bson.M{"session_id": ""}}); err != nil {
		return wrap(err, "forget session %s in the audit trail", id)
	}
	if _, err := s.deleteAttachments(ctx, bson.M{"metadata.session_id": id}); err != nil {
		return wrap(err, "delete attachments of session %s", id)
	}
	return nil
}

// ListQueue returns the sessions waiting for a human, oldest request
// first (then _id), from the {help_requested, help_requested_at, _id} index.
func (s *Store) ListQueue(ctx context.Context, limit int) ([]persistence.Session, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	opts := options.Find().
		SetSort(bson.D{{Key: "help_requested_at", Value: 1}, {Key: "_id", Value: 1}}).
		SetLimit(int64(min(cmp.Or(max(limit, 0), defaultSessionLimit), maxSessionLimit)))
	cur, err := s.sessions.Find(ctx, bson.M{"help_requested": true}, opts)
	if err != nil {
		return nil, wrap(err, "list the queue")
	}
	var docs []sessionDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, wrap(err, "list the queue")
	}
	out := make([]persistence.Session, len(docs))
	for i := range docs {
		out[i] = s.sessionFromDoc(ctx, &docs[i])
	}
	return out, nil
}
