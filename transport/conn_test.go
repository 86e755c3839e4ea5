package transport

import (
	"bytes"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/chatbox/chatbox/protocol"
)

// stuckConn is a socket whose peer stopped reading: it takes budget more
// bytes, then every write times out, as a full send buffer does.
type stuckConn struct {
	net.Conn // nil: only what wsConn's write side calls is implemented

	mu      sync.Mutex
	budget  int
	written bytes.Buffer
	late    int // bytes offered after Close
	closed  bool
}

func (c *stuckConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		c.late += len(p)
		return 0, net.ErrClosed
	}
	n := min(len(p), c.budget)
	c.budget -= n
	c.written.Write(p[:n])
	if n < len(p) {
		return n, os.ErrDeadlineExceeded
	}
	return n, nil
}

func (c *stuckConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *stuckConn) SetWriteDeadline(time.Time) error { return nil }
func (c *stuckConn) SetReadDeadline(time.Time) error  { return nil }

func (c *stuckConn) state() (written []byte, late int, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.written.Bytes()), c.late, c.closed
}

type nopPoller struct{}

func (nopPoller) add(*wsConn) error   { return nil }
func (nopPoller) rearm(*wsConn) error { return nil }
func (nopPoller) remove(*wsConn)      {}
func (nopPoller) close()              {}

// stuckWSConn is a wsConn over a stuckConn; closed receives why it ended.
func stuckWSConn(budget int) (*wsConn, *stuckConn, chan string) {
	sc := &stuckConn{budget: budget}
	closed := make(chan string, 2)
	c := &wsConn{
		conn: sc, poll: nopPoller{},
		cfg:      connConfig{maxBytes: 1 << 16, idle: time.Hour, ping: time.Hour, writeTimeout: time.Second, readTimeout: time.Second},
		onClosed: func(why string) { closed <- why },
	}
	c.lastSeen.Store(time.Now().UnixNano())
	return c, sc, closed
}

// A write that fails partway has sent part of a frame: the connection ends
// at once, and no byte, not even a close frame, follows the partial frame
// (which would make the peer parse garbage). Before, a failed ping left the
// connection open with no keepalive re-armed (a peer that stopped reading
// was never closed), and a failed event write was followed by a close frame
// appended to the half-written one (verified on the parent commit).
func TestAFailedWriteEndsTheConnectionWithNothingAfterThePartialFrame(t *testing.T) {
	event := protocol.NewPong("a-pong-long-enough-to-be-cut-in-half").Wire
	tests := []struct {
		name  string
		fail  func(c *wsConn)
		after int // bytes the socket takes before it is stuck
	}{
		{"ping cut in half", func(c *wsConn) { c.keepalive() }, 1},
		{"event cut in half", func(c *wsConn) { c.WriteFrames([][]byte{event}) }, len(event) / 2},
		{"second event of a batch cut", func(c *wsConn) { c.WriteFrames([][]byte{event, event}) }, len(event) + 3},
		{"pong to a ping cut in half", func(c *wsConn) {
			c.control(ws.Header{OpCode: ws.OpPing, Fin: true, Length: 4}, bytes.NewReader([]byte("ping")))
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sc, closed := stuckWSConn(tt.after)
			tt.fail(c)
			select {
			case why := <-closed:
				if why != "write_timeout" {
					t.Errorf("ended as %q, want write_timeout", why)
				}
			default:
				t.Fatal("the connection is still open after a write timed out")
			}
			before, _, isClosed := sc.state()
			if !isClosed {
				t.Error("the socket was not closed")
			}
			// What the actors and the keepalive do next writes nothing.
			sc.mu.Lock()
			sc.budget = 1 << 20
			sc.mu.Unlock()
			if err := c.WriteFrames([][]byte{event}); err == nil {
				t.Error("WriteFrames after the failure succeeded")
			}
			c.Close(1013, "slow consumer")
			c.keepalive()
			if after, late, _ := sc.state(); !bytes.Equal(after, before) || late > 0 {
				t.Errorf("%d bytes written and %d offered after the partial frame", len(after)-len(before), late)
			}
			if len(closed) != 0 {
				t.Errorf("ended twice: %q", <-closed)
			}
		})
	}
}

// The front holds the 101 back for the first write: it goes out exactly
// once, in front of whatever is written first (hello, in the same writev;
// or a ping or a close frame), and never again.
func TestThe101GoesOutOnceInFrontOfTheFirstWrite(t *testing.T) {
	const answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
	hello := protocol.NewPong("hello-standing-in").Wire
	var ping, closeFrame bytes.Buffer
	ws.WriteFrame(&ping, ws.NewPingFrame(nil))
	ws.WriteFrame(&closeFrame, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
	tests := []struct {
		name  string
		first func(c *wsConn)
		want  []byte
	}{
		{"hello", func(c *wsConn) { c.WriteFrames([][]byte{hello}) }, hello},
		{"a ping", func(c *wsConn) { c.keepalive() }, ping.Bytes()},
		{"a close", func(c *wsConn) { c.Close(uint16(ws.StatusGoingAway), "bye") }, closeFrame.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, sc, _ := stuckWSConn(1 << 20)
			c.preamble = []byte(answer)
			tt.first(c)
			c.WriteFrames([][]byte{hello}) // refused after a close
			written, _, _ := sc.state()
			want := append([]byte(answer), tt.want...)
			if tt.name != "a close" {
				want = append(want, hello...)
			}
			if !bytes.Equal(written, want) {
				t.Fatalf("written %q, want %q", written, want)
			}
		})
	}
}
