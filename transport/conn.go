package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/lifecycle"
	"github.com/chatbox/chatbox/protocol"
)

// wsConn is one upgraded socket: the actors' Sink for it, and its reader.
//
// Reading is driven by readiness: the poller calls ready when the socket has
// bytes, ready reads what is there one message at a time, and the socket is
// armed again. Only one ready runs at a time per connection, which keeps
// the commands in order. An idle connection therefore holds no goroutine
// and no read buffer; its keepalive is a timer.
type wsConn struct {
	conn     net.Conn
	hc       *actors.Conn // set before the first read
	poll     poller
	pollID   int32
	owner    *lifecycle.Group // the server's: runs the keepalive callbacks
	cfg      connConfig
	onClosed func(reason string) // called once, after the socket is closed

	// pending holds bytes the client sent right behind the handshake, which
	// the HTTP server had already buffered; they are read before the socket.
	pending *bytes.Reader

	lastSeen atomic.Int64 // unix nanos of the last frame received

	mu     sync.Mutex // guards writes to conn (gobwas writes are not goroutine-safe), closed, pinger
	closed bool
	pinger *time.Timer
}

type connConfig struct {
	maxBytes     int64
	idle         time.Duration // a peer silent this long is closed
	ping         time.Duration
	writeTimeout time.Duration
	// readTimeout bounds reading one message once its first bytes are
	// there: a peer cannot hold a reader with half a frame.
	readTimeout time.Duration
}

var _ actors.Sink = (*wsConn)(nil)

// WriteFrames writes complete frames with one writev: the events' frames
// were built once, header included, for every connection.
func (c *wsConn) WriteFrames(wires [][]byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.writeTimeout))
	bufs := net.Buffers(wires)
	_, err := bufs.WriteTo(c.conn)
	return err
}

func (c *wsConn) write(f ws.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.writeTimeout))
	return ws.WriteFrame(c.conn, f)
}

// closeWriteTimeout bounds the courtesy close frame to a peer that may be gone.
const closeWriteTimeout = time.Second

// Close sends a close frame and closes the socket; idempotent, any goroutine.
func (c *wsConn) Close(code uint16, reason string) { c.closeWith(code, reason, "server_closed") }

// closeWith closes the socket and reports why (a metric label) once.
func (c *wsConn) closeWith(code uint16, reason, why string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	ws.WriteFrame(c.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
	// Leave the poller before the descriptor can be reused by another socket.
	c.poll.remove(c)
	c.conn.Close()
	c.mu.Unlock()
	c.onClosed(why)
}

// start queues the reads: bytes already buffered are read at once, then
// the socket is handed to the poller. Keepalive starts with it.
func (c *wsConn) start() error {
	c.lastSeen.Store(time.Now().UnixNano())
	c.mu.Lock()
	// A keepalive refused by a stopping server is not needed: Shutdown
	// closes the socket.
	c.pinger = time.AfterFunc(c.cfg.ping, func() { c.owner.Do(c.keepalive) })
	c.mu.Unlock()
	for c.pending != nil && c.pending.Len() > 0 {
		if why, stop := c.readMessage(); stop {
			c.end(why)
			return nil
		}
	}
	c.pending = nil
	return c.poll.add(c)
}

// keepalive runs on the ping timer: it closes a peer silent past the idle
// timeout and pings the others.
func (c *wsConn) keepalive() {
	if time.Since(time.Unix(0, c.lastSeen.Load())) > c.cfg.idle {
		c.closeWith(uint16(ws.StatusGoingAway), "idle timeout", "idle_timeout")
		return
	}
	if c.write(ws.NewPingFrame(nil)) != nil {
		return
	}
	c.mu.Lock()
	if !c.closed {
		c.pinger.Reset(c.cfg.ping)
	}
	c.mu.Unlock()
}

// ready reads the message that made the socket readable, then arms it again.
func (c *wsConn) ready() {
	if why, stop := c.readMessage(); stop {
		c.end(why)
		return
	}
	if err := c.poll.rearm(c); err != nil {
		c.end("read_error")
	}
}

// src is what the next message is read from.
func (c *wsConn) src() io.Reader {
	if c.pending != nil && c.pending.Len() > 0 {
		return io.MultiReader(c.pending, c.conn)
	}
	return c.conn
}

// readMessage reads one frame (and the rest of its message), answering
// control frames and handing a text message to the hub. It reports why the
// connection must end, if it must.
func (c *wsConn) readMessage() (why string, stop bool) {
	c.conn.SetReadDeadline(time.Now().Add(c.cfg.readTimeout))
	rd := wsutil.Reader{
		Source:         c.src(),
		State:          ws.StateServerSide,
		CheckUTF8:      true,
		MaxFrameSize:   c.cfg.maxBytes,
		MaxMessageSize: c.cfg.maxBytes,
	}
	hdr, err := rd.NextFrame()
	if err != nil {
		return c.readError(err), true
	}
	c.lastSeen.Store(time.Now().UnixNano())
	if hdr.OpCode.IsControl() {
		return c.control(hdr, &rd)
	}
	payload, err := io.ReadAll(&rd)
	if err != nil {
		return c.readError(err), true
	}
	if hdr.OpCode != ws.OpText {
		c.hc.Reject("", protocol.Errf(protocol.CodeBadRequest, "only text frames are accepted"))
		return "", false
	}
	cmd, err := protocol.Decode(payload)
	if err != nil {
		c.hc.Reject(cmd.ID, err)
		return "", false
	}
	c.hc.Command(cmd)
	return "", false
}

// end closes the connection after a read ended it, with the matching code.
func (c *wsConn) end(why string) {
	switch why {
	case "too_large":
		c.closeWith(closeTooLarge, "message too large", why)
	case "invalid_utf8":
		c.closeWith(uint16(ws.StatusInvalidFramePayloadData), "invalid UTF-8", why)
	case "eof", "peer_closed":
		c.closeWith(actors.CloseNormal, "", why)
	case "read_timeout":
		c.closeWith(uint16(ws.StatusPolicyViolation), "incomplete frame", why)
	default:
		c.closeWith(uint16(ws.StatusProtocolError), "protocol error", why)
	}
}

// readError names why a read failed, as a metric label.
func (c *wsConn) readError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, wsutil.ErrFrameTooLarge), errors.Is(err, wsutil.ErrMessageTooLarge):
		return "too_large"
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		return "invalid_utf8"
	case errors.Is(err, net.ErrClosed):
		return "server_closed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &ne) && ne.Timeout():
		return "read_timeout"
	}
	return "read_error"
}

// control answers a ping, notes a pong, and echoes a close.
func (c *wsConn) control(hdr ws.Header, rd io.Reader) (why string, stop bool) {
	var buf [125]byte // control payloads are at most 125 bytes (RFC 6455 §5.5)
	n := min(int(hdr.Length), len(buf))
	if _, err := io.ReadFull(rd, buf[:n]); err != nil {
		return c.readError(err), true
	}
	switch hdr.OpCode {
	case ws.OpPing:
		c.write(ws.NewPongFrame(bytes.Clone(buf[:n])))
	case ws.OpClose:
		code := uint16(ws.StatusNormalClosure)
		if n >= 2 {
			code = binary.BigEndian.Uint16(buf[:2])
		}
		if code == uint16(ws.StatusNoStatusRcvd) || code < 1000 {
			code = uint16(ws.StatusNormalClosure)
		}
		c.closeWith(code, "", "peer_closed")
		return "peer_closed", true
	}
	return "", false
}

// poller tells connections when their sockets are readable. add arms a
// connection; after each ready call the connection arms itself again with
// rearm; remove forgets it (before its descriptor is closed).
type poller interface {
	add(c *wsConn) error
	rearm(c *wsConn) error
	remove(c *wsConn)
	close()
}
