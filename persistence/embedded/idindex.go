package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"

	_ "modernc.org/sqlite" // FerretDB's own SQLite driver, already in the build
)

// IndexIDs makes FerretDB's lookups by _id use an index in every collection
// of database. FerretDB 1.24 filters on _ferretdb_sjson->'$._id' while the
// unique index it keeps for _id is on _ferretdb_sjson->"_id", a different
// expression to SQLite, so every find, update and delete by _id scanned the
// whole table (measured by the bench: 77% of server CPU at 100 sends/s).
// The index added here has exactly FerretDB's expression; SQLite re-plans
// FerretDB's statements when the schema changes. Call it after the
// collections exist (after EnsureIndexes); it is idempotent.
func (s *Server) IndexIDs(ctx context.Context, database string) error {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dir, database+".sqlite"))
	if err != nil {
		return fmt.Errorf("index _id: open %s: %w", database, err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM "_ferretdb_collections"`)
	if err != nil {
		return fmt.Errorf("index _id: list tables of %s: %w", database, err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("index _id: list tables of %s: %w", database, err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"_chatbox_id_path", t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("index _id of %s.%s: %w", database, t, err)
		}
	}
	return nil
}
