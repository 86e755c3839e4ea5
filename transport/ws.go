package transport

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/protocol"
)

// Subprotocol is the WebSocket subprotocol the server selects; a browser
// sends its token beside it as "bearer.<jwt>".
const Subprotocol = "chatbox.v1"

// closeTooLarge is sent when an inbound message exceeds max_message_bytes.
// gobwas/ws returns an error on the limit but sends nothing, so we do.
const closeTooLarge uint16 = 1009

// handleWS checks Origin and token on the plain HTTP request, so a rejected
// client costs one HTTP response and no upgrade, then hands the socket to
// the poller and returns: the connection lives on without this goroutine.
// Most upgrades never reach it: the front (front.go) upgrades a plain
// handshake that passes every check itself and hands net/http the rest,
// which this answers.
//
// It is on the connect path of every client, so it builds no per-request
// logger: the rare lines it logs name the request id themselves.
func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	id, refuse := s.checkRequest(r)
	if refuse != nil {
		refuse(w)
		return
	}
	ticket, refuse := s.admit(id)
	if refuse != nil {
		refuse(w)
		return
	}
	s.upgrade(w, r, id, ticket)
}

// admit asks the hub for room for one more connection of id's user. A
// refusal comes back as the answer to write.
func (s *Server) admit(id auth.Identity) (*actors.Ticket, func(http.ResponseWriter)) {
	ticket, err := s.cfg.Hub.Admit(id.UserID)
	switch {
	case errors.Is(err, actors.ErrServerFull):
		return nil, func(w http.ResponseWriter) {
			s.rejections("server_full").Inc()
			writeErrorStatus(w, http.StatusServiceUnavailable, protocol.Errf(protocol.CodeBusy, "the server is at capacity; try again shortly"))
		}
	case errors.Is(err, actors.ErrTooManyConnections):
		return nil, func(w http.ResponseWriter) {
			s.rejections("user_connections").Inc()
			writeError(w, protocol.Errf(protocol.CodeRateLimited, "too many connections for this user"))
		}
	}
	return ticket, nil
}

// upgrade answers 101 on w (which must hijack), and attaches the socket to
// the hub and the poller.
func (s *Server) upgrade(w http.ResponseWriter, r *http.Request, id auth.Identity, ticket *actors.Ticket) {
	netConn, rw, _, err := s.upgrader.Upgrade(r, w)
	// Through the front, the upgrader's answer is held back: the 101 goes
	// out with hello, a refusal at once.
	var preamble []byte
	if fw, ok := w.(*frontWriter); ok && fw.preamble.Len() > 0 {
		preamble = bytes.Clone(fw.preamble.Bytes())
	}
	if err != nil {
		// The upgrader has answered (a malformed subprotocol list); the
		// socket is ours since the hijack, so it is closed here.
		ticket.Release()
		if netConn != nil {
			if preamble != nil {
				netConn.Write(preamble)
			}
			netConn.Close()
		}
		s.log.Info("websocket upgrade", slog.String("request_id", requestID(r)), slog.Any("err", err))
		return
	}
	netConn = unwrapConn(netConn)
	if rc, ok := netConn.(*replayConn); ok && len(rc.prefix) == 0 {
		netConn = rc.Conn // handed over by the front, its bytes all read
	}
	c := &wsConn{conn: netConn, poll: s.poll, owner: &s.goroutines, cfg: s.connConfig(), preamble: preamble}
	if !s.track(c) {
		// Shutdown began during the upgrade and would not wait for it.
		ticket.Release()
		netConn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
		if preamble != nil {
			netConn.Write(preamble)
		}
		ws.WriteFrame(netConn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "server shutting down")))
		netConn.Close()
		return
	}
	if n := rw.Reader.Buffered(); n > 0 {
		b, _ := rw.Reader.Peek(n)
		c.pending = bytes.NewReader(bytes.Clone(b))
	}
	// The actors may close the socket as soon as it is attached, so the
	// close hook learns the attachment through a channel, not a field.
	attachment := make(chan *actors.Conn, 1)
	c.onClosed = func(why string) {
		if hc := <-attachment; hc != nil {
			hc.Close()
		}
		s.disconnects(why).Inc()
		s.untrack(c)
	}
	// From here the socket is read from directly: the HTTP server's buffers
	// are dropped, so an idle connection keeps none.
	hc, err := s.cfg.Hub.Connect(ticket, actors.Identity{UserID: id.UserID, Name: id.Name, Admin: id.IsAdmin()}, c)
	attachment <- hc
	if err != nil {
		s.log.Warn("attach connection", slog.String("request_id", requestID(r)), slog.Any("err", err))
		c.Close(uint16(ws.StatusGoingAway), "server unavailable")
		return
	}
	c.hc = hc
	if err := c.start(); err != nil {
		s.log.Error("watch connection", slog.String("request_id", requestID(r)), slog.Any("err", err))
		c.Close(uint16(ws.StatusInternalServerError), "server error")
	}
}

// checkRequest is what an upgrade must pass before the hub is asked for
// room: the Origin, the token (as authenticate does, with its answers and
// log line), that the server is not shutting down, and the handshake
// itself. It writes nothing: a refusal comes back as the answer to write,
// which counts and logs it, so that the front can hand the request to
// net/http untouched.
func (s *Server) checkRequest(r *http.Request) (auth.Identity, func(http.ResponseWriter)) {
	if origin := first(r.Header["Origin"]); origin != "" && !s.origins[origin] {
		return auth.Identity{}, func(w http.ResponseWriter) {
			s.rejections("origin").Inc()
			s.log.Info("websocket refused: origin not allowed", slog.String("request_id", requestID(r)), slog.String("origin", origin))
			writeError(w, protocol.Err(protocol.CodeForbidden))
		}
	}
	token, _ := auth.BearerToken(r)
	if token == "" {
		return auth.Identity{}, func(w http.ResponseWriter) {
			s.rejections("unauthorized").Inc()
			writeError(w, protocol.Err(protocol.CodeUnauthorized))
		}
	}
	id, err := s.cfg.Verifier.Verify(token)
	if err != nil {
		return auth.Identity{}, func(w http.ResponseWriter) {
			s.rejections("unauthorized").Inc()
			s.log.Info("token refused", slog.String("request_id", requestID(r)), slog.Any("err", err))
			writeError(w, protocol.Err(protocol.CodeUnauthorized))
		}
	}
	if s.closing.Load() {
		return auth.Identity{}, func(w http.ResponseWriter) {
			writeErrorStatus(w, http.StatusServiceUnavailable, protocol.Err(protocol.CodeBusy))
		}
	}
	if status, e := checkHandshake(r); e != nil {
		return auth.Identity{}, func(w http.ResponseWriter) {
			s.rejections("handshake").Inc()
			if status == http.StatusUpgradeRequired {
				w.Header().Set("Sec-WebSocket-Version", "13")
			}
			writeErrorStatus(w, status, e)
		}
	}
	return id, nil
}

// checkHandshake refuses, in CONTRACT §5's JSON shape, what the upgrader
// would refuse in plain text (RFC 6455 §4.2.1): it is checked first so
// that the upgrade itself does not fail. A version other than 13 is 426
// with the version the server speaks.
func checkHandshake(r *http.Request) (int, *protocol.Error) {
	bad := func(msg string) (int, *protocol.Error) {
		return http.StatusBadRequest, protocol.Errf(protocol.CodeBadRequest, "%s", msg)
	}
	switch {
	case r.Method != http.MethodGet:
		return http.StatusMethodNotAllowed, protocol.Errf(protocol.CodeBadRequest, "a WebSocket handshake is a GET")
	case !r.ProtoAtLeast(1, 1):
		return bad("a WebSocket handshake needs HTTP/1.1")
	case !strings.EqualFold(first(r.Header["Upgrade"]), "websocket"):
		return bad("missing Upgrade: websocket")
	case !hasToken(r.Header["Connection"], "upgrade"):
		return bad("missing Connection: Upgrade")
	case len(first(r.Header["Sec-Websocket-Key"])) != 24:
		return bad("missing or malformed Sec-WebSocket-Key")
	}
	switch v := first(r.Header["Sec-Websocket-Version"]); v {
	case "13":
		return 0, nil
	case "":
		return bad("missing Sec-WebSocket-Version")
	}
	return http.StatusUpgradeRequired, protocol.Errf(protocol.CodeBadRequest, "only WebSocket version 13 is supported")
}

// first is a header's first value. The handshake reads its headers by
// their canonical keys straight from the map: Header.Get would canonicalise
// "Sec-WebSocket-Key" into a new string on every request.
func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// hasToken reports whether a comma-separated header holds token, in any case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (s *Server) connConfig() connConfig {
	return connConfig{
		maxBytes: s.cfg.MaxMessageBytes, idle: s.cfg.IdleTimeout, ping: s.cfg.PingInterval,
		writeTimeout: s.cfg.WriteTimeout, readTimeout: s.cfg.WriteTimeout,
	}
}
