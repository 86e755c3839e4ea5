package transport

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/chatbox/chatbox/protocol"
)

// countingSink counts what the reader hands to the hub.
type countingSink struct{ commands, rejects int }

func (s *countingSink) Command(protocol.Command) { s.commands++ }
func (s *countingSink) Reject(string, error)     { s.rejects++ }

// FuzzReadMessage feeds arbitrary client bytes to the frame reader over
// net.Pipe. Whatever arrives, the reader ends or keeps going without
// panicking, and what the server writes back is a sequence of complete,
// unmasked, final frames with at most one close frame, last, carrying a
// code a server may send.
func FuzzReadMessage(f *testing.F) {
	for _, seed := range [][]byte{
		text(`{"type":"ping","id":"1"}`),
		append(textFrag(false, `{"type":`), append(ping("p"), contFrag(true, `"ping"}`)...)...),
		closeBody(1000, "bye"), closeBody(1005, ""), frame(true, 0, ws.OpClose, []byte{3}),
		frame(true, 4, ws.OpText, []byte("rsv")), frame(true, 0, 3, nil), text("\xed\xa0\x80"),
		frame(false, 0, ws.OpPing, []byte("x")), contFrag(true, "orphan"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		defer client.Close()
		closed := make(chan string, 1)
		c := &wsConn{
			conn: server, poll: nopPoller{}, hc: &countingSink{},
			cfg:      connConfig{maxBytes: 4096, idle: time.Hour, ping: time.Hour, writeTimeout: time.Second, readTimeout: 10 * time.Millisecond},
			onClosed: func(why string) { closed <- why },
		}
		var wg sync.WaitGroup
		var out []byte
		wg.Go(func() { out, _ = io.ReadAll(client) }) // what the server writes
		wg.Go(func() {
			client.Write(in)
		})
		for range len(in) + 1 { // each message consumes at least 2 bytes
			if why, stop := c.readMessage(); stop {
				c.end(why)
				break
			}
		}
		c.Close(1000, "") // ends the pipe, and the writers, either way
		wg.Wait()
		<-closed

		rd := bufio.NewReader(&byteReader{b: out})
		for sawClose := false; ; {
			hdr, err := ws.ReadHeader(rd)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("server wrote a broken frame header: %v in %x", err, out)
			}
			if sawClose {
				t.Fatalf("a frame after the close frame: %x", out)
			}
			if hdr.Masked || !hdr.Fin || hdr.Rsv != 0 {
				t.Fatalf("server frame %+v", hdr)
			}
			p := make([]byte, hdr.Length)
			if _, err := io.ReadFull(rd, p); err != nil {
				t.Fatalf("truncated server frame: %x", out)
			}
			if hdr.OpCode == ws.OpClose {
				sawClose = true
				if len(p) < 2 || !sendable(binary.BigEndian.Uint16(p)) {
					t.Fatalf("close payload %x", p)
				}
			}
		}
	})
}

type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
