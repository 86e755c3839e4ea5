package embedded_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence/embedded"
)

// FerretDB's lookups by _id must be answered from an index once IndexIDs
// ran: SQLite's plan for FerretDB's own query names our index, not SCAN.
func TestIndexIDsMakesLookupsByIDUseAnIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := embedded.Start(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	coll := client.Database("plan").Collection("things")
	if _, err := coll.InsertOne(ctx, bson.M{"_id": "a", "n": 1}); err != nil {
		t.Fatal(err)
	}

	plan := func() string {
		t.Helper()
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "plan.sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var table string
		if err := db.QueryRow(`SELECT table_name FROM "_ferretdb_collections" WHERE name = 'things'`).Scan(&table); err != nil {
			t.Fatal(err)
		}
		rows, err := db.Query(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "`+table+`" WHERE _ferretdb_sjson->'$._id' = ?`, `"a"`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var details []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			details = append(details, detail)
		}
		return strings.Join(details, "; ")
	}
	if p := plan(); !strings.Contains(p, "SCAN") {
		t.Logf("before IndexIDs the plan is %q (FerretDB fixed the mismatch?)", p)
	}
	if err := srv.IndexIDs(ctx, "plan"); err != nil {
		t.Fatal(err)
	}
	if err := srv.IndexIDs(ctx, "plan"); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if p := plan(); strings.Contains(p, "SCAN") || !strings.Contains(p, "_chatbox_id_path") {
		t.Fatalf("plan after IndexIDs: %q, want a search using the _chatbox_id_path index", p)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.M{"_id": "a"}).Decode(&got); err != nil || got["n"] != int32(1) {
		t.Fatalf("FindOne by _id through FerretDB after the index: %v %v", got, err)
	}
}
