package providers

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// Timeouts bound one streamed generation so that a stalled vendor ends in a
// KindTimeout error, never a hang. They are resolved values, every one
// required (the defaults live in the config package); Validate checks them.
type Timeouts struct {
	// Connect bounds dialling, the TLS handshake and the wait for response
	// headers.
	Connect time.Duration
	// FirstToken bounds the time from the start of the request to the first
	// non-empty text.
	FirstToken time.Duration
	// Idle bounds the gap between stream events after the first text.
	// Keep-alive comments and pings do not count as events: a server that
	// only pings is stalled.
	Idle time.Duration
}

// Validate reports the first timeout that is not positive: a zero would
// fire at once (first token, idle) or never (connect).
func (t Timeouts) Validate() error {
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"Connect", t.Connect}, {"FirstToken", t.FirstToken}, {"Idle", t.Idle}} {
		if f.d <= 0 {
			return fmt.Errorf("providers.Timeouts.%s: must be positive, got %v", f.name, f.d)
		}
	}
	return nil
}

// NewHTTPClient returns a client for streaming requests: the connect timeout
// applies to dial, TLS and response headers, and nothing bounds the whole
// request, since a long reply is fine as long as it keeps flowing (the
// Watchdog sees to that).
func NewHTTPClient(t Timeouts) *http.Client {
	dialer := &net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   t.Connect,
		ResponseHeaderTimeout: t.Connect,
		ForceAttemptHTTP2:     true,
		// Many replies stream to one vendor host at once.
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}
}

// Watchdog cancels a request that stalls: first waiting for its first text,
// then between events. Create one per request with NewWatchdog, send the
// request with its Context, report progress, and Stop it when done. Text and
// Event are called from the goroutine reading the stream; the timer fires on
// its own goroutine and only cancels the context.
type Watchdog struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	idle    time.Duration
	started atomic.Bool // the first text has arrived; the timer now measures idle gaps
}

// NewWatchdog starts the first-token timer for a request to model.
func NewWatchdog(ctx context.Context, t Timeouts, model string) *Watchdog {
	w := &Watchdog{idle: t.Idle}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	w.timer = time.AfterFunc(t.FirstToken, func() {
		sentinel := ErrFirstTokenTimeout
		if w.started.Load() {
			sentinel = ErrIdleTimeout
		}
		w.cancel(&Error{Kind: KindTimeout, Model: model, Err: sentinel})
	})
	return w
}

// Context is the request's context: cancelled by the caller, by a stall,
// or by Stop.
func (w *Watchdog) Context() context.Context { return w.ctx }

// Text records the arrival of non-empty text.
func (w *Watchdog) Text() {
	w.started.Store(true)
	w.timer.Reset(w.idle)
}

// Event records any other stream event that shows progress. Before the
// first text it changes nothing: only text satisfies the first-token timer.
func (w *Watchdog) Event() {
	if w.started.Load() {
		w.timer.Reset(w.idle)
	}
}

// Stop ends the watch and cancels the request's context, aborting the
// request if it is still open.
func (w *Watchdog) Stop() {
	w.timer.Stop()
	w.cancel(context.Canceled)
}

// Err classifies err, an error from sending the request or reading its
// stream, taking a stall or the caller's cancellation into account.
func (w *Watchdog) Err(model string, err error) *Error {
	return TransportError(w.ctx, model, err)
}
