package actors

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence/storetest"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/demo"
)

// gateSink is a Sink whose writes block until the test opens the gate, like
// a slow device; it records every frame and the close code.
type gateSink struct {
	gate chan struct{}

	mu        sync.Mutex // guards frames and closeCode
	frames    [][]byte
	closeCode uint16
}

func newGateSink() *gateSink { return &gateSink{gate: make(chan struct{})} }

func (s *gateSink) WriteFrames(wires [][]byte) error {
	<-s.gate
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range wires {
		s.frames = append(s.frames, bytes.Clone(payload(w))) // a Sink must not keep wires
	}
	return nil
}

// payload strips the WebSocket header a Sink receives.
func payload(wire []byte) []byte {
	switch n := wire[1]; {
	case n < 126:
		return wire[2:]
	case n == 126:
		return wire[4:]
	default:
		return wire[10:]
	}
}

func (s *gateSink) Close(code uint16, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeCode == 0 {
		s.closeCode = code
	}
}

// connectRecorded connects id with a sink that records every frame and
// the close code, its gate open.
func connectRecorded(t *testing.T, h *Hub, id Identity) (*Conn, *gateSink) {
	t.Helper()
	sink := newGateSink()
	close(sink.gate)
	ticket, err := h.Admit(id.UserID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.Connect(ticket, id, sink)
	if err != nil {
		t.Fatal(err)
	}
	return c, sink
}

func (s *gateSink) snapshot() ([][]byte, uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.frames...), s.closeCode
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(time.Millisecond) // polling, not ordering
	}
}

func TestOutboxCoalescesDeltasOfASlowConsumerWithoutGaps(t *testing.T) {
	sink := newGateSink()
	o := newOutbox(sink, 8)
	var wg sync.WaitGroup
	want := ""
	for i := range 100 {
		text := "w" + strconv.Itoa(i) + " "
		res := o.push(protocol.NewDelta("s", "m", 2, len(want), text))
		want += text
		if res == pushStartFlush {
			wg.Go(o.flush)
		}
		if res == pushOverflow {
			t.Fatalf("deltas of one reply overflowed at %d", i)
		}
	}
	close(sink.gate)
	wg.Wait()
	frames, code := sink.snapshot()
	if code != 0 {
		t.Fatalf("closed with %d", code)
	}
	if len(frames) >= 100 {
		t.Fatalf("%d frames for 100 deltas: nothing was coalesced", len(frames))
	}
	got := ""
	for _, f := range frames {
		var d struct {
			Offset int    `json:"offset"`
			Text   string `json:"text"`
		}
		if err := json.Unmarshal(f, &d); err != nil {
			t.Fatal(err)
		}
		if d.Offset != len(got) {
			t.Fatalf("frame at offset %d after %d bytes", d.Offset, len(got))
		}
		got += d.Text
	}
	if got != want {
		t.Fatalf("coalesced text %q, want %q", got, want)
	}
}

func TestOutboxOverflowOfOtherEventsClosesWith1013(t *testing.T) {
	sink := newGateSink()
	o := newOutbox(sink, 4)
	// The blocked flusher holds at most one batch (≤ the bound), so the
	// queue must overflow within twice the bound plus one.
	var last pushResult
	for i := 0; i < 2*4+1 && last != pushOverflow; i++ {
		last = o.push(protocol.NewPong(strconv.Itoa(i)))
		if last == pushStartFlush {
			go o.flush()
		}
	}
	if last != pushOverflow {
		t.Fatalf("no overflow after 9 events into a bound of 4 with a stalled writer")
	}
	// A connection reacts to an overflow by closing with 1013; do the same.
	o.close(CloseTryAgain, closeReasonSlow)
	close(sink.gate)
	if _, code := sink.snapshot(); code != CloseTryAgain {
		t.Fatalf("close code %d, want %d", code, CloseTryAgain)
	}
	if r := o.push(protocol.NewPong("late")); r != pushClosed {
		t.Fatalf("push after close: %v", r)
	}
}

// countSink counts frames and signals when it has seen want of them.
type countSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
}

func (s *countSink) WriteFrames(wires [][]byte) error {
	if n := s.n.Add(int64(len(wires))); n >= s.want && n-int64(len(wires)) < s.want {
		close(s.done)
	}
	return nil
}
func (s *countSink) Close(uint16, string) {}

func demoCatalog(tb testing.TB) *providers.Catalog {
	tb.Helper()
	c, err := providers.NewCatalog([]providers.Entry{{ID: "demo", Name: "Demo", Provider: &demo.Provider{}}}, "demo")
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// BenchmarkFanOutDeltaToThreeDevices measures one delta event, encoded once,
// going session → user actor → three connection actors → their sockets.
func BenchmarkFanOutDeltaToThreeDevices(b *testing.B) {
	cfg := testConfig()
	cfg.Models, cfg.OutboxLimit = demoCatalog(b), 1<<20
	h, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h.Start()
	defer h.Shutdown(b.Context())
	const devices = 3
	sinks := make([]*countSink, devices)
	var conn *Conn
	for i := range sinks {
		sinks[i] = &countSink{want: int64(b.N) + 1, done: make(chan struct{})} // +1: hello
		ticket, err := h.Admit("u")
		if err != nil {
			b.Fatal(err)
		}
		c, err := h.Connect(ticket, Identity{UserID: "u"}, sinks[i])
		if err != nil {
			b.Fatal(err)
		}
		conn = c
	}
	user := conn.userActor() // the connections were parked: this spawns the actor
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		// Distinct replies so the outbox never merges: every event is a frame.
		ev := protocol.NewDelta("s", strconv.Itoa(i), 2, 0, " token")
		h.root.Send(user, &deliver{event: ev})
	}
	for _, s := range sinks {
		<-s.done
	}
}

func TestOutboxMergesOnlyDirectContinuations(t *testing.T) {
	next := len("héllo ") + len("wörld")
	tests := []struct {
		name string
		d    *protocol.Event
		want bool
	}{
		{"continues after the merged text", protocol.NewDelta("s", "m", 2, next, "!"), true},
		{"a gap", protocol.NewDelta("s", "m", 2, next+1, "!"), false},
		{"an overlap", protocol.NewDelta("s", "m", 2, len("héllo "), "!"), false},
		{"another reply", protocol.NewDelta("s", "other", 2, next, "!"), false},
		{"another session", protocol.NewDelta("t", "m", 2, next, "!"), false},
		{"not a delta", protocol.NewPong("x"), false},
	}
	for _, tt := range tests {
		sink := newGateSink()
		o := newOutbox(sink, 8)
		if r := o.push(protocol.NewDelta("s", "m", 2, 0, "héllo ")); r != pushStartFlush {
			t.Fatalf("first push: %v", r)
		}
		if r := o.push(protocol.NewDelta("s", "m", 2, len("héllo "), "wörld")); r != pushCoalesced {
			t.Fatalf("a direct continuation: %v, want it coalesced", r)
		}
		want := pushQueued
		if tt.want {
			want = pushCoalesced
		}
		if got := o.push(tt.d); got != want {
			t.Errorf("%s: push = %v, want %v", tt.name, got, want)
		}
		close(sink.gate)
		o.flush()
		frames, _ := sink.snapshot()
		var d struct {
			Offset int
			Text   string
		}
		wantText, wantFrames := "héllo wörld", 2
		if tt.want {
			wantText, wantFrames = "héllo wörld!", 1
		}
		if err := json.Unmarshal(frames[0], &d); err != nil || d.Offset != 0 || d.Text != wantText || len(frames) != wantFrames {
			t.Errorf("%s: %d frames, the first %+v (%v); want %d, the first with %q", tt.name, len(frames), d, err, wantFrames, wantText)
		}
	}
}

// A connection has no actor of its own, but to the rest of the tree it is
// one: it can be watched, and when it stops its socket closes after what
// was queued and its watchers get Terminated; a late watcher at once.
func TestAConnectionIsWatchedAndStoppedLikeAnActor(t *testing.T) {
	h, _ := newTestHub(t, &stepModel{})
	c, sink := connectRecorded(t, h, alice)
	terminated := make(chan *actor.PID, 2)
	watcher := func(pid *actor.PID) {
		h.root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *actor.Started:
				ctx.Watch(pid)
			case *actor.Terminated:
				terminated <- m.Who
			}
		}))
	}
	watcher(c.pid)
	eventually(t, func() bool { frames, _ := sink.snapshot(); return len(frames) == 1 }) // hello
	c.Close()
	select {
	case who := <-terminated:
		if !who.Equal(c.pid) {
			t.Fatalf("Terminated of %v, want %v", who, c.pid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher was not told that the connection stopped")
	}
	eventually(t, func() bool { _, code := sink.snapshot(); return code == CloseGoingAway })

	watcher(c.pid)
	select {
	case <-terminated:
	case <-time.After(5 * time.Second):
		t.Fatal("a watcher of a stopped connection was not told at once")
	}
}

// BenchmarkIdleConnectionHeap reports the Go heap the actors keep per idle
// connection of a single-device user (the transport's share is not in it),
// measured after a collection with every connection attached. Run it with
// -benchtime 1x: the user actors of one round outlive it (UserIdle).
func BenchmarkIdleConnectionHeap(b *testing.B) {
	const conns = 5000
	cfg := testConfig()
	cfg.Models, cfg.Store = demoCatalog(b), storetest.SQLite(b)
	h, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	h.Start()
	defer h.Shutdown(b.Context())
	var perConn float64
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		open := make([]*Conn, conns)
		for i := range open {
			user := "user-" + strconv.Itoa(i)
			ticket, err := h.Admit(user)
			if err != nil {
				b.Fatal(err)
			}
			if open[i], err = h.Connect(ticket, Identity{UserID: user, Name: "U"}, &countSink{want: 1 << 62}); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perConn = float64(after.HeapAlloc-before.HeapAlloc) / conns
		for _, c := range open {
			c.Close()
		}
	}
	b.ReportMetric(perConn, "heap-B/conn")
}
