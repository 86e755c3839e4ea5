package persistence

import "errors"

var (
	// ErrNotFound: no such session or message.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a fenced write lost to another writer (the seq is taken or
	// last_seq moved). The writer's in-memory state is stale.
	ErrConflict = errors.New("write conflict")
	// ErrUnavailable: the database did not answer in time or refused the
	// connection. Callers report storage_unavailable.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrBadCursor: a page cursor that this store did not produce.
	ErrBadCursor = errors.New("bad cursor")
	// ErrKeyMissing: a message was encrypted under a key that is no longer
	// configured; its text cannot be read.
	ErrKeyMissing = errors.New("encryption key missing")
)

// ErrCorrupt: a stored ciphertext did not authenticate under its key and
// associated data. It was damaged, tampered with, or copied from another
// record; its text must not be trusted or shown.
var ErrCorrupt = errors.New("ciphertext does not authenticate")
