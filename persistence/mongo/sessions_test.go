package mongo_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
)

// The cursor is base64url JSON here; anything that decodes but is not
// exactly what this store wrote is refused.
func TestMalformedCursorsAreRefused(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1"})
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for name, c := range map[string]string{
		"not json":      b64("not json"),
		"unknown field": b64(`{"s":"updated_at","o":"desc","k":1,"id":"x","x":1}`),
		"trailing data": b64(`{"s":"updated_at","o":"desc","k":1,"id":"x"}{}`),
		"missing id":    b64(`{"s":"updated_at","o":"desc","k":1}`),
		"key a string":  b64(`{"s":"updated_at","o":"desc","k":"1","id":"x"}`),
	} {
		if _, _, err := st.ListAllSessions(ctx, persistence.AdminFilter{}, persistence.Page{Cursor: c}); !errors.Is(err, persistence.ErrBadCursor) {
			t.Errorf("%s: ListAllSessions: err = %v, want ErrBadCursor", name, err)
		}
		if _, _, err := st.ListSessions(ctx, "u1", persistence.Page{Cursor: c}); !errors.Is(err, persistence.ErrBadCursor) {
			t.Errorf("%s: ListSessions: err = %v, want ErrBadCursor", name, err)
		}
	}
}

// Sessions written by v1.0 have no version field: they read as version 1,
// the first fenced update moves them to 2, and a second writer still at 1
// loses.
func TestSessionsWithoutAVersionAreAtVersionOne(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := storetest.Open(t)
	x := mustCreate(t, st, persistence.Session{ID: "old", UserID: "u1", Title: "from v1.0", CreatedAt: at(0)})
	sessions := st.Database().Collection("sessions")
	if _, err := sessions.UpdateOne(ctx, bson.M{"_id": "old"}, bson.M{"$unset": bson.M{"version": ""}}); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, st, "old")
	if got.Version != 1 || *got != *x {
		t.Fatalf("a session without a version reads %+v, want %+v", *got, *x)
	}
	stale := *got
	got.Title = "updated by v1.1"
	if err := st.UpdateSession(ctx, got); err != nil || got.Version != 2 {
		t.Fatalf("first update: %v, version %d; want version 2", err, got.Version)
	}
	var raw struct {
		Version int64 `bson:"version"`
	}
	if err := sessions.FindOne(ctx, bson.M{"_id": "old"}).Decode(&raw); err != nil || raw.Version != 2 {
		t.Fatalf("stored version %d (%v), want 2", raw.Version, err)
	}
	stale.Title = "stale"
	if err := st.UpdateSession(ctx, &stale); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("a second update at version 1: err = %v, want ErrConflict", err)
	}
	if got := mustGet(t, st, "old"); got.Title != "updated by v1.1" || got.Version != 2 {
		t.Fatalf("after the lost update: %+v", got)
	}
}
