// Package notify tells people outside Chatbox that something needs them:
// today, a webhook called when a user asks for a human, so a team can route
// it to email, chat or SMS.
//
// Webhook is safe for concurrent use. HelpRequested never blocks its
// caller (a session actor): events wait in a bounded queue that one
// goroutine, started by Start through the Webhook's lifecycle.Group and
// stopped by Close, drains with retries.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/chatbox/chatbox/lifecycle"
)

// Help is the JSON body posted when a user asks for a human. It carries ids,
// never message text: the receiver opens the admin dashboard for details.
type Help struct {
	Event     string    `json:"event"` // "help_requested"
	SessionID string    `json:"session_id"`
	UserID    string    `json:"user_id"`
	Time      time.Time `json:"time"`
}

// Options configures a Webhook. Its values are resolved (the defaults live
// in the config package): NewWebhook rejects a zero where it would mean
// nothing.
type Options struct {
	URL      string        // required
	Timeout  time.Duration // one POST; required
	Attempts int           // POSTs per event, the first included; required
	Backoff  time.Duration // first retry wait, doubled each time; zero retries at once
	Queue    int           // events waiting to be sent; required
	Client   *http.Client  // nil: a client bounded by Timeout
	Logger   *slog.Logger  // nil discards
}

// Webhook posts Help events to a URL.
type Webhook struct {
	opts  Options
	log   *slog.Logger
	queue chan Help

	goroutines lifecycle.Group // the sender; Stopping tells it to return
}

// NewWebhook checks o and builds a webhook notifier; Start starts its
// sender.
func NewWebhook(o Options) (*Webhook, error) {
	if o.URL == "" {
		return nil, errors.New("notify.Options.URL: required")
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"Timeout", int64(o.Timeout)}, {"Attempts", int64(o.Attempts)}, {"Queue", int64(o.Queue)}} {
		if f.v <= 0 {
			return nil, fmt.Errorf("notify.Options.%s: must be positive, got %d", f.name, f.v)
		}
	}
	if o.Backoff < 0 {
		return nil, fmt.Errorf("notify.Options.Backoff: must not be negative, got %v", o.Backoff)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Webhook{opts: o, log: o.Logger.With(slog.String("component", "notify")), queue: make(chan Help, o.Queue)}, nil
}

// Start runs the sender until Close; after Close it starts nothing.
func (w *Webhook) Start() {
	w.goroutines.Go(func() {
		stop := w.goroutines.Stopping()
		for {
			select {
			case <-stop:
				return
			case h := <-w.queue:
				w.send(h)
			}
		}
	})
}

// HelpRequested queues a help event; if the queue is full the event is
// dropped with a warning rather than slowing the session down.
func (w *Webhook) HelpRequested(sessionID, userID string) {
	h := Help{Event: "help_requested", SessionID: sessionID, UserID: userID, Time: time.Now().UTC()}
	select {
	case w.queue <- h:
	default:
		w.log.Warn("webhook queue full; help event dropped", slog.String("session_id", sessionID))
	}
}

// Close stops the sender after the POST in progress, if any; events still
// queued are dropped. Idempotent.
func (w *Webhook) Close() {
	w.goroutines.Wait(context.Background()) // bounded: a POST has Options.Timeout
}

func (w *Webhook) send(h Help) {
	body, _ := json.Marshal(h)
	wait := w.opts.Backoff
	for attempt := 1; attempt <= w.opts.Attempts; attempt++ {
		err := w.post(body)
		if err == nil {
			return
		}
		w.log.Warn("webhook post", slog.String("session_id", h.SessionID), slog.Int("attempt", attempt), slog.Any("err", err))
		if attempt == w.opts.Attempts {
			return
		}
		select {
		case <-w.goroutines.Stopping():
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (w *Webhook) post(body []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.opts.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chatbox-webhook")
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
