package providers

import (
	"sync"
	"time"
)

// BreakerState is where a model's circuit breaker stands.
type BreakerState string

const (
	BreakerClosed   BreakerState = "closed"    // requests flow
	BreakerOpen     BreakerState = "open"      // requests fail fast until the cool-down ends
	BreakerHalfOpen BreakerState = "half_open" // one probe request is allowed through
)

// breaker is one model's circuit breaker. After threshold consecutive
// failures it opens: requests fail fast for cooldown, which spares a sick
// vendor and sends users straight to a fallback. Then one probe goes
// through; its success closes the breaker, its failure reopens it.
type breaker struct {
	threshold int // 0 disables the breaker
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex // guards the fields below
	state    BreakerState
	failures int       // consecutive failures while closed
	openedAt time.Time // when the breaker last opened
	probing  bool      // a half-open probe is in flight
}

func newBreaker(threshold int, cooldown time.Duration, now func() time.Time) *breaker {
	return &breaker{threshold: threshold, cooldown: cooldown, now: now, state: BreakerClosed}
}

// allow reports whether a request may go out now, and whether it is the
// half-open probe, which must end with success, failure or release.
func (b *breaker) allow() (ok, probe bool) {
	if b.threshold <= 0 {
		return true, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return false, false
		}
		b.state = BreakerHalfOpen
		b.probing = true
		return true, true
	case BreakerHalfOpen:
		if b.probing {
			return false, false
		}
		b.probing = true
		return true, true
	}
	return true, false
}

// success records a request that reached the model and was answered.
func (b *breaker) success() {
	if b.threshold <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.state, b.failures, b.probing = BreakerClosed, 0, false
}

// failure records a failed request and reports whether it opened the
// breaker.
func (b *breaker) failure() (opened bool) {
	if b.threshold <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerHalfOpen:
		b.state, b.openedAt, b.probing = BreakerOpen, b.now(), false
		return true
	case BreakerClosed:
		b.failures++
		if b.failures >= b.threshold {
			b.state, b.openedAt, b.failures = BreakerOpen, b.now(), 0
			return true
		}
	}
	return false
}

// release ends a request that says nothing about the model's health (the
// caller cancelled it), freeing the probe slot if it held it.
func (b *breaker) release(probe bool) {
	if b.threshold <= 0 || !probe {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
}

func (b *breaker) current() BreakerState {
	if b.threshold <= 0 {
		return BreakerClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerOpen && b.now().Sub(b.openedAt) >= b.cooldown {
		return BreakerHalfOpen
	}
	return b.state
}
