package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/embedded"
	"github.com/chatbox/chatbox/persistence/mongo"
	"github.com/chatbox/chatbox/providers/openai/openaitest"
)

// dbProxy forwards TCP connections to a database and can be cut (every
// proxied connection closed, new ones closed as soon as accepted) and
// restored, on the same address: a database that goes away and comes back.
// It can also hold each request for a while (setDelay): a slow network or
// an overloaded database.
type dbProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	down     bool                  // guarded by mu
	conns    map[net.Conn]struct{} // guarded by mu
	commands map[string]int        // guarded by mu: database commands seen, by name
	delay    time.Duration         // guarded by mu: how long each request is held
	wg       sync.WaitGroup
}

func startDBProxy(t *testing.T, target string) *dbProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, commands: map[string]int{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *dbProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.down { // cut while dialling
			p.mu.Unlock()
			c.Close()
			u.Close()
			continue
		}
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(u, c, p.forwardCommands) })
		p.wg.Go(func() { p.pipe(c, u, io.Copy) })
	}
}

func (p *dbProxy) pipe(dst, src net.Conn, forward func(io.Writer, io.Reader) (int64, error)) {
	_, _ = forward(dst, src)
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// forwardCommands copies MongoDB wire messages from the client to the
// server, counting the commands they carry: an OP_MSG's body section (kind
// 0) is a BSON document whose first key names the command.
func (p *dbProxy) forwardCommands(dst io.Writer, src io.Reader) (int64, error) {
	var n int64
	header := make([]byte, 16)
	for {
		if _, err := io.ReadFull(src, header); err != nil {
			return n, err
		}
		size := int(binary.LittleEndian.Uint32(header[0:4]))
		if size < 16 || size > 48<<20 {
			return n, fmt.Errorf("wire message of %d bytes", size)
		}
		msg := make([]byte, size)
		copy(msg, header)
		if _, err := io.ReadFull(src, msg[16:]); err != nil {
			return n, err
		}
		p.mu.Lock()
		if opMsg := 2013; int(binary.LittleEndian.Uint32(msg[12:16])) == opMsg {
			if name := opMsgCommand(msg[20:]); name != "" {
				p.commands[name]++
			}
		}
		delay := p.delay
		p.mu.Unlock()
		if delay > 0 {
			// The injected latency itself: each request reaches the
			// database this much later, so every round trip takes longer
			// (the driver sends one request at a time per connection).
			time.Sleep(delay)
		}
		w, err := dst.Write(msg)
		n += int64(w)
		if err != nil {
			return n, err
		}
	}
}

// opMsgCommand is the first key of the body section among sections, or "".
func opMsgCommand(sections []byte) string {
	for len(sections) > 5 {
		kind := sections[0]
		size := int(binary.LittleEndian.Uint32(sections[1:5]))
		if size < 5 || 1+size > len(sections) {
			return ""
		}
		if kind == 0 {
			if elems, err := bson.Raw(sections[1 : 1+size]).Elements(); err == nil && len(elems) > 0 {
				return elems[0].Key()
			}
			return ""
		}
		sections = sections[1+size:]
	}
	return ""
}

// counts returns a copy of the command counts so far.
func (p *dbProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.commands)
}

// setDelay holds every request from now on for d before forwarding it; 0
// forwards at once again.
func (p *dbProxy) setDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// cut closes every proxied connection and refuses new ones until restore.
func (p *dbProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *dbProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// readiness answers GET /readyz: the status code and checks.storage.
func (s *testServer) readiness(t *testing.T) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	var body struct {
		Checks map[string]string `json:"checks"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Checks["storage"]
}

// proxiedStore starts an embedded FerretDB of the test's own behind a
// dbProxy and points the program's storage.mongo_uri at the proxy.
func proxiedStore(t *testing.T) *dbProxy {
	t.Helper()
	ferret, err := embedded.Start(t.Context(), filepath.Join(t.TempDir(), "db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ferret.Close() })
	// The indexes made beforehand, so that the program's own start (under
	// the tests' short storage.timeout) only finds them there.
	keys, err := persistence.NewKeyring(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := mongo.Open(t.Context(), mongo.Options{URI: ferret.URI(), Database: "chatbox", Keyring: keys})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.Close(t.Context())
	u, err := url.Parse(ferret.URI())
	if err != nil {
		t.Fatal(err)
	}
	proxy := startDBProxy(t, u.Host)
	u.Host = proxy.ln.Addr().String()
	q := u.Query()
	q.Set("directConnection", "true")
	u.RawQuery = q.Encode()
	t.Setenv("CHATBOX_STORAGE_MONGO_URI", u.String())
	return proxy
}

// outageStoreTimeout is storage.timeout in the outage tests: short, as
// the embedded store waits this long on its locked file before a send is
// refused, but not so short that the first commands after the store is
// back (the driver dialling its pool again, on a loaded machine, against a
// FerretDB running under the race detector) run out of it.
const outageStoreTimeout = "2s"

// outage makes the program's store unavailable and brings it back.
type outage interface {
	cut()
	restore()
}

// storeOutages are the two ways a store goes away, one per store: MongoDB
// behind a proxy that drops every connection, and the embedded store's
// file write-locked by another process. Each prepares the program's
// config (environment) for a data_dir and returns the outage.
var storeOutages = []struct {
	name  string
	setup func(t *testing.T, dataDir string) outage
}{
	{"mongo", func(t *testing.T, _ string) outage { return proxiedStore(t) }},
	{"embedded", func(t *testing.T, dataDir string) outage { return lockedStore(t, dataDir) }},
}

// TestFaultStorageOutageRefusesSendsAndRecovers runs the real program
// against each store, takes the store away mid-conversation, and brings it
// back.
func TestFaultStorageOutageRefusesSendsAndRecovers(t *testing.T) {
	for _, store := range storeOutages {
		t.Run(store.name, func(t *testing.T) { testStorageOutage(t, store.setup) })
	}
}

func testStorageOutage(t *testing.T, setup func(*testing.T, string) outage) {
	dir := t.TempDir()
	proxy := setup(t, dir)
	t.Setenv("CHATBOX_STORAGE_TIMEOUT", outageStoreTimeout)
	s := startServer(t, dir, "")

	aliceTok := signToken(t, "alice", "Alice")
	alice := s.dial(t, aliceTok, false)
	bob := s.dial(t, signToken(t, "bob", "Bob"), false)

	// A normal exchange.
	alice.send(map[string]any{"type": "send", "id": "c1", "text": "before the outage"})
	ack := alice.next(isType("ack"))
	sessionID := ack.str("session_id")
	acked := map[string]string{ack.str("message_id"): "before the outage"}
	alice.next(isFinal)
	if code, storage := s.readiness(t); code != http.StatusOK || storage != "ok" {
		t.Fatalf("readyz before the outage: %d, storage %q", code, storage)
	}

	proxy.cut()

	// The send is refused: an error, no ack, no reply.
	start := time.Now()
	alice.send(map[string]any{"type": "send", "id": "c2", "session_id": sessionID, "text": "during the outage"})
	events := alice.collect(func(e event) bool { return e.str("type") == "error" && e.str("id") == "c2" })
	t.Logf("send refused after %v", time.Since(start).Round(time.Millisecond))
	if code := events[len(events)-1].str("code"); code != "storage_unavailable" {
		t.Fatalf("send during the outage: error %q, want storage_unavailable", code)
	}
	events = append(events, alice.barrier()...)
	for _, e := range events {
		switch e.str("type") {
		case "ack", "delta", "message":
			t.Fatalf("during the outage the send produced %v", e)
		}
	}
	// A new conversation cannot be stored either.
	bob.send(map[string]any{"type": "send", "id": "b1", "text": "new chat during the outage"})
	if e := bob.next(isType("error")); e.str("id") != "b1" || e.str("code") != "storage_unavailable" {
		t.Fatalf("new conversation during the outage: %v", e)
	}
	code, storage := s.readiness(t)
	if code != http.StatusServiceUnavailable || storage == "ok" {
		t.Fatalf("readyz during the outage: %d, storage %q; want 503 naming storage", code, storage)
	}
	// Other connections stay open and answer.
	for _, e := range bob.barrier() {
		if typ := e.str("type"); typ == "ack" || typ == "delta" || typ == "message" {
			t.Fatalf("bob got %v during the outage", e)
		}
	}

	proxy.restore()
	pollUntil(t, "readyz 200 after the database is back", func() bool {
		code, storage := s.readiness(t)
		return code == http.StatusOK && storage == "ok"
	})

	// The same connection goes on: acked and answered.
	alice.send(map[string]any{"type": "send", "id": "c3", "session_id": sessionID, "text": "after the outage"})
	events = alice.collect(func(e event) bool { return isFinal(e) || e.str("type") == "error" && e.str("id") == "c3" })
	if last := events[len(events)-1]; last.str("type") == "error" {
		t.Fatalf("the first send after the outage was refused: %v", last)
	}
	ack = events[0]
	if ack.str("type") != "ack" || ack.str("id") != "c3" || ack.num("seq") != 3 {
		t.Fatalf("first event after the outage %v, want the ack of c3 at seq 3", ack)
	}
	acked[ack.str("message_id")] = "after the outage"
	if final := events[len(events)-1].msg(); final.str("status") != "complete" || final.str("text") == "" {
		t.Fatalf("reply after the outage: %v", final)
	}
	bob.barrier()

	// Nothing acked was lost, and nothing refused was stored.
	var stored struct {
		Messages []map[string]any `json:"messages"`
	}
	if code := s.getJSON(t, aliceTok, "/api/sessions/"+sessionID+"/messages", &stored); code != http.StatusOK {
		t.Fatalf("messages: HTTP %d", code)
	}
	byID := map[string]map[string]any{}
	for _, m := range stored.Messages {
		byID[m["id"].(string)] = m
		if m["text"] == "during the outage" {
			t.Errorf("the refused message was stored: %v", m)
		}
	}
	for id, text := range acked {
		if m, ok := byID[id]; !ok || m["text"] != text {
			t.Errorf("acked message %s (%q) stored as %v", id, text, m)
		}
	}
	if len(stored.Messages) != 4 {
		t.Errorf("stored %d messages, want 4 (two exchanges)", len(stored.Messages))
	}
}

// TestWritesPerReplyDoNotGrowWithItsLength counts the database commands
// the real program sends, on the wire, for exchanges whose replies are 5
// and 5,000 words long, streamed at full speed, and for one streamed slowly
// across a checkpoint. Checkpoints are counted too (from /metrics), so a
// slow machine on which a fast reply crosses one changes the expectation,
// not the verdict.
func TestWritesPerReplyDoNotGrowWithItsLength(t *testing.T) {
	words := func(r openaitest.Request) string {
		var n int
		fmt.Sscanf(r.Messages[len(r.Messages)-1].Content, "reply with %d words", &n)
		return strings.TrimSpace(strings.Repeat("word ", n))
	}
	fast := openaitest.NewServer(openaitest.Config{Reply: words})
	defer fast.Close()
	slow := openaitest.NewServer(openaitest.Config{Reply: words, TokenDelay: 100 * time.Millisecond})
	defer slow.Close()
	proxy := proxiedStore(t)
	s := startServer(t, t.TempDir(), `default_model = "fast"
max_retries = 0`+openAIModel("fast", fast.URL)+openAIModel("slow", slow.URL))
	c := s.dial(t, signToken(t, "alice", "Alice"), false)

	sessionID := ""
	checkpoints := func() int { return int(s.scrape(t)["chatbox_reply_checkpoints_total"]) }
	exchange := func(model string, n int) (writes map[string]int, reply, ckpts int) {
		t.Helper()
		ckptsBefore := checkpoints()
		before := proxy.counts()
		cmd := map[string]any{"type": "send", "id": fmt.Sprint(n), "text": fmt.Sprintf("reply with %d words", n), "model": model}
		if sessionID != "" {
			cmd["session_id"] = sessionID
		}
		c.send(cmd)
		events := c.collect(isFinal)
		sessionID = events[0].str("session_id")
		final := events[len(events)-1].msg()
		if final.str("status") != "complete" {
			t.Fatalf("reply of %d words: %v", n, final)
		}
		after := proxy.counts()
		writes = map[string]int{}
		for _, name := range []string{"insert", "update", "delete", "findAndModify"} {
			if d := after[name] - before[name]; d > 0 {
				writes[name] = d
			}
		}
		return writes, len(strings.Fields(final.str("text"))), checkpoints() - ckptsBefore
	}

	exchange("fast", 1) // creates the session and sets its model
	// Per exchange: the user message (insert + fenced update of last_seq)
	// and the reply with its usage (insert + fenced update). A checkpointed
	// reply is inserted by its first checkpoint instead; each later
	// checkpoint and the final write rewrite it with one findAndModify, and
	// the final one, which brings the usage, adds one update of the
	// session's token totals. The switch to "slow" adds one session update.
	for _, x := range []struct {
		model    string
		words    int
		switched bool
	}{{"fast", 5, false}, {"fast", 5000, false}, {"fast", 5, false}, {"slow", 35, true}} {
		start := time.Now()
		w, got, ckpts := exchange(x.model, x.words)
		t.Logf("%-4s reply of %4d words in %v: %v, %d checkpoints", x.model, x.words, time.Since(start).Round(time.Millisecond), w, ckpts)
		if got != x.words {
			t.Fatalf("reply of %d words came back with %d", x.words, got)
		}
		want := map[string]int{"insert": 2, "update": 2}
		if ckpts > 0 {
			want["update"]++
			want["findAndModify"] = ckpts
		}
		if x.switched {
			want["update"]++
		}
		if !maps.Equal(w, want) {
			t.Errorf("%s reply of %d words with %d checkpoints: writes %v, want %v", x.model, x.words, ckpts, w, want)
		}
		if x.model == "slow" && ckpts == 0 {
			t.Errorf("the slow reply (3.5 s) was not checkpointed (every 3 s)")
		}
	}
}

// Once a store write has failed, sends store first and call no model: an
// outage makes no provider calls (only the send that discovers it may have
// started one, cancelled before any output).
func TestNoProviderCallsWhileTheStoreIsDown(t *testing.T) {
	for _, store := range storeOutages {
		t.Run(store.name, func(t *testing.T) { testNoProviderCallsWhileDown(t, store.setup) })
	}
}

func testNoProviderCallsWhileDown(t *testing.T, setup func(*testing.T, string) outage) {
	fake := openaitest.NewServer(openaitest.Config{})
	defer fake.Close()
	dir := t.TempDir()
	proxy := setup(t, dir)
	t.Setenv("CHATBOX_STORAGE_TIMEOUT", outageStoreTimeout)
	s := startServer(t, dir, `default_model = "gpt"
max_retries = 0`+openAIModel("gpt", fake.URL))
	alice := s.dial(t, signToken(t, "alice", "Alice"), false)
	alice.send(map[string]any{"type": "send", "id": "c1", "text": "hello"})
	sid := alice.next(isType("ack")).str("session_id")
	alice.next(isFinal)

	proxy.cut()
	alice.send(map[string]any{"type": "send", "id": "c2", "session_id": sid, "text": "discovers the outage"})
	if e := alice.next(isType("error")); e.str("code") != "storage_unavailable" {
		t.Fatalf("got %v", e)
	}
	for _, id := range []string{"c3", "c4"} {
		alice.send(map[string]any{"type": "send", "id": id, "session_id": sid, "text": "during the outage"})
		if e := alice.next(isType("error")); e.str("code") != "storage_unavailable" || e.str("id") != id {
			t.Fatalf("got %v", e)
		}
	}
	// By what they ask: the request c2 may have started can reach the
	// fake after c2's error, so a count taken in between would race it.
	for _, r := range fake.Requests() {
		if last := r.Messages[len(r.Messages)-1].Content; last == "during the outage" {
			t.Fatalf("a provider request during the outage: %q", last)
		}
	}

	proxy.restore()
	pollUntil(t, "readyz 200", func() bool { code, _ := s.readiness(t); return code == http.StatusOK })
	alice.send(map[string]any{"type": "send", "id": "c5", "session_id": sid, "text": "back"})
	if m := alice.next(isFinal).msg(); m.str("status") != "complete" {
		t.Fatalf("after the outage: %v", m)
	}
}
