package mongo

import (
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// sortField converts a sort field between its stored value and the int64
// a cursor carries: milliseconds for times, the count itself for counts.
type sortField struct {
	key   func(*sessionDoc) int64
	value func(int64) any
}

func timeValue(k int64) any { return time.UnixMilli(k).UTC() }

var sortFields = map[string]sortField{
	persistence.SortUpdatedAt:    {func(d *sessionDoc) int64 { return d.UpdatedAt.UnixMilli() }, timeValue},
	persistence.SortCreatedAt:    {func(d *sessionDoc) int64 { return d.CreatedAt.UnixMilli() }, timeValue},
	persistence.SortMessageCount: {func(d *sessionDoc) int64 { return d.MessageCount }, func(k int64) any { return k }},
}
