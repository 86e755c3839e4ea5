package mongo_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/lifecycle/leaktest"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/persistence/storetest"
)

func TestMain(m *testing.M) {
	storetest.Main(m) // runs the tests, then stops the shared store; exits if a test failed
	leaktest.Verify()
}

// t0 is a fixed, millisecond-aligned base time, so tests can state exact
// orders.
var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func at(msec int) time.Time { return t0.Add(time.Duration(msec) * time.Millisecond) }

func mustCreate(t testing.TB, st *mongo.Store, s persistence.Session) *persistence.Session {
	t.Helper()
	if err := st.CreateSession(context.Background(), &s); err != nil {
		t.Fatalf("create session %s: %v", s.ID, err)
	}
	return &s
}

func mustAppend(t testing.TB, st *mongo.Store, sessionID string, seq int64, text string) *persistence.Message {
	t.Helper()
	m := &persistence.Message{
		SessionID: sessionID, Seq: seq, Role: persistence.RoleUser, Author: "u",
		Text: text, Status: persistence.StatusComplete, CreatedAt: at(int(seq)),
	}
	if err := st.AppendMessage(context.Background(), m); err != nil {
		t.Fatalf("append %s/%d: %v", sessionID, seq, err)
	}
	return m
}

func mustGet(t testing.TB, st *mongo.Store, id string) *persistence.Session {
	t.Helper()
	s, err := st.GetSession(context.Background(), id)
	if err != nil {
		t.Fatalf("get session %s: %v", id, err)
	}
	return s
}

func ids(ss []persistence.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func seqs(ms []persistence.Message) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// logRecorder is a slog.Handler that keeps what it is given.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record // guarded by mu
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

// attrs returns each record's attributes as strings, with its message
// under "msg".
func (r *logRecorder) attrs() []map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]string
	for _, rec := range r.records {
		m := map[string]string{"msg": rec.Message, "level": rec.Level.String()}
		rec.Attrs(func(a slog.Attr) bool {
			m[a.Key] = a.Value.String()
			return true
		})
		out = append(out, m)
	}
	return out
}

// openLogged opens a store on database (a fresh one if empty) that logs
// into the returned recorder, with keyring k.
func openLogged(t *testing.T, database string, k *persistence.Keyring) (*mongo.Store, *logRecorder) {
	t.Helper()
	fresh := database == ""
	if fresh {
		database = storetest.DatabaseName()
	}
	rec := &logRecorder{}
	st, err := mongo.Open(t.Context(), mongo.Options{
		URI: storetest.URI(t), Database: database, Keyring: k, Logger: slog.New(rec),
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	if fresh {
		t.Cleanup(func() { _ = st.Database().Drop(context.Background()) })
		if err := st.EnsureIndexes(t.Context()); err != nil {
			t.Fatalf("ensure indexes: %v", err)
		}
	}
	return st, rec
}

// proxy forwards TCP connections to a target until it is cut, after which
// it refuses new ones and has closed every connection it carried: a
// database that went away, without stopping the shared one.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  []net.Conn // guarded by mu
	closed bool       // guarded by mu
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(p.accept)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		p.wg.Go(func() { _, _ = io.Copy(u, c); u.Close() })
		p.wg.Go(func() { _, _ = io.Copy(c, u); c.Close() })
	}
}

// cut closes the listener and every connection, and waits for the copiers.
func (p *proxy) cut() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
