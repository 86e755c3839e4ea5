package sqlite

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/chatbox/chatbox/persistence"
)

// Sort fields and orders of the session lists, as persistence.AdminFilter
// names them. The field names are also the column names.
const (
	sortUpdatedAt    = "updated_at"
	sortCreatedAt    = "created_at"
	sortMessageCount = "message_count"
	orderAsc         = "asc"
	orderDesc        = "desc"
)

// sortKeys give, for each sort field, the value of a session that a cursor
// carries: milliseconds for times, the count itself for counts. The keys
// are the only column names ever put into query text.
var sortKeys = map[string]func(*persistence.Session) int64{
	sortUpdatedAt:    func(x *persistence.Session) int64 { return x.UpdatedAt.UnixMilli() },
	sortCreatedAt:    func(x *persistence.Session) int64 { return x.CreatedAt.UnixMilli() },
	sortMessageCount: func(x *persistence.Session) int64 { return x.MessageCount },
}

// cursor is where the previous page ended: the sort key and id of its last
// session. It names its sort so that it cannot be replayed against another
// one, where its key would mean something else. It has the same shape as
// the MongoDB store's.
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
