package providers

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// Entry is one configured model: what clients see (ID, Name) and how to reach it.
type Entry struct {
	ID           string
	Name         string
	Provider     Provider
	Model        string // the vendor's model name
	SystemPrompt string
	// Fallback lists ids of entries tried in order, before the first token,
	// when this one fails. Only this entry's list is followed, not the
	// fallbacks' own.
	Fallback []string
	// Input is what the model takes (InputText, InputImage, InputPDF,
	// InputAudio); empty means text only.
	Input []string
}

// ModelInfo is what clients are shown in hello.
type ModelInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Options tune the Catalog's resilience. Every field is a resolved value:
// zero means zero (no retries, no wait, no breaker), and the defaults live
// in the config package.
type Options struct {
	// MaxRetries is how many times one model is retried before the first
	// token, on a retryable error; zero means none.
	MaxRetries int
	// Backoff is the base of the capped exponential backoff with full
	// jitter: retry n waits a random time in [0, min(MaxBackoff, Backoff·2ⁿ⁻¹)].
	Backoff time.Duration
	// MaxBackoff caps one wait, including a vendor's Retry-After: a chat
	// user will not wait a minute, and a fallback may answer sooner.
	MaxBackoff time.Duration
	// BreakerThreshold is the number of consecutive failures that opens a
	// model's circuit breaker; zero disables the breaker.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker fails fast before it lets
	// one probe through.
	BreakerCooldown time.Duration
	// Logger receives retries, failovers and breaker changes; nil discards.
	Logger *slog.Logger
	// Now is the breaker's clock; nil means time.Now.
	Now func() time.Time
}

// validate rejects what no configuration means: negative counts and waits.
func (o Options) validate() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"MaxRetries", int64(o.MaxRetries)}, {"Backoff", int64(o.Backoff)}, {"MaxBackoff", int64(o.MaxBackoff)},
		{"BreakerThreshold", int64(o.BreakerThreshold)}, {"BreakerCooldown", int64(o.BreakerCooldown)},
	} {
		if f.v < 0 {
			return fmt.Errorf("providers.Options.%s: must not be negative, got %d", f.name, f.v)
		}
	}
	return nil
}

// Stats counts what the Catalog's resilience did, for metrics. Every field
// only grows.
type Stats struct {
	Attempts     uint64 // requests sent to a provider
	Retries      uint64 // attempts that repeated a failed one on the same model
	Failovers    uint64 // moves from a failed model to its next fallback
	BreakerOpens uint64 // times a circuit breaker opened
	FailFasts    uint64 // requests refused by an open breaker
}

// Catalog maps model ids to configured providers and streams replies with
// retries, failover and a circuit breaker per model. Its configuration is
// immutable after construction; it is safe for concurrent use.
type Catalog struct {
	entries   map[string]*Entry
	chains    map[string][]string // id, then its fallbacks without duplicates
	breakers  map[string]*breaker
	infos     []ModelInfo
	defaultID string
	opts      Options
	log       *slog.Logger
	// sleep waits between retries; tests replace it to observe delays.
	sleep func(ctx context.Context, d time.Duration) error

	attempts, retries, failovers, breakerOpens, failFasts atomic.Uint64
}

// NewCatalog is NewCatalogWithOptions with zero Options: no retries and no
// circuit breaker, for tests and tools.
func NewCatalog(entries []Entry, defaultID string) (*Catalog, error) {
	return NewCatalogWithOptions(entries, defaultID, Options{})
}

// NewCatalogWithOptions checks opts and that ids are unique, the default
// exists, every entry has a provider and every fallback names a configured
// model. It does no I/O.
func NewCatalogWithOptions(entries []Entry, defaultID string, opts Options) (*Catalog, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Catalog{
		entries:   make(map[string]*Entry, len(entries)),
		chains:    make(map[string][]string, len(entries)),
		breakers:  make(map[string]*breaker, len(entries)),
		defaultID: defaultID,
		opts:      opts,
		log:       opts.Logger.With("component", "providers"),
		sleep:     sleepCtx,
	}
	for _, e := range entries {
		if e.ID == "" {
			return nil, errors.New("model with an empty id")
		}
		if _, dup := c.entries[e.ID]; dup {
			return nil, fmt.Errorf("model %q configured twice", e.ID)
		}
		if e.Provider == nil {
			return nil, fmt.Errorf("model %q has no provider", e.ID)
		}
		c.entries[e.ID] = &e
		c.breakers[e.ID] = newBreaker(opts.BreakerThreshold, opts.BreakerCooldown, opts.Now)
		c.infos = append(c.infos, ModelInfo{ID: e.ID, Name: e.Name})
	}
	if _, ok := c.entries[defaultID]; !ok {
		return nil, fmt.Errorf("default model %q is not configured", defaultID)
	}
	for id, e := range c.entries {
		chain := []string{id}
		for _, f := range e.Fallback {
			if _, ok := c.entries[f]; !ok {
				return nil, fmt.Errorf("model %q: fallback %q is not configured", id, f)
			}
			if !slices.Contains(chain, f) {
				chain = append(chain, f)
			}
		}
		c.chains[id] = chain
	}
	return c, nil
}

// Models lists the configured models in configuration order.
func (c *Catalog) Models() []ModelInfo { return c.infos }

// Default is the id used when neither the send nor the session names a model.
func (c *Catalog) Default() string { return c.defaultID }

// Has reports whether id is a configured model.
func (c *Catalog) Has(id string) bool { _, ok := c.entries[id]; return ok }

// Stats returns the resilience counters so far.
func (c *Catalog) Stats() Stats {
	return Stats{
		Attempts:     c.attempts.Load(),
		Retries:      c.retries.Load(),
		Failovers:    c.failovers.Load(),
		BreakerOpens: c.breakerOpens.Load(),
		FailFasts:    c.failFasts.Load(),
	}
}

// BreakerState reports the circuit breaker state of model id, "" when id
// is not configured.
func (c *Catalog) BreakerState(id string) BreakerState {
	b, ok := c.breakers[id]
	if !ok {
		return ""
	}
	return b.current()
}

// Stream generates a reply with model id for the conversation msgs, sent
// as given: the caller trims it (the session actors do, with Trim).
//
// Until the first chunk has been yielded, a failure is handled here: a
// retryable error (see Error.Retryable) is retried on the same model up to
// MaxRetries times with backoff, then the entry's fallbacks are tried in
// order, each with its own retries; a model whose breaker is open is
// skipped. Once a chunk has been yielded, the reply belongs to the
// consumer, and an error ends the stream without any retry, so text is
// never duplicated. Every error yielded is an *Error, except the wrapped
// ErrUnknownModel for an id that is not configured.
func (c *Catalog) Stream(ctx context.Context, id string, msgs []Message) iter.Seq2[Chunk, error] {
	return c.StreamFor(ctx, id, msgs, Turn{})
}

// ConversationKeeper is a Provider that keeps the conversation's history
// itself (Dify): it is sent only the newest message and Request.Conversation,
// and yields the conversation's id in a Chunk.
type ConversationKeeper interface {
	KeepsConversation() bool
}

// KeepsConversation reports whether a model of id's chain keeps its own
// conversation history, so the caller should load and store the vendor's
// conversation id around a generation.
func (c *Catalog) KeepsConversation(id string) bool {
	for _, mid := range c.chains[id] {
		if k, ok := c.entries[mid].Provider.(ConversationKeeper); ok && k.KeepsConversation() {
			return true
		}
	}
	return false
}

// Turn is what a generation carries besides the conversation: who it is
// for and the vendor's conversation id, for vendors that keep one.
type Turn struct {
	User         string
	Conversation string
}

// StreamFor is Stream with the user and vendor conversation of t. Each
// model of the chain gets msgs prepared for what it takes (Prepare).
func (c *Catalog) StreamFor(ctx context.Context, id string, msgs []Message, t Turn) iter.Seq2[Chunk, error] {
	chain, ok := c.chains[id]
	if !ok {
		return func(yield func(Chunk, error) bool) { yield(Chunk{}, fmt.Errorf("%w: %q", ErrUnknownModel, id)) }
	}
	return func(yield func(Chunk, error) bool) {
		var err *Error
		for i, mid := range chain {
			if i > 0 {
				c.failovers.Add(1)
				c.log.Warn("provider failover", "model", chain[i-1], "to", mid, "kind", err.Kind, "status", err.Status)
			}
			var done bool
			if err, done = c.streamModel(ctx, mid, msgs, t, yield); done {
				return
			}
			if err.Kind == KindCanceled {
				break
			}
		}
		yield(Chunk{}, err)
	}
}

// streamModel runs one model with its retries. It reports done when the
// stream is over for the consumer (finished, stopped by it, or failed after
// the first chunk, the error already yielded); otherwise err says why this
// model gave no reply.
func (c *Catalog) streamModel(ctx context.Context, id string, msgs []Message, t Turn, yield func(Chunk, error) bool) (err *Error, done bool) {
	e, b := c.entries[id], c.breakers[id]
	req := Request{Model: e.Model, System: e.SystemPrompt, Messages: Prepare(msgs, e.Input),
		User: t.User, Conversation: t.Conversation}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			delay := c.backoff(attempt, err.RetryAfter)
			c.retries.Add(1)
			c.log.Info("provider retry", "model", id, "attempt", attempt, "kind", err.Kind, "status", err.Status, "delay", delay, "err", err)
			if serr := c.sleep(ctx, delay); serr != nil {
				return &Error{Kind: KindCanceled, Model: e.Model, Err: serr}, false
			}
		}
		if ctx.Err() != nil {
			return &Error{Kind: KindCanceled, Model: e.Model, Err: ctx.Err()}, false
		}
		ok, probe := b.allow()
		if !ok {
			c.failFasts.Add(1)
			return &Error{Kind: KindUnavailable, Model: e.Model, Err: ErrCircuitOpen}, false
		}
		c.attempts.Add(1)
		committed := false
		var failed error
		for chunk, cerr := range e.Provider.Stream(ctx, req) {
			if cerr != nil {
				failed = cerr
				break
			}
			if !committed {
				committed = true
				b.success()
			}
			if !yield(chunk, nil) {
				return nil, true
			}
		}
		if failed == nil {
			b.success()
			return nil, true
		}
		err = asError(failed, e.Model)
		switch err.Kind {
		case KindCanceled:
			b.release(probe)
		case KindRateLimited, KindUnavailable, KindTimeout:
			if b.failure() {
				c.breakerOpens.Add(1)
				c.log.Warn("provider circuit open", "model", id, "cooldown", c.opts.BreakerCooldown, "kind", err.Kind, "status", err.Status)
			}
		default:
			// The vendor answered, refusing this request or its key: the
			// model itself is reachable.
			b.success()
		}
		if committed {
			yield(Chunk{}, err)
			return nil, true
		}
		if err.Kind == KindCanceled || !err.Retryable() || attempt >= c.opts.MaxRetries {
			return err, false
		}
	}
}

// asError normalises what a Provider yielded, so that callers can classify
// every failure the same way.
func asError(err error, model string) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return &Error{Kind: KindOf(err), Model: model, Err: err}
}

// backoff is the wait before retry attempt (1-based): full jitter over a
// capped exponential, but never less than the vendor's Retry-After, which
// is itself capped.
func (c *Catalog) backoff(attempt int, retryAfter time.Duration) time.Duration {
	ceiling := min(c.opts.Backoff, c.opts.MaxBackoff)
	for i := 1; i < attempt && ceiling < c.opts.MaxBackoff; i++ {
		ceiling = min(2*ceiling, c.opts.MaxBackoff)
	}
	d := time.Duration(rand.Int64N(int64(ceiling) + 1))
	return max(d, min(retryAfter, c.opts.MaxBackoff))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
