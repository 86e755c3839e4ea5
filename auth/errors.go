package auth

import "errors"

// ErrInvalidToken is wrapped by every error Verify returns: the token is
// missing, malformed, expired, signed with the wrong key or algorithm, or
// lacks a required claim. Callers answer it with 401.
var ErrInvalidToken = errors.New("invalid token")
