package sqlite

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

// stmtCase is one statement of queries.go with representative arguments.
type stmtCase struct {
	name  string
	query string
	args  []any
	// scans lists tables a plan may scan: the small schema tables the
	// maintenance statements read by design.
	scans []string
	// sorts says the plan may sort in a temporary b-tree rather than walk
	// an index in order: the maintenance statements, and a user's sessions
	// listed under a sort other than updated_at.
	sorts bool
}

// statements are every statement of queries.go but the transaction
// control (BEGIN, COMMIT, savepoints), which has no plan, and the
// checkpoint pragma. TestPlansCoverEveryStatement keeps this list whole.
var statements = []stmtCase{
	{"qPing", qPing, nil, nil, false},
	{"qGetSession", qGetSession, []any{"s1"}, nil, false},
	{"qGetSessionByShare", qGetSessionByShare, []any{"share1"}, nil, false},
	{"qSessionExists", qSessionExists, []any{"s1"}, nil, false},
	{"qListMessages", qListMessages, []any{"s1", 0, 100}, nil, false},
	{"qListSessionsFirst", qListSessionsFirst, []any{"u1", 51}, nil, false},
	{"qListSessionsAfter", qListSessionsAfter, []any{"u1", 51, int64(1), "s1"}, nil, false},
	{"qStats", qStats, nil, nil, false},
	{"qListQueue", qListQueue, []any{51}, nil, false},
	{"qRekeyMessagesBelow", qRekeyMessagesBelow, []any{"k", "", "", 500}, nil, false},
	{"qRekeyMessagesAbove", qRekeyMessagesAbove, []any{"k", "", "", 500}, nil, false},
	{"qRekeyTitlesBelow", qRekeyTitlesBelow, []any{"k", "", "", 500}, nil, false},
	{"qRekeyTitlesAbove", qRekeyTitlesAbove, []any{"k", "", "", 500}, nil, false},
	{"qRekeyMessagesLeft", qRekeyMessagesLeft, []any{"k"}, nil, false},
	{"qRekeyTitlesLeft", qRekeyTitlesLeft, []any{"k"}, nil, false},
	{"qIndexes", qIndexes, nil, []string{"m", "il"}, true},
	{"qIndexColumns", qIndexColumns, []any{"sessions_updated"}, []string{"pragma_index_info"}, true},
	{"qInsertSession", qInsertSession, sessionRow(), nil, false},
	{"qUpsertSession", qUpsertSession, sessionRow(), nil, false},
	{"qUpdateSession", qUpdateSession, []any{"s1", 1, "k", []byte{1}, "m", "active", "bot", "", "", false, "", int64(1), int64(0), 0, "", []byte{}}, nil, false},
	{"qSessionVersion", qSessionVersion, []any{"s1"}, nil, false},
	{"qDeleteMessages", qDeleteMessages, []any{"s1"}, nil, false},
	{"qDeleteSession", qDeleteSession, []any{"s1"}, nil, false},
	{"qLastSeq", qLastSeq, []any{"s1"}, nil, false},
	{"qMessageByID", qMessageByID, []any{"m1"}, nil, false},
	{"qInsertMessage", qInsertMessage, messageRow(), nil, false},
	{"qUpsertMessage", qUpsertMessage, messageRow(), nil, false},
	{"qAdvanceSession", qAdvanceSession, []any{"s1", 2, int64(1), 1, 1, "m2", true}, nil, false},
	{"qMessageUsage", qMessageUsage, []any{"s1", 1}, nil, false},
	{"qUpdateMessage", qUpdateMessage, []any{1, "k", []byte{1}, "complete", 1, 1}, nil, false},
	{"qAddSessionTokens", qAddSessionTokens, []any{"s1", 1, 1}, nil, false},
	{"qRekeyMessage", qRekeyMessage, []any{"m1", "k", []byte{1}, "k2", []byte{2}}, nil, false},
	{"qRekeyTitle", qRekeyTitle, []any{"s1", "k", []byte{1}, "k2", []byte{2}}, nil, false},
	{"qInsertAudit", qInsertAudit, []any{"a1", int64(1), "ad", "Ann", "admin", "erase", "", "u1"}, nil, false},
	{"qListAuditFirst", qListAuditFirst, []any{51}, nil, false},
	{"qListAuditAfter", qListAuditAfter, []any{int64(1), "a1", 51}, nil, false},
	{"qEraseAuditSessions", qEraseAuditSessions, []any{"u1"}, nil, false},
	{"qEraseMessages", qEraseMessages, []any{"u1"}, nil, false},
	{"qEraseSessions", qEraseSessions, []any{"u1"}, nil, false},
	{"qForgetAuditSession", qForgetAuditSession, []any{"s1"}, nil, false},
	{"qInsertAttachment", qInsertAttachment, []any{"a1", "u1", "", "f.png", "image/png", 1, 1, int64(1), "k", []byte{1}}, nil, false},
	{"qGetAttachment", qGetAttachment, []any{"a1"}, nil, false},
	{"qInsertChunk", qInsertChunk, []any{"a1", 0, "k", []byte{1}}, nil, false},
	{"qGetChunk", qGetChunk, []any{"a1", 0}, nil, false},
	{"qDeleteChunks", qDeleteChunks, []any{"a1"}, nil, false},
	{"qSetTranscript", qSetTranscript, []any{"a1", "k", []byte{1}}, nil, false},
	{"qAssignAttachment", qAssignAttachment, []any{"a1", "s1"}, nil, false},
	{"qGetConversation", qGetConversation, []any{"s1"}, nil, false},
	{"qSetConversation", qSetConversation, []any{"s1", "c1"}, nil, false},
	{"qDeleteConversation", qDeleteConversation, []any{"s1"}, nil, false},
	{"qDeleteSessionChunks", qDeleteSessionChunks, []any{"s1"}, nil, false},
	{"qDeleteSessionAttachments", qDeleteSessionAttachments, []any{"s1"}, nil, false},
	{"qEraseChunks", qEraseChunks, []any{"u1"}, nil, false},
	{"qEraseAttachments", qEraseAttachments, []any{"u1"}, nil, false},
	{"qEraseConversations", qEraseConversations, []any{"u1"}, nil, false},
}

// noPlan are the statements of queries.go that EXPLAIN QUERY PLAN has
// nothing to say about.
var noPlan = []string{"qBegin", "qCommit", "qRollback", "qSavepoint", "qRollbackTo", "qRelease", "qCheckpoint", "qPassiveCheckpoint", "qVacuum"}

func sessionRow() []any {
	return []any{"s1", "u1", "k", []byte{1}, "m", "active", "bot", "", "", false, 0, 0, 0, 0, "", int64(1), int64(1), 1, "", int64(0), 0, "", []byte{}}
}

func messageRow() []any {
	return []any{"m1", "s1", 1, "user", "Ann", "u1", "k", []byte{1}, "complete", int64(1), 0, 0, "", ""}
}

// adminCases are every shape of ListAllSessions query, with arguments.
func adminCases() []stmtCase {
	var out []stmtCase
	for _, sort := range []string{persistence.SortUpdatedAt, persistence.SortCreatedAt, persistence.SortMessageCount} {
		for _, order := range []string{persistence.OrderDesc, persistence.OrderAsc} {
			for bits := range 1 << 7 {
				sh := adminShape{sort: sort, order: order,
					user: bits&1 != 0, status: bits&2 != 0, help: bits&4 != 0, taken: bits&8 != 0,
					from: bits&16 != 0, to: bits&32 != 0, after: bits&64 != 0}
				var args []any
				for _, a := range []struct {
					on bool
					v  any
				}{{sh.user, "u1"}, {sh.status, "active"}, {sh.help, true}, {sh.taken, false},
					{sh.from, int64(1)}, {sh.to, int64(2)}} {
					if a.on {
						args = append(args, a.v)
					}
				}
				if sh.after {
					args = append(args, int64(1), "s1")
				}
				args = append(args, 51)
				out = append(out, stmtCase{name: adminName(sh), query: adminQuery(sh), args: args,
					sorts: sh.user && sh.sort != persistence.SortUpdatedAt})
			}
		}
	}
	return out
}

func adminName(sh adminShape) string {
	var b strings.Builder
	b.WriteString("admin/" + sh.sort + "_" + sh.order)
	for _, f := range []struct {
		on   bool
		name string
	}{{sh.user, "user"}, {sh.status, "status"}, {sh.help, "help"}, {sh.taken, "taken"},
		{sh.from, "from"}, {sh.to, "to"}, {sh.after, "after"}} {
		if f.on {
			b.WriteString("+" + f.name)
		}
	}
	return b.String()
}

// TestPlansCoverEveryStatement reads queries.go and fails for a statement
// constant that the plan test does not explain, so that a new query cannot
// skip it.
func TestPlansCoverEveryStatement(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "queries.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, c := range statements {
		known[c.name] = true
	}
	for _, n := range noPlan {
		known[n] = true
	}
	found := 0
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				if !strings.HasPrefix(name.Name, "q") {
					continue
				}
				found++
				if !known[name.Name] {
					t.Errorf("statement %s of queries.go is not in the plan test", name.Name)
				}
			}
		}
	}
	if found != len(known) {
		t.Errorf("queries.go has %d statements, the plan test knows %d", found, len(known))
	}
}

// fullScan matches a plan step that reads a whole table: SCAN without an
// index (a SCAN of an index, to walk it in order, is fine).
var fullScan = regexp.MustCompile(`^SCAN (\S+)(?: AS \S+)?$`)

// TestNoStatementScansATable explains every statement the store runs and
// fails for any whose plan scans a table, and for any that sorts in a
// temporary b-tree, rather than walking an index in order, where it should
// not.
func TestNoStatementScansATable(t *testing.T) {
	st := openInternal(t)
	ctx := context.Background()
	// Some data, so that the plans are those of a store in use.
	for i, id := range []string{"s1", "s2", "s3"} {
		x := &persistence.Session{ID: id, UserID: "u1", Title: "t"}
		if err := st.CreateSession(ctx, x); err != nil {
			t.Fatal(err)
		}
		if err := st.AppendMessage(ctx, &persistence.Message{SessionID: id, Seq: 1, Text: "x", TokensIn: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := st.rdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	cases := append(append([]stmtCase(nil), statements...), adminCases()...)
	for _, c := range cases {
		rows, err := conn.QueryContext(ctx, "EXPLAIN QUERY PLAN "+c.query, c.args...)
		if err != nil {
			t.Errorf("%s: explain: %v", c.name, err)
			continue
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Errorf("%s: explain: %v", c.name, err)
			continue
		}
		if testing.Verbose() {
			t.Logf("%s: %s", c.name, strings.Join(plan, " | "))
		}
		for _, step := range plan {
			if m := fullScan.FindStringSubmatch(step); m != nil && !slices.Contains(c.scans, m[1]) {
				t.Errorf("%s scans table %s: %s\n%s", c.name, m[1], strings.Join(plan, " | "), c.query)
			}
			if strings.Contains(step, "TEMP B-TREE") && !c.sorts {
				t.Errorf("%s sorts in a temporary b-tree: %s", c.name, strings.Join(plan, " | "))
			}
		}
	}
}

// TestFullScanPattern keeps the plan test able to fail: the pattern must
// tell a table scan from an index walk.
func TestFullScanPattern(t *testing.T) {
	for step, want := range map[string]bool{
		"SCAN sessions":      true,
		"SCAN messages AS m": true,
		"SCAN sessions USING INDEX sessions_updated":    false,
		"SCAN sessions USING COVERING INDEX sessions_x": false,
		"SEARCH sessions USING PRIMARY KEY (id=?)":      false,
		"SCAN CONSTANT ROW":                             false,
	} {
		if got := fullScan.MatchString(step); got != want {
			t.Errorf("%q: full scan %v, want %v", step, got, want)
		}
	}
}
