package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The front: WebSocket upgrades without net/http on the socket path.
//
// Every client connects by a WebSocket upgrade, and through net/http one
// costs a goroutine it starts to read ahead (stopped again by Hijack with a
// deadline in the past and a wait for it), its buffers, a context and a
// request id header nobody sees. The front accepts the sockets itself,
// reads the first request of each (its strict form only: parseHead), and
// when it is a plain handshake for the WebSocket route
// that passes every check (checkRequest and Admit, as handleWS makes them)
// upgrades it on the spot. Anything else — another route, a request that
// would be refused, an unusual request (a body, non-ASCII or control bytes
// in the head, a head longer than maxFrontHead or MaxHeaderBytes, a Host
// not plainly valid) — is handed to net/http untouched: the bytes read so
// far are replayed in front of the socket, so net/http reads the same
// request and gives the same answer as before, refusals in CONTRACT §5's
// JSON shape included.

// maxFrontHead bounds what the front reads of a request before it decides:
// net/http's first read (its 4 KiB bufio.Reader) takes all of it back.
const maxFrontHead = 4096

// frontListener accepts the TCP sockets, gives each to Server.front on a
// goroutine of the server's group, and is itself the listener net/http
// serves: Accept returns the sockets the front hands over.
type frontListener struct {
	net.Listener // the TCP listener
	s            *Server
	handed       chan net.Conn
	done         chan struct{}
	closeOnce    sync.Once

	mu      sync.Mutex
	reading map[net.Conn]struct{} // sockets the front is reading a request from
	closed  bool
}

func newFrontListener(s *Server, ln net.Listener) *frontListener {
	return &frontListener{Listener: ln, s: s, handed: make(chan net.Conn), done: make(chan struct{}), reading: map[net.Conn]struct{}{}}
}

// Accept returns the next socket handed to net/http.
func (l *frontListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.handed:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and closes the sockets whose first request has
// not arrived whole: net/http's Shutdown, which calls it, would close them
// as idle too. Idempotent.
func (l *frontListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
		l.mu.Lock()
		l.closed = true
		for c := range l.reading {
			c.Close()
		}
		l.mu.Unlock()
	})
	return err
}

// run accepts until the listener is closed, backing off on errors as
// net/http does (a full descriptor table should not spin).
func (l *frontListener) run() {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.s.log.Warn("accept", slog.Any("err", err), slog.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
				continue
			case <-l.done:
				return
			}
		}
		backoff = 0
		if !l.track(c) || !l.s.goroutines.Go(func() { l.s.front(l, c) }) {
			l.untrack(c)
			c.Close()
		}
	}
}

func (l *frontListener) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.reading[c] = struct{}{}
	return true
}

func (l *frontListener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.reading, c)
	l.mu.Unlock()
}

// handOver gives c, with the bytes already read from it, to net/http.
func (l *frontListener) handOver(c net.Conn, read []byte) {
	var rc net.Conn = c
	if len(read) > 0 {
		rc = &replayConn{Conn: c, prefix: read}
	}
	select {
	case l.handed <- rc:
	case <-l.done:
		c.Close()
	}
}

// replayConn reads prefix before the socket.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (c *replayConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// frontState is the front's buffers for one socket, pooled.
type frontState struct {
	read []byte // every byte read from the socket, up to maxFrontHead
	more bytes.Reader
	br   *bufio.Reader // what followed the head, for the upgrade
	bw   *bufio.Writer
	// preamble catches what the upgrader writes (the 101), which goes out
	// with the connection's first frame (wsConn.preamble).
	preamble bytes.Buffer
}

var frontStates = sync.Pool{New: func() any {
	return &frontState{read: make([]byte, 0, maxFrontHead), br: bufio.NewReaderSize(nil, maxFrontHead), bw: bufio.NewWriterSize(nil, 512)}
}}

// front reads c's first request and upgrades it, hands c to net/http, or
// closes it (read timeout, reset, closed before a byte: net/http closes
// those without an answer too).
func (s *Server) front(l *frontListener, c net.Conn) {
	st := frontStates.Get().(*frontState)
	c.SetReadDeadline(time.Now().Add(s.cfg.HTTPReadTimeout))
	head, err := readHead(c, &st.read)
	l.untrack(c)
	switch {
	case err != nil && quietReadError(err, len(st.read)):
		c.Close()
		s.putFrontState(st, true)
		return
	case err != nil:
		s.handOver(l, c, st)
		return
	}
	r, ok := parseHead(st.read[:head])
	if !ok || !s.frontable(r, st.read[:head]) {
		s.handOver(l, c, st)
		return
	}
	id, refuse := s.checkRequest(r)
	if refuse != nil {
		s.handOver(l, c, st)
		return
	}
	ticket, refuse := s.admit(id)
	if refuse != nil {
		s.handOver(l, c, st)
		return
	}
	r.RemoteAddr = c.RemoteAddr().String()
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, newRequestID()))
	// Bytes behind the head (frames sent with the handshake) reach the
	// upgrade as the reader's buffered bytes, as net/http's would.
	st.more.Reset(st.read[head:])
	st.br.Reset(&st.more)
	st.br.Peek(len(st.read) - head)
	st.preamble.Reset()
	st.bw.Reset(&st.preamble)
	s.frontUpgrades.Add(1)
	s.upgrade(&frontWriter{conn: c, rw: bufio.NewReadWriter(st.br, st.bw), preamble: &st.preamble}, r, id, ticket)
	s.putFrontState(st, true)
}

// handOver gives c to net/http with what was read from it.
func (s *Server) handOver(l *frontListener, c net.Conn, st *frontState) {
	read := st.read
	s.putFrontState(st, false) // read now belongs to the socket
	l.handOver(c, read)
}

// errFrontHead: the head is longer than the front reads, or does not end
// in CRLF CRLF.
var errFrontHead = errors.New("request head the front does not read")

// readHead reads from c into *read until the head's end, CRLF CRLF, and
// returns its length. A head that ends otherwise (bare LF) or does not
// fit in maxFrontHead is errFrontHead.
func readHead(c net.Conn, read *[]byte) (int, error) {
	b := (*read)[:0]
	defer func() { *read = b }()
	for {
		if i := bytes.Index(b, []byte("\n\r\n")); i >= 0 {
			if j := bytes.Index(b, []byte("\n\n")); j >= 0 && j < i {
				return 0, errFrontHead
			}
			return i + 3, nil
		}
		if bytes.Contains(b, []byte("\n\n")) || len(b) == cap(b) {
			return 0, errFrontHead
		}
		n, err := c.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			return 0, err
		}
	}
}

// canonicalKeys are the header names of a browser's handshake, by which
// parseHead files them without building a canonical key.
var canonicalKeys = [...]string{
	"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol",
	"Sec-Websocket-Extensions", "Origin", "Authorization", "User-Agent", "Accept-Encoding", "Accept-Language",
	"Cache-Control", "Pragma", "Cookie", "Accept",
}

// parseHead parses a request head ending in CRLF CRLF into a request as
// http.ReadRequest would, for the strict form only: "GET <origin-form>
// HTTP/1.1", header lines "Name: value" ending in CRLF, no folding, one
// Host. It reports false for anything else, which net/http then parses.
func parseHead(b []byte) (*http.Request, bool) {
	head := string(b) // one string: the values are substrings of it
	line, rest, _ := strings.Cut(head, "\r\n")
	if !plainText(line) || strings.IndexByte(line, '\t') >= 0 { // a URL takes no tab
		return nil, false
	}
	target, ok := strings.CutPrefix(line, "GET ")
	if !ok {
		return nil, false
	}
	target, ok = strings.CutSuffix(target, " HTTP/1.1")
	if !ok || target == "" || target[0] != '/' || strings.IndexByte(target, ' ') >= 0 {
		return nil, false
	}
	path, query, _ := strings.Cut(target, "?")
	if !plainPath(path) {
		return nil, false // escapes and the like: net/url decides
	}
	r := &http.Request{
		Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: query}, RequestURI: target,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, 8), Body: http.NoBody,
	}
	// One backing array for the values, as textproto does: a header's
	// first value is a one-element slice of it.
	strs := make([]string, strings.Count(rest, "\r\n"))
	hosts := 0
	for {
		line, rest, ok = strings.Cut(rest, "\r\n")
		if !ok {
			return nil, false
		}
		if line == "" {
			break
		}
		if !plainText(line) {
			return nil, false // a bare CR or LF, a control or non-ASCII byte
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !fieldName(name) {
			return nil, false // also a folded line, which starts with a space
		}
		value = strings.Trim(value, " \t")
		if strings.EqualFold(name, "Host") {
			hosts++
			r.Host = value
			continue
		}
		key := ""
		for _, k := range canonicalKeys {
			if strings.EqualFold(name, k) {
				key = k
				break
			}
		}
		if key == "" {
			key = textproto.CanonicalMIMEHeaderKey(name)
		}
		if vs, ok := r.Header[key]; ok {
			r.Header[key] = append(vs, value)
		} else {
			strs[0] = value
			r.Header[key], strs = strs[:1:1], strs[1:]
		}
	}
	if hosts != 1 || rest != "" {
		return nil, false
	}
	r.Close = hasToken(r.Header["Connection"], "close")
	return r, true
}

func (s *Server) putFrontState(st *frontState, keepRead bool) {
	if keepRead {
		st.read = st.read[:0]
	} else {
		st.read = make([]byte, 0, maxFrontHead)
	}
	st.more.Reset(nil)
	st.br.Reset(nil)
	st.bw.Reset(nil)
	frontStates.Put(st)
}

// quietReadError: the socket timed out, failed, or ended before sending a
// byte; net/http closes such a connection without answering.
func quietReadError(err error, read int) bool {
	if err == nil || errors.Is(err, errFrontHead) {
		return false
	}
	if err == io.EOF {
		return read == 0
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "read"
}

// frontable reports whether r, whose head is head, is a request the front
// may serve: a GET of exactly the WebSocket route in origin form, HTTP/1.1,
// one plainly valid Host, no body, a head of printable ASCII within
// MaxHeaderBytes, header names that are tokens. Every other request goes to net/http, which knows the
// rest of HTTP.
func (s *Server) frontable(r *http.Request, head []byte) bool {
	if r.Method != http.MethodGet || r.ProtoMajor != 1 || r.ProtoMinor != 1 ||
		r.URL.Path != s.cfg.PathPrefix+"/ws" || r.URL.RawPath != "" || r.URL.Host != "" || r.URL.Scheme != "" ||
		len(head) > s.cfg.MaxHeaderBytes || r.ContentLength != 0 || len(r.TransferEncoding) != 0 || r.Close {
		return false
	}
	for _, k := range [...]string{"Content-Length", "Transfer-Encoding", "Expect", "Trailer"} {
		if _, ok := r.Header[k]; ok {
			return false
		}
	}
	if !plainHost(r.Host) { // ReadRequest took the one Host header out
		return false
	}
	for _, b := range head {
		if (b < 0x20 || b > 0x7e) && b != '\r' && b != '\n' && b != '\t' {
			return false
		}
	}
	for k := range r.Header {
		if !fieldName(k) {
			return false
		}
	}
	return true
}

// fieldName: an RFC 9110 token, as net/http's server requires of a header
// name.
func fieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// plainHost: a host[:port] of letters, digits and "-._:[]" only, which
// net/http's server accepts as a Host header.
func plainHost(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// plainText: printable ASCII and tabs only.
func plainText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 || c > 0x7e) && c != '\t' {
			return false
		}
	}
	return true
}

// plainPath: letters, digits, "-._~" and "/" only, which net/url takes as
// they are (no escape, no RawPath).
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '/':
		default:
			return false
		}
	}
	return true
}

// frontWriter is the http.ResponseWriter of a request the front upgrades:
// it only hijacks, which is all the upgrader asks of it.
type frontWriter struct {
	conn     net.Conn
	rw       *bufio.ReadWriter
	preamble *bytes.Buffer // what the upgrader wrote through rw, not yet sent
	header   http.Header
}

func (w *frontWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *frontWriter) Write([]byte) (int, error) { return 0, http.ErrHijacked }
func (w *frontWriter) WriteHeader(int)           {}

func (w *frontWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) { return w.conn, w.rw, nil }
