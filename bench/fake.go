package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatbox/chatbox/providers/openai/openaitest"
)

// placeholder is a token the fake streams; stampWriter replaces it with the
// wall-clock time at which the fake writes it ("t" + 19 digits of Unix
// nanoseconds), so a client can measure each token's delivery lag.
const placeholder = "t0000000000000000000"

// stampedReply is a reply of n timestamped tokens.
func stampedReply(n int) string {
	return strings.TrimSuffix(strings.Repeat(placeholder+" ", max(n, 1)), " ")
}

// fakeProvider is openaitest's fake OpenAI-compatible server, mounted behind
// stampWriter on one stable loopback URL; Set swaps in a fake with another
// reply or pace (the Chatbox config names the URL once).
type fakeProvider struct {
	URL string // base URL ending in /v1
	PID int    // the fake's own process (startFakeProcess); 0 in this process
	srv *http.Server
	cur atomic.Pointer[openaitest.Server]

	mu  sync.Mutex
	all []*openaitest.Server
}

func startFake(reply string, tokenDelay time.Duration) (*fakeProvider, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &fakeProvider{URL: "http://" + ln.Addr().String() + "/v1"}
	f.Set(reply, tokenDelay)
	f.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == setPath { // the harness switching reply and pace
			delay, err := time.ParseDuration(r.URL.Query().Get("delay"))
			reply, rerr := io.ReadAll(r.Body)
			if err != nil || rerr != nil {
				http.Error(w, "bad set request", http.StatusBadRequest)
				return
			}
			f.Set(string(reply), delay)
			return
		}
		f.cur.Load().ServeHTTP(&stampWriter{ResponseWriter: w}, r)
	})}
	go f.srv.Serve(ln)
	return f, nil
}

// setPath is the fake's control route (not under /v1).
const setPath = "/bench/set"

// Set makes later requests stream reply word by word, tokenDelay apart.
func (f *fakeProvider) Set(reply string, tokenDelay time.Duration) {
	if f.PID != 0 {
		u := strings.TrimSuffix(f.URL, "/v1") + setPath + "?delay=" + tokenDelay.String()
		resp, err := http.Post(u, "text/plain", strings.NewReader(reply))
		if err == nil {
			resp.Body.Close()
		}
		return
	}
	fake := openaitest.NewServer(openaitest.Config{
		Reply:      func(openaitest.Request) string { return reply },
		TokenDelay: tokenDelay,
	})
	f.mu.Lock()
	f.all = append(f.all, fake)
	f.mu.Unlock()
	f.cur.Store(fake)
}

func (f *fakeProvider) Close() {
	if f.srv == nil {
		return // a process of its own, stopped by its cleanup
	}
	f.srv.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.all {
		s.Close()
	}
}

// startFakeProcess runs the fake in a process of its own (this binary with
// -internal-fake-server), so that its token writes and the clients' reads do
// not share one Go scheduler, and its CPU is accounted apart. Both stamp and
// read the same wall clock.
func startFakeProcess(ctx context.Context) (*fakeProvider, error) {
	ch, u, err := startSelf("-internal-fake-server")
	if err != nil {
		return nil, fmt.Errorf("fake provider process: %w", err)
	}
	return &fakeProvider{URL: u, PID: ch.cmd.Process.Pid}, nil
}

// runFakeChild is the hidden -internal-fake-server mode.
func runFakeChild(ctx context.Context, out io.Writer) error {
	raiseNoFile()
	f, err := startFake(stampedReply(1), 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(out, "LISTEN %s\n", f.URL)
	<-ctx.Done()
	return nil
}

// stampWriter stamps placeholders at the moment each SSE event is written.
type stampWriter struct {
	http.ResponseWriter
	buf []byte
}

func (s *stampWriter) Write(p []byte) (int, error) {
	if !bytes.Contains(p, []byte(placeholder)) {
		return s.ResponseWriter.Write(p)
	}
	s.buf = append(s.buf[:0], p...)
	now := time.Now().UnixNano()
	var digits [19]byte
	d := strconv.AppendInt(digits[:0], now, 10)
	for off := 0; ; {
		i := bytes.Index(s.buf[off:], []byte(placeholder))
		if i < 0 {
			break
		}
		copy(s.buf[off+i+1:off+i+stampLen], d)
		off += i + stampLen
	}
	if _, err := s.ResponseWriter.Write(s.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *stampWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
