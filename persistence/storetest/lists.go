package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/chatbox/chatbox/persistence"
)

// newestFirst orders sessions as ListSessions does: updated_at, then id,
// both descending.
func newestFirst(a, b persistence.Session) int {
	return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(b.ID, a.ID))
}

// walk reads every page of list, limit sessions a page, and returns the
// ids in the order listed and the number of pages.
func walk(t *testing.T, limit int, list func(persistence.Page) ([]persistence.Session, string, error)) (got []string, pages int) {
	t.Helper()
	cursor := ""
	for {
		if pages > 1000 {
			t.Fatal("no last page after 1000 pages")
		}
		page, next, err := list(persistence.Page{Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if limit > 0 && len(page) > limit {
			t.Fatalf("page %d has %d sessions, limit %d", pages, len(page), limit)
		}
		pages++
		got = append(got, ids(page)...)
		if next == "" {
			return got, pages
		}
		cursor = next
	}
}

var listCases = []testCase{
	{"a user's sessions list newest first, in pages", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		// Seven sessions of u1, two of them tied on updated_at, and one of u2.
		for i, ms := range []int{10, 30, 20, 30, 50, 40, 60} {
			mustCreate(t, st, persistence.Session{ID: fmt.Sprintf("s%d", i), UserID: "u1", CreatedAt: at(0), UpdatedAt: at(ms)})
		}
		mustCreate(t, st, persistence.Session{ID: "other", UserID: "u2", UpdatedAt: at(100)})
		want := []string{"s6", "s4", "s5", "s3", "s1", "s2", "s0"} // s3 and s1 tie: id desc
		got, pages := walk(t, 3, func(p persistence.Page) ([]persistence.Session, string, error) {
			return st.ListSessions(ctx, "u1", p)
		})
		if !slices.Equal(got, want) || pages != 3 {
			t.Fatalf("walked %v in %d pages, want %v in 3", got, pages, want)
		}
		// Exactly a page's worth: no empty page after it.
		if got, pages := walk(t, 7, func(p persistence.Page) ([]persistence.Session, string, error) {
			return st.ListSessions(ctx, "u1", p)
		}); !slices.Equal(got, want) || pages != 1 {
			t.Fatalf("walked %v in %d pages with limit 7, want %v in 1", got, pages, want)
		}
		page, _, err := st.ListSessions(ctx, "u1", persistence.Page{Limit: 1})
		if err != nil || len(page) != 1 || page[0] != *mustGet(t, st, "s6") {
			t.Fatalf("first page %+v, %v: want the whole of s6", page, err)
		}
		none, next, err := st.ListSessions(ctx, "nobody", persistence.Page{})
		if err != nil || next != "" || none == nil || len(none) != 0 {
			t.Fatalf("no sessions: %v, next %q, err %v; want an empty list", none, next, err)
		}
	}},
	{"a session list's page size has a default and a cap", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		im := importer(t, st)
		for i := range MaxSessionLimit + 5 {
			x := &persistence.Session{ID: fmt.Sprintf("s%03d", i), UserID: "u1", Status: "active", Mode: persistence.ModeBot,
				CreatedAt: at(i), UpdatedAt: at(i), Version: 1}
			if err := im.PutSession(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		for _, tt := range []struct{ limit, want int }{{0, DefaultSessionLimit}, {-1, DefaultSessionLimit}, {1000, MaxSessionLimit}} {
			page, next, err := st.ListSessions(ctx, "u1", persistence.Page{Limit: tt.limit})
			if err != nil || len(page) != tt.want || next == "" {
				t.Errorf("ListSessions limit %d: %d sessions, next %q, err %v; want %d and a next page", tt.limit, len(page), next, err, tt.want)
			}
			page, next, err = st.ListAllSessions(ctx, persistence.AdminFilter{}, persistence.Page{Limit: tt.limit})
			if err != nil || len(page) != tt.want || next == "" {
				t.Errorf("ListAllSessions limit %d: %d sessions, next %q, err %v; want %d and a next page", tt.limit, len(page), next, err, tt.want)
			}
		}
	}},
	{"the admin list honours every filter, sort and order, in pages", testListAllSessions},
	{"a cursor this store did not make for this list is refused", func(t *testing.T, s *suite) {
		ctx := t.Context()
		st := s.open(t)
		for i := range 3 {
			mustCreate(t, st, persistence.Session{ID: fmt.Sprintf("s%d", i), UserID: "u1", CreatedAt: at(i), UpdatedAt: at(i)})
		}
		firstCursor := func(f persistence.AdminFilter) string {
			t.Helper()
			_, next, err := st.ListAllSessions(ctx, f, persistence.Page{Limit: 1})
			if err != nil || next == "" {
				t.Fatalf("first page of %+v: next %q, err %v", f, next, err)
			}
			return next
		}
		byCreated := firstCursor(persistence.AdminFilter{Sort: "created_at"})
		byCount := firstCursor(persistence.AdminFilter{Sort: "message_count"})
		byUpdatedAsc := firstCursor(persistence.AdminFilter{Order: "asc"})
		bad := map[string]string{
			"garbage":     "%%%not a cursor%%%",
			"plain word":  "cursor",
			"other sort":  byCreated,
			"count sort":  byCount,
			"other order": byUpdatedAsc,
			"truncated":   byCreated[:len(byCreated)/2],
		}
		for name, c := range bad {
			if _, _, err := st.ListAllSessions(ctx, persistence.AdminFilter{}, persistence.Page{Cursor: c}); !errors.Is(err, persistence.ErrBadCursor) {
				t.Errorf("%s: ListAllSessions: err = %v, want ErrBadCursor", name, err)
			}
			if _, _, err := st.ListSessions(ctx, "u1", persistence.Page{Cursor: c}); !errors.Is(err, persistence.ErrBadCursor) {
				t.Errorf("%s: ListSessions: err = %v, want ErrBadCursor", name, err)
			}
		}
		// The user list's cursor is the admin default's (updated_at desc).
		_, next, err := st.ListSessions(ctx, "u1", persistence.Page{Limit: 1})
		if err != nil || next == "" {
			t.Fatalf("first user page: %q, %v", next, err)
		}
		if page, _, err := st.ListSessions(ctx, "u1", persistence.Page{Limit: 5, Cursor: next}); err != nil || !slices.Equal(ids(page), []string{"s1", "s0"}) {
			t.Fatalf("second user page: %v, %v", ids(page), err)
		}
	}},
	{"an unknown sort or order is refused", func(t *testing.T, s *suite) {
		st := s.open(t)
		for _, f := range []persistence.AdminFilter{{Sort: "title"}, {Sort: "UPDATED_AT"}, {Order: "sideways"}} {
			if _, _, err := st.ListAllSessions(t.Context(), f, persistence.Page{}); err == nil {
				t.Errorf("filter %+v accepted", f)
			}
		}
	}},
	{"walking pages while sessions are written never repeats or skips one", testWalkWhileWriting},
}

func testListAllSessions(t *testing.T, s *suite) {
	ctx := t.Context()
	st := s.open(t)
	yes, no := true, false
	var all []persistence.Session
	for i := range 24 {
		x := persistence.Session{
			ID:            fmt.Sprintf("s%02d", i),
			UserID:        fmt.Sprintf("u%d", i%3),
			Status:        []string{"active", "closed"}[i%2],
			Mode:          []string{persistence.ModeBot, persistence.ModeHuman, persistence.ModeBot, ""}[i%4],
			HelpRequested: i%5 == 0,
			CreatedAt:     at(i / 2 * 10), // ties
			UpdatedAt:     at(1000 - i%7*10),
		}
		mustCreate(t, st, x)
		for seq := range int64(i % 4) { // message counts 0..3: ties
			m := message(x.ID, seq+1, "text")
			m.CreatedAt = t0 // older than the session: updated_at stays
			if err := st.AppendMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		all = append(all, *mustGet(t, st, x.ID))
	}

	filters := []struct {
		name string
		f    persistence.AdminFilter
		keep func(persistence.Session) bool
	}{
		{"none", persistence.AdminFilter{}, func(persistence.Session) bool { return true }},
		{"user", persistence.AdminFilter{UserID: "u1"}, func(x persistence.Session) bool { return x.UserID == "u1" }},
		{"status", persistence.AdminFilter{Status: "closed"}, func(x persistence.Session) bool { return x.Status == "closed" }},
		{"help", persistence.AdminFilter{HelpRequested: &yes}, func(x persistence.Session) bool { return x.HelpRequested }},
		{"no help", persistence.AdminFilter{HelpRequested: &no}, func(x persistence.Session) bool { return !x.HelpRequested }},
		{"taken over", persistence.AdminFilter{TakenOver: &yes}, func(x persistence.Session) bool { return x.Mode == persistence.ModeHuman }},
		{"not taken over", persistence.AdminFilter{TakenOver: &no}, func(x persistence.Session) bool { return x.Mode != persistence.ModeHuman }},
		{"from", persistence.AdminFilter{From: at(50)}, func(x persistence.Session) bool { return !x.CreatedAt.Before(at(50)) }},
		{"to", persistence.AdminFilter{To: at(50)}, func(x persistence.Session) bool { return !x.CreatedAt.After(at(50)) }},
		{"from to", persistence.AdminFilter{From: at(30), To: at(80)}, func(x persistence.Session) bool {
			return !x.CreatedAt.Before(at(30)) && !x.CreatedAt.After(at(80))
		}},
		{"sub-millisecond from", persistence.AdminFilter{From: at(30).Add(time.Microsecond)}, func(x persistence.Session) bool { return x.CreatedAt.After(at(30)) }},
		{"sub-millisecond to", persistence.AdminFilter{To: at(30).Add(time.Microsecond)}, func(x persistence.Session) bool { return !x.CreatedAt.After(at(30)) }},
		{"no match", persistence.AdminFilter{UserID: "nobody"}, func(persistence.Session) bool { return false }},
		{"combined", persistence.AdminFilter{UserID: "u0", Status: "active", TakenOver: &no}, func(x persistence.Session) bool {
			return x.UserID == "u0" && x.Status == "active" && x.Mode != persistence.ModeHuman
		}},
	}
	sorts := map[string]func(a, b persistence.Session) int{
		"":              func(a, b persistence.Session) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
		"updated_at":    func(a, b persistence.Session) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
		"created_at":    func(a, b persistence.Session) int { return a.CreatedAt.Compare(b.CreatedAt) },
		"message_count": func(a, b persistence.Session) int { return cmp.Compare(a.MessageCount, b.MessageCount) },
	}
	type order struct{ sort, order string }
	var allOrders []order
	for name := range sorts {
		for _, o := range []string{"", "asc", "desc"} {
			allOrders = append(allOrders, order{name, o})
		}
	}
	for _, ft := range filters {
		// Every order with no filter and with the combined one; each other
		// filter in the default order and one other.
		orders, limit := []order{{"", ""}, {"created_at", "asc"}, {"message_count", "desc"}}, 5
		if ft.name == "none" || ft.name == "combined" {
			orders = allOrders
		}
		if ft.name == "combined" {
			limit = 2 // it keeps four: still more than one page
		}
		for _, o := range orders {
			t.Run(fmt.Sprintf("%s by %q %q", ft.name, o.sort, o.order), func(t *testing.T) {
				byKey := sorts[o.sort]
				want := slices.DeleteFunc(slices.Clone(all), func(x persistence.Session) bool { return !ft.keep(x) })
				slices.SortFunc(want, func(a, b persistence.Session) int {
					c := cmp.Or(byKey(a, b), cmp.Compare(a.ID, b.ID))
					if o.order != "asc" {
						c = -c
					}
					return c
				})
				f := ft.f
				f.Sort, f.Order = o.sort, o.order
				got, _ := walk(t, limit, func(p persistence.Page) ([]persistence.Session, string, error) {
					return st.ListAllSessions(ctx, f, p)
				})
				if !slices.Equal(got, ids(want)) {
					t.Fatalf("got  %v\nwant %v", got, ids(want))
				}
			})
		}
	}
}

// testWalkWhileWriting: walking every page while, between the pages,
// sessions are created (newer than all) and existing ones are updated or
// appended to returns no session twice and skips none that existed when
// the walk started, in order. Newest first by updated_at (the user's list),
// a session written before the walk reached it becomes the newest, ahead of
// the cursor: it is not seen, and nothing new is. Oldest first by
// created_at (the admin's list), writes move nothing: every session that
// was there is seen, and new ones may follow at the end. (Oldest first by
// updated_at a session written after it was seen moves past the cursor and
// is seen again: keyset pagination over a key that changes cannot help
// that, so the suite does not ask it.)
func testWalkWhileWriting(t *testing.T, s *suite) {
	st := s.open(t)
	check := 0
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		check++
		user := fmt.Sprintf("u%d", check) // a fresh user per check: no cleanup between checks
		n := rapid.IntRange(0, 20).Draw(rt, "sessions")
		var want []persistence.Session
		for i := range n {
			// Few distinct times, so ties are common.
			x := persistence.Session{ID: fmt.Sprintf("%s-p%02d", user, i), UserID: user,
				CreatedAt: at(rapid.IntRange(0, 3).Draw(rt, "created")), UpdatedAt: at(rapid.IntRange(4, 8).Draw(rt, "updated"))}
			if err := st.CreateSession(ctx, &x); err != nil {
				rt.Fatalf("create: %v", err)
			}
			want = append(want, x)
		}
		byCreated := rapid.Bool().Draw(rt, "admin list, oldest created first")
		if byCreated {
			slices.SortFunc(want, func(a, b persistence.Session) int {
				return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
			})
		} else {
			slices.SortFunc(want, newestFirst)
		}
		before := map[string]bool{}
		for _, x := range want {
			before[x.ID] = true
		}

		seen, written := map[string]bool{}, map[string]bool{}
		var got []string
		cursor, added, clock := "", 0, 1000
		for pages := 0; ; pages++ {
			if pages > 2*n+2 {
				rt.Fatalf("no last page after %d pages", pages)
			}
			limit := rapid.IntRange(1, 6).Draw(rt, "limit")
			var page []persistence.Session
			var next string
			var err error
			if byCreated {
				f := persistence.AdminFilter{UserID: user, Sort: "created_at", Order: "asc"}
				page, next, err = st.ListAllSessions(ctx, f, persistence.Page{Limit: limit, Cursor: cursor})
			} else {
				page, next, err = st.ListSessions(ctx, user, persistence.Page{Limit: limit, Cursor: cursor})
			}
			if err != nil {
				rt.Fatalf("page %d: %v", pages, err)
			}
			if len(page) > limit {
				rt.Fatalf("page of %d sessions for limit %d", len(page), limit)
			}
			for _, x := range page {
				if seen[x.ID] {
					rt.Fatalf("session %s listed twice", x.ID)
				}
				seen[x.ID] = true
			}
			got = append(got, ids(page)...)
			if next == "" {
				break
			}
			cursor = next
			for range rapid.IntRange(0, 3).Draw(rt, "writes") {
				clock++
				k := rapid.IntRange(0, 2).Draw(rt, "write")
				if k == 0 || n == 0 {
					added++
					x := persistence.Session{ID: fmt.Sprintf("%s-n%02d", user, added), UserID: user, CreatedAt: at(clock)}
					if err := st.CreateSession(ctx, &x); err != nil {
						rt.Fatalf("create: %v", err)
					}
					continue
				}
				id := want[rapid.IntRange(0, n-1).Draw(rt, "written session")].ID
				x, err := st.GetSession(ctx, id)
				if err != nil {
					rt.Fatalf("get: %v", err)
				}
				if k == 1 {
					x.Title, x.UpdatedAt = "written", at(clock)
					err = st.UpdateSession(ctx, x)
				} else {
					m := message(id, x.LastSeq+1, "text")
					m.CreatedAt = at(clock)
					err = st.AppendMessage(ctx, m)
				}
				if err != nil {
					rt.Fatalf("write %s: %v", id, err)
				}
				written[id] = written[id] || !seen[id]
			}
		}
		var expected []string
		for _, x := range want {
			if byCreated || !written[x.ID] {
				expected = append(expected, x.ID)
			}
		}
		if len(got) < len(expected) || !slices.Equal(got[:len(expected)], expected) {
			rt.Fatalf("walked %v\nwant   %v first", got, expected)
		}
		for _, id := range got[len(expected):] {
			if !byCreated || before[id] {
				rt.Fatalf("walked %v\nwant   %v and, oldest first, only new sessions after them", got, expected)
			}
		}
	})
}
