// Package storetest is the one conformance suite every persistence.Store
// implementation passes (Run, given a Factory), and the real stores other
// packages' tests run on.
//
// SQLite gives a persistence/sqlite Store in a fresh temporary directory.
// Mongo gives a persistence/mongo Store on a fresh database: on the MongoDB
// named by CHATBOX_TEST_MONGO_URI when it is set, otherwise on one
// in-process FerretDB (persistence/embedded) that the first caller starts
// and every later test of the same test binary shares.
//
// Its functions are safe to call from parallel tests. A package that uses
// it should call Main from its TestMain, so that the embedded server is
// stopped and its temporary directory removed when the tests end, and the
// suite's property test is bounded before any test runs.
package storetest

import (
	"context"
	"crypto/rand"
	"flag"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/embedded"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/sqlite"
)

// EnvURI names the environment variable that points the tests at a real
// MongoDB instead of the embedded FerretDB.
const EnvURI = "CHATBOX_TEST_MONGO_URI"

// testKey is the fixed key of Keyring: test data is not secret, and a fixed
// key lets a test reopen what another store wrote.
var testKey = []byte("chatbox storetest key, 32 bytes!")

// shared is the embedded server of this test binary, started on first use.
var shared struct {
	once sync.Once
	dir  string
	srv  *embedded.Server
	err  error
}

// Main bounds the suite's property test (see RapidChecks), runs the tests
// of m, then stops the shared embedded server, if one was started, and
// removes its directory. Call it from TestMain:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
func Main(m *testing.M) {
	flag.Parse()
	limitRapidChecks()
	code := m.Run()
	if shared.srv != nil {
		_ = shared.srv.Close()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	if code != 0 {
		os.Exit(code)
	}
}

// URI is the connection string tests should use: CHATBOX_TEST_MONGO_URI, or
// else the shared embedded server's, starting it on first use.
func URI(t testing.TB) string {
	t.Helper()
	if uri := os.Getenv(EnvURI); uri != "" {
		return uri
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "chatbox-storetest-")
		if shared.err != nil {
			return
		}
		log := slog.New(slog.NewTextHandler(os.Stderr, nil))
		shared.srv, shared.err = embedded.Start(context.Background(), shared.dir, log)
	})
	if shared.err != nil {
		t.Fatalf("start embedded ferretdb: %v", shared.err)
	}
	return shared.srv.URI()
}

// Key is a copy of the fixed test key.
func Key() []byte { return append([]byte(nil), testKey...) }

// Keyring is a keyring with the fixed test key.
func Keyring(t testing.TB) *persistence.Keyring {
	t.Helper()
	k, err := persistence.NewKeyring(testKey)
	if err != nil {
		t.Fatalf("test keyring: %v", err)
	}
	return k
}

// DatabaseName returns a fresh, unique database name.
func DatabaseName() string {
	return "chatbox_test_" + strings.ToLower(rand.Text()[:12])
}

// Open is Mongo, for the callers that predate the other stores.
func Open(t testing.TB) *mongo.Store {
	t.Helper()
	return Mongo(t)
}

// Mongo returns a persistence/mongo store keyed with Keyring, with its
// indexes, on a fresh database, which is dropped when the test ends.
func Mongo(t testing.TB) *mongo.Store {
	t.Helper()
	return MongoWith(t, Keyring(t))
}

// MongoWith is Mongo keyed with keys.
func MongoWith(t testing.TB, keys *persistence.Keyring) *mongo.Store {
	t.Helper()
	st := MongoAt(t, URI(t), DatabaseName(), keys)
	t.Cleanup(func() {
		if err := st.Database().Drop(context.Background()); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return st
}

// OpenAt returns a store with its indexes on database at uri, keyed with
// Keyring, closed (but not dropped) when the test ends.
func OpenAt(t testing.TB, uri, database string) *mongo.Store {
	t.Helper()
	return MongoAt(t, uri, database, Keyring(t))
}

// testTimeout bounds each call of a test store. The tests share one
// FerretDB per test binary, which takes one command at a time, under the
// race detector, on a machine running the other packages' tests as well:
// a command can wait seconds behind the others. The suite checks what a
// store does, not how fast; tests of timeouts open stores of their own.
const testTimeout = 30 * time.Second

// MongoAt returns a store with its indexes on database at uri, keyed with
// keys, closed (but not dropped) when the test ends.
func MongoAt(t testing.TB, uri, database string, keys *persistence.Keyring) *mongo.Store {
	t.Helper()
	ctx := context.Background()
	st, err := mongo.Open(ctx, mongo.Options{URI: uri, Database: database, Keyring: keys, Timeout: testTimeout})
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	// Registered before any caller's cleanup, so it runs after them: a
	// caller may still use the store in its own cleanup (dropping it).
	t.Cleanup(func() {
		if err := st.Close(ctx); err != nil {
			t.Errorf("close test store: %v", err)
		}
	})
	if err := st.EnsureIndexes(ctx); err != nil {
		t.Fatalf("create test indexes: %v", err)
	}
	if shared.srv != nil && uri == shared.srv.URI() {
		if err := shared.srv.IndexIDs(ctx, database); err != nil {
			t.Fatalf("index _id in the embedded store: %v", err)
		}
	}
	return st
}

// SQLite returns a persistence/sqlite store keyed with Keyring in a fresh
// temporary directory, closed when the test ends (and the directory then
// removed). Tests inside package sqlite cannot use it: storetest imports
// sqlite, so only its external test package (sqlite_test) may import
// storetest.
func SQLite(t testing.TB) persistence.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Dir: t.TempDir(), Keyring: Keyring(t)})
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(context.Background()); err != nil {
			t.Errorf("close test store: %v", err)
		}
	})
	return st
}
