package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/protocol"
)

// Subprotocol is the WebSocket subprotocol the server selects; a browser
// sends its token beside it as "bearer.<jwt>".
const Subprotocol = "chatbox.v1"

// closeTooLarge is sent when an inbound message exceeds max_message_bytes.
// gobwas/ws returns an error on the limit but sends nothing, so we do.
const closeTooLarge uint16 = 1009

// handleWS checks Origin and token on the plain HTTP request, so a rejected
// client costs one HTTP response and no upgrade, then runs the connection's
// read loop on this goroutine.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	if origin := r.Header.Get("Origin"); origin != "" && !s.origins[origin] {
		s.rejections("origin").Inc()
		log.Info("websocket refused: origin not allowed", slog.String("origin", origin))
		writeError(w, http.StatusForbidden, protocol.CodeForbidden)
		return
	}
	id, ok := s.authenticate(w, r, log)
	if !ok {
		s.rejections("unauthorized").Inc()
		return
	}
	if s.closing.Load() {
		writeError(w, http.StatusServiceUnavailable, protocol.CodeBusy)
		return
	}
	ticket, err := s.cfg.Hub.Admit(id.UserID)
	switch {
	case errors.Is(err, actors.ErrServerFull):
		s.rejections("server_full").Inc()
		writeErrorMessage(w, http.StatusServiceUnavailable, protocol.CodeBusy, "the server is at capacity; try again shortly")
		return
	case errors.Is(err, actors.ErrTooManyConnections):
		s.rejections("user_connections").Inc()
		writeErrorMessage(w, http.StatusTooManyRequests, protocol.CodeRateLimited, "too many connections for this user")
		return
	}
	upgrader := ws.HTTPUpgrader{
		Timeout:  s.cfg.WriteTimeout,
		Protocol: func(p string) bool { return p == Subprotocol },
	}
	netConn, rw, _, err := upgrader.Upgrade(r, w)
	if err != nil {
		ticket.Release()
		log.Info("websocket upgrade", slog.Any("err", err))
		return
	}
	s.conns.Add(1)
	defer s.conns.Done()

	c := &wsConn{conn: netConn, writeTimeout: s.cfg.WriteTimeout}
	hc, err := s.cfg.Hub.Connect(ticket, actors.Identity{UserID: id.UserID, Name: id.Name, Admin: id.IsAdmin()}, c)
	if err != nil {
		log.Warn("attach connection", slog.Any("err", err))
		c.Close(uint16(ws.StatusGoingAway), "server unavailable")
		return
	}
	log = log.With(slog.String("conn_id", hc.ID()), slog.String("user_id", id.UserID))
	log.Debug("connected")
	c.startPings(s.cfg.PingInterval)
	reason := c.readLoop(hc, rw.Reader, s.cfg.MaxMessageBytes, s.cfg.IdleTimeout)
	s.disconnects(reason).Inc()
	log.Debug("disconnected", slog.String("reason", reason))
	hc.Close()
}

// wsConn is one upgraded socket. It is the actors' Sink for it.
type wsConn struct {
	conn         net.Conn
	writeTimeout time.Duration
	pinger       *time.Timer

	mu     sync.Mutex // guards writes to conn (gobwas writes are not goroutine-safe) and closed
	closed bool
}

var _ actors.Sink = (*wsConn)(nil)

func (c *wsConn) WriteFrame(frame []byte) error {
	return c.write(ws.NewTextFrame(frame))
}

func (c *wsConn) write(f ws.Frame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	c.conn.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	return ws.WriteFrame(c.conn, f)
}

// closeWriteTimeout bounds the courtesy close frame to a peer that may be gone.
const closeWriteTimeout = time.Second

func (c *wsConn) Close(code uint16, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	if c.pinger != nil {
		c.pinger.Stop()
	}
	c.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
	ws.WriteFrame(c.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusCode(code), reason)))
	c.conn.Close()
}

// startPings sends a ping every interval with a timer, not a goroutine, so
// an idle connection costs no stack while it waits.
func (c *wsConn) startPings(interval time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ping func()
	ping = func() {
		if c.write(ws.NewPingFrame(nil)) == nil {
			c.mu.Lock()
			if !c.closed {
				c.pinger.Reset(interval)
			}
			c.mu.Unlock()
		}
	}
	c.pinger = time.AfterFunc(interval, ping)
}

// readLoop reads frames until the peer goes away, answering control frames
// and handing each text message to the hub. It returns why it ended.
func (c *wsConn) readLoop(hc *actors.Conn, src io.Reader, maxBytes int64, idle time.Duration) string {
	rd := &wsutil.Reader{
		Source:         src,
		State:          ws.StateServerSide,
		CheckUTF8:      true,
		MaxFrameSize:   maxBytes,
		MaxMessageSize: maxBytes,
	}
	for {
		c.conn.SetReadDeadline(time.Now().Add(idle))
		hdr, err := rd.NextFrame()
		if err != nil {
			return c.endOnError(err)
		}
		if hdr.OpCode.IsControl() {
			if reason, stop := c.control(hdr, rd); stop {
				return reason
			}
			continue
		}
		payload, err := io.ReadAll(rd)
		if err != nil {
			return c.endOnError(err)
		}
		if hdr.OpCode != ws.OpText {
			hc.Reject("", protocol.CodeBadRequest, "only text frames are accepted")
			continue
		}
		cmd, err := protocol.Decode(payload)
		if err != nil {
			var de *protocol.DecodeError
			errors.As(err, &de)
			hc.Reject(de.ID, de.Code, de.Message)
			continue
		}
		hc.Command(cmd)
	}
}

func (c *wsConn) endOnError(err error) string {
	switch {
	case errors.Is(err, wsutil.ErrFrameTooLarge), errors.Is(err, wsutil.ErrMessageTooLarge):
		c.Close(closeTooLarge, "message too large")
		return "too_large"
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		c.Close(uint16(ws.StatusInvalidFramePayloadData), "invalid UTF-8")
		return "invalid_utf8"
	case errors.Is(err, net.ErrClosed):
		return "server_closed" // the server closed it: slow consumer, shutdown, write failure
	case errors.Is(err, io.EOF):
		c.Close(actors.CloseNormal, "")
		return "eof"
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.Close(uint16(ws.StatusGoingAway), "idle timeout")
			return "idle_timeout"
		}
		c.Close(uint16(ws.StatusProtocolError), "protocol error")
		return "read_error"
	}
}

// control answers a ping, notes a pong, and echoes a close.
func (c *wsConn) control(hdr ws.Header, rd io.Reader) (reason string, stop bool) {
	var buf [125]byte // control payloads are at most 125 bytes (RFC 6455 §5.5)
	n := min(int(hdr.Length), len(buf))
	if _, err := io.ReadFull(rd, buf[:n]); err != nil {
		return c.endOnError(err), true
	}
	switch hdr.OpCode {
	case ws.OpPing:
		c.write(ws.NewPongFrame(bytes.Clone(buf[:n])))
	case ws.OpClose:
		code := uint16(ws.StatusNormalClosure)
		if n >= 2 {
			code = binary.BigEndian.Uint16(buf[:2])
		}
		c.Close(code, "")
		return "peer_closed", true
	}
	return "", false
}
