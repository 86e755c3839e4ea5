package providers_test

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/openai"
	"github.com/chatbox/chatbox/providers/openai/openaitest"
	"github.com/chatbox/chatbox/providers/providertest"
)

// script is a fake Provider: each call runs the next step (the last one
// repeats) and is counted.
type script struct {
	mu    sync.Mutex
	steps []func(ctx context.Context, yield func(providers.Chunk, error) bool)
	calls atomic.Int32
}

func (s *script) Stream(ctx context.Context, req providers.Request) iter.Seq2[providers.Chunk, error] {
	return func(yield func(providers.Chunk, error) bool) {
		n := int(s.calls.Add(1)) - 1
		s.mu.Lock()
		step := s.steps[min(n, len(s.steps)-1)]
		s.mu.Unlock()
		step(ctx, yield)
	}
}

func fail(kind providers.Kind, status int, retryAfter time.Duration) func(context.Context, func(providers.Chunk, error) bool) {
	return func(_ context.Context, yield func(providers.Chunk, error) bool) {
		yield(providers.Chunk{}, &providers.Error{Kind: kind, Status: status, RetryAfter: retryAfter, Err: errors.New("injected")})
	}
}

func reply(words ...string) func(context.Context, func(providers.Chunk, error) bool) {
	return func(_ context.Context, yield func(providers.Chunk, error) bool) {
		for _, w := range words {
			if !yield(providers.Chunk{Text: w}, nil) {
				return
			}
		}
		yield(providers.Chunk{Usage: &providers.Usage{InputTokens: 1, OutputTokens: int64(len(words))}}, nil)
	}
}

type result struct {
	text string
	err  error
}

func collect(seq iter.Seq2[providers.Chunk, error]) result {
	var r result
	for c, err := range seq {
		if err != nil {
			r.err = err
			break
		}
		r.text += c.Text
	}
	return r
}

func asError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err %v (%T), want *providers.Error", err, err)
	}
	return pe
}

var hi = []providers.Message{{Role: providers.RoleUser, Text: "hi"}}

// fast are the configured Options (retries, breaker) with tiny backoffs,
// so that no test really waits.
func fast() providers.Options {
	o := providertest.Options()
	o.Backoff, o.MaxBackoff = time.Microsecond, 10*time.Microsecond
	return o
}

// withBackoff are the configured Options with the given backoff and cap.
func withBackoff(base, ceiling time.Duration) providers.Options {
	o := providertest.Options()
	o.Backoff, o.MaxBackoff = base, ceiling
	return o
}

func newCatalog(t *testing.T, opts providers.Options, entries ...providers.Entry) *providers.Catalog {
	t.Helper()
	c, err := providers.NewCatalogWithOptions(entries, entries[0].ID, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewCatalogChecks(t *testing.T) {
	p := &script{steps: nil}
	tests := []struct {
		name    string
		entries []providers.Entry
		def     string
	}{
		{"duplicate", []providers.Entry{{ID: "a", Provider: p}, {ID: "a", Provider: p}}, "a"},
		{"missing default", []providers.Entry{{ID: "a", Provider: p}}, "b"},
		{"bad fallback", []providers.Entry{{ID: "a", Provider: p, Fallback: []string{"x"}}}, "a"},
		{"no provider", []providers.Entry{{ID: "a"}}, "a"},
	}
	for _, tt := range tests {
		if _, err := providers.NewCatalog(tt.entries, tt.def); err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	c, err := providers.NewCatalog([]providers.Entry{{ID: "a", Name: "A", Provider: p}, {ID: "b", Name: "B", Provider: p}}, "b")
	if err != nil || c.Default() != "b" || !c.Has("a") || c.Has("z") || len(c.Models()) != 2 || c.Models()[0].Name != "A" {
		t.Fatalf("catalog %v err %v", c, err)
	}
	if r := collect(c.Stream(context.Background(), "z", hi)); !errors.Is(r.err, providers.ErrUnknownModel) {
		t.Fatalf("unknown model: %v", r.err)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){
		fail(providers.KindRateLimited, 429, 0), fail(providers.KindUnavailable, 503, 0), reply("a", "b"),
	}}
	c := newCatalog(t, fast(), providers.Entry{ID: "m", Provider: p})
	if r := collect(c.Stream(context.Background(), "m", hi)); r.err != nil || r.text != "ab" {
		t.Fatalf("text %q err %v", r.text, r.err)
	}
	if p.calls.Load() != 3 || c.Stats().Retries != 2 || c.Stats().Attempts != 3 {
		t.Fatalf("calls %d stats %+v", p.calls.Load(), c.Stats())
	}
}

func TestRetriesAreCapped(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){fail(providers.KindUnavailable, 500, 0)}}
	opts := fast()
	opts.MaxRetries = 3
	opts.BreakerThreshold = 0 // no breaker
	c := newCatalog(t, opts, providers.Entry{ID: "m", Provider: p})
	if r := collect(c.Stream(context.Background(), "m", hi)); asError(t, r.err).Status != 500 {
		t.Fatalf("err %v", r.err)
	}
	if p.calls.Load() != 4 {
		t.Fatalf("%d calls, want 4", p.calls.Load())
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	for _, kind := range []providers.Kind{providers.KindAuth, providers.KindBadRequest} {
		p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){fail(kind, 400, 0)}}
		c := newCatalog(t, fast(), providers.Entry{ID: "m", Provider: p})
		if r := collect(c.Stream(context.Background(), "m", hi)); asError(t, r.err).Kind != kind || p.calls.Load() != 1 {
			t.Fatalf("%s: err %v, %d calls", kind, r.err, p.calls.Load())
		}
	}
}

func TestNoRetryAfterFirstToken(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){
		func(_ context.Context, yield func(providers.Chunk, error) bool) {
			if yield(providers.Chunk{Text: "partial"}, nil) {
				yield(providers.Chunk{}, &providers.Error{Kind: providers.KindUnavailable, Status: 503})
			}
		},
		reply("never"),
	}}
	backup := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){reply("never")}}
	c := newCatalog(t, fast(), providers.Entry{ID: "m", Provider: p, Fallback: []string{"b"}}, providers.Entry{ID: "b", Provider: backup})
	r := collect(c.Stream(context.Background(), "m", hi))
	if r.text != "partial" || asError(t, r.err).Kind != providers.KindUnavailable {
		t.Fatalf("text %q err %v", r.text, r.err)
	}
	if p.calls.Load() != 1 || backup.calls.Load() != 0 || c.Stats().Failovers != 0 {
		t.Fatalf("calls %d/%d stats %+v", p.calls.Load(), backup.calls.Load(), c.Stats())
	}
}

// Failover against real HTTP: the primary answers 503 to everything, the
// fallback answers, and the consumer sees one clean reply.
func TestFailover(t *testing.T) {
	primary := openaitest.NewServer(openaitest.Config{})
	defer primary.Close()
	primary.FailNext(1000, http.StatusServiceUnavailable, "")
	backup := openaitest.NewServer(openaitest.Config{Reply: func(r openaitest.Request) string { return "backup " + r.Model + " " + r.Messages[0].Content }})
	defer backup.Close()
	pc, _ := openai.New(openai.Config{BaseURL: primary.URL, Timeouts: providertest.Timeouts()})
	bc, _ := openai.New(openai.Config{BaseURL: backup.URL, Timeouts: providertest.Timeouts()})
	opts := fast()
	opts.MaxRetries = 1
	c := newCatalog(t, opts,
		providers.Entry{ID: "main", Provider: pc, Model: "big", Fallback: []string{"spare", "main"}},
		providers.Entry{ID: "spare", Provider: bc, Model: "small", SystemPrompt: "sys"},
	)
	var chunks []providers.Chunk
	for ch, err := range c.Stream(context.Background(), "main", hi) {
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, ch)
	}
	text := ""
	for _, ch := range chunks {
		text += ch.Text
	}
	if text != "backup small sys" || chunks[len(chunks)-1].Usage == nil {
		t.Fatalf("reply %q, chunks %+v", text, chunks)
	}
	if primary.Count() != 2 || backup.Count() != 1 {
		t.Fatalf("requests: primary %d, backup %d", primary.Count(), backup.Count())
	}
	if s := c.Stats(); s.Failovers != 1 || s.Retries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestFailoverSkipsOpenBreaker(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){fail(providers.KindUnavailable, 503, 0)}}
	backup := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){reply("ok")}}
	opts := fast()
	opts.MaxRetries = 0
	opts.BreakerThreshold = 2
	c := newCatalog(t, opts, providers.Entry{ID: "m", Provider: p, Fallback: []string{"b"}}, providers.Entry{ID: "b", Provider: backup})
	for range 4 {
		if r := collect(c.Stream(context.Background(), "m", hi)); r.err != nil || r.text != "ok" {
			t.Fatalf("text %q err %v", r.text, r.err)
		}
	}
	if p.calls.Load() != 2 || c.Stats().FailFasts != 2 || c.Stats().BreakerOpens != 1 {
		t.Fatalf("primary calls %d stats %+v", p.calls.Load(), c.Stats())
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestBreaker(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){
		fail(providers.KindUnavailable, 503, 0),
		fail(providers.KindUnavailable, 503, 0),
		fail(providers.KindUnavailable, 503, 0),
		fail(providers.KindTimeout, 0, 0), // the first probe fails
		func(ctx context.Context, yield func(providers.Chunk, error) bool) { // the second probe waits, then answers
			entered <- struct{}{}
			<-gate
			reply("back")(ctx, yield)
		},
		reply("normal"),
	}}
	opts := fast()
	opts.MaxRetries = 0
	opts.BreakerThreshold = 3
	opts.BreakerCooldown = 30 * time.Second
	opts.Now = clk.Now
	c := newCatalog(t, opts, providers.Entry{ID: "m", Provider: p})
	ctx := context.Background()

	for i := range 3 {
		if c.BreakerState("m") != providers.BreakerClosed {
			t.Fatalf("open after %d failures", i)
		}
		collect(c.Stream(ctx, "m", hi))
	}
	if c.BreakerState("m") != providers.BreakerOpen {
		t.Fatalf("state %s after 3 failures", c.BreakerState("m"))
	}
	r := collect(c.Stream(ctx, "m", hi))
	if !errors.Is(r.err, providers.ErrCircuitOpen) || p.calls.Load() != 3 {
		t.Fatalf("err %v, %d calls: did not fail fast", r.err, p.calls.Load())
	}

	clk.Advance(30 * time.Second)
	if c.BreakerState("m") != providers.BreakerHalfOpen {
		t.Fatalf("state %s after the cool-down", c.BreakerState("m"))
	}
	if r := collect(c.Stream(ctx, "m", hi)); asError(t, r.err).Kind != providers.KindTimeout || c.BreakerState("m") != providers.BreakerOpen {
		t.Fatalf("failed probe: err %v state %s", r.err, c.BreakerState("m"))
	}

	clk.Advance(30 * time.Second)
	done := make(chan result)
	go func() { done <- collect(c.Stream(ctx, "m", hi)) }()
	<-entered // the probe is in flight: everyone else still fails fast
	if r := collect(c.Stream(ctx, "m", hi)); !errors.Is(r.err, providers.ErrCircuitOpen) {
		t.Fatalf("second request during the probe: %v", r.err)
	}
	close(gate)
	if r := <-done; r.err != nil || r.text != "back" {
		t.Fatalf("probe: %q %v", r.text, r.err)
	}
	if c.BreakerState("m") != providers.BreakerClosed {
		t.Fatalf("state %s after a good probe", c.BreakerState("m"))
	}
	if r := collect(c.Stream(ctx, "m", hi)); r.text != "normal" {
		t.Fatalf("after close: %q %v", r.text, r.err)
	}
	if s := c.Stats(); s.BreakerOpens != 2 || s.FailFasts != 2 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCanceledProbeFreesSlot(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){
		fail(providers.KindUnavailable, 503, 0),
		fail(providers.KindCanceled, 0, 0),
		reply("ok"),
	}}
	opts := fast()
	opts.MaxRetries = 0
	opts.BreakerThreshold = 1
	opts.Now = clk.Now
	c := newCatalog(t, opts, providers.Entry{ID: "m", Provider: p})
	collect(c.Stream(context.Background(), "m", hi))
	clk.Advance(time.Hour)
	collect(c.Stream(context.Background(), "m", hi)) // the probe is cancelled by its user
	if r := collect(c.Stream(context.Background(), "m", hi)); r.text != "ok" {
		t.Fatalf("next probe: %q %v", r.text, r.err)
	}
}

func TestRetryAfterHonouredAndCapped(t *testing.T) {
	for _, tt := range []struct{ retryAfter, want time.Duration }{
		{3 * time.Second, 3 * time.Second},
		{time.Hour, 5 * time.Second},
	} {
		p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){fail(providers.KindRateLimited, 429, tt.retryAfter), reply("ok")}}
		c := newCatalog(t, withBackoff(time.Millisecond, 5*time.Second), providers.Entry{ID: "m", Provider: p})
		var slept []time.Duration
		providers.SetSleep(c, func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil })
		if r := collect(c.Stream(context.Background(), "m", hi)); r.err != nil {
			t.Fatal(r.err)
		}
		if len(slept) != 1 || slept[0] != tt.want {
			t.Fatalf("Retry-After %v: slept %v, want %v", tt.retryAfter, slept, tt.want)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	c := newCatalog(t, withBackoff(200*time.Millisecond, 5*time.Second),
		providers.Entry{ID: "m", Provider: &script{}})
	rapid.Check(t, func(t *rapid.T) {
		attempt := rapid.IntRange(1, 100).Draw(t, "attempt")
		ceiling := 5 * time.Second
		if attempt <= 5 {
			ceiling = min(ceiling, 200*time.Millisecond<<(attempt-1))
		}
		if d := providers.Backoff(c, attempt, 0); d < 0 || d > ceiling {
			t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, ceiling)
		}
		ra := time.Duration(rapid.Int64Range(0, int64(time.Minute)).Draw(t, "retryAfter"))
		if d := providers.Backoff(c, attempt, ra); d < min(ra, 5*time.Second) || d > 5*time.Second {
			t.Fatalf("attempt %d, Retry-After %v: %v", attempt, ra, d)
		}
	})
}

func TestCancelDuringBackoff(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){fail(providers.KindUnavailable, 503, 0)}}
	backup := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){reply("never")}}
	c := newCatalog(t, providertest.Options(), providers.Entry{ID: "m", Provider: p, Fallback: []string{"b"}}, providers.Entry{ID: "b", Provider: backup})
	ctx, cancel := context.WithCancel(context.Background())
	providers.SetSleep(c, func(ctx context.Context, d time.Duration) error { cancel(); return ctx.Err() })
	r := collect(c.Stream(ctx, "m", hi))
	if pe := asError(t, r.err); pe.Kind != providers.KindCanceled || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("err %v", r.err)
	}
	if p.calls.Load() != 1 || backup.calls.Load() != 0 {
		t.Fatalf("calls %d/%d", p.calls.Load(), backup.calls.Load())
	}
}

func TestConsumerStopsEarly(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){reply("a", "b", "c")}}
	c := newCatalog(t, fast(), providers.Entry{ID: "m", Provider: p})
	for range c.Stream(context.Background(), "m", hi) {
		break
	}
	if p.calls.Load() != 1 {
		t.Fatalf("%d calls", p.calls.Load())
	}
}

// Plain errors from a third-party Provider come out as *Error.
func TestPlainErrorsNormalised(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){
		func(_ context.Context, yield func(providers.Chunk, error) bool) {
			yield(providers.Chunk{}, context.Canceled)
		},
	}}
	c := newCatalog(t, fast(), providers.Entry{ID: "m", Provider: p, Model: "x"})
	if pe := asError(t, collect(c.Stream(context.Background(), "m", hi)).err); pe.Kind != providers.KindCanceled || pe.Model != "x" {
		t.Fatalf("err %+v", pe)
	}
}

func TestOptionsNameTheInvalidField(t *testing.T) {
	for _, tt := range []struct {
		field string
		edit  func(*providers.Options)
	}{
		{"MaxRetries", func(o *providers.Options) { o.MaxRetries = -1 }},
		{"Backoff", func(o *providers.Options) { o.Backoff = -1 }},
		{"MaxBackoff", func(o *providers.Options) { o.MaxBackoff = -1 }},
		{"BreakerThreshold", func(o *providers.Options) { o.BreakerThreshold = -1 }},
		{"BreakerCooldown", func(o *providers.Options) { o.BreakerCooldown = -1 }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			o := providertest.Options()
			tt.edit(&o)
			_, err := providers.NewCatalogWithOptions([]providers.Entry{{ID: "m", Provider: &script{}}}, "m", o)
			if err == nil || !strings.Contains(err.Error(), "providers.Options."+tt.field) {
				t.Fatalf("err %v, want one naming providers.Options.%s", err, tt.field)
			}
		})
	}
}

// Zero Options mean zero: one attempt, no breaker, however often it fails.
func TestZeroOptionsMeanNoRetriesAndNoBreaker(t *testing.T) {
	p := &script{steps: []func(context.Context, func(providers.Chunk, error) bool){fail(providers.KindUnavailable, 503, 0)}}
	c := newCatalog(t, providers.Options{}, providers.Entry{ID: "m", Provider: p})
	for i := range 10 {
		if pe := asError(t, collect(c.Stream(context.Background(), "m", hi)).err); pe.Kind != providers.KindUnavailable {
			t.Fatalf("call %d: err %v, want the provider's 503", i, pe)
		}
	}
	if n := p.calls.Load(); n != 10 {
		t.Fatalf("%d attempts for 10 calls, want 10", n)
	}
	if s := c.Stats(); s.Retries != 0 || s.BreakerOpens != 0 || s.FailFasts != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestTimeoutsValidateNamesTheField(t *testing.T) {
	for _, field := range []string{"Connect", "FirstToken", "Idle"} {
		to := providertest.Timeouts()
		switch field {
		case "Connect":
			to.Connect = 0
		case "FirstToken":
			to.FirstToken = 0
		case "Idle":
			to.Idle = -time.Second
		}
		if err := to.Validate(); err == nil || !strings.Contains(err.Error(), "providers.Timeouts."+field) {
			t.Errorf("%s: err %v", field, err)
		}
	}
	if err := providertest.Timeouts().Validate(); err != nil {
		t.Errorf("the configured defaults: %v", err)
	}
}
