package transport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/chatbox/chatbox/protocol"
)

// jsonErrorListener gives the few answers net/http writes by itself,
// before any handler runs, CONTRACT §5's JSON error shape: headers over
// MaxHeaderBytes (431) and requests it cannot parse (400, 501). Everything
// else passes through untouched; an upgraded socket is unwrapped
// (unwrapConn) so the WebSocket path keeps writev and the descriptor.
type jsonErrorListener struct{ net.Listener }

func (l jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c}, nil
}

type jsonErrorConn struct{ net.Conn }

// unwrapConn is the socket under a jsonErrorConn.
func unwrapConn(c net.Conn) net.Conn {
	if jc, ok := c.(*jsonErrorConn); ok {
		return jc.Conn
	}
	return c
}

// plainErrorHeaders follow the status line of net/http's own error
// answers, written in one call; a handler's answer never looks like this
// (net/http adds Date to it, and sorts Connection before Content-Type).
const plainErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	status, ok := plainHTTPError(p)
	if !ok {
		return c.Conn.Write(p)
	}
	e := protocol.Err(protocol.CodeBadRequest)
	if status == http.StatusRequestHeaderFieldsTooLarge {
		e = protocol.Errf(protocol.CodeTooLarge, "the request headers are too large")
	}
	body, _ := json.Marshal(errorJSON(e))
	if _, err := fmt.Fprintf(c.Conn, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), len(body), body); err != nil {
		return 0, err
	}
	return len(p), nil
}

// plainHTTPError reports whether p is one of net/http's own error answers,
// and its status.
func plainHTTPError(p []byte) (int, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) || len(p) < len(proto)+3 {
		return 0, false
	}
	eol := bytes.Index(p, []byte("\r\n"))
	if eol < 0 || !bytes.HasPrefix(p[eol:], []byte(plainErrorHeaders)) {
		return 0, false
	}
	status, err := strconv.Atoi(string(p[len(proto) : len(proto)+3]))
	if err != nil || status < 400 {
		return 0, false
	}
	return status, true
}

// errorJSON is CONTRACT §5's JSON error: {"error":{"code","message"}}.
func errorJSON(e *protocol.Error) any {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	return map[string]body{"error": {Code: e.Code, Message: e.Message}}
}
