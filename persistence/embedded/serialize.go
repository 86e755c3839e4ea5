package embedded

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
)

// maxMessage bounds one wire message, as MongoDB's maxMessageSizeBytes.
const maxMessage = 48_000_000

// serializer sits between clients and FerretDB and forwards one command at
// a time, whichever connection it comes on: a request is read whole, sent,
// and its reply read whole before the next request goes. FerretDB v1
// carries out an update as a query followed by a write of the whole
// document, outside any transaction, so two commands on one document at
// once lose one of them: a conditional update is no fence (both writers
// match) and a $set racing an $inc drops one. MongoDB applies each
// single-document write atomically; serializing commands gives FerretDB
// that property, which the Store contract's fences rely on.
//
// It relies on the driver's request/reply exchange: FerretDB supports
// neither exhaust cursors nor moreToCome, and its hello has no
// topologyVersion, so there are no awaitable hellos holding the lock.
//
// The accept loop and one goroutine per connection are counted in wg; close
// stops them and waits.
type serializer struct {
	ln       net.Listener
	upstream string // FerretDB's address

	cmdMu sync.Mutex // held for each request and its reply: one command at a time

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // open client and upstream connections; guarded by mu
	closed bool                  // guarded by mu
	wg     sync.WaitGroup
}

func newSerializer(upstream string) (*serializer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &serializer{ln: ln, upstream: upstream, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.accept)
	return s, nil
}

func (s *serializer) addr() string { return s.ln.Addr().String() }

func (s *serializer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		if !s.track(c) {
			return
		}
		s.wg.Go(func() { s.serve(c) })
	}
}

// track records an open connection, or closes it and reports false once
// the serializer is closing.
func (s *serializer) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *serializer) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	c.Close()
}

// serve forwards the requests of client c until either side closes.
func (s *serializer) serve(c net.Conn) {
	defer s.untrack(c)
	u, err := net.Dial("tcp", s.upstream)
	if err != nil || !s.track(u) {
		return
	}
	defer s.untrack(u)
	for {
		req, err := readMessage(c)
		if err != nil {
			return
		}
		if !s.exchange(u, req, c) {
			return
		}
	}
}

// exchange sends req upstream and its reply to c, holding cmdMu until the
// reply is in.
func (s *serializer) exchange(u net.Conn, req []byte, c net.Conn) bool {
	s.cmdMu.Lock()
	_, err := u.Write(req)
	var reply []byte
	if err == nil {
		reply, err = readMessage(u)
	}
	s.cmdMu.Unlock()
	if err != nil {
		return false
	}
	_, err = c.Write(reply)
	return err == nil
}

// readMessage reads one wire message: its first four bytes are its whole
// length, little-endian.
func readMessage(r io.Reader) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(head[:])
	if n < 16 || n > maxMessage {
		return nil, fmt.Errorf("wire message of %d bytes", n)
	}
	msg := make([]byte, n)
	copy(msg, head[:])
	if _, err := io.ReadFull(r, msg[4:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// close stops accepting, closes every connection and waits for the
// goroutines. It is safe to call more than once.
func (s *serializer) close() {
	s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
