package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatbox/chatbox/auth"
)

// testSecret signs the tests' tokens; the server is configured with it.
const testSecret = "e2e-test-secret-that-is-long-enough-0123456789"

// waitFor bounds every wait in these tests; nothing waits by sleeping.
const waitFor = 15 * time.Second

// pollUntil calls cond until it holds, failing the test after waitFor.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in %v", what, waitFor)
		}
		time.Sleep(20 * time.Millisecond) // polling, not ordering
	}
}

// testServer is the real program, run in-process through Run on a
// loopback port with its own data dir.
type testServer struct {
	base   string // http://127.0.0.1:PORT
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// writeConfig writes the tests' config file into dir and returns its path.
// extra is appended to the [llm] section, and may open further sections.
func writeConfig(t *testing.T, dir, extra string) string {
	t.Helper()
	if !strings.Contains(extra, "demo_delay") {
		extra = "demo_delay = \"2ms\"\n" + extra
	}
	cfg := fmt.Sprintf(`
[server]
listen = "127.0.0.1:0"
allowed_origins = ["http://allowed.example"]
cors_origins = ["http://app.example"]
max_message_bytes = 4096
[auth]
jwt_secret = %q
[storage]
data_dir = %q
[llm]
%s
`, testSecret, dir, extra)
	path := filepath.Join(dir, "chatbox.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startServer runs `chatbox serve` in-process through Run, with the config
// of writeConfig in dir.
func startServer(t *testing.T, dir, extra string) *testServer {
	t.Helper()
	path := writeConfig(t, dir, extra)
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	s := &testServer{dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := Run(ctx, []string{"serve", "-config", path}, w, io.Discard)
		w.Close()
		s.done <- err
	}()
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "chatbox listening on "); ok {
			s.base = strings.Fields(rest)[0]
			break
		}
	}
	if s.base == "" {
		t.Fatalf("server did not start: %v", <-s.done)
	}
	go io.Copy(io.Discard, out)
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop cancels Run and waits for it to return; idempotent.
func (s *testServer) stop(t *testing.T) {
	t.Helper()
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server exited with %v", err)
		}
	case <-time.After(waitFor):
		t.Error("server did not stop in time")
	}
}

func signToken(t *testing.T, sub, name string) string {
	t.Helper()
	return signIdentity(t, auth.Identity{UserID: sub, Name: name})
}

func signAdmin(t *testing.T, sub, name string) string {
	t.Helper()
	return signIdentity(t, auth.Identity{UserID: sub, Name: name, Roles: []string{"admin"}})
}

func signIdentity(t *testing.T, id auth.Identity) string {
	t.Helper()
	tok, err := auth.Sign([]byte(testSecret), id, time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// event is one decoded server frame.
type event map[string]any

func (e event) str(k string) string { s, _ := e[k].(string); return s }
func (e event) num(k string) int64  { n, _ := e[k].(float64); return int64(n) }
func (e event) msg() event          { m, _ := e["message"].(map[string]any); return event(m) }

// client is a device: a coder/websocket connection and its decoded events.
type client struct {
	t      *testing.T
	conn   *websocket.Conn
	events chan event
	closed chan websocket.CloseError
}

// dial connects with the token in the Authorization header or, like a
// browser, in the subprotocol list.
func (s *testServer) dial(t *testing.T, tok string, bySubprotocol bool) *client {
	t.Helper()
	opts := &websocket.DialOptions{HTTPHeader: http.Header{}}
	if bySubprotocol {
		opts.Subprotocols = []string{"chatbox.v1", "bearer." + tok}
	} else {
		opts.HTTPHeader.Set("Authorization", "Bearer "+tok)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.base, "http")+"/ws", opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if bySubprotocol && conn.Subprotocol() != "chatbox.v1" {
		t.Fatalf("selected subprotocol %q, want chatbox.v1", conn.Subprotocol())
	}
	conn.SetReadLimit(1 << 20)
	c := &client{t: t, conn: conn, events: make(chan event, 4096), closed: make(chan websocket.CloseError, 1)}
	go c.read()
	t.Cleanup(func() { conn.CloseNow() })
	hello := c.next(func(e event) bool { return true })
	if hello.str("type") != "hello" {
		t.Fatalf("first frame is %v, want hello", hello)
	}
	return c
}

func (c *client) read() {
	defer close(c.events)
	for {
		typ, b, err := c.conn.Read(context.Background())
		if err != nil {
			var ce websocket.CloseError
			if errorAs(err, &ce) {
				c.closed <- ce
			}
			return
		}
		if typ != websocket.MessageText {
			c.t.Errorf("binary frame from server")
			continue
		}
		var e event
		if err := json.Unmarshal(b, &e); err != nil {
			c.t.Errorf("frame is not one JSON object: %q", b)
			continue
		}
		c.events <- e
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(b)
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next returns the first event matching ok, failing the test after waitFor.
// Events before it are dropped; a failure names the last of them.
func (c *client) next(ok func(event) bool) event {
	c.t.Helper()
	deadline := time.After(waitFor)
	var skipped []event // the last few, for the failure message
	for {
		select {
		case e, open := <-c.events:
			if !open {
				c.t.Fatalf("connection closed while waiting for an event; last events before it: %v", skipped)
			}
			if ok(e) {
				return e
			}
			if len(skipped) == 5 {
				skipped = skipped[1:]
			}
			skipped = append(skipped, e)
		case <-deadline:
			c.t.Fatalf("no matching event in %v; last events before it: %v", waitFor, skipped)
		}
	}
}

// collect returns every event up to and including the first matching ok.
func (c *client) collect(ok func(event) bool) []event {
	c.t.Helper()
	var got []event
	c.next(func(e event) bool { got = append(got, e); return ok(e) })
	return got
}

func isType(typ string) func(event) bool {
	return func(e event) bool { return e.str("type") == typ }
}

// isFinal matches the final message event of an assistant reply.
func isFinal(e event) bool {
	return e.str("type") == "message" && e.msg().str("role") == "assistant"
}

// barrier proves every event produced before it was already delivered: the
// connection's commands are handled in order, so the pong comes after them.
func (c *client) barrier() []event {
	c.t.Helper()
	id := fmt.Sprintf("b%d", time.Now().UnixNano())
	c.send(map[string]any{"type": "ping", "id": id})
	return c.collect(func(e event) bool { return e.str("type") == "pong" && e.str("id") == id })
}

// getJSON does an authenticated GET and decodes the answer.
func (s *testServer) getJSON(t *testing.T, tok, path string, into any) int {
	t.Helper()
	return s.doJSON(t, "GET", tok, path, "", into)
}

// doJSON sends an authenticated request (no token when tok is empty) and
// decodes the answer into into when it is not nil.
func (s *testServer) doJSON(t *testing.T, method, tok, path, body string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if into != nil {
		json.NewDecoder(resp.Body).Decode(into)
	}
	return resp.StatusCode
}
