package transport

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A peer that stops reading is cut off: its writes time out (or its queue
// overflows and the 1013 close frame cannot get through either), and the
// server closes the TCP connection, so what the client sees is the socket
// closing, not necessarily a close frame (docs/operations.md). Nothing
// acked is lost: the reply was generated and stored regardless, and a new
// connection's sync returns it complete. This held on the parent commit
// too; the test pins the decision.
func TestASlowConsumerIsCutOffAndSyncRecoversTheReply(t *testing.T) {
	s := startServer(t, func(c *Config) { c.WriteTimeout = 200 * time.Millisecond })
	addr := s.Addr().String()
	// A tiny receive buffer, set before connecting so the window stays small.
	small := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return serr
	}}
	conn, err := small.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := upgradeRaw(t, conn, addr)
	if f := c.readFrame(t); f.typ != "hello" {
		t.Fatalf("first frame %s", f)
	}
	c.write(w(text(`{"type":"send","id":"m1","text":"tell me a story"}`)))
	var sessionID string
	for sessionID == "" {
		if f := c.readFrame(t); f.typ == "ack" {
			var ack struct {
				SessionID string `json:"session_id"`
			}
			json.Unmarshal(f.payload, &ack)
			sessionID = ack.SessionID
		}
	}
	// Stop reading, and make the server write far more than the buffers hold.
	id := strings.Repeat("p", 60)
	var flood bytes.Buffer
	for range 2000 {
		flood.Write(text(`{"type":"ping","id":"` + id + `"}`))
	}
	deadline := time.Now().Add(15 * time.Second)
	for s.liveConns() > 0 && time.Now().Before(deadline) {
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(flood.Bytes()); err != nil {
			break // the server closed the connection
		}
	}
	for s.liveConns() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the server still holds a connection that does not read")
		}
		time.Sleep(10 * time.Millisecond) // polling, not ordering
	}

	// Reconnect as the same user and sync: the reply is there, complete.
	again := dialRaw(t, addr)
	again.readFrame(t) // hello
	for {
		again.write(w(text(fmt.Sprintf(`{"type":"sync","session_id":%q,"after_seq":0}`, sessionID)), text(`{"type":"ping","id":"synced"}`)))
		var reply map[string]any
		for {
			f := again.readFrame(t)
			if f.typ == "error" {
				t.Fatalf("sync: %q", f.payload)
			}
			if f.typ == "pong" && f.id == "synced" {
				break
			}
			var ev struct{ Message map[string]any }
			if json.Unmarshal(f.payload, &ev); f.typ == "message" && ev.Message["role"] == "assistant" {
				reply = ev.Message
			}
		}
		if reply["status"] == "complete" && reply["text"] != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reply is stored as %v", reply)
		}
		time.Sleep(50 * time.Millisecond) // the reply is still generating: poll until it is stored
	}
}
