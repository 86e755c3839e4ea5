package transport

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/chatbox/chatbox/auth"
)

// upgradeRequest is the bench client's handshake: the token in
// Authorization, an allowed Origin.
func upgradeRequest(tb testing.TB, addr string) []byte {
	tb.Helper()
	tok, err := auth.Sign([]byte(secret), auth.Identity{UserID: "bench-user", Name: "Bench"}, time.Hour, "", "")
	if err != nil {
		tb.Fatal(err)
	}
	return fmt.Appendf(nil, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://app.example\r\n"+
		"Authorization: Bearer %s\r\n\r\n", addr, tok)
}

func allowApp(c *Config) { c.AllowedOrigins = []string{"https://app.example"} }

// BenchmarkAdmitRequest is the checks before the upgrade of an accepted
// client: Origin, token (HS256), handshake headers.
func BenchmarkAdmitRequest(b *testing.B) {
	verifier, err := auth.NewVerifier(auth.Options{Secret: []byte(secret)})
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	cfg.Verifier = verifier
	allowApp(&cfg)
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(upgradeRequest(b, "127.0.0.1:1"))))
	if err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		if _, refuse := s.checkRequest(r); refuse != nil {
			refuse(w)
			b.Fatalf("refused: %d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkConnectHelloClose is one churn loop of the bench on loopback
// against the whole server (transport, hub, actors): dial, upgrade with a
// JWT, read hello, send close, read the close answer, close. allocs/op are
// the process's, client included.
func BenchmarkConnectHelloClose(b *testing.B) {
	s := startServer(b, allowApp)
	addr := s.Addr().String()
	req := upgradeRequest(b, addr)
	var closeFrame bytes.Buffer
	ws.WriteFrame(&closeFrame, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	rd := bufio.NewReaderSize(nil, 4096)
	b.ReportAllocs()
	for b.Loop() {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		rd.Reset(conn)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			b.Fatalf("upgrade: %v %v", resp, err)
		}
		hdr, err := ws.ReadHeader(rd) // hello
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rd.Discard(int(hdr.Length)); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Write(closeFrame.Bytes()); err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, rd) // the close answer, then EOF
		conn.Close()
	}
}
