package sqlite_test

import (
	"context"
	"errors"
	"testing"

	"github.com/chatbox/chatbox/persistence"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	st := open(t, t.TempDir())
	s := mustCreate(t, st, "s1", "u1")
	if s.Version != 1 {
		t.Fatalf("version %d", s.Version)
	}
	for i := int64(1); i <= 3; i++ {
		mustAppend(t, st, "s1", i)
	}
	if err := st.AppendMessage(ctx, msg("s1", 3)); err != nil {
		t.Fatalf("repeat: %v", err)
	}
	if err := st.AppendMessage(ctx, msg("s1", 5)); !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("gap: %v", err)
	}
	got, err := st.GetSession(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", got)
	ms, err := st.ListMessages(ctx, "s1", 0, 0)
	if err != nil || len(ms) != 3 {
		t.Fatalf("%v %d", err, len(ms))
	}
	t.Logf("%+v", ms[0])
	list, next, err := st.ListAllSessions(ctx, persistence.AdminFilter{}, persistence.Page{})
	t.Logf("%d %q %v", len(list), next, err)
	stats, err := st.Stats(ctx)
	t.Logf("%+v %v", stats, err)
	ix, err := st.Indexes(ctx)
	t.Logf("%+v %v", ix, err)
	if err := st.DeleteSession(ctx, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := st.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
}
