package providers

import (
	"context"
	"time"
)

// SetSleep replaces the wait between retries, so tests can observe delays
// without spending them.
func SetSleep(c *Catalog, sleep func(ctx context.Context, d time.Duration) error) { c.sleep = sleep }

// Backoff exposes the retry delay computation.
func Backoff(c *Catalog, attempt int, retryAfter time.Duration) time.Duration {
	return c.backoff(attempt, retryAfter)
}
