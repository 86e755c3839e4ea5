package mongo_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/embedded"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/storetest"
)

func TestOpenRejectsIncompleteOptions(t *testing.T) {
	t.Parallel()
	k := storetest.Keyring(t)
	for name, o := range map[string]mongo.Options{
		"no uri":      {Database: "d", Keyring: k},
		"no database": {URI: "mongodb://127.0.0.1:1", Keyring: k},
		"no keyring":  {URI: "mongodb://127.0.0.1:1", Database: "d"},
	} {
		if _, err := mongo.Open(t.Context(), o); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestUnavailableWhenNothingListens(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	start := time.Now()
	_, err = mongo.Open(t.Context(), mongo.Options{
		URI: "mongodb://" + addr + "/", Database: "d", Keyring: storetest.Keyring(t), Timeout: 300 * time.Millisecond,
	})
	if !errors.Is(err, persistence.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v to give up with a 300ms timeout", d)
	}
}

func TestUnavailableWhenTheDatabaseGoesAway(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	uri, database := storetest.URI(t), storetest.DatabaseName()
	direct := storetest.OpenAt(t, uri, database)
	t.Cleanup(func() { _ = direct.Database().Drop(context.Background()) })

	p, proxied := viaProxy(t, uri)
	st, err := mongo.Open(ctx, mongo.Options{
		URI: proxied, Database: database,
		Keyring: storetest.Keyring(t), Timeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("open through the proxy: %v", err)
	}
	defer st.Close(context.Background())
	if err := st.CreateSession(ctx, &persistence.Session{ID: "s1", UserID: "u1"}); err != nil {
		t.Fatalf("create: %v", err)
	}

	p.cut()
	calls := map[string]func() error{
		"ping":   func() error { return st.Ping(ctx) },
		"get":    func() error { _, err := st.GetSession(ctx, "s1"); return err },
		"append": func() error { return st.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: 1}) },
		"list": func() error {
			_, _, err := st.ListSessions(ctx, "u1", persistence.Page{})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, persistence.ErrUnavailable) {
			t.Errorf("%s: err = %v, want ErrUnavailable", name, err)
		}
	}

	if err := st.Close(ctx); err != nil {
		t.Logf("close after the cut: %v", err)
	}
	if err := st.Ping(ctx); !errors.Is(err, persistence.ErrUnavailable) {
		t.Errorf("ping after close: err = %v, want ErrUnavailable", err)
	}
	st.Close(ctx) // again: must not panic or block
}

// viaProxy starts a proxy to uri's server and returns the proxy and uri
// rewritten to go through it, connecting to that one server directly.
func viaProxy(t *testing.T, uri string) (*proxy, string) {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "mongodb" || strings.Contains(u.Host, ",") {
		t.Skipf("a proxy needs a single-host mongodb:// URI, not %s://%s", u.Scheme, u.Host)
	}
	p := startProxy(t, u.Host)
	u.Host = p.addr()
	q := u.Query()
	q.Set("directConnection", "true")
	u.RawQuery = q.Encode()
	return p, u.String()
}

func TestDataSurvivesEmbeddedRestart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()

	srv, err := embedded.Start(ctx, dir, nil)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer srv.Close()
	st, err := mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: "chatbox", Keyring: storetest.Keyring(t)})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatalf("indexes: %v", err)
	}
	mustCreate(t, st, persistence.Session{ID: "s1", UserID: "u1", Title: "kept", CreatedAt: at(0)})
	mustAppend(t, st, "s1", 1, "still here")
	if err := st.Close(ctx); err != nil {
		t.Fatalf("close store: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close server: %v", err)
	}

	srv, err = embedded.Start(ctx, dir, slog.Default())
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer srv.Close()
	st, err = mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: "chatbox", Keyring: storetest.Keyring(t)})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer st.Close(ctx)
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatalf("indexes again: %v", err)
	}
	if s := mustGet(t, st, "s1"); s.Title != "kept" || s.LastSeq != 1 {
		t.Fatalf("after restart: %+v", s)
	}
	msgs, err := st.ListMessages(ctx, "s1", 0, 0)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "still here" {
		t.Fatalf("messages after restart: %+v, %v", msgs, err)
	}
	// The unique index survived too.
	err = st.AppendMessage(ctx, &persistence.Message{SessionID: "s1", Seq: 1, Text: "again"})
	if !errors.Is(err, persistence.ErrConflict) {
		t.Fatalf("duplicate seq after restart: err = %v, want ErrConflict", err)
	}
}
