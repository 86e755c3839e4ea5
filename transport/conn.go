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
	"unicode/utf8"

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
	hc       commandSink // the hub's *actors.Conn; set before the first read
	poll     poller
	pollID   int32
	owner    *lifecycle.Group // the server's: runs the keepalive callbacks
	cfg      connConfig
	onClosed func(reason string) // called once, after the socket is closed

	// pending holds bytes the client sent right behind the handshake, which
	// the HTTP server had already buffered; they are read before the socket.
	pending *bytes.Reader

	lastSeen atomic.Int64 // unix nanos of the last frame received

	// pingDue is when the keepalive of this socket is next due (unix
	// nanos), 0 while one runs or once the socket is closed (keepalive.go).
	pingDue atomic.Int64

	mu     sync.Mutex // guards writes to conn (gobwas writes are not goroutine-safe), closed, preamble
	closed bool
	// preamble is the handshake's 101 response, when the front upgraded
	// the socket: it goes out in front of the first frame, in the same
	// writev as hello (one system call per connect fewer).
	preamble []byte
}

// commandSink takes what the reader decoded; *actors.Conn is the one in
// production, the fuzz test brings its own.
type commandSink interface {
	Command(cmd protocol.Command)
	Reject(id string, err error)
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
	return c.writeWith(func() error {
		bufs := writevBufs.Get().(*net.Buffers)
		all := (*bufs)[:0]
		if c.preamble != nil {
			all = append(all, c.preamble)
			c.preamble = nil
		}
		all = append(all, wires...)
		*bufs = all
		_, err := bufs.WriteTo(c.conn) // it consumes *bufs
		clear(all)
		*bufs = all[:0]
		writevBufs.Put(bufs)
		return err
	})
}

// writevBufs are the net.Buffers of writes in progress: WriteTo needs a
// pointer, which would otherwise cost an allocation per write, and a
// connection does not keep one of its own.
var writevBufs = sync.Pool{New: func() any { return new(net.Buffers) }}

func (c *wsConn) write(f ws.Frame) error {
	return c.writeWith(func() error {
		if err := c.writePreambleLocked(); err != nil {
			return err
		}
		return ws.WriteFrame(c.conn, f)
	})
}

// writeWith runs one write under the write deadline. A write that fails or
// times out may have sent part of a frame, after which no byte can be
// framed again: it ends the connection at once, without a close frame.
func (c *wsConn) writeWith(write func() error) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return net.ErrClosed
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.cfg.writeTimeout))
	err := write()
	if err == nil {
		c.mu.Unlock()
		return nil
	}
	c.shutLocked()
	c.mu.Unlock()
	why := "write_error"
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		why = "write_timeout"
	}
	c.onClosed(why)
	return err
}

// writePreambleLocked writes the 101 response if no frame has carried it
// yet; c.mu is held and the write deadline set.
func (c *wsConn) writePreambleLocked() error {
	if c.preamble == nil {
		return nil
	}
	_, err := c.conn.Write(c.preamble)
	c.preamble = nil
	return err
}

// closeWriteTimeout bounds the courtesy close frame to a peer that may be gone.
const closeWriteTimeout = time.Second

// Close sends a close frame and closes the socket; idempotent, any goroutine.
func (c *wsConn) Close(code uint16, reason string) { c.closeWith(code, reason, "server_closed") }

// closeWith closes the socket and reports why (a metric label) once. The
// close frame carries code, or 1000 for a code that must never be sent.
func (c *wsConn) closeWith(code uint16, reason, why string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if !sendable(code) {
		code, reason = uint16(ws.StatusNormalClosure), ""
	}
	c.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	err := c.writePreambleLocked()
	if err == nil {
		err = ws.WriteFrame(c.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
	}
	if err == nil {
		c.lingerLocked()
	} else {
		c.shutLocked()
	}
	c.mu.Unlock()
	c.onClosed(why)
}

// lingerClose bounds how long a closed connection's socket keeps reading
// what the peer still sends, before it is closed for good.
const lingerClose = time.Second

// lingerLocked closes the connection after its close frame was written:
// it sends FIN and discards what the peer still has in flight (the rest of
// an oversized message, its own close frame) for up to lingerClose on a
// goroutine of the server, then closes the socket. Closing at once with
// unread bytes in the receive buffer makes the kernel send a reset, and a
// reset can destroy the close frame before the peer reads it: the peer
// would never learn the code (1009, 1002, ...). c.mu is held and the
// connection was open.
func (c *wsConn) lingerLocked() {
	tc, ok := c.conn.(*net.TCPConn)
	if !ok || c.owner == nil {
		c.shutLocked()
		return
	}
	c.detachLocked()
	if tc.CloseWrite() != nil || !c.owner.Go(func() {
		tc.SetReadDeadline(time.Now().Add(lingerClose))
		io.Copy(io.Discard, io.LimitReader(tc, 1<<20))
		tc.Close()
	}) {
		tc.Close()
	}
}

// shutLocked marks the connection closed, stops its keepalive, and closes
// the socket; c.mu is held and the connection was open.
func (c *wsConn) shutLocked() {
	c.detachLocked()
	c.conn.Close()
}

// detachLocked marks the connection closed, stops its keepalive and takes
// it out of the poller (before its descriptor can be reused by another
// socket); c.mu is held.
func (c *wsConn) detachLocked() {
	c.closed = true
	c.pingDue.Store(0)
	c.poll.remove(c)
}

// start queues the reads: bytes already buffered are read at once, then
// the socket is handed to the poller. Keepalive starts with it.
func (c *wsConn) start() error {
	now := time.Now()
	c.lastSeen.Store(now.UnixNano())
	c.mu.Lock()
	if !c.closed {
		c.pingDue.Store(now.Add(c.cfg.ping).UnixNano())
	}
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

// keepalive runs when the socket's ping is due (keepalive.go): it closes a
// peer silent past the idle timeout and pings the others. A ping that
// cannot be written has closed the connection (writeWith), so a peer that
// neither reads nor answers is gone within idle + ping interval (and a
// tick of the keepalive loop).
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
		c.pingDue.Store(time.Now().Add(c.cfg.ping).UnixNano())
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
		// A ping or close between two fragments is answered like any other
		// (RFC 6455 §5.4); without this the library drops it silently.
		OnIntermediate: func(hdr ws.Header, body io.Reader) error {
			if why, stop := c.control(hdr, body); stop {
				return stopReading(why)
			}
			return nil
		},
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
	if c.isClosed() {
		// Read while the connection was closing (its socket lingers for
		// the peer's last bytes): not a command any more.
		return "closed", true
	}
	cmd, err := protocol.Decode(payload)
	if err != nil {
		c.hc.Reject(cmd.ID, err)
		return "", false
	}
	c.hc.Command(cmd)
	return "", false
}

// isClosed reports whether the connection has been closed.
func (c *wsConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
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

// stopReading is returned by a control frame inside a fragmented message
// that ended the connection (a close); it names why.
type stopReading string

func (s stopReading) Error() string { return "connection ended: " + string(s) }

// readError names why a read failed, as a metric label.
func (c *wsConn) readError(err error) string {
	var ne net.Error
	if s, ok := errors.AsType[stopReading](err); ok {
		return string(s)
	}
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

// control answers a ping, notes a pong, and answers a close (closeAnswer).
// A pong that cannot be written has closed the connection.
func (c *wsConn) control(hdr ws.Header, rd io.Reader) (why string, stop bool) {
	var buf [125]byte // control payloads are at most 125 bytes (RFC 6455 §5.5)
	n := min(int(hdr.Length), len(buf))
	if _, err := io.ReadFull(rd, buf[:n]); err != nil {
		return c.readError(err), true
	}
	switch hdr.OpCode {
	case ws.OpPing:
		if c.write(ws.NewPongFrame(bytes.Clone(buf[:n]))) != nil {
			return "write_error", true
		}
	case ws.OpClose:
		code, why := closeAnswer(buf[:n])
		c.closeWith(code, "", why)
		return why, true
	}
	return "", false
}

// closeAnswer is the code that answers a peer's close payload (RFC 6455
// §5.5.1, §7.4): its own code echoed when it is one a peer may send, 1000
// for an empty payload, 1002 for a 1-byte payload or a code that is not
// valid on the wire, 1007 for a reason that is not UTF-8.
func closeAnswer(payload []byte) (code uint16, why string) {
	switch {
	case len(payload) == 0:
		return uint16(ws.StatusNormalClosure), "peer_closed"
	case len(payload) == 1:
		return uint16(ws.StatusProtocolError), "bad_close"
	}
	code = binary.BigEndian.Uint16(payload)
	switch {
	case !receivable(code):
		return uint16(ws.StatusProtocolError), "bad_close"
	case !utf8.Valid(payload[2:]):
		return uint16(ws.StatusInvalidFramePayloadData), "bad_close"
	}
	return code, "peer_closed"
}

// receivable reports whether a peer may close with code: the codes RFC 6455
// §7.4.1 defines for use in a close frame, 1012–1014 that IANA added since,
// and the registered and private ranges. 1004, 1005, 1006 and 1015 are
// reserved and never on the wire.
func receivable(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// sendable reports whether this server may send code: the same set.
func sendable(code uint16) bool { return receivable(code) }

// poller tells connections when their sockets are readable. add arms a
// connection; after each ready call the connection arms itself again with
// rearm; remove forgets it (before its descriptor is closed).
type poller interface {
	add(c *wsConn) error
	rearm(c *wsConn) error
	remove(c *wsConn)
	close()
}
