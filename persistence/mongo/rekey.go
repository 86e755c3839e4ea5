package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence"
)

// Rekey re-encrypts, under the keyring's current key, every message text
// and session title stored under another key, opening them with the
// previous keys of the keyring. It is safe to run while servers write and
// to interrupt: it reads batches of records whose key id is not the current
// one, in _id order, and rewrites each with an update conditional on its _id,
// key id and ciphertext all being what was read, so a newer write made
// meanwhile is never overwritten. Every update stands on its own; a run that
// is cancelled (ctx) keeps what it did and returns it with ctx's error, and
// running again continues with what is left.
//
// A record that cannot be opened (its key is not configured, or it does not
// authenticate) is skipped, left exactly as it is, and reported in the
// result; that is not an error of Rekey. progress, when not nil, is called
// after each batch, on the caller's goroutine. batch <= 0 means
// persistence.DefaultRekeyBatch. Each query and each batch of updates is
// bounded by the store's timeout.
func (s *Store) Rekey(ctx context.Context, batch int, progress func(persistence.RekeyProgress)) (persistence.RekeyResult, error) {
	return s.rekey(ctx, batch, progress, nil)
}

// rekey is Rekey; beforeWrite, when not nil, runs between reading a batch
// and writing it (tests use it to write concurrently).
func (s *Store) rekey(ctx context.Context, batch int, progress func(persistence.RekeyProgress), beforeWrite func()) (persistence.RekeyResult, error) {
	if batch <= 0 {
		batch = persistence.DefaultRekeyBatch
	}
	r := &rekeyRun{s: s, batch: batch, progress: progress, beforeWrite: beforeWrite, res: persistence.RekeyResult{Remaining: -1}}
	phases := []rekeyPhase{
		{
			name: persistence.RekeyMessages, coll: s.messages, keyField: "key_id", ctField: "ct",
			count: &r.res.Messages,
			decode: func(raw bson.Raw) (rekeyDoc, error) {
				var d messageDoc
				err := bson.Unmarshal(raw, &d)
				return rekeyDoc{id: d.ID, sessionID: d.SessionID, seq: d.Seq, keyID: d.KeyID, ct: d.CT,
					ad: persistence.MessageAD(d.SessionID, d.Seq)}, err
			},
			projection: bson.M{"_id": 1, "session_id": 1, "seq": 1, "key_id": 1, "ct": 1},
		},
		{
			name: persistence.RekeyTitles, coll: s.sessions, keyField: "title_key_id", ctField: "title_ct",
			count: &r.res.Titles,
			decode: func(raw bson.Raw) (rekeyDoc, error) {
				var d sessionDoc
				err := bson.Unmarshal(raw, &d)
				return rekeyDoc{id: d.ID, sessionID: d.ID, keyID: d.TitleKeyID, ct: d.TitleCT,
					ad: persistence.TitleAD(d.ID)}, err
			},
			projection: bson.M{"_id": 1, "title_key_id": 1, "title_ct": 1},
		},
	}
	for _, p := range phases {
		if err := r.phase(ctx, p); err != nil {
			return r.res, err
		}
	}
	remaining := int64(0)
	for _, p := range phases {
		n, err := r.remaining(ctx, p)
		if err != nil {
			return r.res, err
		}
		remaining += n
	}
	r.res.Remaining = remaining
	return r.res, nil
}

// rekeyPhase is one collection's encrypted field and how to read it.
type rekeyPhase struct {
	name              string
	coll              *mongodriver.Collection
	keyField, ctField string
	projection        bson.M
	decode            func(bson.Raw) (rekeyDoc, error)
	count             *int64 // where the phase counts what it re-encrypted
}

// rekeyDoc is the encrypted part of one record and what it is bound to.
type rekeyDoc struct {
	id, sessionID string
	seq           int64
	keyID         string
	ct            []byte
	ad            []byte
}

type rekeyRun struct {
	s           *Store
	batch       int
	progress    func(persistence.RekeyProgress)
	beforeWrite func()
	res         persistence.RekeyResult
	scanned     int64
}

// phase rekeys one collection, batch by batch, in _id order. The keyset on
// _id (not a skip) moves past records it leaves behind, the unreadable ones,
// which still match the filter.
func (r *rekeyRun) phase(ctx context.Context, p rekeyPhase) error {
	current := r.s.keys.CurrentKeyID()
	after := ""
	for {
		filter := bson.D{{Key: p.keyField, Value: bson.D{{Key: "$ne", Value: current}}}}
		if after != "" {
			filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
		}
		docs, err := r.read(ctx, p, filter)
		if err != nil {
			return err
		}
		if len(docs) == 0 {
			return nil
		}
		after = docs[len(docs)-1].id
		r.scanned += int64(len(docs))

		var updates []mongodriver.WriteModel
		for _, d := range docs {
			plain, err := r.s.keys.Open(d.keyID, d.ct, d.ad)
			if err != nil {
				r.unreadable(d, err)
				continue
			}
			keyID, ct := r.s.keys.Seal(plain, d.ad)
			updates = append(updates, mongodriver.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "_id", Value: d.id}, {Key: p.keyField, Value: d.keyID}, {Key: p.ctField, Value: d.ct}}).
				SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: p.keyField, Value: keyID}, {Key: p.ctField, Value: ct}}}}))
		}
		if r.beforeWrite != nil {
			r.beforeWrite()
		}
		if err := r.write(ctx, p, updates); err != nil {
			return err
		}
		if r.progress != nil {
			r.progress(persistence.RekeyProgress{
				Phase: p.name, Scanned: r.scanned, Messages: r.res.Messages, Titles: r.res.Titles,
				Unreadable: r.res.UnreadableCount,
			})
		}
		if len(docs) < r.batch {
			return nil
		}
	}
}

func (r *rekeyRun) read(ctx context.Context, p rekeyPhase, filter bson.D) ([]rekeyDoc, error) {
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	cur, err := p.coll.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(r.batch)).
		SetProjection(p.projection))
	if err != nil {
		return nil, wrap(err, "rekey %s: find", p.name)
	}
	var raws []bson.Raw
	if err := cur.All(ctx, &raws); err != nil {
		return nil, wrap(err, "rekey %s: read", p.name)
	}
	docs := make([]rekeyDoc, len(raws))
	for i, raw := range raws {
		if docs[i], err = p.decode(raw); err != nil {
			return nil, fmt.Errorf("rekey %s: decode: %w", p.name, err)
		}
	}
	return docs, nil
}

// write applies one batch's conditional updates in a single unordered bulk
// write. An update that matches nothing lost to a newer write.
func (r *rekeyRun) write(ctx context.Context, p rekeyPhase, updates []mongodriver.WriteModel) error {
	if len(updates) == 0 {
		return nil
	}
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	res, err := p.coll.BulkWrite(ctx, updates, options.BulkWrite().SetOrdered(false))
	if err != nil {
		return wrap(err, "rekey %s: update", p.name)
	}
	*p.count += res.MatchedCount
	r.res.Changed += int64(len(updates)) - res.MatchedCount
	return nil
}

func (r *rekeyRun) unreadable(d rekeyDoc, err error) {
	r.res.UnreadableCount++
	if len(r.res.Unreadable) >= persistence.MaxReportedUnreadable {
		return
	}
	reason := "corrupt"
	if errors.Is(err, persistence.ErrKeyMissing) {
		reason = "key_missing"
	}
	r.res.Unreadable = append(r.res.Unreadable, persistence.UnreadableRecord{SessionID: d.sessionID, Seq: d.seq, KeyID: d.keyID, Reason: reason})
}

// remaining counts p's records still not under the current key.
func (r *rekeyRun) remaining(ctx context.Context, p rekeyPhase) (int64, error) {
	ctx, cancel := r.s.call(ctx)
	defer cancel()
	n, err := p.coll.CountDocuments(ctx, bson.D{{Key: p.keyField, Value: bson.D{{Key: "$ne", Value: r.s.keys.CurrentKeyID()}}}})
	if err != nil {
		return 0, wrap(err, "rekey %s: count what is left", p.name)
	}
	return n, nil
}
