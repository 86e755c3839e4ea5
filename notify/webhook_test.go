package notify

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbox/chatbox/lifecycle/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

func TestWebhookRetriesUntilAccepted(t *testing.T) {
	var calls atomic.Int32
	got := make(chan Help, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var h Help
		if err := json.NewDecoder(r.Body).Decode(&h); err != nil {
			t.Errorf("body: %v", err)
		}
		got <- h
	}))
	defer srv.Close()
	w := NewWebhook(Options{URL: srv.URL, Backoff: time.Millisecond})
	w.Start()
	defer w.Close()

	w.HelpRequested("s1", "alice")
	select {
	case h := <-got:
		if h.Event != "help_requested" || h.SessionID != "s1" || h.UserID != "alice" || h.Time.IsZero() {
			t.Fatalf("body %+v", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("webhook never accepted")
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3 (two failures, then success)", n)
	}
}

func TestHelpRequestedNeverBlocks(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	w := NewWebhook(Options{URL: srv.URL, Queue: 2, Attempts: 1})
	w.Start()
	defer w.Close()    // second: waits for the sender, which the open block lets finish
	defer close(block) // first
	done := make(chan struct{})
	go func() {
		for range 100 { // far more than the queue holds while the server hangs
			w.HelpRequested("s", "u")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("HelpRequested blocked on a hanging webhook")
	}
}
