// The store a self-started Chatbox uses. -store embedded (the default)
// writes no mongo_uri, so the server opens its own default embedded store
// under data_dir, whatever that is in the build under test. -store mongo
// runs the MongoDB store against a stand-in: FerretDB (persistence/embedded)
// in a child process of the harness, so that its CPU is counted apart from
// the server's and the clients'. It is not a real MongoDB, and the report
// says so.

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/embedded"
	"github.com/chatbox/chatbox/persistence/mongo"
)

// standInDatabase is the database the stand-in prepares and Chatbox is
// configured with.
const standInDatabase = "chatbox"

// storeLabel is how the report names the store of -store s.
func storeLabel(s string) string {
	if s == "mongo" {
		return "mongo: the MongoDB store against FerretDB (persistence/embedded) in a child process, a stand-in for MongoDB"
	}
	return "embedded: the server's default store with no mongo_uri"
}

// storePID is the stand-in's process, when there is one; its CPU is reported
// apart from the server's.
var storePID int

// startStandIn runs the MongoDB stand-in in a child process storing under
// dir and returns its mongodb:// URI.
func startStandIn(dir string) (uri string, pid int, err error) {
	ch, uri, err := startSelf("-internal-mongo-standin", dir)
	if err != nil {
		return "", 0, fmt.Errorf("mongo stand-in: %w", err)
	}
	return uri, ch.cmd.Process.Pid, nil
}

// runStandInChild is the hidden -internal-mongo-standin mode: FerretDB under
// dir, prepared as Chatbox's own embedded start prepares it (the store's
// indexes, then an index on FerretDB's _id expression, without which every
// lookup by _id scans its table), until ctx ends.
func runStandInChild(ctx context.Context, dir string, out io.Writer) error {
	raiseNoFile()
	srv, err := embedded.Start(ctx, dir, nil)
	if err != nil {
		return err
	}
	defer srv.Close()
	key := make([]byte, persistence.KeySize)
	rand.Read(key)
	keys, err := persistence.NewKeyring(key)
	if err != nil {
		return err
	}
	st, err := mongo.Open(ctx, mongo.Options{URI: srv.URI(), Database: standInDatabase, Keyring: keys})
	if err != nil {
		return err
	}
	err = st.EnsureIndexes(ctx)
	st.Close(ctx)
	if err != nil {
		return fmt.Errorf("prepare stand-in: %w", err)
	}
	if err := srv.IndexIDs(ctx, standInDatabase); err != nil {
		return fmt.Errorf("prepare stand-in: %w", err)
	}
	fmt.Fprintf(out, "LISTEN %s\n", srv.URI())
	<-ctx.Done()
	return nil
}
