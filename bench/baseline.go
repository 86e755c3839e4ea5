package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// baselineServer is the floor Chatbox is compared with: a raw gobwas/ws
// server (ws.Upgrade on the accepted net.Conn, no net/http on the socket
// path) with no auth, no actors and no store. Each connection has one
// goroutine, which reads straight from the socket; connections are grouped
// by their Authorization header (the harness's stand-in for a user), and a
// send streams the fake provider's reply to every connection of the group:
// the same wire frames as Chatbox (hello, ack, message, delta), each encoded
// once and written with a single write call per connection. Its HTTP side
// (/metrics, /debug/pprof) is on a second listener.
type baselineServer struct {
	fakeURL string
	client  *http.Client

	mu     sync.Mutex
	groups map[string]*bgroup
}

type bgroup struct {
	mu        sync.Mutex
	conns     []*bconn
	streaming bool
	seq       int64
	session   string
}

type bconn struct {
	mu   sync.Mutex
	conn net.Conn
}

func newBaselineServer(fakeURL string) *baselineServer {
	return &baselineServer{
		fakeURL: fakeURL,
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, MaxConnsPerHost: 0}},
		groups:  map[string]*bgroup{},
	}
}

// debugHandler serves /metrics (Go runtime figures) and /debug/pprof/.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", writeRuntimeMetrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	return mux
}

// Serve accepts WebSocket connections on ln until it is closed.
func (b *baselineServer) Serve(ln net.Listener) error {
	for {
		conn, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		go b.handle(conn)
	}
}

// handle upgrades conn and then is the connection's one goroutine: it reads.
func (b *baselineServer) handle(conn net.Conn) {
	var key string
	u := ws.Upgrader{OnHeader: func(k, v []byte) error {
		if strings.EqualFold(string(k), "Authorization") {
			key = string(v)
		}
		return nil
	}}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := u.Upgrade(conn); err != nil {
		conn.Close()
		return
	}
	conn.SetDeadline(time.Time{})
	c := &bconn{conn: conn}
	b.mu.Lock()
	g := b.groups[key]
	if g == nil {
		g = &bgroup{}
		b.groups[key] = g
	}
	b.mu.Unlock()
	g.mu.Lock()
	g.conns = append(g.conns, c)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		for i, x := range g.conns {
			if x == c {
				g.conns = append(g.conns[:i], g.conns[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
		conn.Close()
	}()

	c.write(encodeFrame(fmt.Appendf(nil, `{"type":"hello","user_id":%s,"name":"bench","connection_id":%q,"admin":false,"models":[{"id":"fake","name":"Fake"}],"default_model":"fake"}`, jsonQuote(key), newHexID())))
	var buf []byte
	for {
		h, err := ws.ReadHeader(conn)
		if err != nil {
			return
		}
		if h.Length > 1<<16 {
			return
		}
		if cap(buf) < int(h.Length) {
			buf = make([]byte, h.Length)
		}
		p := buf[:h.Length]
		if _, err := io.ReadFull(conn, p); err != nil {
			return
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			return
		case ws.OpPing:
			c.write(ws.CompiledPong)
		case ws.OpText:
			b.command(g, c, p)
		}
	}
}

func (b *baselineServer) command(g *bgroup, c *bconn, p []byte) {
	var cmd struct {
		Type, ID, Text string
		SessionID      string `json:"session_id"`
	}
	if json.Unmarshal(p, &cmd) != nil {
		return
	}
	switch cmd.Type {
	case "ping":
		c.write(encodeFrame(fmt.Appendf(nil, `{"type":"pong","id":%s}`, jsonQuote(cmd.ID))))
	case "send":
		g.mu.Lock()
		if g.streaming {
			g.mu.Unlock()
			c.write(encodeFrame(fmt.Appendf(nil, `{"type":"error","id":%s,"code":"busy","message":"busy"}`, jsonQuote(cmd.ID))))
			return
		}
		g.streaming = true
		if g.session == "" || cmd.SessionID == "" {
			g.session, g.seq = newHexID(), 0
		}
		g.seq += 2
		sid, userSeq, msgID := g.session, g.seq-1, newHexID()
		g.mu.Unlock()
		c.write(encodeFrame(fmt.Appendf(nil, `{"type":"ack","id":%s,"session_id":"%s","message_id":"%s","seq":%d}`, jsonQuote(cmd.ID), sid, msgID, userSeq)))
		g.broadcast(encodeFrame(fmt.Appendf(nil, `{"type":"message","session_id":"%s","message":{"id":"%s","seq":%d,"role":"user","author":"bench","text":%s,"status":"complete"}}`, sid, msgID, userSeq, jsonQuote(cmd.Text))))
		go b.stream(g, sid, userSeq+1, cmd.Text)
	}
}

// stream calls the fake provider and broadcasts each chunk as a delta.
func (b *baselineServer) stream(g *bgroup, sid string, seq int64, text string) {
	msgID := newHexID()
	status := "complete"
	var reply, frame []byte
	err := streamFake(b.client, b.fakeURL, text, func(piece string) {
		frame = appendDeltaFrame(frame[:0], sid, msgID, seq, len(reply), piece)
		reply = append(reply, piece...)
		g.broadcast(frame)
	})
	if err != nil {
		status = "failed"
	}
	// Free the group before the final message, as Chatbox does: its
	// sender answers that message with the next send at once.
	g.mu.Lock()
	g.streaming = false
	g.mu.Unlock()
	g.broadcast(encodeFrame(fmt.Appendf(nil, `{"type":"message","session_id":"%s","message":{"id":"%s","seq":%d,"role":"assistant","author":"Fake","text":%s,"status":"%s"}}`, sid, msgID, seq, jsonQuote(string(reply)), status)))
}

// streamFake makes the call Chatbox makes to the fake provider (a streamed
// chat completion of text) and calls piece with each chunk's content, in
// order, as its SSE event arrives.
func streamFake(client *http.Client, fakeURL, text string, piece func(string)) error {
	body, _ := json.Marshal(map[string]any{
		"model": "fake", "stream": true,
		"messages": []map[string]string{{"role": "user", "content": text}},
	})
	resp, err := client.Post(fakeURL+"/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var chunk struct {
		Choices []struct {
			Delta struct {
				Content string `json:"content"`
			} `json:"delta"`
		} `json:"choices"`
	}
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok {
			continue
		}
		if string(data) == "[DONE]" {
			break
		}
		// Unmarshal reuses the slice's element without zeroing it: clear
		// it, or the final chunk ("delta":{}) repeats the last token.
		clear(chunk.Choices[:cap(chunk.Choices)])
		chunk.Choices = chunk.Choices[:0]
		if json.Unmarshal(data, &chunk) != nil || len(chunk.Choices) == 0 || chunk.Choices[0].Delta.Content == "" {
			continue
		}
		piece(chunk.Choices[0].Delta.Content)
	}
	return sc.Err()
}

// broadcast writes one encoded frame to every connection of the group.
func (g *bgroup) broadcast(frame []byte) {
	g.mu.Lock()
	conns := g.conns
	g.mu.Unlock()
	for _, c := range conns {
		c.write(frame)
	}
}

func (c *bconn) write(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	c.conn.Write(frame)
}

// encodeFrame returns an unmasked text frame: header and payload in one
// buffer, so that a write is one system call.
func encodeFrame(payload []byte) []byte {
	return appendFrame(nil, payload)
}

func appendFrame(dst, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, 0x81) // FIN + text
	switch {
	case n < 126:
		dst = append(dst, byte(n))
	case n < 1<<16:
		dst = append(dst, 126, byte(n>>8), byte(n))
	default:
		dst = append(dst, 127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, payload...)
}

// appendDeltaFrame appends a whole delta frame (header + JSON) to dst; the
// JSON has the same shape as Chatbox's.
func appendDeltaFrame(dst []byte, sid, msgID string, seq int64, offset int, text string) []byte {
	var js [512]byte
	return appendFrame(dst, appendDeltaJSON(js[:0], sid, msgID, seq, offset, text))
}

// appendDeltaJSON appends a delta event's JSON, Chatbox's shape, to p.
func appendDeltaJSON(p []byte, sid, msgID string, seq int64, offset int, text string) []byte {
	p = append(p, `{"type":"delta","session_id":"`...)
	p = append(p, sid...)
	p = append(p, `","message_id":"`...)
	p = append(p, msgID...)
	p = append(p, `","seq":`...)
	p = strconv.AppendInt(p, seq, 10)
	p = append(p, `,"offset":`...)
	p = strconv.AppendInt(p, int64(offset), 10)
	p = append(p, `,"text":`...)
	p = strconv.AppendQuote(p, text) // tokens are ASCII: the same bytes as JSON
	return append(p, '}')
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func newHexID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeRuntimeMetrics serves the Go runtime figures the harness reads, with
// the names Prometheus's Go collector uses.
func writeRuntimeMetrics(w http.ResponseWriter, _ *http.Request) {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/gc/heap/allocs:objects"},
		{Name: "/gc/heap/tiny/allocs:objects"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	fmt.Fprintf(w, "go_memstats_heap_inuse_bytes %d\n", v(0)+v(1))
	fmt.Fprintf(w, "go_goroutines %d\n", v(2))
	fmt.Fprintf(w, "go_memstats_mallocs_total %d\n", v(3)+v(4))
	fmt.Fprintf(w, "go_memstats_stack_inuse_bytes %d\n", v(5))
}

// listenBaseline starts the baseline's WebSocket and debug listeners.
func listenBaseline(fakeURL string) (wsAddr, debugAddr string, stop func(), err error) {
	wln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, err
	}
	dln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		wln.Close()
		return "", "", nil, err
	}
	dsrv := &http.Server{Handler: debugHandler()}
	go dsrv.Serve(dln)
	go newBaselineServer(fakeURL).Serve(wln)
	return wln.Addr().String(), dln.Addr().String(), func() { wln.Close(); dsrv.Close() }, nil
}

// runBaselineChild is the hidden -internal-baseline-server mode: the harness
// re-executes itself so that the baseline is a process of its own, measured
// (RSS, CPU, heap) exactly like Chatbox and not mixed with the clients.
func runBaselineChild(ctx context.Context, fakeURL string, out io.Writer) error {
	raiseNoFile()
	wsAddr, debugAddr, stop, err := listenBaseline(fakeURL)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(out, "LISTEN %s %s\n", wsAddr, debugAddr)
	<-ctx.Done()
	return nil
}

// startBaseline runs the baseline as a child process on loopback.
func startBaseline(ctx context.Context, fakeURL string) (*target, error) {
	ch, addrs, err := startSelf("-internal-baseline-server", "-internal-fake-url", fakeURL)
	if err != nil {
		return nil, fmt.Errorf("baseline server: %w", err)
	}
	var wsAddr, debugAddr string
	if _, err := fmt.Sscanf(addrs, "%s %s", &wsAddr, &debugAddr); err != nil {
		ch.Stop()
		return nil, fmt.Errorf("baseline server said %q", addrs)
	}
	return baselineTarget(wsAddr, debugAddr, ch.cmd.Process.Pid), nil
}

func baselineTarget(wsAddr, debugAddr string, pid int) *target {
	return &target{
		Name: "baseline", URL: "ws://" + wsAddr + "/ws", PID: pid,
		MetricsURL: "http://" + debugAddr + "/metrics", MetricsSource: "baseline's own /metrics",
		PprofURL: "http://" + debugAddr + "/debug/pprof",
	}
}

// startBaselineInProcess runs the baseline in this process (tests).
func startBaselineInProcess(fakeURL string) (*target, func(), error) {
	wsAddr, debugAddr, stop, err := listenBaseline(fakeURL)
	if err != nil {
		return nil, nil, err
	}
	return baselineTarget(wsAddr, debugAddr, 0), stop, nil
}
