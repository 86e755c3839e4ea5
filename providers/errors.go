package providers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrUnknownModel: a client asked for a model id the catalog does not have.
var ErrUnknownModel = errors.New("unknown model")

// Sentinels wrapped by *Error so that callers and tests can tell causes
// apart with errors.Is.
var (
	// ErrFirstTokenTimeout: no text arrived within the first-token timeout.
	ErrFirstTokenTimeout = errors.New("no text before the first-token timeout")
	// ErrIdleTimeout: the stream went quiet for longer than the idle timeout.
	ErrIdleTimeout = errors.New("stream idle past the idle timeout")
	// ErrCircuitOpen: the model failed repeatedly and is resting.
	ErrCircuitOpen = errors.New("circuit breaker open")
	// ErrIncomplete: the stream ended without the vendor's end marker, so the
	// reply may be cut short.
	ErrIncomplete = errors.New("stream ended before its end marker")
)

// Kind classifies a provider failure by what a caller should do about it.
type Kind string

const (
	KindAuth        Kind = "auth"         // 401/403: the key is wrong or lacks access; not retried
	KindBadRequest  Kind = "bad_request"  // other 4xx, refused content: the same request fails again
	KindRateLimited Kind = "rate_limited" // 429: retried after a backoff or Retry-After
	KindUnavailable Kind = "unavailable"  // 5xx, 529, connection errors, broken streams
	KindTimeout     Kind = "timeout"      // 408, connect, first-token or idle timeout
	KindCanceled    Kind = "canceled"     // the caller's context ended (the user pressed stop)
)

// Error is a failed generation. Its message carries the vendor's status and
// message for logs; people are shown only a generic provider_unavailable.
// It never contains an API key.
type Error struct {
	Kind Kind
	// Status is the HTTP status, or 0 when the request got no response or
	// failed mid-stream.
	Status int
	// RetryAfter is the vendor's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Model is the vendor's model name.
	Model string
	Err   error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("provider")
	if e.Model != "" {
		b.WriteString(" model ")
		b.WriteString(e.Model)
	}
	b.WriteString(": ")
	b.WriteString(string(e.Kind))
	if e.Status != 0 {
		b.WriteString(" (status ")
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether sending the same request again soon may
// succeed: rate limits, unavailability and connect timeouts. Stalls (first
// token, idle) are not: the model answered but was too slow, so the Catalog
// moves on to a fallback instead of waiting again.
func (e *Error) Retryable() bool {
	switch e.Kind {
	case KindRateLimited:
		return true
	case KindUnavailable:
		return !errors.Is(e.Err, ErrCircuitOpen)
	case KindTimeout:
		return !errors.Is(e.Err, ErrFirstTokenTimeout) && !errors.Is(e.Err, ErrIdleTimeout)
	}
	return false
}

// KindOf returns the Kind of the first *Error in err's chain. A bare context
// error is KindCanceled; any other error is KindUnavailable, and nil is "".
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return KindCanceled
	}
	return KindUnavailable
}

// StatusKind maps an HTTP status to a Kind. 529 is Anthropic's "overloaded".
func StatusKind(status int) Kind {
	switch {
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return KindAuth
	case status == http.StatusRequestTimeout:
		return KindTimeout
	case status == http.StatusTooManyRequests:
		return KindRateLimited
	case status >= 500:
		return KindUnavailable
	}
	return KindBadRequest
}

// maxRetryAfter bounds a parsed Retry-After; the Catalog caps it further.
const maxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After header value: delay seconds or an HTTP
// date. It returns 0 for an empty, malformed or past value.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return min(time.Duration(secs*float64(time.Second)), maxRetryAfter)
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), maxRetryAfter)
}

// maxErrorBody bounds how much of a vendor's error body is read and kept:
// enough for its message, not enough to flood a log.
const maxErrorBody = 2048

// ResponseError builds the error for a non-2xx response: Kind from the
// status, RetryAfter from the header, and the vendor's message (extracted
// from the body by message, or the raw body when message is nil or finds
// none). Every occurrence of secret in the text is redacted, because some
// vendors echo the key they rejected. It reads and closes nothing: the
// caller closes resp.Body.
func ResponseError(model string, resp *http.Response, secret string, message func(body []byte) string) *Error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := ""
	if message != nil {
		msg = message(body)
	}
	if msg == "" {
		msg = strings.TrimSpace(string(body))
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &Error{
		Kind:       StatusKind(resp.StatusCode),
		Status:     resp.StatusCode,
		RetryAfter: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Model:      model,
		Err:        errors.New(Redact(msg, secret)),
	}
}

// Redact replaces every occurrence of secret in s.
func Redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// TransportError classifies err from sending a request or reading its
// stream, where ctx is the request's context (as returned by
// Watchdog.Context). The watchdog's own timeouts win, then the caller's
// cancellation; a network timeout is a connect timeout; anything else is
// an unavailable service.
func TransportError(ctx context.Context, model string, err error) *Error {
	var pe *Error
	if errors.As(context.Cause(ctx), &pe) {
		return pe
	}
	if errors.As(err, &pe) {
		return pe
	}
	if ctx.Err() != nil {
		return &Error{Kind: KindCanceled, Model: model, Err: ctx.Err()}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: KindTimeout, Model: model, Err: err}
	}
	return &Error{Kind: KindUnavailable, Model: model, Err: err}
}

// StreamError is the error a vendor reports inside an open stream (an
// "error" event or object). kind is derived from the vendor's code.
func StreamError(kind Kind, model, format string, args ...any) *Error {
	return &Error{Kind: kind, Model: model, Err: fmt.Errorf(format, args...)}
}
