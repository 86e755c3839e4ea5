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
