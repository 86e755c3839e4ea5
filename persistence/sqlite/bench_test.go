package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/sqlite"
)

// BenchmarkAppendMessage appends from parallel writers, each to its own
// session, as session actors do; batch/op is the mean group-commit size.
func BenchmarkAppendMessage(b *testing.B) {
	for _, sync := range []string{"normal", "full"} {
		b.Run("sync="+sync, func(b *testing.B) {
			st := open(b, b.TempDir(), func(o *sqlite.Options) { o.Sync = sync })
			ctx := context.Background()
			var next atomic.Int64
			text := string(make([]byte, 400)) // a short reply's worth
			b.SetParallelism(8)
			before := st.Writes()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				id := fmt.Sprintf("s%d", next.Add(1))
				if err := st.CreateSession(ctx, &persistence.Session{ID: id, UserID: "u"}); err != nil {
					b.Error(err)
					return
				}
				for seq := int64(1); pb.Next(); seq++ {
					m := &persistence.Message{SessionID: id, Seq: seq, Role: persistence.RoleAssistant, Text: text, TokensOut: 100}
					if err := st.AppendMessage(ctx, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if w := st.Writes() - before; w > 0 {
				b.ReportMetric(float64(b.N)/float64(w), "batch/op")
			}
		})
	}
}

// BenchmarkListAllSessions100k lists the admin's pages over 100k sessions.
func BenchmarkListAllSessions100k(b *testing.B) {
	st := open(b, b.TempDir())
	ctx := context.Background()
	seed(b, st, 100_000)
	yes, no := true, false

	for _, c := range []struct {
		name  string
		f     persistence.AdminFilter
		pages int // the page measured: 1 is the first
	}{
		{"first page", persistence.AdminFilter{}, 1},
		{"help requested", persistence.AdminFilter{HelpRequested: &yes}, 1},
		{"not taken over, by created_at", persistence.AdminFilter{TakenOver: &no, Sort: "created_at"}, 1},
		{"busiest first", persistence.AdminFilter{Sort: "message_count"}, 1},
		{"one user", persistence.AdminFilter{UserID: "u42"}, 1},
		{"created in a day, oldest first", persistence.AdminFilter{From: t0.Add(24 * time.Hour), To: t0.Add(48 * time.Hour), Order: "asc"}, 1},
		{"10th page", persistence.AdminFilter{}, 10},
		{"10th page, help requested", persistence.AdminFilter{HelpRequested: &yes}, 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			cursor := ""
			for range c.pages - 1 {
				_, next, err := st.ListAllSessions(ctx, c.f, persistence.Page{Limit: 50, Cursor: cursor})
				if err != nil || next == "" {
					b.Fatalf("walk to page %d: %q, %v", c.pages, next, err)
				}
				cursor = next
			}
			b.ResetTimer()
			for b.Loop() {
				page, _, err := st.ListAllSessions(ctx, c.f, persistence.Page{Limit: 50, Cursor: cursor})
				if err != nil || len(page) == 0 {
					b.Fatalf("page: %d sessions, %v", len(page), err)
				}
			}
		})
	}
}

// seed puts n sessions of 1000 users over ten days: 5% asking for help, 5%
// taken over.
func seed(b *testing.B, st *sqlite.Store, n int) {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	const chunk = 5000
	start := time.Now()
	for i := 0; i < n; i += chunk {
		xs := make([]persistence.Session, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			created := t0.Add(time.Duration(r.Int64N(int64(10 * 24 * time.Hour))))
			x := persistence.Session{
				ID: fmt.Sprintf("sess-%06d", j), UserID: fmt.Sprintf("u%d", r.IntN(1000)),
				Title: "a title", Status: "active", Mode: persistence.ModeBot,
				HelpRequested: r.IntN(20) == 0, MessageCount: r.Int64N(200),
				CreatedAt: created, UpdatedAt: created.Add(time.Duration(r.Int64N(int64(time.Hour)))), Version: 1,
			}
			if r.IntN(20) == 0 {
				x.Mode = persistence.ModeHuman
			}
			x.LastSeq = x.MessageCount
			xs = append(xs, x)
		}
		if err := sqlite.PutSessions(st, context.Background(), xs); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("seeded %d sessions in %v", n, time.Since(start).Round(time.Millisecond))
}
