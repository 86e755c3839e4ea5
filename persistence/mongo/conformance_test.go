package mongo_test

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/storetest"
)

// TestConformance runs the conformance suite against the in-process
// FerretDB, or against the MongoDB that CHATBOX_TEST_MONGO_URI names.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, storetest.Factory{
		Open: func(t *testing.T, keys *persistence.Keyring) persistence.Store {
			return storetest.MongoWith(t, keys)
		},
		Reopen: func(t *testing.T, st persistence.Store, keys *persistence.Keyring) persistence.Store {
			return storetest.MongoAt(t, storetest.URI(t), st.(*mongo.Store).Database().Name(), keys)
		},
		Corrupt: corrupt,
		Dump:    dump,
	})
}

// corrupt flips the last byte of a message's stored ciphertext.
func corrupt(t *testing.T, st persistence.Store, sessionID string, seq int64) {
	t.Helper()
	messages := st.(*mongo.Store).Database().Collection("messages")
	filter := bson.M{"session_id": sessionID, "seq": seq}
	var d struct {
		CT []byte `bson:"ct"`
	}
	if err := messages.FindOne(t.Context(), filter).Decode(&d); err != nil {
		t.Fatalf("corrupt %s/%d: %v", sessionID, seq, err)
	}
	d.CT[len(d.CT)-1] ^= 0xff
	if _, err := messages.UpdateOne(t.Context(), filter, bson.M{"$set": bson.M{"ct": d.CT}}); err != nil {
		t.Fatalf("corrupt %s/%d: %v", sessionID, seq, err)
	}
}

// dump is every document of the store's database, as raw BSON.
func dump(t *testing.T, st persistence.Store) []byte {
	t.Helper()
	db := st.(*mongo.Store).Database()
	names, err := db.ListCollectionNames(t.Context(), bson.M{})
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	var out []byte
	for _, name := range names {
		cur, err := db.Collection(name).Find(t.Context(), bson.M{})
		if err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
		var docs []bson.Raw
		if err := cur.All(t.Context(), &docs); err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
		for _, d := range docs {
			out = append(out, d...)
		}
	}
	return out
}
