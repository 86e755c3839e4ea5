package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence"
)

// auditDoc is the stored shape of an audit entry, in the audit collection.
type auditDoc struct {
	ID        string    `bson:"_id"`
	At        time.Time `bson:"at"`
	AdminID   string    `bson:"admin_id"`
	AdminName string    `bson:"admin_name"`
	Role      string    `bson:"role"`
	Action    string    `bson:"action"`
	SessionID string    `bson:"session_id"`
	UserID    string    `bson:"user_id"`
}

// Page sizes of the audit list.
const (
	defaultAuditLimit = 50
	maxAuditLimit     = 200
)

// sortAuditAt names the audit list's order in its cursors.
const sortAuditAt = "audit_at"

// eraseBatch is how many session ids one round of EraseUser deletes by.
const eraseBatch = 200

func (s *Store) audit() *mongodriver.Collection { return s.db.Collection("audit") }

func auditToDoc(e *persistence.AuditEntry) auditDoc {
	return auditDoc{ID: e.ID, At: e.At, AdminID: e.AdminID, AdminName: e.AdminName, Role: e.Role,
		Action: e.Action, SessionID: e.SessionID, UserID: e.UserID}
}

// AppendAudit stores e. A zero At is now; At is truncated to milliseconds
// in e. An id already stored answers ErrConflict.
func (s *Store) AppendAudit(ctx context.Context, e *persistence.AuditEntry) error {
	if e.ID == "" {
		return errors.New("append audit entry: no id")
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.At = ms(e.At)
	ctx, cancel := s.call(ctx)
	defer cancel()
	if _, err := s.audit().InsertOne(ctx, auditToDoc(e)); err != nil {
		return wrap(err, "append audit entry %s", e.ID)
	}
	return nil
}

// ListAudit returns the audit trail newest first, keyset-paginated on
// (at, _id) through the {at: -1, _id: -1} index.
func (s *Store) ListAudit(ctx context.Context, p persistence.Page) ([]persistence.AuditEntry, string, error) {
	const what = "list audit entries"
	limit := defaultAuditLimit
	if p.Limit > 0 {
		limit = min(p.Limit, maxAuditLimit)
	}
	filter := bson.D{}
	if p.Cursor != "" {
		c, err := persistence.DecodeCursor(p.Cursor, sortAuditAt, persistence.OrderDesc)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", what, err)
		}
		after := timeValue(c.Key)
		filter = bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: after}}}},
			bson.D{{Key: "at", Value: after}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: c.ID}}}},
		}}}
	}
	opts := options.Find().SetSort(bson.D{{Key: "at", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit) + 1)
	ctx, cancel := s.call(ctx)
	defer cancel()
	cur, err := s.audit().Find(ctx, filter, opts)
	if err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	var docs []auditDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, "", wrap(err, "%s", what)
	}
	next := ""
	if len(docs) > limit {
		docs = docs[:limit]
		last := &docs[limit-1]
		next = persistence.EncodeCursor(persistence.Cursor{Sort: sortAuditAt, Order: persistence.OrderDesc, Key: last.At.UnixMilli(), ID: last.ID})
	}
	out := make([]persistence.AuditEntry, len(docs))
	for i, d := range docs {
		out[i] = persistence.AuditEntry{ID: d.ID, At: d.At.UTC(), AdminID: d.AdminID, AdminName: d.AdminName,
			Role: d.Role, Action: d.Action, SessionID: d.SessionID, UserID: d.UserID}
	}
	return out, next, nil
}

// EraseUser deletes the user's sessions eraseBatch at a time: for each
// batch of session ids, the audit entries about them lose their session
// id, then their messages are deleted, then the sessions, so that an
// interrupted erasure leaves sessions that a second one finds, never
// orphaned messages. Without transactions (FerretDB has none, and the
// store does not rely on a replica set) the steps are separate writes; a
// session the user creates meanwhile is erased by the next round. The
// record is stored last. MongoDB keeps what it keeps of deleted documents
// (the oplog, free space in WiredTiger files until reused or compacted,
// backups): docs/data.md says what and for how long.
func (s *Store) EraseUser(ctx context.Context, userID string, record *persistence.AuditEntry) (persistence.EraseResult, error) {
	var res persistence.EraseResult
	if record.ID == "" {
		return res, errors.New("erase user: the audit record has no id")
	}
	what := "erase user " + userID
	for {
		ids, err := s.sessionIDsOf(ctx, userID)
		if err != nil {
			return res, wrap(err, "%s: find sessions", what)
		}
		if len(ids) == 0 {
			break
		}
		in := bson.M{"$in": ids}
		if err := s.bounded(ctx, func(ctx context.Context) error {
			_, err := s.audit().UpdateMany(ctx, bson.M{"session_id": in}, bson.M{"$set": bson.M{"session_id": ""}})
			return err
		}); err != nil {
			return res, wrap(err, "%s: audit entries", what)
		}
		var m, d *mongodriver.DeleteResult
		if err := s.bounded(ctx, func(ctx context.Context) (err error) {
			m, err = s.messages.DeleteMany(ctx, bson.M{"session_id": in})
			return err
		}); err != nil {
			return res, wrap(err, "%s: messages", what)
		}
		res.Messages += m.DeletedCount
		if err := s.bounded(ctx, func(ctx context.Context) (err error) {
			d, err = s.sessions.DeleteMany(ctx, bson.M{"_id": in, "user_id": userID})
			return err
		}); err != nil {
			return res, wrap(err, "%s: sessions", what)
		}
		res.Sessions += d.DeletedCount
	}
	n, err := s.deleteAttachments(ctx, bson.M{"metadata.user_id": userID})
	res.Attachments = n
	if err != nil {
		return res, wrap(err, "%s: attachments", what)
	}
	if err := s.AppendAudit(ctx, record); err != nil {
		return res, fmt.Errorf("%s: %w", what, err)
	}
	return res, nil
}

// bounded runs op within one call's timeout.
func (s *Store) bounded(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return op(ctx)
}

// sessionIDsOf returns up to eraseBatch ids of the user's sessions.
func (s *Store) sessionIDsOf(ctx context.Context, userID string) ([]string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	cur, err := s.sessions.Find(ctx, bson.M{"user_id": userID},
		options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(eraseBatch))
	if err != nil {
		return nil, err
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	ids := make([]string, len(docs))
	for i, d := range docs {
		ids[i] = d.ID
	}
	return ids, nil
}
