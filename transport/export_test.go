package transport

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
)

// seedExport stores, for user u1, sessions sessions of perSession messages
// each, every text textLen bytes, through the Importer.
func seedExport(tb testing.TB, sessions, perSession, textLen int) persistence.Store {
	tb.Helper()
	st := storetest.SQLite(tb)
	imp := st.(persistence.Importer)
	text := strings.Repeat("x", textLen)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range sessions {
		sid := fmt.Sprintf("s%03d", i)
		x := &persistence.Session{ID: sid, UserID: "u1", Title: "t", Model: "demo", Status: persistence.SessionActive,
			Mode: persistence.ModeBot, LastSeq: int64(perSession), MessageCount: int64(perSession),
			CreatedAt: t0.Add(time.Duration(i) * time.Second), UpdatedAt: t0, Version: 1}
		if err := imp.PutSession(tb.Context(), x); err != nil {
			tb.Fatal(err)
		}
		msgs := make([]persistence.Message, perSession)
		for j := range msgs {
			msgs[j] = persistence.Message{ID: fmt.Sprintf("%s-%05d", sid, j), SessionID: sid, Seq: int64(j + 1),
				Role: persistence.RoleUser, Author: "u", Text: text, Status: persistence.StatusComplete, CreatedAt: t0}
		}
		if err := imp.PutMessages(tb.Context(), msgs); err != nil {
			tb.Fatal(err)
		}
	}
	return st
}

// heapWatcher is an io.Writer that counts what an export writes and, every
// sampleEvery bytes, the heap in use: its peak, above the baseline taken
// when it was made, is what the export holds at once.
type heapWatcher struct {
	written, next int64
	base, peak    uint64
}

const sampleEvery = 256 << 10

func newHeapWatcher() *heapWatcher {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return &heapWatcher{base: m.HeapAlloc, next: sampleEvery}
}

func (h *heapWatcher) Write(p []byte) (int, error) {
	h.written += int64(len(p))
	if h.written >= h.next {
		h.next += sampleEvery
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if m.HeapAlloc > h.base {
			h.peak = max(h.peak, m.HeapAlloc-h.base)
		}
	}
	return len(p), nil
}

// exportPeak exports u1 from st and returns the peak heap above the
// baseline and the bytes written. GC runs often meanwhile (GOGC=10), so
// that the heap measured is what the export keeps, not garbage waiting.
func exportPeak(t testing.TB, st persistence.Store) (peak uint64, written int64) {
	t.Helper()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	h := newHeapWatcher()
	if err := writeExport(t.Context(), h, st, "u1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return h.peak, h.written
}

// TestExportMemoryIsBoundedByAPageNotByTheUsersData exports 1,000 and
// 10,000 messages of 1 KiB: the heap the export holds must not grow with
// the data (a whole export in memory would be over 10 MiB for the larger).
func TestExportMemoryIsBoundedByAPageNotByTheUsersData(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 11,000 messages")
	}
	small, smallBytes := exportPeak(t, seedExport(t, 2, 500, 1024))
	large, largeBytes := exportPeak(t, seedExport(t, 20, 500, 1024))
	t.Logf("1k messages: %d KiB written, peak heap +%d KiB; 10k messages: %d KiB written, peak heap +%d KiB",
		smallBytes>>10, small>>10, largeBytes>>10, large>>10)
	if largeBytes < 10<<20 {
		t.Fatalf("the large export is %d bytes: the fixture is too small to tell", largeBytes)
	}
	if large > 4<<20 || large > 2*small+(1<<20) {
		t.Errorf("peak heap +%d KiB for 10k messages, +%d KiB for 1k: the export holds the user's data in memory", large>>10, small>>10)
	}
}

func TestExportIsTheUsersDataAsJSON(t *testing.T) {
	st := seedExport(t, 3, 600, 10) // more messages than one page
	var b strings.Builder
	if err := writeExport(t.Context(), &b, st, "u1", time.Now()); err != nil {
		t.Fatal(err)
	}
	var x struct {
		UserID   string `json:"user_id"`
		Sessions []struct {
			ID       string `json:"id"`
			Messages []struct {
				ID   string `json:"id"`
				Seq  int64  `json:"seq"`
				Text string `json:"text"`
			} `json:"messages"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(b.String()), &x); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	if x.UserID != "u1" || len(x.Sessions) != 3 || x.Sessions[0].ID != "s000" || x.Sessions[2].ID != "s002" {
		t.Fatalf("export of %q with %d sessions", x.UserID, len(x.Sessions))
	}
	for _, s := range x.Sessions {
		if len(s.Messages) != 600 || s.Messages[599].Seq != 600 || s.Messages[0].Text != "xxxxxxxxxx" {
			t.Errorf("session %s: %d messages", s.ID, len(s.Messages))
		}
	}
}

// BenchmarkExport10kMessages streams one user's 10,000 messages of 1 KiB
// (20 sessions); besides time and allocations it reports the peak heap the
// export held and the bytes written.
func BenchmarkExport10kMessages(b *testing.B) {
	st := seedExport(b, 20, 500, 1024)
	b.ReportAllocs()
	var peak uint64
	var written int64
	for b.Loop() {
		p, w := exportPeak(b, st)
		peak, written = max(peak, p), w
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(written)/(1<<20), "export-MiB")
}
