// Package auth owns user identity: verifying the bearer JWTs that clients
// present (CONTRACT §3), signing tokens for the "chatbox token" command and
// tests, and finding the token in an HTTP or WebSocket upgrade request.
//
// The accepted algorithm is pinned by configuration, never taken from the
// token: an HS256 secret accepts only HS256, an RSA public key only RS256, an
// ECDSA P-256 public key only ES256. So "alg": "none" and algorithm confusion
// (an HS256 token signed with the public key as its secret) are rejected.
//
// Concurrency: a *Verifier is immutable after NewVerifier and safe for
// concurrent use by any number of goroutines. Sign and BearerToken are pure
// functions.
//
// Errors never contain the token, so they are safe to log.
package auth
