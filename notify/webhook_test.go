package notify

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/lifecycle/leaktest"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

// testOptions are the configured defaults for a webhook at url.
func testOptions(url string) Options {
	tune := config.Default().Tuning
	return Options{URL: url, Timeout: tune.WebhookTimeout, Attempts: tune.WebhookAttempts, Backoff: tune.WebhookBackoff, Queue: tune.WebhookQueue}
}

func newWebhook(t *testing.T, o Options) *Webhook {
	t.Helper()
	w, err := NewWebhook(o)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

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
	o := testOptions(srv.URL)
	o.Backoff = time.Millisecond
	w := newWebhook(t, o)
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
	o := testOptions(srv.URL)
	o.Queue, o.Attempts = 2, 1
	w := newWebhook(t, o)
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

func TestNewWebhookNamesTheInvalidField(t *testing.T) {
	for _, tt := range []struct {
		field string
		edit  func(*Options)
	}{
		{"URL", func(o *Options) { o.URL = "" }},
		{"Timeout", func(o *Options) { o.Timeout = 0 }},
		{"Attempts", func(o *Options) { o.Attempts = 0 }},
		{"Queue", func(o *Options) { o.Queue = 0 }},
		{"Backoff", func(o *Options) { o.Backoff = -time.Second }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			o := testOptions("http://127.0.0.1:1/hook")
			tt.edit(&o)
			if _, err := NewWebhook(o); err == nil || !strings.Contains(err.Error(), "notify.Options."+tt.field) {
				t.Fatalf("err %v, want one naming notify.Options.%s", err, tt.field)
			}
		})
	}
	if _, err := NewWebhook(testOptions("http://127.0.0.1:1/hook")); err != nil {
		t.Fatalf("the configured defaults: %v", err)
	}
}
