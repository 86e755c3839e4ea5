package mongo_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
)

func TestCreateAndGetSession(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)

	created := time.Date(2026, 11, 2, 3, 4, 5, 678_901_234, time.FixedZone("CET", 3600))
	s := &persistence.Session{
		ID: "s1", UserID: "u1", Title: "Trip to Lisbon", Model: "demo",
		AdminID: "a1", AdminName: "Ann", HelpRequested: true,
		TokensIn: 3, TokensOut: 4, CreatedAt: created,
	}
	if err := st.CreateSession(ctx, s); err != nil {
		t.Fatalf("create: %v", err)
	}
	if !s.CreatedAt.Equal(created.Truncate(time.Millisecond)) || s.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt after create = %v, want %v in UTC", s.CreatedAt, created.Truncate(time.Millisecond))
	}
	if s.UpdatedAt != s.CreatedAt || s.Status != "active" || s.Mode != persistence.ModeBot {
		t.Errorf("defaults not filled in: %+v", s)
	}

	got := mustGet(t, st, "s1")
	if *got != *s {
		t.Fatalf("get = %+v\nwant  %+v", *got, *s)
	}

	if err := st.CreateSession(ctx, &persistence.Session{ID: "s1", UserID: "u2"}); !errors.Is(err, persistence.ErrConflict) {
		t.Errorf("create existing id: err = %v, want ErrConflict", err)
	}
	if _, err := st.GetSession(ctx, "nope"); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("get unknown: err = %v, want ErrNotFound", err)
	}
}

func TestUpdateSession(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	s := mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "old", CreatedAt: at(0)})

	s.Title, s.Model, s.Mode = "new title", "gpt", persistence.ModeHuman
	s.AdminID, s.AdminName, s.HelpRequested = "a9", "Bo", true
	s.TokensIn, s.TokensOut, s.Status = 10, 20, "closed"
	s.UpdatedAt = at(5000)
	s.MessageCount, s.LastSeq, s.UserID = 99, 99, "someone else" // not the header's to change
	if err := st.UpdateSession(ctx, s); err != nil {
		t.Fatalf("update: %v", err)
	}
	got := mustGet(t, st, "s1")
	want := *s
	want.MessageCount, want.LastSeq, want.UserID = 0, 0, "u1"
	if *got != want {
		t.Fatalf("after update = %+v\nwant          %+v", *got, want)
	}

	s.UpdatedAt = at(1000)
	if err := st.UpdateSession(ctx, s); err != nil {
		t.Fatalf("update: %v", err)
	}
	if got := mustGet(t, st, "s1"); !got.UpdatedAt.Equal(at(5000)) {
		t.Errorf("updated_at moved back to %v", got.UpdatedAt)
	}

	if err := st.UpdateSession(ctx, &persistence.Session{ID: "nope"}); !errors.Is(err, persistence.ErrNotFound) {
		t.Errorf("update unknown: err = %v, want ErrNotFound", err)
	}
}

func TestListSessionsNewestFirstInPages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	// Seven sessions of u1, two of them tied on updated_at, and one of u2.
	for i, ms := range []int{10, 30, 20, 30, 50, 40, 60} {
		mustCreate(t, st, persistence.Session{ID: fmt.Sprintf("s%d", i), UserID: "u1", CreatedAt: at(0), UpdatedAt: at(ms)})
	}
	mustCreate(t, st, persistence.Session{ID: "other", UserID: "u2", UpdatedAt: at(100)})

	want := []string{"s6", "s4", "s5", "s3", "s1", "s2", "s0"} // s3 and s1 tie: _id desc
	var got []string
	cursor, pages := "", 0
	for {
		page, next, err := st.ListSessions(ctx, "u1", persistence.Page{Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		got = append(got, ids(page)...)
		if next == "" {
			break
		}
		cursor = next
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("walked %v in %d pages, want %v in 3", got, pages, want)
	}

	all, next, err := st.ListSessions(ctx, "u1", persistence.Page{})
	if err != nil || next != "" || len(all) != 7 {
		t.Fatalf("default page: %d sessions, next %q, err %v", len(all), next, err)
	}
	none, next, err := st.ListSessions(ctx, "nobody", persistence.Page{})
	if err != nil || next != "" || none == nil || len(none) != 0 {
		t.Fatalf("no sessions: %v, next %q, err %v; want an empty list", none, next, err)
	}
}

func TestListSessionsLimitIsCapped(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	for i := range 205 {
		mustCreate(t, st, persistence.Session{ID: fmt.Sprintf("s%03d", i), UserID: "u1", UpdatedAt: at(i)})
	}
	for _, tt := range []struct{ limit, want int }{{0, 50}, {-1, 50}, {1000, 200}} {
		page, next, err := st.ListSessions(ctx, "u1", persistence.Page{Limit: tt.limit})
		if err != nil || len(page) != tt.want || next == "" {
			t.Errorf("limit %d: %d sessions, next %q, err %v; want %d and a next page", tt.limit, len(page), next, err, tt.want)
		}
	}
}

// TestListSessionsWalkWhileInserting: walking every page while sessions
// are created (newer than all) between the fetches visits each session that
// existed at the start exactly once, in order, and none of the new ones.
func TestListSessionsWalkWhileInserting(t *testing.T) {
	t.Parallel()
	st := storetest.Open(t)
	check := 0
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		check++
		user := fmt.Sprintf("u%d", check) // a fresh user per check: no drop between checks
		n := rapid.IntRange(0, 25).Draw(rt, "sessions")
		var want []persistence.Session
		for i := range n {
			// Few distinct times, so ties on updated_at are common.
			s := persistence.Session{
				ID:        fmt.Sprintf("%s-p%02d", user, i),
				UserID:    user,
				UpdatedAt: at(rapid.IntRange(0, 8).Draw(rt, "updated")),
			}
			if err := st.CreateSession(ctx, &s); err != nil {
				rt.Fatalf("create: %v", err)
			}
			want = append(want, s)
		}
		slices.SortFunc(want, func(a, b persistence.Session) int {
			return cmp.Or(b.UpdatedAt.Compare(a.UpdatedAt), cmp.Compare(b.ID, a.ID))
		})

		var got []string
		cursor, added := "", 0
		for pages := 0; ; pages++ {
			if pages > n+1 {
				rt.Fatalf("no last page after %d pages", pages)
			}
			limit := rapid.IntRange(1, 7).Draw(rt, "limit")
			page, next, err := st.ListSessions(ctx, user, persistence.Page{Limit: limit, Cursor: cursor})
			if err != nil {
				rt.Fatalf("page %d: %v", pages, err)
			}
			if len(page) > limit {
				rt.Fatalf("page of %d sessions for limit %d", len(page), limit)
			}
			got = append(got, ids(page)...)
			if next == "" {
				break
			}
			cursor = next
			for range rapid.IntRange(0, 2).Draw(rt, "inserted") {
				added++
				s := persistence.Session{ID: fmt.Sprintf("%s-n%02d", user, added), UserID: user, UpdatedAt: at(1000 + added)}
				if err := st.CreateSession(ctx, &s); err != nil {
					rt.Fatalf("create: %v", err)
				}
			}
		}
		if !slices.Equal(got, ids(want)) {
			rt.Fatalf("walked %v\nwant   %v", got, ids(want))
		}
	})
}

func TestListAllSessions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)

	yes, no := true, false
	var all []persistence.Session
	for i := range 24 {
		s := persistence.Session{
			ID:            fmt.Sprintf("s%02d", i),
			UserID:        fmt.Sprintf("u%d", i%3),
			Status:        []string{"active", "closed"}[i%2],
			Mode:          []string{persistence.ModeBot, persistence.ModeHuman, persistence.ModeBot, ""}[i%4],
			HelpRequested: i%5 == 0,
			MessageCount:  int64(i % 4),   // ties
			CreatedAt:     at(i / 2 * 10), // ties
			UpdatedAt:     at(1000 - i%7*10),
		}
		all = append(all, *mustCreate(t, st, s))
	}

	filters := []struct {
		name string
		f    persistence.AdminFilter
		keep func(persistence.Session) bool
	}{
		{"none", persistence.AdminFilter{}, func(persistence.Session) bool { return true }},
		{"user", persistence.AdminFilter{UserID: "u1"}, func(s persistence.Session) bool { return s.UserID == "u1" }},
		{"status", persistence.AdminFilter{Status: "closed"}, func(s persistence.Session) bool { return s.Status == "closed" }},
		{"help", persistence.AdminFilter{HelpRequested: &yes}, func(s persistence.Session) bool { return s.HelpRequested }},
		{"no help", persistence.AdminFilter{HelpRequested: &no}, func(s persistence.Session) bool { return !s.HelpRequested }},
		{"taken over", persistence.AdminFilter{TakenOver: &yes}, func(s persistence.Session) bool { return s.Mode == persistence.ModeHuman }},
		{"not taken over", persistence.AdminFilter{TakenOver: &no}, func(s persistence.Session) bool { return s.Mode != persistence.ModeHuman }},
		{"from", persistence.AdminFilter{From: at(50)}, func(s persistence.Session) bool { return !s.CreatedAt.Before(at(50)) }},
		{"to", persistence.AdminFilter{To: at(50)}, func(s persistence.Session) bool { return !s.CreatedAt.After(at(50)) }},
		{"from to", persistence.AdminFilter{From: at(30), To: at(80)}, func(s persistence.Session) bool {
			return !s.CreatedAt.Before(at(30)) && !s.CreatedAt.After(at(80))
		}},
		{"sub-millisecond from", persistence.AdminFilter{From: at(30).Add(time.Microsecond)}, func(s persistence.Session) bool { return s.CreatedAt.After(at(30)) }},
		{"combined", persistence.AdminFilter{UserID: "u0", Status: "active", TakenOver: &no}, func(s persistence.Session) bool {
			return s.UserID == "u0" && s.Status == "active" && s.Mode != persistence.ModeHuman
		}},
	}
	sorts := map[string]func(a, b persistence.Session) int{
		"":              func(a, b persistence.Session) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
		"updated_at":    func(a, b persistence.Session) int { return a.UpdatedAt.Compare(b.UpdatedAt) },
		"created_at":    func(a, b persistence.Session) int { return a.CreatedAt.Compare(b.CreatedAt) },
		"message_count": func(a, b persistence.Session) int { return cmp.Compare(a.MessageCount, b.MessageCount) },
	}

	type order struct{ sort, order string }
	allOrders := []order{}
	for sortName := range sorts {
		for _, o := range []string{"", "asc", "desc"} {
			allOrders = append(allOrders, order{sortName, o})
		}
	}
	for _, ft := range filters {
		// Every order with no filter and with the combined one; each other
		// filter in the default order and one other.
		orders, limit := []order{{"", ""}, {"created_at", "asc"}}, 6
		if ft.name == "none" || ft.name == "combined" {
			orders = allOrders
		}
		if ft.name == "combined" {
			limit = 2 // it keeps four: still more than one page
		}
		for _, o := range orders {
			sortName, byKey, order := o.sort, sorts[o.sort], o.order
			t.Run(fmt.Sprintf("%s/%s/%s", ft.name, sortName, order), func(t *testing.T) {
				want := slices.DeleteFunc(slices.Clone(all), func(s persistence.Session) bool { return !ft.keep(s) })
				slices.SortFunc(want, func(a, b persistence.Session) int {
					c := cmp.Or(byKey(a, b), cmp.Compare(a.ID, b.ID))
					if order != "asc" {
						c = -c
					}
					return c
				})
				f := ft.f
				f.Sort, f.Order = sortName, order

				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > len(all) {
						t.Fatal("no last page")
					}
					page, next, err := st.ListAllSessions(ctx, f, persistence.Page{Limit: limit, Cursor: cursor})
					if err != nil {
						t.Fatalf("page %d: %v", pages, err)
					}
					got = append(got, ids(page)...)
					if next == "" {
						break
					}
					cursor = next
				}
				if !slices.Equal(got, ids(want)) {
					t.Fatalf("got  %v\nwant %v", got, ids(want))
				}
			})
		}
	}
}

func TestListAllSessionsRejects(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	for i := range 3 {
		mustCreate(t, st, persistence.Session{ID: fmt.Sprintf("s%d", i), UserID: "u1", UpdatedAt: at(i)})
	}
	_, byCreated, err := st.ListAllSessions(ctx, persistence.AdminFilter{Sort: "created_at"}, persistence.Page{Limit: 1})
	if err != nil || byCreated == "" {
		t.Fatalf("first page: next %q, err %v", byCreated, err)
	}
	_, byUpdatedAsc, err := st.ListAllSessions(ctx, persistence.AdminFilter{Order: "asc"}, persistence.Page{Limit: 1})
	if err != nil || byUpdatedAsc == "" {
		t.Fatalf("first page: next %q, err %v", byUpdatedAsc, err)
	}

	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	badCursors := map[string]string{
		"not base64":    "%%%",
		"not json":      b64("not json"),
		"unknown field": b64(`{"s":"updated_at","o":"desc","k":1,"id":"x","x":1}`),
		"trailing data": b64(`{"s":"updated_at","o":"desc","k":1,"id":"x"}{}`),
		"missing id":    b64(`{"s":"updated_at","o":"desc","k":1}`),
		"other sort":    byCreated,
		"other order":   byUpdatedAsc,
		"truncated":     byCreated[:len(byCreated)-2],
	}
	for name, c := range badCursors {
		t.Run(name, func(t *testing.T) {
			if _, _, err := st.ListAllSessions(ctx, persistence.AdminFilter{}, persistence.Page{Cursor: c}); !errors.Is(err, persistence.ErrBadCursor) {
				t.Errorf("ListAllSessions: err = %v, want ErrBadCursor", err)
			}
			if _, _, err := st.ListSessions(ctx, "u1", persistence.Page{Cursor: c}); !errors.Is(err, persistence.ErrBadCursor) {
				t.Errorf("ListSessions: err = %v, want ErrBadCursor", err)
			}
		})
	}

	for _, f := range []persistence.AdminFilter{{Sort: "title"}, {Order: "sideways"}} {
		if _, _, err := st.ListAllSessions(ctx, f, persistence.Page{}); err == nil {
			t.Errorf("filter %+v accepted", f)
		}
	}
}
