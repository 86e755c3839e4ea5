package providertest

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatbox/chatbox/providers"
)

// Vendor describes a vendor to the conformance suite: how its fake server
// writes the wire format and how to build a client for it.
type Vendor struct {
	Wire Wire
	// New builds the provider under test against a fake's base URL.
	New func(t *testing.T, baseURL string, to providers.Timeouts) providers.Provider
	// Request is a generation the provider accepts.
	Request providers.Request
}

// Run is the conformance suite every HTTP vendor runs: streaming, usage,
// retries through the Catalog (429 then success, honouring Retry-After;
// 401 answered once), stalls and cancellation. Vendor-specific parsing
// stays in the vendor's own tests.
func Run(t *testing.T, v Vendor) {
	texts := []string{"Hel", "lo, ", "wörld", "!\n"}
	ok := Answer{Texts: texts, In: 7, Out: 4}
	stream := func(t *testing.T, s *Server, to providers.Timeouts) iter.Seq2[providers.Chunk, error] {
		return v.New(t, s.URL, to).Stream(context.Background(), v.Request)
	}

	t.Run("streams text in order", func(t *testing.T) {
		s := NewServer(t, v.Wire, ok)
		r := Collect(stream(t, s, Timeouts()))
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if !slices.Equal(r.Texts, texts) {
			t.Fatalf("chunks %q, want %q", r.Texts, texts)
		}
	})

	t.Run("reports usage at the end", func(t *testing.T) {
		s := NewServer(t, v.Wire, ok)
		r := Collect(stream(t, s, Timeouts()))
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Usage == nil || *r.Usage != (providers.Usage{InputTokens: 7, OutputTokens: 4}) {
			t.Fatalf("usage %+v, want 7 in, 4 out", r.Usage)
		}
		if !r.UsageLast {
			t.Fatal("text came after the usage")
		}
	})

	t.Run("429 then success", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Status: http.StatusTooManyRequests, RetryAfter: "1"},
			Answer{Status: http.StatusTooManyRequests, RetryAfter: "1"}, ok)
		pe := AsError(t, Collect(stream(t, s, Timeouts())).Err)
		if pe.Kind != providers.KindRateLimited || !pe.Retryable() || pe.RetryAfter != time.Second {
			t.Fatalf("the 429 itself: %+v, want rate limited, retryable, Retry-After 1s", pe)
		}

		// Through the Catalog: the jitter alone would wait at most a
		// microsecond, so a gap of MaxBackoff shows Retry-After (capped) was
		// honoured.
		const ceiling = 30 * time.Millisecond
		opts := Options()
		opts.Backoff, opts.MaxBackoff = time.Microsecond, ceiling
		cat, err := providers.NewCatalogWithOptions([]providers.Entry{{ID: "m", Provider: v.New(t, s.URL, Timeouts()), Model: v.Request.Model}}, "m", opts)
		if err != nil {
			t.Fatal(err)
		}
		r := Collect(cat.Stream(context.Background(), "m", v.Request.Messages))
		if r.Err != nil || !slices.Equal(r.Texts, texts) {
			t.Fatalf("chunks %q err %v", r.Texts, r.Err)
		}
		arrivals := s.Arrivals()
		if len(arrivals) != 3 { // the direct 429, then the Catalog's 429 and its retry
			t.Fatalf("%d requests, want 3", len(arrivals))
		}
		if gap := arrivals[2].Sub(arrivals[1]); gap < ceiling {
			t.Fatalf("retried after %v, want at least the capped Retry-After %v", gap, ceiling)
		}
	})

	t.Run("401 is answered with one request", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Status: http.StatusUnauthorized}, ok)
		opts := Options()
		opts.Backoff, opts.MaxBackoff = time.Microsecond, time.Microsecond
		cat, err := providers.NewCatalogWithOptions([]providers.Entry{{ID: "m", Provider: v.New(t, s.URL, Timeouts()), Model: v.Request.Model}}, "m", opts)
		if err != nil {
			t.Fatal(err)
		}
		pe := AsError(t, Collect(cat.Stream(context.Background(), "m", v.Request.Messages)).Err)
		if pe.Kind != providers.KindAuth || pe.Status != http.StatusUnauthorized || pe.Retryable() {
			t.Fatalf("err %+v, want auth, 401, not retryable", pe)
		}
		if n := s.Requests(); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
	})

	t.Run("a stall after the first token is not retried", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Texts: texts[:2], Stall: true}, ok)
		to := Timeouts()
		to.Idle = 100 * time.Millisecond
		opts := Options()
		opts.Backoff, opts.MaxBackoff = time.Microsecond, time.Microsecond
		cat, err := providers.NewCatalogWithOptions([]providers.Entry{{ID: "m", Provider: v.New(t, s.URL, to), Model: v.Request.Model}}, "m", opts)
		if err != nil {
			t.Fatal(err)
		}
		r := Collect(cat.Stream(context.Background(), "m", v.Request.Messages))
		if pe := AsError(t, r.Err); pe.Kind != providers.KindTimeout || !slices.Equal(r.Texts, texts[:2]) {
			t.Fatalf("chunks %q err %v, want the first two, then the idle timeout", r.Texts, r.Err)
		}
		if n := s.Requests(); n != 1 {
			t.Fatalf("%d requests, want 1: text was already shown", n)
		}
	})

	t.Run("no response headers times out as retryable", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Hang: true})
		to := Timeouts()
		to.Connect = 100 * time.Millisecond
		pe := AsError(t, Collect(stream(t, s, to)).Err)
		if pe.Kind != providers.KindTimeout || !pe.Retryable() {
			t.Fatalf("err %+v, want a retryable timeout", pe)
		}
		Eventually(t, "the server to see the request end", func() bool { return s.Gone() == 1 })
	})

	t.Run("a stall before the first token times out", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Stall: true})
		to := Timeouts()
		to.FirstToken = 100 * time.Millisecond
		r := Collect(stream(t, s, to))
		if pe := AsError(t, r.Err); pe.Kind != providers.KindTimeout || !errors.Is(pe, providers.ErrFirstTokenTimeout) {
			t.Fatalf("err %v, want the first-token timeout", r.Err)
		}
		Eventually(t, "the server to see the request end", func() bool { return s.Gone() == 1 })
	})

	t.Run("a stall between tokens times out", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Texts: texts[:1], Stall: true})
		to := Timeouts()
		to.Idle = 100 * time.Millisecond
		r := Collect(stream(t, s, to))
		pe := AsError(t, r.Err)
		if pe.Kind != providers.KindTimeout || !errors.Is(pe, providers.ErrIdleTimeout) || pe.Retryable() {
			t.Fatalf("err %v, want the idle timeout, not retryable", r.Err)
		}
		if !slices.Equal(r.Texts, texts[:1]) {
			t.Fatalf("chunks %q before the stall, want %q", r.Texts, texts[:1])
		}
		Eventually(t, "the server to see the request end", func() bool { return s.Gone() == 1 })
	})

	t.Run("cancel stops the stream and the request", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Texts: texts[:1], Stall: true})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var err error
		for c, e := range v.New(t, s.URL, Timeouts()).Stream(ctx, v.Request) {
			if e != nil {
				err = e
				break
			}
			if c.Text != "" {
				cancel() // the user pressed stop
			}
		}
		if pe := AsError(t, err); pe.Kind != providers.KindCanceled || !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want canceled", err)
		}
		Eventually(t, "the server to see the request end", func() bool { return s.Gone() == 1 })
	})

	t.Run("a consumer that stops ranging ends the request", func(t *testing.T) {
		s := NewServer(t, v.Wire, Answer{Texts: texts[:1], Stall: true})
		for range stream(t, s, Timeouts()) {
			break
		}
		Eventually(t, "the server to see the request end", func() bool { return s.Gone() == 1 })
	})
}

// Result is a collected stream.
type Result struct {
	Texts     []string         // the non-empty texts, in order
	Usage     *providers.Usage // the last usage seen
	UsageLast bool             // no text followed the usage
	Err       error            // the error that ended the stream
}

// Text is the whole reply.
func (r Result) Text() string { return strings.Join(r.Texts, "") }

// Collect ranges over seq to its end.
func Collect(seq iter.Seq2[providers.Chunk, error]) Result {
	var r Result
	for c, err := range seq {
		if err != nil {
			r.Err = err
			break
		}
		if c.Text != "" {
			r.Texts = append(r.Texts, c.Text)
			r.UsageLast = false
		}
		if c.Usage != nil {
			r.Usage, r.UsageLast = c.Usage, true
		}
	}
	return r
}

// AsError fails the test unless err is a *providers.Error, and returns it.
func AsError(t testing.TB, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err %v (%T), want *providers.Error", err, err)
	}
	return pe
}

// Eventually polls cond until it holds, failing the test after five seconds.
// It is the one poll helper of the provider tests.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
