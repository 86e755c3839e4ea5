package transport

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// The Autobahn|Testsuite categories 1–7 (framing, pings and pongs,
// reserved bits, opcodes, fragmentation, UTF-8, close handling), re-expressed
// as hand-built frames over a raw socket to the real server: one row per
// Autobahn case id. Autobahn's fuzzing client expects an echo server; this
// server answers JSON commands, so where Autobahn expects an echo a row
// sends a `ping` command (answered by a `pong` event) or text that is not a
// command (answered by an `error` event, the connection staying open). An
// event answering a frame that comes right before a close or a protocol
// error may be overtaken by the close (the actors answer commands, the
// reader answers close); such rows mark it maybe.
//
// Rows 5.6–5.8, 5.19–5.20, 7.1.5, 7.3.2, 7.5.1, 7.9.x and 7.13.x failed
// before close codes were validated and control frames between fragments
// were handled (verified on the parent of the commit adding this file).

// abWrite is bytes the client writes, in chunks of chunk bytes (0: at
// once) with pause before each chunk, as Autobahn's "in chops" and
// "octet-wise" variants do.
type abWrite struct {
	b     []byte
	chunk int
	pause time.Duration
}

// abFrame is a frame the server must send: a control frame with payload,
// or an event of type typ (with id, when set).
type abFrame struct {
	op      ws.OpCode
	payload string
	typ, id string
	maybe   bool // may be overtaken by the close that follows
}

type abCase struct {
	id, name string
	send     []abWrite
	want     []abFrame
	// close is the code of the server's close frame, after which the
	// server ends the stream; 0 means the connection stays open, which a
	// ping command answered next proves.
	close uint16
}

// Frame builders: a client's frames are masked.
func frame(fin bool, rsv byte, op ws.OpCode, payload []byte) []byte {
	var b bytes.Buffer
	f := ws.Frame{Header: ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Length: int64(len(payload))}, Payload: bytes.Clone(payload)}
	ws.WriteFrame(&b, ws.MaskFrameInPlace(f))
	return b.Bytes()
}

func text(p string) []byte               { return frame(true, 0, ws.OpText, []byte(p)) }
func textFrag(fin bool, p string) []byte { return frame(fin, 0, ws.OpText, []byte(p)) }
func contFrag(fin bool, p string) []byte { return frame(fin, 0, ws.OpContinuation, []byte(p)) }
func ping(p string) []byte               { return frame(true, 0, ws.OpPing, []byte(p)) }
func pong(p string) []byte               { return frame(true, 0, ws.OpPong, []byte(p)) }
func closeBody(code uint16, reason string) []byte {
	b := binary.BigEndian.AppendUint16(nil, code)
	return frame(true, 0, ws.OpClose, append(b, reason...))
}

// pingCmd is a ping command of exactly n bytes (n ≥ len of the bare
// command), padded with JSON whitespace.
func pingCmd(id string, n int) string {
	s := `{"type":"ping","id":"` + id + `"}`
	return s + strings.Repeat(" ", max(0, n-len(s)))
}

func w(parts ...[]byte) abWrite { return abWrite{b: bytes.Join(parts, nil)} }
func chops(chunk int, pause time.Duration, parts ...[]byte) abWrite {
	return abWrite{b: bytes.Join(parts, nil), chunk: chunk, pause: pause}
}

func pongOf(p string) abFrame       { return abFrame{op: ws.OpPong, payload: p} }
func event(typ, id string) abFrame  { return abFrame{op: ws.OpText, typ: typ, id: id} }
func maybe(f abFrame) abFrame       { f.maybe = true; return f }
func notCommand() abFrame           { return event("error", "") }
func closeFrame(code uint16) []byte { return closeBody(code, "") }

const (
	closeNormal   uint16 = 1000
	closeProtocol uint16 = 1002
	closeUTF8     uint16 = 1007
	closeTooBig   uint16 = 1009
)

func autobahnCases() []abCase {
	const pause = time.Millisecond
	var cs []abCase
	add := func(c ...abCase) { cs = append(cs, c...) }

	// 1 Framing: text and binary messages of the lengths around each
	// header length boundary.
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536, 65536} {
		id := fmt.Sprintf("1.1.%d", i+1)
		c := abCase{id: id, name: fmt.Sprintf("text message of %d bytes", n)}
		if n == 0 {
			c.send, c.want = []abWrite{w(text(""))}, []abFrame{notCommand()}
		} else {
			c.send, c.want = []abWrite{w(text(pingCmd(id, n)))}, []abFrame{event("pong", id)}
		}
		if i == 7 {
			c.name += " written in chops of 997"
			c.send[0].chunk = 997
		}
		add(c)
	}
	for i, n := range []int{0, 125, 126, 127, 128, 65535, 65536, 65536} {
		c := abCase{id: fmt.Sprintf("1.2.%d", i+1), name: fmt.Sprintf("binary message of %d bytes", n),
			send: []abWrite{w(frame(true, 0, ws.OpBinary, bytes.Repeat([]byte{0xfe}, n)))}, want: []abFrame{notCommand()}}
		if i == 7 {
			c.name += " written in chops of 997"
			c.send[0].chunk = 997
		}
		add(c)
	}
	add(abCase{id: "1.1.x", name: "text message over max_message_bytes closes 1009",
		send: []abWrite{w(text(pingCmd("big", 65537)))}, close: closeTooBig})

	// 2 Pings and pongs.
	binPayload := string([]byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff})
	p125 := strings.Repeat("\xfe", 125)
	var tenPings [][]byte
	var tenPongs []abFrame
	for i := range 10 {
		p := fmt.Sprintf("payload-%d", i)
		tenPings = append(tenPings, ping(p))
		tenPongs = append(tenPongs, pongOf(p))
	}
	add(
		abCase{id: "2.1", name: "ping without payload", send: []abWrite{w(ping(""))}, want: []abFrame{pongOf("")}},
		abCase{id: "2.2", name: "ping with text payload", send: []abWrite{w(ping("Hello, world!"))}, want: []abFrame{pongOf("Hello, world!")}},
		abCase{id: "2.3", name: "ping with binary payload", send: []abWrite{w(ping(binPayload))}, want: []abFrame{pongOf(binPayload)}},
		abCase{id: "2.4", name: "ping with 125 bytes", send: []abWrite{w(ping(p125))}, want: []abFrame{pongOf(p125)}},
		abCase{id: "2.5", name: "ping with 126 bytes fails", send: []abWrite{w(ping(p125 + "x"))}, close: closeProtocol},
		abCase{id: "2.6", name: "ping with 125 bytes written octet-wise", send: []abWrite{chops(1, 0, ping(p125))}, want: []abFrame{pongOf(p125)}},
		abCase{id: "2.7", name: "unsolicited pong without payload", send: []abWrite{w(pong(""))}},
		abCase{id: "2.8", name: "unsolicited pong with payload", send: []abWrite{w(pong("unsolicited pong payload"))}},
		abCase{id: "2.9", name: "unsolicited pong then ping", send: []abWrite{w(pong("unsolicited pong payload"), ping("ping payload"))}, want: []abFrame{pongOf("ping payload")}},
		abCase{id: "2.10", name: "10 pings", send: []abWrite{w(tenPings...)}, want: tenPongs},
		abCase{id: "2.11", name: "10 pings written octet-wise", send: []abWrite{chops(1, 0, tenPings...)}, want: tenPongs},
	)

	// 3 Reserved bits: no extension is negotiated, so any RSV bit fails.
	hello := text(pingCmd("hello", 0))
	add(
		abCase{id: "3.1", name: "text with RSV=1", send: []abWrite{w(frame(true, 4, ws.OpText, []byte("Hello, world!")))}, close: closeProtocol},
		abCase{id: "3.2", name: "text, text with RSV=2, ping", send: []abWrite{w(hello, frame(true, 2, ws.OpText, []byte("Hello, world!")), ping(""))},
			want: []abFrame{maybe(event("pong", "hello"))}, close: closeProtocol},
		abCase{id: "3.3", name: "text, text with RSV=3, ping, frame-wise", send: []abWrite{w(hello), w(frame(true, 3, ws.OpText, []byte("Hello, world!"))), w(ping(""))},
			want: []abFrame{maybe(event("pong", "hello"))}, close: closeProtocol},
		abCase{id: "3.4", name: "text, text with RSV=4, ping, octet-wise", send: []abWrite{chops(1, 0, hello, frame(true, 4, ws.OpText, []byte("Hello, world!")), ping(""))},
			want: []abFrame{maybe(event("pong", "hello"))}, close: closeProtocol},
		abCase{id: "3.5", name: "binary with RSV=5", send: []abWrite{w(frame(true, 5, ws.OpBinary, []byte{0xff, 0xfe}))}, close: closeProtocol},
		abCase{id: "3.6", name: "ping with RSV=6", send: []abWrite{w(frame(true, 6, ws.OpPing, []byte("Hello, world!")))}, close: closeProtocol},
		abCase{id: "3.7", name: "close with RSV=7", send: []abWrite{w(frame(true, 7, ws.OpClose, nil))}, close: closeProtocol},
	)

	// 4 Opcodes: reserved non-control (3–7) and control (11–15) opcodes fail.
	for i, op := range []ws.OpCode{3, 4, 5, 6, 7} {
		add(reservedOpcode(fmt.Sprintf("4.1.%d", i+1), op, i, hello))
	}
	for i, op := range []ws.OpCode{11, 12, 13, 14, 15} {
		add(reservedOpcode(fmt.Sprintf("4.2.%d", i+1), op, i, hello))
	}

	// 5 Fragmentation.
	first, second := `{"type":"ping",`, `"id":"frag"}`
	fragments := func(between ...[]byte) []byte {
		return bytes.Join([][]byte{textFrag(false, first), bytes.Join(between, nil), contFrag(true, second)}, nil)
	}
	orphans := func(fin bool) []byte {
		return bytes.Join([][]byte{contFrag(fin, "fragment1"), textFrag(false, "fragment2"), contFrag(true, "fragment3")}, nil)
	}
	five := [][]byte{textFrag(false, `{"type"`), ping("pongme 1!"), contFrag(false, `:"ping"`), contFrag(false, `,"id"`),
		contFrag(false, `:"five"`), ping("pongme 2!"), contFrag(true, `}`)}
	add(
		abCase{id: "5.1", name: "ping in 2 fragments fails", send: []abWrite{w(frame(false, 0, ws.OpPing, []byte("fragment1")), contFrag(true, "fragment2"))}, close: closeProtocol},
		abCase{id: "5.2", name: "pong in 2 fragments fails", send: []abWrite{w(frame(false, 0, ws.OpPong, []byte("fragment1")), contFrag(true, "fragment2"))}, close: closeProtocol},
		abCase{id: "5.3", name: "text in 2 fragments", send: []abWrite{w(fragments())}, want: []abFrame{event("pong", "frag")}},
		abCase{id: "5.4", name: "text in 2 fragments, frame-wise", send: []abWrite{w(textFrag(false, first)), w(contFrag(true, second))}, want: []abFrame{event("pong", "frag")}},
		abCase{id: "5.5", name: "text in 2 fragments, octet-wise with pauses", send: []abWrite{chops(1, pause, fragments())}, want: []abFrame{event("pong", "frag")}},
		abCase{id: "5.6", name: "ping between fragments", send: []abWrite{w(fragments(ping("ping payload")))}, want: []abFrame{pongOf("ping payload"), event("pong", "frag")}},
		abCase{id: "5.7", name: "ping between fragments, frame-wise", send: []abWrite{w(textFrag(false, first)), w(ping("ping payload")), w(contFrag(true, second))},
			want: []abFrame{pongOf("ping payload"), event("pong", "frag")}},
		abCase{id: "5.8", name: "ping between fragments, octet-wise with pauses", send: []abWrite{chops(1, pause, fragments(ping("ping payload")))},
			want: []abFrame{pongOf("ping payload"), event("pong", "frag")}},
		abCase{id: "5.9", name: "continuation with FIN and no message fails", send: []abWrite{w(orphans(true), ping(""))}, close: closeProtocol},
		abCase{id: "5.10", name: "continuation with FIN and no message fails, frame-wise", send: []abWrite{w(contFrag(true, "fragment1")), w(textFrag(false, "fragment2"))}, close: closeProtocol},
		abCase{id: "5.11", name: "continuation with FIN and no message fails, octet-wise", send: []abWrite{chops(1, 0, orphans(true))}, close: closeProtocol},
		abCase{id: "5.12", name: "continuation without FIN and no message fails", send: []abWrite{w(orphans(false), ping(""))}, close: closeProtocol},
		abCase{id: "5.13", name: "continuation without FIN and no message fails, frame-wise", send: []abWrite{w(contFrag(false, "fragment1")), w(textFrag(false, "fragment2"))}, close: closeProtocol},
		abCase{id: "5.14", name: "continuation without FIN and no message fails, octet-wise", send: []abWrite{chops(1, 0, orphans(false))}, close: closeProtocol},
		abCase{id: "5.15", name: "a message, then a continuation that starts none", send: []abWrite{w(fragments(), contFrag(false, "fragment3"), contFrag(true, "fragment4"))},
			want: []abFrame{maybe(event("pong", "frag"))}, close: closeProtocol},
		abCase{id: "5.16", name: "continuation, text, continuation, twice", send: []abWrite{w(orphans(false), orphans(false))}, close: closeProtocol},
		abCase{id: "5.17", name: "continuation with FIN, text, continuation, twice", send: []abWrite{w(orphans(true), orphans(true))}, close: closeProtocol},
		abCase{id: "5.18", name: "text without FIN, then a new text", send: []abWrite{w(textFrag(false, "fragment1"), textFrag(true, "fragment2"))}, close: closeProtocol},
		abCase{id: "5.19", name: "5 fragments with 2 pings between, with pauses", send: pausedWrites(100*pause, five),
			want: []abFrame{pongOf("pongme 1!"), pongOf("pongme 2!"), event("pong", "five")}},
		abCase{id: "5.20", name: "5 fragments with 2 pings between, octet-wise", send: []abWrite{chops(1, 0, five...)},
			want: []abFrame{pongOf("pongme 1!"), pongOf("pongme 2!"), event("pong", "five")}},
	)

	// 6 UTF-8 handling.
	valid := "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!"
	kosme := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	bad := kosme + "\xed\xa0\x80" + "edited"
	add(
		abCase{id: "6.1.1", name: "empty text", send: []abWrite{w(text(""))}, want: []abFrame{notCommand()}},
		abCase{id: "6.1.2", name: "empty text in 3 empty fragments", send: []abWrite{w(textFrag(false, ""), contFrag(false, ""), contFrag(true, ""))}, want: []abFrame{notCommand()}},
		abCase{id: "6.1.3", name: "text of empty, non-empty, empty fragments", send: []abWrite{w(textFrag(false, ""), contFrag(false, "middle frame payload"), contFrag(true, ""))}, want: []abFrame{notCommand()}},
		abCase{id: "6.2.1", name: "valid UTF-8 in one fragment", send: []abWrite{w(text(valid))}, want: []abFrame{notCommand()}},
		abCase{id: "6.2.2", name: "valid UTF-8 in 2 fragments split at a code point", send: []abWrite{w(textFrag(false, valid[:12]), contFrag(true, valid[12:]))}, want: []abFrame{notCommand()}},
		abCase{id: "6.2.3", name: "valid UTF-8 in 1-byte fragments", send: []abWrite{w(byteFragments(valid))}, want: []abFrame{notCommand()}},
		abCase{id: "6.2.4", name: "valid multi-byte UTF-8 in 1-byte fragments", send: []abWrite{w(byteFragments(kosme))}, want: []abFrame{notCommand()}},
		abCase{id: "6.3.1", name: "invalid UTF-8 in one fragment", send: []abWrite{w(text(bad))}, close: closeUTF8},
		abCase{id: "6.3.2", name: "invalid UTF-8 in 1-byte fragments", send: []abWrite{w(byteFragments(bad))}, close: closeUTF8},
		abCase{id: "6.4.1", name: "invalid code point in the middle fragment", send: []abWrite{w(textFrag(false, kosme), contFrag(false, "\xf4\x90\x80\x80")), {b: contFrag(true, "edited"), pause: 10 * pause}}, close: closeUTF8},
		abCase{id: "6.4.2", name: "invalid code point across fragments", send: []abWrite{w(textFrag(false, kosme+"\xf4"), contFrag(false, "\x90")), {b: contFrag(true, "\x80\x80edited"), pause: 10 * pause}}, close: closeUTF8},
		abCase{id: "6.4.3", name: "invalid code point in one frame written in 3 chops", send: chopped(text(kosme+"\xf4\x90\x80\x80edited"), 10*pause), close: closeUTF8},
		abCase{id: "6.4.4", name: "invalid code point in one frame written octet-wise", send: []abWrite{chops(1, 0, text(kosme+"\xf4\x90\x80\x80edited"))}, close: closeUTF8},
	)
	for i, group := range utf8Sequences() {
		for j, s := range group {
			c := abCase{id: fmt.Sprintf("6.%d.%d", i+5, j+1), send: []abWrite{w(text(s))}}
			shown := fmt.Sprintf("%x", s)
			if len(shown) > 24 {
				shown = shown[:24] + "…"
			}
			if utf8.ValidString(s) {
				c.name, c.want = "valid UTF-8 "+shown, []abFrame{notCommand()}
			} else {
				c.name, c.close = "invalid UTF-8 "+shown, closeUTF8
			}
			add(c)
		}
	}

	// 7 Close handling.
	reason123 := strings.Repeat("*", 123)
	add(
		abCase{id: "7.1.1", name: "text then close", send: []abWrite{w(hello, closeFrame(1000))}, want: []abFrame{maybe(event("pong", "hello"))}, close: closeNormal},
		abCase{id: "7.1.2", name: "close twice", send: []abWrite{w(closeFrame(1000), closeFrame(1000))}, close: closeNormal},
		abCase{id: "7.1.3", name: "ping after close is not answered", send: []abWrite{w(closeFrame(1000), ping("after close"))}, close: closeNormal},
		abCase{id: "7.1.4", name: "text after close is not answered", send: []abWrite{w(closeFrame(1000), hello)}, close: closeNormal},
		abCase{id: "7.1.5", name: "close between fragments", send: []abWrite{w(textFrag(false, first), closeFrame(1000), contFrag(true, second))}, close: closeNormal},
		abCase{id: "7.1.6", name: "large text, close, ping", send: []abWrite{w(text(pingCmd("large", 60000)), closeFrame(1000), ping(""))},
			want: []abFrame{maybe(event("pong", "large"))}, close: closeNormal},
		abCase{id: "7.3.1", name: "close without payload", send: []abWrite{w(frame(true, 0, ws.OpClose, nil))}, close: closeNormal},
		abCase{id: "7.3.2", name: "close with a 1-byte payload", send: []abWrite{w(frame(true, 0, ws.OpClose, []byte{0x03}))}, close: closeProtocol},
		abCase{id: "7.3.3", name: "close 1000 without reason", send: []abWrite{w(closeFrame(1000))}, close: closeNormal},
		abCase{id: "7.3.4", name: "close 1000 with reason", send: []abWrite{w(closeBody(1000, "Hello World!"))}, close: closeNormal},
		abCase{id: "7.3.5", name: "close 1000 with a 123-byte reason", send: []abWrite{w(closeBody(1000, reason123))}, close: closeNormal},
		abCase{id: "7.3.6", name: "close with a 124-byte reason fails", send: []abWrite{w(closeBody(1000, reason123+"*"))}, close: closeProtocol},
		abCase{id: "7.5.1", name: "close reason not UTF-8", send: []abWrite{w(closeBody(1000, kosme+"\xed\xa0\x80edited"))}, close: closeUTF8},
	)
	for i, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		add(abCase{id: fmt.Sprintf("7.7.%d", i+1), name: fmt.Sprintf("valid close code %d is echoed", code), send: []abWrite{w(closeFrame(code))}, close: code})
	}
	for _, code := range []uint16{1012, 1013, 1014} { // registered with IANA after RFC 6455
		add(abCase{id: "7.7.x", name: fmt.Sprintf("valid close code %d is echoed", code), send: []abWrite{w(closeFrame(code))}, close: code})
	}
	for i, code := range []uint16{0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999} {
		add(abCase{id: fmt.Sprintf("7.9.%d", i+1), name: fmt.Sprintf("invalid close code %d fails", code), send: []abWrite{w(closeFrame(code))}, close: closeProtocol})
	}
	add(abCase{id: "7.9.x", name: "close code 1015 fails", send: []abWrite{w(closeFrame(1015))}, close: closeProtocol})
	for i, code := range []uint16{5000, 65535} {
		add(abCase{id: fmt.Sprintf("7.13.%d", i+1), name: fmt.Sprintf("close code %d out of range fails", code), send: []abWrite{w(closeFrame(code))}, close: closeProtocol})
	}
	return cs
}

// reservedOpcode is Autobahn's 4.x.y: the first two rows send the opcode
// alone, the others a text first and a ping after it.
func reservedOpcode(id string, op ws.OpCode, i int, hello []byte) abCase {
	c := abCase{id: id, name: fmt.Sprintf("reserved opcode %d fails", op), close: closeProtocol}
	switch i {
	case 0:
		c.send = []abWrite{w(frame(true, 0, op, nil))}
	case 1:
		c.send = []abWrite{w(frame(true, 0, op, []byte("reserved opcode payload")))}
	default:
		c.name += " after a text, before a ping"
		c.send = []abWrite{w(hello, frame(true, 0, op, []byte("reserved opcode payload")), ping(""))}
		c.want = []abFrame{maybe(event("pong", "hello"))}
	}
	return c
}

// byteFragments is s as a text message of 1-byte fragments.
func byteFragments(s string) []byte {
	var b []byte
	for i := range len(s) {
		if i == 0 {
			b = append(b, textFrag(len(s) == 1, s[:1])...)
			continue
		}
		b = append(b, contFrag(i == len(s)-1, s[i:i+1])...)
	}
	return b
}

// pausedWrites writes each frame on its own, pause apart.
func pausedWrites(pause time.Duration, frames [][]byte) []abWrite {
	var ws []abWrite
	for _, f := range frames {
		ws = append(ws, abWrite{b: f, pause: pause})
	}
	return ws
}

// chopped writes b in 3 parts, pause apart.
func chopped(b []byte, pause time.Duration) []abWrite {
	n := len(b) / 3
	return []abWrite{{b: b[:n]}, {b: b[n : 2*n], pause: pause}, {b: b[2*n:], pause: pause}}
}

// utf8Sequences are Autobahn's cases 6.5 to 6.23, in order: Markus Kuhn's
// UTF-8 decoder capability and stress test, valid and invalid sequences.
func utf8Sequences() [][]string {
	kosme := "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
	var prefixes []string
	for i := 1; i <= len(kosme); i++ {
		prefixes = append(prefixes, kosme[:i])
	}
	byteRange := func(lo, hi int, sep string) string { // [lo, hi)
		var b strings.Builder
		for i := lo; i < hi; i++ {
			b.WriteByte(byte(i))
			b.WriteString(sep)
		}
		return b.String()
	}
	var lonely []string
	for _, r := range [][2]int{{0xc0, 0xdf}, {0xe0, 0xef}, {0xf0, 0xf7}, {0xf8, 0xfb}, {0xfc, 0xfd}} {
		lonely = append(lonely, byteRange(r[0], r[1], " "))
	}
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	nonchars := []string{"\xef\xbf\xbe", "\xef\xbf\xbf"}
	for _, z1 := range []string{"\xf0", "\xf1", "\xf2", "\xf3", "\xf4"} {
		for _, z2 := range []string{"\x8f", "\x9f", "\xaf", "\xbf"} {
			if z1 == "\xf4" && z2 != "\x8f" {
				continue // above U+10FFFF
			}
			for _, z3 := range []string{"\xbe", "\xbf"} {
				if zz := z1 + z2 + "\xbf" + z3; zz != "\xf0\x8f\xbf\xbe" && zz != "\xf0\x8f\xbf\xbf" {
					nonchars = append(nonchars, zz)
				}
			}
		}
	}
	return [][]string{
		{"hello\x24world", "hello\xc2\xa2world", "hello\xe2\x82\xacworld", "hello\xf0\xa4\xad\xa2world", kosme}, // 6.5
		prefixes, // 6.6
		{"\x00", "\xc2\x80", "\xe0\xa0\x80", "\xf0\x90\x80\x80"},                                                                                        // 6.7
		{"\xf8\x88\x80\x80\x80", "\xfc\x84\x80\x80\x80\x80"},                                                                                            // 6.8
		{"\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf"},                                                                                        // 6.9
		{"\xf7\xbf\xbf\xbf", "\xfb\xbf\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf\xbf"},                                                                        // 6.10
		{"\xed\x9f\xbf", "\xee\x80\x80", "\xef\xbf\xbd", "\xf4\x8f\xbf\xbf", "\xf4\x90\x80\x80"},                                                        // 6.11
		{"\x80", "\xbf", "\x80\xbf", "\x80\xbf\x80", "\x80\xbf\x80\xbf", "\x80\xbf\x80\xbf\x80", "\x80\xbf\x80\xbf\x80\xbf", byteRange(0x80, 0xbf, "")}, // 6.12
		lonely,                               // 6.13
		missing,                              // 6.14
		{strings.Join(missing, "")},          // 6.15
		{"\xfe", "\xff", "\xfe\xfe\xff\xff"}, // 6.16
		{"\xc0\xaf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\xf8\x80\x80\x80\xaf", "\xfc\x80\x80\x80\x80\xaf"},             // 6.17
		{"\xc1\xbf", "\xe0\x9f\xbf", "\xf0\x8f\xbf\xbf", "\xf8\x87\xbf\xbf\xbf", "\xfc\x83\xbf\xbf\xbf\xbf"},             // 6.18
		{"\xc0\x80", "\xe0\x80\x80", "\xf0\x80\x80\x80", "\xf8\x80\x80\x80\x80", "\xfc\x80\x80\x80\x80\x80"},             // 6.19
		{"\xed\xa0\x80", "\xed\xad\xbf", "\xed\xae\x80", "\xed\xaf\xbf", "\xed\xb0\x80", "\xed\xbe\x80", "\xed\xbf\xbf"}, // 6.20
		{"\xed\xa0\x80\xed\xb0\x80", "\xed\xa0\x80\xed\xbf\xbf", "\xed\xad\xbf\xed\xb0\x80", "\xed\xad\xbf\xed\xbf\xbf",
			"\xed\xae\x80\xed\xb0\x80", "\xed\xae\x80\xed\xbf\xbf", "\xed\xaf\xbf\xed\xb0\x80", "\xed\xaf\xbf\xed\xbf\xbf"}, // 6.21
		nonchars, // 6.22
		{"\xef\xbf\xb9", "\xef\xbf\xba", "\xef\xbf\xbb", "\xef\xbf\xbc", "\xef\xbf\xbd", "\xef\xbf\xbe", "\xef\xbf\xbf"}, // 6.23
	}
}

func TestAutobahnCategories1To7(t *testing.T) {
	s := startServer(t)
	cases := autobahnCases()
	seen := map[string]bool{}
	for _, c := range cases {
		name := c.id + " " + c.name
		if seen[name] {
			t.Fatalf("two rows named %q", name)
		}
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			runAutobahnCase(t, s.Addr().String(), c)
		})
	}
}

func runAutobahnCase(t *testing.T, addr string, c abCase) {
	cl := dialRaw(t, addr)
	if f := cl.readFrame(t); f.typ != "hello" {
		t.Fatalf("first frame %+v, want hello", f)
	}
	for _, wr := range c.send {
		cl.write(wr) // a write the server refuses after failing the connection is expected
	}
	var got abGot
	pending := false // got is read and not matched yet
	for _, want := range c.want {
		if !pending {
			got, pending = cl.readFrame(t), true
		}
		if got.matches(want) {
			pending = false
			continue
		}
		if !want.maybe {
			t.Fatalf("got %s, want %+v", got, want)
		}
	}
	if c.close == 0 {
		if pending {
			t.Fatalf("got %s after the expected frames", got)
		}
		// The connection stays open: a command is still answered, and
		// nothing comes before its answer.
		cl.write(w(text(pingCmd("probe", 0))))
		if f := cl.readFrame(t); !f.matches(event("pong", "probe")) {
			t.Fatalf("got %s, want the probe's pong: the connection did not stay usable", f)
		}
		return
	}
	if !pending {
		got = cl.readFrame(t)
	}
	if got.op != ws.OpClose || got.code != c.close {
		t.Fatalf("got %s, want close %d", got, c.close)
	}
	// Nothing follows the close frame: the server ends the stream.
	cl.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(cl.rd)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after the close frame: %v, want end of stream", err)
	}
	if len(rest) > 0 {
		t.Fatalf("%d bytes after the close frame", len(rest))
	}
}

// abGot is a frame the server sent.
type abGot struct {
	op      ws.OpCode
	payload []byte
	code    uint16 // of a close
	typ, id string // of an event
	errCode string
}

func (g abGot) String() string {
	switch g.op {
	case ws.OpClose:
		return fmt.Sprintf("close %d %q", g.code, g.payload)
	case ws.OpText:
		return fmt.Sprintf("event %q", g.payload)
	}
	return fmt.Sprintf("opcode %d %q", g.op, g.payload)
}

func (g abGot) matches(f abFrame) bool {
	if g.op != f.op {
		return false
	}
	if f.op == ws.OpText {
		return g.typ == f.typ && (f.id == "" || g.id == f.id)
	}
	return string(g.payload) == f.payload
}

func (c *rawClient) write(wr abWrite) {
	b, chunk := wr.b, wr.chunk
	if chunk == 0 {
		chunk = len(b)
	}
	for len(b) > 0 {
		if wr.pause > 0 {
			time.Sleep(wr.pause) // the client's pace on the wire, not ordering
		}
		n := min(chunk, len(b))
		c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.conn.Write(b[:n]); err != nil {
			return
		}
		b = b[n:]
	}
}

// readFrame reads the server's next frame.
func (c *rawClient) readFrame(t *testing.T) abGot {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.rd.Peek(1); err != nil {
		t.Fatalf("read: %v, want a frame", err)
	}
	hdr, err := ws.ReadHeader(c.rd)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Masked || !hdr.Fin || hdr.Rsv != 0 {
		t.Fatalf("server frame header %+v: must be final, unmasked, without RSV", hdr)
	}
	if hdr.Length > maxEventBytes {
		t.Fatalf("frame of %d bytes, more than any test event", hdr.Length)
	}
	p := make([]byte, hdr.Length)
	if _, err := io.ReadFull(c.rd, p); err != nil {
		t.Fatal(err)
	}
	g := abGot{op: hdr.OpCode, payload: p}
	switch hdr.OpCode {
	case ws.OpClose:
		if len(p) < 2 {
			t.Fatalf("close frame without a code: %x", p)
		}
		g.code, g.payload = binary.BigEndian.Uint16(p), p[2:]
	case ws.OpText:
		var e struct{ Type, ID, Code string }
		if err := json.Unmarshal(p, &e); err != nil {
			t.Fatalf("event %q: %v", p, err)
		}
		g.typ, g.id, g.errCode = e.Type, e.ID, e.Code
	}
	return g
}
