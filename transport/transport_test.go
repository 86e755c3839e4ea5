package transport

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/lifecycle/leaktest"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/demo"
)

func TestMain(m *testing.M) {
	storetest.Main(m) // runs the tests, then stops the shared store; exits if a test failed
	leaktest.Verify()
}

const secret = "transport-test-secret-0123456789abcdef"

// testConfig is the configured defaults (config.Default) as a transport
// Config on a free loopback port, without Verifier, Hub and Store.
func testConfig() Config {
	d := config.Default()
	return Config{
		Listen: "127.0.0.1:0", MaxMessageBytes: d.Server.MaxMessageBytes,
		IdleTimeout: d.Server.IdleTimeout.Duration, PingInterval: d.Server.PingInterval.Duration,
		WriteTimeout: d.Tuning.WriteTimeout, ReadyTimeout: d.Tuning.ReadyTimeout,
		HTTPIdleTimeout: d.Server.HTTPIdleTimeout.Duration, HTTPReadTimeout: d.Server.HTTPReadTimeout.Duration,
		MaxHeaderBytes: d.Server.MaxHeaderBytes, ShareRequestsPerMinute: d.Server.ShareRequestsPerMinute,
	}
}

// startServer runs the real server (hub, store, transport) on 127.0.0.1:0,
// with the test config changed by opts.
func startServer(t testing.TB, opts ...func(*Config)) *Server {
	t.Helper()
	return startServerOn(t, storetest.Open(t), opts...)
}

// startServerOn is startServer on store.
func startServerOn(t testing.TB, store persistence.Store, opts ...func(*Config)) *Server {
	t.Helper()
	catalog, err := providers.NewCatalog([]providers.Entry{{ID: "demo", Name: "Demo", Provider: &demo.Provider{}}}, "demo")
	if err != nil {
		t.Fatal(err)
	}
	d := config.Default()
	hub, err := actors.New(actors.Config{
		Store: store, Models: catalog, StoreTimeout: d.Storage.Timeout.Duration, ContextBudget: d.LLM.ContextBudget,
		SessionIdle: d.Tuning.SessionIdle, UserIdle: d.Tuning.UserIdle, OutboxLimit: d.Tuning.OutboxLimit,
		CheckpointEvery: d.Tuning.CheckpointEvery, HistoryWindow: d.Tuning.HistoryWindow,
	})
	if err != nil {
		t.Fatal(err)
	}
	hub.Start()
	verifier, err := auth.NewVerifier(auth.Options{Secret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Verifier, cfg.Hub, cfg.Store = verifier, hub, store
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.BeginShutdown()
		hub.CloseConnections()
		s.Shutdown(ctx)
		hub.Shutdown(ctx)
	})
	return s
}

// rawClient is a WebSocket client made of a bare TCP socket: it starts no
// goroutine, so the server's goroutines can be counted.
type rawClient struct {
	conn net.Conn
	rd   *bufio.Reader
}

// dialRaw sends the upgrade request followed, in the same write, by the
// given client frames, and reads the 101 answer.
func dialRaw(t *testing.T, addr string, frames ...[]byte) *rawClient {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return upgradeRaw(t, conn, addr, frames...)
}

// upgradeRaw is dialRaw on a connection the test dialled.
func upgradeRaw(t *testing.T, conn net.Conn, addr string, frames ...[]byte) *rawClient {
	t.Helper()
	tok, err := auth.Sign([]byte(secret), auth.Identity{UserID: "u-" + t.Name()}, time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer %s\r\n\r\n", addr, tok)
	for _, f := range frames {
		req.Write(f)
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	c := &rawClient{conn: conn, rd: bufio.NewReader(conn)}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(c.rd, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c
}

// liveConns is how many upgraded sockets the server holds open.
func (s *Server) liveConns() int {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return len(s.live)
}

// clientFrame is a masked text frame, as a client must send.
func clientFrame(t *testing.T, payload string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := ws.WriteFrame(&b, ws.MaskFrameInPlace(ws.NewTextFrame([]byte(payload)))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// next reads the next server event's type and id.
func (c *rawClient) next(t *testing.T) (typ, id string) {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	hdr, err := ws.ReadHeader(c.rd)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Length > maxEventBytes {
		t.Fatalf("frame of %d bytes, more than any test event", hdr.Length)
	}
	payload := make([]byte, hdr.Length)
	if _, err := io.ReadFull(c.rd, payload); err != nil {
		t.Fatal(err)
	}
	var e struct{ Type, ID string }
	if err := json.Unmarshal(payload, &e); err != nil {
		t.Fatalf("frame %q: %v", payload, err)
	}
	return e.Type, e.ID
}

// maxEventBytes bounds what next reads: the server's events in these tests
// are small.
const maxEventBytes = 1 << 16

// A client may send its first command right behind the handshake, in the
// same packet; the HTTP server has already buffered it when the socket is
// handed over, and it must be read, in order, before the socket.
func TestFramesRightBehindTheHandshakeAreRead(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.Addr().String(),
		clientFrame(t, `{"type":"ping","id":"early-1"}`), clientFrame(t, `{"type":"ping","id":"early-2"}`))
	for _, want := range [][2]string{{"hello", ""}, {"pong", "early-1"}, {"pong", "early-2"}} {
		if typ, id := c.next(t); typ != want[0] || id != want[1] {
			t.Fatalf("got %s %q, want %s %q", typ, id, want[0], want[1])
		}
	}
	// And the socket is read from afterwards too.
	c.conn.Write(clientFrame(t, `{"type":"ping","id":"later"}`))
	if typ, id := c.next(t); typ != "pong" || id != "later" {
		t.Fatalf("got %s %q after the handshake's bytes", typ, id)
	}
}

// An idle connection holds no goroutine on Linux: the epoll reader waits
// for all of them. Raw clients start none, so any growth is the server's.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll reader is Linux only; elsewhere each connection has a reading goroutine")
	}
	s := startServer(t)
	warm := dialRaw(t, s.Addr().String())
	warm.next(t) // hello: the hub, store and poller are running
	settle := func() int {
		// Goroutines that end (HTTP handlers after the hand-over, flushers)
		// take a moment to exit: poll for the count to stop falling.
		n := runtime.NumGoroutine()
		for i := 0; i < 50; i++ {
			time.Sleep(10 * time.Millisecond) // polling, not ordering
			m := runtime.NumGoroutine()
			if m >= n {
				return m
			}
			n = m
		}
		return n
	}
	before := settle()
	const conns = 200
	for range conns {
		c := dialRaw(t, s.Addr().String())
		if typ, _ := c.next(t); typ != "hello" {
			t.Fatalf("first frame %s", typ)
		}
	}
	after := settle()
	if grew := after - before; grew > conns/10 {
		t.Fatalf("%d idle connections added %d goroutines, want (almost) none", conns, grew)
	}
}
