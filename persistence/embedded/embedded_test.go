package embedded_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence/embedded"
)

func start(t *testing.T, dir string) *embedded.Server {
	t.Helper()
	srv, err := embedded.Start(t.Context(), dir, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func connect(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	return c
}

func TestDataSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data dir") // a space, to exercise the file: URI

	srv := start(t, dir)
	c := connect(t, srv.URI())
	if _, err := c.Database("db").Collection("c").InsertOne(ctx, bson.M{"_id": "k", "v": 42}); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := c.Disconnect(ctx); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}

	srv = start(t, dir)
	c = connect(t, srv.URI())
	defer c.Disconnect(ctx)
	var got struct {
		V int `bson:"v"`
	}
	if err := c.Database("db").Collection("c").FindOne(ctx, bson.M{"_id": "k"}).Decode(&got); err != nil {
		t.Fatalf("find after restart: %v", err)
	}
	if got.V != 42 {
		t.Fatalf("v = %d after restart, want 42", got.V)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	srv := start(t, t.TempDir())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { _ = srv.Close() })
	}
	wg.Wait()
	if err := srv.Close(); err != nil {
		t.Fatalf("close again: %v", err)
	}
}

func TestStartHonoursCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if srv, err := embedded.Start(ctx, t.TempDir(), nil); err == nil {
		srv.Close()
		t.Fatal("Start with a canceled context succeeded")
	}
}

// FerretDB runs an update as a query and then a write of the whole
// document; through the server's serializer, two updates of one document
// at once both land, as on MongoDB, and a conditional update matches for
// one writer only.
func TestConcurrentUpdatesOfOneDocumentBothApply(t *testing.T) {
	ctx := t.Context()
	srv := start(t, t.TempDir())
	a, b := connect(t, srv.URI()), connect(t, srv.URI())
	defer a.Disconnect(ctx)
	defer b.Disconnect(ctx)
	ca, cb := a.Database("race").Collection("docs"), b.Database("race").Collection("docs")
	if _, err := ca.InsertOne(ctx, bson.M{"_id": "d", "x": 0, "y": 0, "v": 0}); err != nil {
		t.Fatal(err)
	}
	const rounds = 30
	for i := 1; i <= rounds; i++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		var matched [2]int64
		for j, c := range []*mongo.Collection{ca, cb} {
			field := []string{"x", "y"}[j]
			wg.Go(func() {
				<-start
				res, err := c.UpdateOne(ctx, bson.M{"_id": "d", "v": i - 1}, bson.M{"$inc": bson.M{field: 1, "v": 1}})
				if err != nil {
					t.Error(err)
					return
				}
				matched[j] = res.MatchedCount
			})
		}
		close(start)
		wg.Wait()
		if matched[0]+matched[1] != 1 {
			t.Fatalf("round %d: both conditional updates matched (%v)", i, matched)
		}
		var got struct{ X, Y, V int }
		if err := ca.FindOne(ctx, bson.M{"_id": "d"}).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.V != i || got.X+got.Y != i {
			t.Fatalf("round %d: %+v; want v %d and x+y %d", i, got, i, i)
		}
	}
}
