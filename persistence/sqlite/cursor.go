package sqlite

import (
	"github.com/chatbox/chatbox/persistence"
)

// sortKeys give, for each sort field, the value of a session that a cursor
// carries: milliseconds for times, the count itself for counts. The keys
// are the only column names ever put into query text.
var sortKeys = map[string]func(*persistence.Session) int64{
	persistence.SortUpdatedAt:    func(x *persistence.Session) int64 { return x.UpdatedAt.UnixMilli() },
	persistence.SortCreatedAt:    func(x *persistence.Session) int64 { return x.CreatedAt.UnixMilli() },
	persistence.SortMessageCount: func(x *persistence.Session) int64 { return x.MessageCount },
}
