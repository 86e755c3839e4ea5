package mongo

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// Sort fields and orders of the session lists, as persistence.AdminFilter
// names them.
const (
	sortUpdatedAt    = "updated_at"
	sortCreatedAt    = "created_at"
	sortMessageCount = "message_count"
	orderAsc         = "asc"
	orderDesc        = "desc"
)

// sortField converts a sort field between its stored value and the int64
// a cursor carries: milliseconds for times, the count itself for counts.
type sortField struct {
	key   func(*sessionDoc) int64
	value func(int64) any
}

func timeValue(k int64) any { return time.UnixMilli(k).UTC() }

var sortFields = map[string]sortField{
	sortUpdatedAt:    {func(d *sessionDoc) int64 { return d.UpdatedAt.UnixMilli() }, timeValue},
	sortCreatedAt:    {func(d *sessionDoc) int64 { return d.CreatedAt.UnixMilli() }, timeValue},
	sortMessageCount: {func(d *sessionDoc) int64 { return d.MessageCount }, func(k int64) any { return k }},
}

// cursor is where the previous page ended: the sort key and _id of its
// last session. It names its sort so that it cannot be replayed against
// another one, where its key would mean something else.
type cursor struct {
	Sort  string `json:"s"`
	Order string `json:"o"`
	Key   int64  `json:"k"`
	ID    string `json:"id"`
}

// encodeCursor makes the opaque next_cursor: base64url of a small JSON.
func encodeCursor(c cursor) string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("encode cursor: %v", err)) // a struct of strings and an int always marshals
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor made by encodeCursor for the same sort and
// order; anything else wraps persistence.ErrBadCursor.
func decodeCursor(s, sort, order string) (cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, fmt.Errorf("decode cursor: %w", persistence.ErrBadCursor)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var c cursor
	if err := dec.Decode(&c); err != nil || dec.More() {
		return cursor{}, fmt.Errorf("decode cursor: %w", persistence.ErrBadCursor)
	}
	if c.Sort != sort || c.Order != order || c.ID == "" {
		return cursor{}, fmt.Errorf("cursor of another sort used with %s %s: %w", sort, order, persistence.ErrBadCursor)
	}
	return c, nil
}
