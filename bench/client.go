package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// sourceSeq spreads client source addresses over 127.1.0.0/16 so that no
// single (source address, destination) pair runs out of ephemeral ports,
// even while closed connections linger in TIME_WAIT during churn.
var sourceSeq atomic.Uint64

func nextSourceIP() net.IP {
	n := sourceSeq.Add(1)
	return net.IPv4(127, 1, byte(1+(n/254)%254), byte(1+n%254))
}

// wsClient is a minimal WebSocket client on gobwas/ws: one socket, an
// optional read buffer, masked writes serialised by a mutex. It is cheap on
// purpose, so the harness measures the server and not itself.
type wsClient struct {
	conn net.Conn
	r    io.Reader // buffered reader; nil once dropped (idle connections)

	wmu  sync.Mutex
	wbuf []byte
}

// dialOptions are what every dial of one run shares.
type dialOptions struct {
	URL     string        // ws://host:port/ws
	Timeout time.Duration // dial + handshake
	ReadBuf int           // bufio size for the read side; 0: 4096
}

// dialWS connects and upgrades with the token as a bearer header.
func dialWS(ctx context.Context, o dialOptions, token string) (*wsClient, error) {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	d := ws.Dialer{
		Header:  ws.HandshakeHeaderHTTP(h),
		Timeout: o.Timeout,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: nextSourceIP()}, Timeout: o.Timeout}
			return nd.DialContext(ctx, network, addr)
		},
	}
	conn, br, _, err := d.Dial(ctx, o.URL)
	if err != nil {
		return nil, err
	}
	size := o.ReadBuf
	if size == 0 {
		size = 4096
	}
	var src io.Reader = conn
	if br != nil {
		// The server's first frames arrived with the handshake response.
		src = io.MultiReader(br, conn)
	}
	return &wsClient{conn: conn, r: bufio.NewReaderSize(src, size)}, nil
}

var errClosedByPeer = errors.New("closed by peer")

// ReadMessage reads the next text or binary message into buf (reused when
// large enough) and returns it. Pings are ignored (the server does not
// require pongs), a close frame ends with errClosedByPeer.
func (c *wsClient) ReadMessage(buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		h, err := ws.ReadHeader(c.r)
		if err != nil {
			return nil, err
		}
		n := int(h.Length)
		if h.OpCode.IsControl() {
			if _, err := io.CopyN(io.Discard, c.r, int64(n)); err != nil {
				return nil, err
			}
			if h.OpCode == ws.OpClose {
				return nil, errClosedByPeer
			}
			continue
		}
		start := len(buf)
		if cap(buf) < start+n {
			nb := make([]byte, start, max(2*cap(buf), start+n))
			copy(nb, buf)
			buf = nb
		}
		buf = buf[:start+n]
		if _, err := io.ReadFull(c.r, buf[start:]); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(buf[start:], h.Mask, 0)
		}
		if h.Fin {
			return buf, nil
		}
	}
}

// WriteText writes one masked text frame with a single write call.
func (c *wsClient) WriteText(p []byte) error { return c.writeFrame(ws.OpText, p) }

func (c *wsClient) writeFrame(op ws.OpCode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	mask := ws.NewMask()
	var hb bytes.Buffer
	hb.Grow(14)
	if err := ws.WriteHeader(&hb, ws.Header{Fin: true, OpCode: op, Masked: true, Mask: mask, Length: int64(len(p))}); err != nil {
		return err
	}
	c.wbuf = append(append(c.wbuf[:0], hb.Bytes()...), p...)
	ws.Cipher(c.wbuf[hb.Len():], mask, 0)
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := c.conn.Write(c.wbuf)
	return err
}

// Ping sends a ping frame (keeps a long idle connection alive on a server
// with a short idle timeout).
func (c *wsClient) Ping() error { return c.writeFrame(ws.OpPing, nil) }

// Close sends a normal close frame and closes the socket.
func (c *wsClient) Close() {
	c.writeFrame(ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	c.conn.Close()
}

// DropReader releases the read buffer of a connection that will only be
// held open (idle scenario), so the harness stays small.
func (c *wsClient) DropReader() { c.r = nil }

// readType returns the "type" of a server frame. Every frame of Chatbox and
// of the baseline starts with {"type":"...".
func readType(frame []byte) string {
	const p = `{"type":"`
	if !bytes.HasPrefix(frame, []byte(p)) {
		return ""
	}
	rest := frame[len(p):]
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// expectHello reads the first frame and checks it is a hello.
func (c *wsClient) expectHello(deadline time.Time) error {
	c.conn.SetReadDeadline(deadline)
	defer c.conn.SetReadDeadline(time.Time{})
	f, err := c.ReadMessage(make([]byte, 0, 512))
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if t := readType(f); t != "hello" {
		return fmt.Errorf("first frame is %q, not hello", t)
	}
	return nil
}

// jsonField returns the raw bytes of the string or number value of key in a
// flat JSON object written by the server (no whitespace, first match wins).
// It is enough for the fields the harness reads and avoids a decoder on the
// hot path.
func jsonField(frame []byte, key string) []byte {
	var pat [64]byte
	p := append(append(append(pat[:0], '"'), key...), '"', ':')
	i := bytes.Index(frame, p)
	if i < 0 {
		return nil
	}
	v := frame[i+len(p):]
	if len(v) > 0 && v[0] == '"' {
		v = v[1:]
		for j := 0; j < len(v); j++ {
			switch v[j] {
			case '\\':
				j++
			case '"':
				return v[:j]
			}
		}
		return nil
	}
	j := 0
	for j < len(v) && v[j] != ',' && v[j] != '}' {
		j++
	}
	return v[:j]
}

func atoi(b []byte) int64 {
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// stampLen is the width of a token's timestamp: "t" and 19 digits of Unix
// nanoseconds.
const stampLen = 20

// eachStamp calls fn with every token timestamp ("t" + 19 digits) in text.
func eachStamp(text []byte, fn func(ns int64)) int {
	n := 0
	for i := 0; i+stampLen <= len(text); {
		if text[i] != 't' {
			i++
			continue
		}
		ns := atoi(text[i+1 : i+stampLen])
		if ns < 0 {
			i++
			continue
		}
		fn(ns)
		n++
		i += stampLen
	}
	return n
}
