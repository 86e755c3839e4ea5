package protocol

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Error codes of CONTRACT §4, and v1.1's ended and unsupported.
const (
	CodeBadRequest          = "bad_request"
	CodeUnauthorized        = "unauthorized"
	CodeForbidden           = "forbidden"
	CodeNotFound            = "not_found"
	CodeTooLarge            = "too_large"
	CodeRateLimited         = "rate_limited"
	CodeBusy                = "busy"
	CodeStorageUnavailable  = "storage_unavailable"
	CodeProviderUnavailable = "provider_unavailable"
	CodeInternal            = "internal"
	CodeEnded               = "ended"
	CodeUnsupported         = "unsupported"
)

// codes is the one table of wire error codes: the generic text people see
// (over WebSocket and HTTP alike; details stay in the server's log) and the
// HTTP status the API answers with.
var codes = map[string]struct {
	text   string
	status int
}{
	CodeBadRequest:          {"the request is not valid", http.StatusBadRequest},
	CodeUnauthorized:        {"a valid token is required", http.StatusUnauthorized},
	CodeForbidden:           {"you are not allowed to do that", http.StatusForbidden},
	CodeNotFound:            {"not found", http.StatusNotFound},
	CodeTooLarge:            {"the message is too large", http.StatusRequestEntityTooLarge},
	CodeRateLimited:         {"too many requests; slow down", http.StatusTooManyRequests},
	CodeBusy:                {"busy; try again shortly", http.StatusConflict},
	CodeStorageUnavailable:  {"storage is unavailable; try again shortly", http.StatusServiceUnavailable},
	CodeProviderUnavailable: {"the model is unavailable; try again shortly", http.StatusBadGateway},
	CodeInternal:            {"internal error", http.StatusInternalServerError},
	CodeEnded:               {"this conversation has ended", http.StatusConflict},
	CodeUnsupported:         {"this server cannot serve that request", http.StatusUnsupportedMediaType},
}

// Error is a wire error: what a client is told when the server refuses or
// cannot finish something, as an error event over WebSocket or a JSON
// error over HTTP. Message is text for people, never internals.
// RetryAfter, when set, hints when trying again can succeed (rate_limited).
type Error struct {
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// HTTPStatus is the status the HTTP API answers e with; a code outside the
// table is a 500.
func (e *Error) HTTPStatus() int {
	if c, ok := codes[e.Code]; ok {
		return c.status
	}
	return http.StatusInternalServerError
}

// Err is the error of code with its generic text.
func Err(code string) *Error { return &Error{Code: code, Message: codes[code].text} }

// Errf is the error of code with a message of its own, for where the
// generic text would not help.
func Errf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError is the *Error in err's chain, or internal when there is none: an
// error that was not meant for clients is never shown to them.
func AsError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return Err(CodeInternal)
}
