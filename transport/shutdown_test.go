package transport

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// anonFDs counts this process's descriptors that are an anonymous inode of
// kind, e.g. "[eventpoll]" or "[eventfd]".
func anonFDs(t *testing.T, kind string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == "anon_inode:"+kind {
			n++
		}
	}
	return n
}

// stackHas reports whether any goroutine is running fn.
func stackHas(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// A connection that never drains (the hub is not told to close it and the
// peer stays silent) cannot keep the poller alive: at its deadline Shutdown
// closes the socket, then the epoll descriptor, its eventfd and the loop
// goroutine, and waits for every goroutine it started. A second Shutdown
// returns the first one's result.
func TestShutdownClosesThePollerEvenWhenAConnectionNeverDrains(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll reader is Linux only")
	}
	s := startServer(t)
	c := dialRaw(t, s.Addr().String())
	if typ, _ := c.next(t); typ != "hello" {
		t.Fatalf("first frame %s", typ)
	}
	epolls, eventfds := anonFDs(t, "[eventpoll]"), anonFDs(t, "[eventfd]")
	if !stackHas("transport.(*epoller).loop(") {
		t.Fatal("no poller loop running before Shutdown")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the connection wait to time out", err)
	}
	if got := anonFDs(t, "[eventpoll]"); got != epolls-1 {
		t.Errorf("%d epoll descriptors after Shutdown, want %d", got, epolls-1)
	}
	if got := anonFDs(t, "[eventfd]"); got != eventfds-1 {
		t.Errorf("%d eventfds after Shutdown, want %d", got, eventfds-1)
	}
	if stackHas("transport.(*epoller).loop(") {
		t.Error("the poller loop outlived Shutdown")
	}
	if n := s.goroutines.Running(); n != 0 {
		t.Errorf("%d transport goroutines running after Shutdown", n)
	}
	// The server closed its end: the client reads end of stream.
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, rerr := io.ReadAll(c.rd); rerr != nil {
		t.Errorf("client read after Shutdown: %v, want end of stream", rerr)
	}
	if again := s.Shutdown(context.Background()); again != err {
		t.Errorf("second Shutdown = %v, want the first's %v", again, err)
	}
	if s.goroutines.Go(func() {}) {
		t.Error("the server started a goroutine after Shutdown")
	}
}

// When the hub closes every socket first, Shutdown finds them drained and
// returns nil, with the poller closed all the same.
func TestShutdownAfterTheHubClosedTheSocketsIsClean(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the epoll reader is Linux only")
	}
	s := startServer(t)
	c := dialRaw(t, s.Addr().String())
	c.next(t)
	epolls := anonFDs(t, "[eventpoll]")
	s.BeginShutdown()
	s.cfg.Hub.CloseConnections()
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := anonFDs(t, "[eventpoll]"); got != epolls-1 {
		t.Errorf("%d epoll descriptors after Shutdown, want %d", got, epolls-1)
	}
	if n := s.goroutines.Running(); n != 0 {
		t.Errorf("%d transport goroutines running after Shutdown", n)
	}
}
