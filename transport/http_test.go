package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbox/chatbox/auth"
)

// oneShot is an HTTP client that keeps no connection (the leak check
// counts goroutines after the tests).
var oneShot = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// token signs a token for user.
func token(t *testing.T, user string) string {
	t.Helper()
	tok, err := auth.Sign([]byte(secret), auth.Identity{UserID: user}, time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// waitClosed reads conn until the server closes it, failing after within.
func waitClosed(t *testing.T, conn net.Conn, within time.Duration) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("the server still held the connection after %v", within)
	}
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v", err)
	}
}

// errorBody reads a JSON error answer: CONTRACT §5's shape, its code.
func errorBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("body is not {\"error\":{\"code\",\"message\"}}: %v %+v", err, e)
	}
	return e.Error.Code
}

// The §14 HTTP limits: before, only ReadHeaderTimeout (10 s) was set, so
// 1 MB of headers was accepted, a promised body was waited for forever,
// unfinished headers and idle keep-alive connections were held 10 s (each
// row failed on the parent commit).
func TestHTTPLimits(t *testing.T) {
	const limit = 300 * time.Millisecond
	s := startServer(t, func(c *Config) {
		c.HTTPReadTimeout, c.HTTPIdleTimeout, c.MaxHeaderBytes = limit, limit, 16<<10
	})
	addr := s.Addr().String()
	dial := func(t *testing.T, request string) net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := io.WriteString(conn, request); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	t.Run("headers over max_header_bytes answer 431 in JSON", func(t *testing.T) {
		conn := dial(t, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
		if code := errorBody(t, resp); code != "too_large" {
			t.Errorf("code %q, want too_large", code)
		}
	})
	t.Run("a body announced and never sent is cut at http_read_timeout", func(t *testing.T) {
		conn := dial(t, "POST /api/sessions/s1/share HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
		waitClosed(t, conn, 10*limit)
	})
	t.Run("unfinished headers are cut at http_read_timeout", func(t *testing.T) {
		conn := dial(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		waitClosed(t, conn, 10*limit)
	})
	t.Run("an idle keep-alive connection is closed at http_idle_timeout", func(t *testing.T) {
		conn := dial(t, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		rd := bufio.NewReader(conn)
		resp, err := http.ReadResponse(rd, nil)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("first request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		conn.SetReadDeadline(time.Now().Add(10 * limit))
		_, err = rd.ReadByte()
		if ne, ok := errors.AsType[net.Error](err); err == nil || ok && ne.Timeout() {
			t.Fatalf("idle connection not closed within %v: %v", 10*limit, err)
		}
	})
}

// A refused handshake answers CONTRACT §5's JSON error, like every other
// refusal before the upgrade; before, the upgrader answered in plain text
// (each row failed on the parent commit).
func TestHandshakeErrorsAreJSON(t *testing.T) {
	s := startServer(t)
	url := "http://" + s.Addr().String() + "/ws"
	tok := token(t, "u-handshake")
	good := http.Header{
		"Upgrade": {"websocket"}, "Connection": {"Upgrade"}, "Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Authorization": {"Bearer " + tok},
	}
	tests := []struct {
		name   string
		method string
		change func(h http.Header)
		status int
	}{
		{"no Upgrade header", "GET", func(h http.Header) { h.Del("Upgrade") }, 400},
		{"no Connection: Upgrade", "GET", func(h http.Header) { h.Set("Connection", "keep-alive") }, 400},
		{"no key", "GET", func(h http.Header) { h.Del("Sec-Websocket-Key") }, 400},
		{"short key", "GET", func(h http.Header) { h.Set("Sec-Websocket-Key", "c2hvcnQ=") }, 400},
		{"no version", "GET", func(h http.Header) { h.Del("Sec-Websocket-Version") }, 400},
		{"version 8", "GET", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 426},
		{"POST", "POST", func(http.Header) {}, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url, nil)
			req.Header = good.Clone()
			tt.change(req.Header)
			resp, err := oneShot.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 426 && resp.Header.Get("Sec-Websocket-Version") != "13" {
				t.Errorf("426 without Sec-WebSocket-Version: 13")
			}
			if code := errorBody(t, resp); code != "bad_request" {
				t.Errorf("code %q, want bad_request", code)
			}
		})
	}
}

// The anonymous share route is limited per client address (a loop of
// lookups cannot take the store from everyone), and another address is
// not affected. Before, nothing limited it (failed on the parent commit).
func TestShareRouteIsRateLimitedPerAddress(t *testing.T) {
	s := startServer(t, func(c *Config) { c.ShareRequestsPerMinute = 3 })
	get := func(t *testing.T, local string) *http.Response {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		client := http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
		resp, err := client.Get("http://" + s.Addr().String() + "/api/shared/no-such-link")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for i := range 3 {
		if resp := get(t, "127.0.0.1"); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("request %d: %d, want 404", i+1, resp.StatusCode)
		}
	}
	resp := get(t, "127.0.0.1")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("4th request: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if code := errorBody(t, resp); code != "rate_limited" {
		t.Errorf("code %q", code)
	}
	if resp := get(t, "127.0.0.2"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another address: %d, want 404", resp.StatusCode)
	}
}

func TestAddrLimiterRefillsAndForgets(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newAddrLimiter(60, func() time.Time { return now })
	for range 60 {
		if _, ok := l.allow("a"); !ok {
			t.Fatal("refused within the burst")
		}
	}
	if wait, ok := l.allow("a"); ok || wait <= 0 || wait > time.Second {
		t.Fatalf("61st: ok=%v wait=%v, want refused for at most 1s", ok, wait)
	}
	now = now.Add(time.Second)
	if _, ok := l.allow("a"); !ok {
		t.Fatal("refused one second later")
	}
	now = now.Add(2 * time.Minute)
	l.allow("b")
	if _, kept := l.buckets["a"]; kept {
		t.Error("a full bucket was kept past a minute")
	}
	if newAddrLimiter(0, time.Now) != nil {
		t.Error("0 per minute is not off")
	}
}

// The share view carries what a reader needs and nothing about who owns
// or answers the session; before, it was the admin's session object, with
// user_id and token counts (failed on the parent commit).
func TestShareViewShowsNoOwnerOrUsage(t *testing.T) {
	s := startServer(t)
	c := dialRaw(t, s.Addr().String(), clientFrame(t, `{"type":"send","id":"m1","text":"share me"}`))
	var sessionID string
	for sessionID == "" {
		f := c.readFrame(t)
		if f.typ == "ack" {
			var ack struct {
				SessionID string `json:"session_id"`
			}
			json.Unmarshal(f.payload, &ack)
			sessionID = ack.SessionID
		}
	}
	base := "http://" + s.Addr().String()
	req, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/api/sessions/"+sessionID+"/share", nil)
	req.Header.Set("Authorization", "Bearer "+token(t, "u-"+t.Name()))
	resp, err := oneShot.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("share: %v %v", resp, err)
	}
	var link struct {
		ShareID string `json:"share_id"`
	}
	json.NewDecoder(resp.Body).Decode(&link)
	resp.Body.Close()
	resp, err = oneShot.Get(base + "/api/shared/" + link.ShareID)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("shared: %v %v", resp, err)
	}
	var view struct {
		Session  map[string]any   `json:"session"`
		Messages []map[string]any `json:"messages"`
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	if got := keys(view.Session); !slices.Equal(got, []string{"created_at", "title", "updated_at"}) {
		t.Errorf("session fields %v, want only title and times", got)
	}
	if len(view.Messages) == 0 || view.Messages[0]["text"] != "share me" || view.Messages[0]["role"] != "user" {
		t.Fatalf("messages %v", view.Messages)
	}
	for _, m := range view.Messages {
		for _, k := range keys(m) {
			if strings.Contains(k, "user") || strings.Contains(k, "token") || strings.Contains(k, "admin") {
				t.Errorf("message field %q in the share view", k)
			}
		}
	}
}
