package persistence

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// Sort fields and orders of the session lists, as AdminFilter names them.
const (
	SortUpdatedAt    = "updated_at"
	SortCreatedAt    = "created_at"
	SortMessageCount = "message_count"
	OrderAsc         = "asc"
	OrderDesc        = "desc"
)

// Cursor is where the previous page of a list ended: the sort key and id
// of its last record. It names its sort so that it cannot be replayed
// against another one, where its key would mean something else. Both
// stores use it, so their page cursors have one shape.
type Cursor struct {
	Sort  string `json:"s"`
	Order string `json:"o"`
	Key   int64  `json:"k"` // milliseconds for times, the count itself for counts
	ID    string `json:"id"`
}

// EncodeCursor makes the opaque next_cursor: base64url of a small JSON.
func EncodeCursor(c Cursor) string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("encode cursor: %v", err)) // a struct of strings and an int always marshals
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by EncodeCursor for the same sort and
// order; anything else wraps ErrBadCursor.
func DecodeCursor(s, sort, order string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("decode cursor: %w", ErrBadCursor)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c Cursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return Cursor{}, fmt.Errorf("decode cursor: %w", ErrBadCursor)
	}
	if c.Sort != sort || c.Order != order || c.ID == "" {
		return Cursor{}, fmt.Errorf("cursor of another sort used with %s %s: %w", sort, order, ErrBadCursor)
	}
	return c, nil
}
