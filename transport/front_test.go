package transport

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// rawExchange sends req on a new connection to addr and returns all the
// server wrote until it closed the connection or went quiet.
func rawExchange(t *testing.T, addr string, req string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(time.Second)) // loopback answers at once
	var out bytes.Buffer
	io.Copy(&out, conn) // EOF or the deadline
	return out.String()
}

// normalize drops what differs between any two answers: the date and the
// request id.
var volatileHeaders = regexp.MustCompile(`(?m)^(Date|X-Request-Id): .*\r\n`)

func normalize(s string) string {
	if strings.HasPrefix(s, "HTTP/1.1 101 ") {
		s, _, _ = strings.Cut(s, "\r\n\r\n") // the frames after it name a new connection
	}
	return volatileHeaders.ReplaceAllString(s, "")
}

// Every request the front does not upgrade gets, byte for byte, the answer
// net/http gave it before the front existed: the same server's routes
// served by net/http straight from the listener, as Serve did.
func TestFrontAnswersLikeNetHTTP(t *testing.T) {
	s := startServer(t, allowApp, func(c *Config) { c.MaxHeaderBytes = 2048 })
	direct, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: s.Handler(), ReadTimeout: s.cfg.HTTPReadTimeout, MaxHeaderBytes: s.cfg.MaxHeaderBytes}
	go plain.Serve(jsonErrorListener{direct})
	t.Cleanup(func() { plain.Close() })

	tok := token(t, "front-user")
	hs := func(extra string) string {
		return "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" + extra + "Connection: close\r\n\r\n"
	}
	auth := "Authorization: Bearer " + tok + "\r\n"
	cases := map[string]string{
		"no token":            hs(""),
		"bad token":           hs("Authorization: Bearer " + tok[:len(tok)-3] + "abc\r\n"),
		"origin not allowed":  hs(auth + "Origin: https://evil.example\r\n"),
		"version 8":           strings.Replace(hs(auth), "Version: 13", "Version: 8", 1),
		"no key":              strings.Replace(hs(auth), "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1),
		"post":                strings.Replace(hs(auth), "GET", "POST", 1),
		"http/1.0":            strings.Replace(hs(auth), "HTTP/1.1", "HTTP/1.0", 1),
		"no upgrade header":   strings.Replace(hs(auth), "Upgrade: websocket\r\n", "", 1),
		"head over the limit": hs(auth + "X-Pad: " + strings.Repeat("p", 3000) + "\r\n"),
		"head over 4 KiB":     hs(auth + "X-Pad: " + strings.Repeat("p", 5000) + "\r\n"),
		"body":                hs(auth+"Content-Length: 2\r\n") + "{}",
		"non-ASCII header":    hs(auth + "X-Name: Zoë\r\n"),
		"no host":             strings.Replace(hs(auth), "Host: x\r\n", "", 1),
		"two hosts":           hs(auth + "Host: y\r\n"),
		"bad host":            strings.Replace(hs(auth), "Host: x", "Host: x/y", 1),
		"malformed":           "GET /ws HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
		"not http":            "hello\r\n\r\n",
		"health":              "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"ws with a slash":     strings.Replace(hs(auth), "/ws", "/ws/", 1),
		"unknown api route":   "GET /api/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"bad header name":     hs(auth + "X(y): z\r\n"),
		"empty host":          strings.Replace(hs(auth), "Host: x", "Host: ", 1),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			before := s.frontUpgrades.Load()
			got := normalize(rawExchange(t, s.Addr().String(), req))
			want := normalize(rawExchange(t, direct.Addr().String(), req))
			if got != want {
				t.Errorf("through the front:\n%s\nnet/http alone:\n%s", got, want)
			}
			if want == "" {
				t.Error("no answer at all")
			}
			if s.frontUpgrades.Load() != before {
				t.Error("upgraded by the front")
			}
		})
	}
}

// A plain handshake is upgraded by the front, with net/http's 101 and the
// hello after it.
func TestFrontUpgradesAPlainHandshake(t *testing.T) {
	s := startServer(t, allowApp)
	before := s.frontUpgrades.Load()
	c := dialRaw(t, s.Addr().String())
	if typ, _ := c.next(t); typ != "hello" {
		t.Fatalf("first frame %s", typ)
	}
	if s.frontUpgrades.Load() != before+1 {
		t.Fatal("not upgraded by the front")
	}
}

// The subprotocol is selected as before: the token beside chatbox.v1.
func TestFrontSelectsTheSubprotocol(t *testing.T) {
	s := startServer(t, allowApp)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://app.example\r\nSec-WebSocket-Protocol: chatbox.v1, bearer.%s\r\n\r\n", token(t, "sub-user"))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("%v %v", resp, err)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != Subprotocol {
		t.Errorf("subprotocol %q, want %q", p, Subprotocol)
	}
}

// A connection handed to net/http stays an HTTP connection: a keep-alive
// request first, then an upgrade on the same socket, works as before.
func TestUpgradeAfterAKeepAliveRequestOnTheSameSocket(t *testing.T) {
	s := startServer(t, allowApp)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(rd, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c := upgradeRaw(t, conn, s.Addr().String())
	if typ, _ := c.next(t); typ != "hello" {
		t.Fatalf("first frame %s", typ)
	}
	// And the socket is watched by the poller: a ping is answered.
	c.conn.Write(clientFrame(t, `{"type":"ping","id":"p1"}`))
	if typ, id := c.next(t); typ != "pong" || id != "p1" {
		t.Fatalf("got %s %q", typ, id)
	}
}

// A socket that never sends its request does not hold Shutdown up.
func TestShutdownClosesASocketThatSentNothing(t *testing.T) {
	s := startServer(t)
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(50 * time.Millisecond) // accepted, the front reading
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	s.BeginShutdown()
	s.cfg.Hub.CloseConnections()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	waitClosed(t, conn, 2*time.Second)
}

// answerOf sends req on a new connection and reads one answer: its status
// line and headers, and its body unless it is a 101.
func answerOf(t *testing.T, addr, req string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		return "write: " + err.Error()
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "no answer"
	}
	defer resp.Body.Close()
	resp.Header.Del("Date")
	resp.Header.Del("X-Request-Id")
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", resp.Status)
	resp.Header.Write(&b)
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(resp.Body)
		b.Write(body)
	}
	return b.String()
}

// Random handshakes, valid and not, in every part the front looks at: the
// front and net/http alone give the same answer to each.
func TestFrontAnswersLikeNetHTTPOnRandomRequests(t *testing.T) {
	s := startServer(t, allowApp)
	direct, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: s.Handler(), ReadTimeout: s.cfg.HTTPReadTimeout, MaxHeaderBytes: s.cfg.MaxHeaderBytes}
	go plain.Serve(jsonErrorListener{direct})
	t.Cleanup(func() { plain.Close() })

	r := mrand.New(mrand.NewPCG(18, 2))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	n := 200
	if testing.Short() {
		n = 40
	}
	upgraded := 0
	for i := range n {
		tok := token(t, fmt.Sprintf("rnd-%d", i))
		nl := pick("\r\n", "\r\n", "\r\n", "\n")
		lines := []string{
			pick("GET", "GET", "GET", "POST", "get", "HEAD") + " " + pick("/ws", "/ws", "/ws", "/ws?x=1", "/ws/", "//ws", "/WS", "/w%73", "http://x/ws", "*") + " " + pick("HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0"),
			pick("Host: x", "Host: x", "Host: x:80", "Host: [::1]:80", "Host: ", "Host: x/y", "Host: x\r\nHost: y", ""),
			pick("Upgrade: websocket", "Upgrade: websocket", "Upgrade: WebSocket", "Upgrade: h2c", ""),
			pick("Connection: Upgrade", "Connection: Upgrade", "Connection: keep-alive, Upgrade", "Connection: upgrade, close", "Connection: close", ""),
			pick("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Key: short", ""),
			pick("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8", "Sec-WebSocket-Version: 13, 8", ""),
			pick("Origin: https://app.example", "", "", "Origin: https://evil.example", "Origin: null"),
			pick("Authorization: Bearer "+tok, "Authorization: Bearer "+tok, "Authorization: bearer "+tok, "Authorization: Bearer "+tok[:len(tok)-2]+"xx", "Authorization: Basic eDp5", "",
				"Sec-WebSocket-Protocol: chatbox.v1, bearer."+tok, "Sec-WebSocket-Protocol: chatbox.v1,, bearer."+tok),
			pick("", "", "", "", "Content-Length: 0", "Content-Length: 2", "Transfer-Encoding: chunked", "Expect: 100-continue",
				"X-Pad: "+strings.Repeat("p", 4200), "X-Name: Zoë", "Host : x", "X(y): z", " folded", "X-Ctl: a\x01b", "Cookie: a=b",
				"X-Foo: a\nOrigin: https://evil.example", "X-Foo: a\rOrigin: https://evil.example", "x-pad:\tv ", "sec-websocket-version: 13",
				"Origin: https://evil.example", "Authorization: Bearer x", "Connection: close", "Host: y", "\tfolded: x"),
		}
		if r.IntN(2) == 0 {
			// A valid handshake with at most one of its lines changed.
			valid := []string{"GET /ws HTTP/1.1", "Host: x", "Upgrade: websocket", "Connection: Upgrade",
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "Origin: https://app.example",
				"Authorization: Bearer " + tok, ""}
			if k := r.IntN(2 * len(valid)); k < len(valid) {
				valid[k] = lines[k]
			}
			lines = valid
		}
		var req strings.Builder
		for _, l := range lines {
			if l != "" {
				req.WriteString(l + nl)
			}
		}
		req.WriteString(nl)
		if strings.Contains(req.String(), "Content-Length: 2") {
			req.WriteString("{}")
		}
		before := s.frontUpgrades.Load()
		got := answerOf(t, s.Addr().String(), req.String())
		front := s.frontUpgrades.Load() != before
		// The same request once more, for another user: the first
		// connection may still count against the user's limit.
		req2 := strings.ReplaceAll(req.String(), tok, token(t, fmt.Sprintf("rnd-%d-direct", i)))
		want := answerOf(t, direct.Addr().String(), req2)
		if got != want {
			t.Fatalf("request %q\nthrough the front (upgraded by it: %v):\n%s\nnet/http alone:\n%s", req.String(), front, got, want)
		}
		if front {
			upgraded++
		}
	}
	if upgraded == 0 {
		t.Error("the front upgraded none of them")
	}
	t.Logf("%d of %d upgraded by the front", upgraded, n)
}

// Whatever head parseHead takes, http.ReadRequest reads the same request
// from it: method, target, host, headers, close.
func FuzzParseHead(f *testing.F) {
	for _, h := range []string{
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
		"GET /ws?a=b&c HTTP/1.1\r\nHost: x:80\r\nX-A:  v \t\r\nX-A: w\r\nx_b: 1\r\nCookie: a=b; c=d\r\nConnection: close\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nX: a\nOrigin: y\r\n\r\n", "GET /ws HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "GET /w%73 HTTP/1.1\r\nHost: x\r\n\r\n", "GET http://x/ws HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", "GET /ws?a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /ws?a=%zz#f HTTP/1.1\r\nHost: x\r\nX:\tv\t\r\n\r\n",
	} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, head string) {
		r, ok := parseHead([]byte(head))
		if !ok {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("parseHead took %q, ReadRequest: %v", head, err)
		}
		delete(want.Header, "Cache-Control") // added for "Pragma: no-cache"; nothing reads it
		delete(r.Header, "Cache-Control")
		if r.Method != want.Method || r.URL.Path != want.URL.Path || r.URL.RawQuery != want.URL.RawQuery || r.URL.RawPath != want.URL.RawPath ||
			r.RequestURI != want.RequestURI || r.Host != want.Host || r.Close != want.Close || r.ProtoMinor != want.ProtoMinor ||
			!reflect.DeepEqual(r.Header, want.Header) {
			t.Fatalf("head %q:\nparseHead   %s %q %q host=%q close=%v %v\nReadRequest %s %q %q host=%q close=%v %v", head,
				r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Close, r.Header, want.Method, want.URL.Path, want.URL.RawQuery, want.Host, want.Close, want.Header)
		}
	})
}
