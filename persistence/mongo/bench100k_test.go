package mongo_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/storetest"
)

// bench100k is the database of BenchmarkListSessions100k: 100,000 sessions
// of one user, filled once per test binary (and kept, on a real MongoDB,
// for the next run).
var bench100k struct {
	once sync.Once
	err  error
}

const (
	benchSessions = 100_000
	benchUser     = "heavy-user"
	benchDatabase = "chatbox_bench_100k"
)

// benchAt is when session i was last updated: one second apart, so
// newest first is i descending.
func benchAt(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

func benchID(i int) string { return fmt.Sprintf("s%06d", i) }

// open100k opens the 100k database, filling it on first use, with a
// timeout long enough for the embedded store's scans.
func open100k(b *testing.B) *mongo.Store {
	b.Helper()
	if os.Getenv("CHATBOX_BENCH_100K") != "1" {
		b.Skip("set CHATBOX_BENCH_100K=1 to store 100,000 sessions and measure")
	}
	ctx := context.Background()
	st, err := mongo.Open(ctx, mongo.Options{URI: storetest.URI(b), Database: benchDatabase, Keyring: storetest.Keyring(b), Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close(context.Background()) })
	bench100k.once.Do(func() {
		coll := st.Database().Collection("sessions")
		if n, err := coll.CountDocuments(ctx, map[string]any{"user_id": benchUser}); err == nil && n == benchSessions {
			return
		}
		if err := st.Database().Drop(ctx); err != nil {
			bench100k.err = err
			return
		}
		if err := st.EnsureIndexes(ctx); err != nil {
			bench100k.err = err
			return
		}
		start := time.Now()
		docs := make([]any, 0, 1000)
		for i := range benchSessions {
			at := benchAt(i)
			docs = append(docs, st.SessionDocument(&persistence.Session{
				ID: benchID(i), UserID: benchUser, Title: "conversation " + benchID(i), Model: "demo",
				Status: "active", Mode: persistence.ModeBot, MessageCount: int64(i % 50), LastSeq: int64(i % 50),
				CreatedAt: at, UpdatedAt: at,
			}))
			if len(docs) == cap(docs) {
				if _, err := coll.InsertMany(ctx, docs); err != nil {
					bench100k.err = err
					return
				}
				docs = docs[:0]
			}
		}
		fmt.Fprintf(os.Stderr, "inserted %d sessions in %v\n", benchSessions, time.Since(start).Round(time.Millisecond))
	})
	if bench100k.err != nil {
		b.Fatalf("fill the 100k database: %v", bench100k.err)
	}
	return st
}

// medianMS reports the median of took in milliseconds.
func medianMS(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms")
}

// BenchmarkListSessions100k measures one page of 50 of a user's sessions
// and of the admin's list, with 100,000 sessions stored: the first page and
// a deep one (the cursor after 50,000). It reports the median. Set
// CHATBOX_BENCH_100K=1 to run it; the insert takes a while.
//
//	CHATBOX_BENCH_100K=1 go test ./persistence/mongo -run X -bench ListSessions100k -benchtime 20x
func BenchmarkListSessions100k(b *testing.B) {
	st := open100k(b)
	deep := mongo.UpdatedAtCursor(benchAt(benchSessions-50_000), benchID(benchSessions-50_000))
	lists := map[string]func(ctx context.Context, cursor string) ([]persistence.Session, string, error){
		"user": func(ctx context.Context, cursor string) ([]persistence.Session, string, error) {
			return st.ListSessions(ctx, benchUser, persistence.Page{Limit: 50, Cursor: cursor})
		},
		"admin": func(ctx context.Context, cursor string) ([]persistence.Session, string, error) {
			return st.ListAllSessions(ctx, persistence.AdminFilter{}, persistence.Page{Limit: 50, Cursor: cursor})
		},
	}
	for _, list := range []string{"user", "admin"} {
		for _, page := range []struct {
			name, cursor string
			first        int // index of the first session on the page
		}{{"first", "", benchSessions - 1}, {"after50k", deep, benchSessions - 50_001}} {
			b.Run(list+"/"+page.name, func(b *testing.B) {
				ctx := context.Background()
				var took []time.Duration
				for b.Loop() {
					start := time.Now()
					got, next, err := lists[list](ctx, page.cursor)
					took = append(took, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
					if len(got) != 50 || got[0].ID != benchID(page.first) || next == "" || got[0].Title != "conversation "+benchID(page.first) {
						b.Fatalf("page starts with %v (%d sessions), want %s", ids(got[:min(len(got), 1)]), len(got), benchID(page.first))
					}
				}
				medianMS(b, took)
			})
		}
	}
}

// BenchmarkAppendWith100kSessions measures AppendMessage (an insert and the
// fenced update of the session) with 100,000 other sessions stored.
//
//	CHATBOX_BENCH_100K=1 go test ./persistence/mongo -run X -bench AppendWith100k -benchtime 20x
func BenchmarkAppendWith100kSessions(b *testing.B) {
	st := open100k(b)
	ctx := context.Background()
	id := "append-" + storetest.DatabaseName()
	// Older than every bench session, and another user's: the lists above
	// do not change.
	old := t0.Add(-time.Hour)
	if err := st.CreateSession(ctx, &persistence.Session{ID: id, UserID: "append-user", CreatedAt: old}); err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	seq := int64(0)
	for b.Loop() {
		seq++
		start := time.Now()
		err := st.AppendMessage(ctx, &persistence.Message{SessionID: id, Seq: seq, Role: persistence.RoleUser, Text: "hello", CreatedAt: old})
		took = append(took, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	medianMS(b, took)
}
