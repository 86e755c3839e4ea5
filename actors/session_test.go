package actors

import (
	"context"
	"encoding/json"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/lifecycle/leaktest"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

func TestMain(m *testing.M) {
	storetest.Main(m) // runs the tests, then stops the shared store; exits if a test failed
	leaktest.Verify()
}

// stepModel is a model the test drives by hand: each Stream call registers
// a stream whose chunks the test sends one by one, and which records being
// cancelled.
type stepModel struct {
	mu      sync.Mutex // guards streams
	streams []*stepStream
}

type stepStream struct {
	chunks    chan string
	cancelled chan struct{}
}

func (m *stepModel) Models() []providers.ModelInfo {
	return []providers.ModelInfo{{ID: "step", Name: "Step"}}
}
func (m *stepModel) Default() string    { return "step" }
func (m *stepModel) Has(id string) bool { return id == "step" }

func (m *stepModel) Stream(ctx context.Context, _ string, _ []providers.Message) iter.Seq2[providers.Chunk, error] {
	s := &stepStream{chunks: make(chan string), cancelled: make(chan struct{})}
	m.mu.Lock()
	m.streams = append(m.streams, s)
	m.mu.Unlock()
	return func(yield func(providers.Chunk, error) bool) {
		for {
			select {
			case <-ctx.Done():
				close(s.cancelled)
				yield(providers.Chunk{}, ctx.Err())
				return
			case text, ok := <-s.chunks:
				if !ok {
					return
				}
				if !yield(providers.Chunk{Text: text}, nil) {
					return
				}
			}
		}
	}
}

// stream waits for the n-th Stream call (0-based).
func (m *stepModel) stream(t *testing.T, n int) *stepStream {
	t.Helper()
	var s *stepStream
	eventually(t, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		if len(m.streams) > n {
			s = m.streams[n]
		}
		return s != nil
	})
	return s
}

// device is a connection of the test: its sink decodes every frame.
type device struct {
	t      *testing.T
	conn   *Conn
	events chan map[string]any
}

type chanSink struct{ ch chan map[string]any }

func (s chanSink) WriteFrames(wires [][]byte) error {
	for _, w := range wires {
		var e map[string]any
		if err := json.Unmarshal(payload(w), &e); err != nil {
			return err
		}
		s.ch <- e
	}
	return nil
}
func (s chanSink) Close(uint16, string) {}

func connect(t *testing.T, h *Hub, id Identity) *device {
	t.Helper()
	d := &device{t: t, events: make(chan map[string]any, 1024)}
	ticket, err := h.Admit(id.UserID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := h.Connect(ticket, id, chanSink{d.events})
	if err != nil {
		t.Fatal(err)
	}
	d.conn = c
	t.Cleanup(c.Close)
	if e := d.next(func(map[string]any) bool { return true }); e["type"] != "hello" {
		t.Fatalf("first event %v", e)
	}
	return d
}

func (d *device) do(cmd protocol.Command) { d.conn.Command(cmd) }

// next returns the first event matching ok; earlier ones are dropped.
func (d *device) next(ok func(map[string]any) bool) map[string]any {
	d.t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case e := <-d.events:
			if ok(e) {
				return e
			}
		case <-deadline:
			d.t.Fatal("no matching event in time")
		}
	}
}

// until collects events up to and including the first matching ok.
func (d *device) until(ok func(map[string]any) bool) []map[string]any {
	d.t.Helper()
	var got []map[string]any
	d.next(func(e map[string]any) bool { got = append(got, e); return ok(e) })
	return got
}

func typ(t string) func(map[string]any) bool {
	return func(e map[string]any) bool { return e["type"] == t }
}

// testConfig is the configured defaults (config.Default) as a hub Config,
// without Store and Models.
func testConfig() Config {
	d := config.Default()
	return Config{
		SessionIdle: d.Tuning.SessionIdle, UserIdle: d.Tuning.UserIdle, OutboxLimit: d.Tuning.OutboxLimit,
		CheckpointEvery: d.Tuning.CheckpointEvery, HistoryWindow: d.Tuning.HistoryWindow,
		ContextBudget: d.LLM.ContextBudget, StoreTimeout: d.Storage.Timeout.Duration,
	}
}

// newTestHub starts a hub on the test store with testConfig changed by edits.
func newTestHub(t *testing.T, models Models, edits ...func(*Config)) (*Hub, *stepModel) {
	t.Helper()
	step, _ := models.(*stepModel)
	cfg := testConfig()
	cfg.Models = models
	for _, edit := range edits {
		edit(&cfg)
	}
	if cfg.Store == nil {
		cfg.Store = storetest.Open(t)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.Start()
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	return h, step
}

var (
	alice = Identity{UserID: "alice", Name: "Alice"}
	ann   = Identity{UserID: "ann", Name: "Ann", Admin: true}
	bert  = Identity{UserID: "bert", Name: "Bert", Admin: true}
)

func TestTakeoverMidReplyCancelsTheModelAndNoBotTextFollows(t *testing.T) {
	h, model := newTestHub(t, &stepModel{})
	user := connect(t, h, alice)
	admin := connect(t, h, ann)

	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	sid := user.next(typ("ack"))["session_id"].(string)
	stream := model.stream(t, 0)
	stream.chunks <- "partial "
	user.next(typ("delta"))

	admin.do(protocol.Command{Type: protocol.TypeTakeover, SessionID: sid})
	events := user.until(typ("takeover"))
	select {
	case <-stream.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the provider request was not cancelled by the takeover")
	}
	var stopped map[string]any
	for _, e := range events {
		if e["type"] == "message" {
			if m := e["message"].(map[string]any); m["role"] == "assistant" {
				stopped = m
			}
		}
	}
	if stopped == nil || stopped["status"] != "stopped" || stopped["text"] != "partial " {
		t.Fatalf("before the takeover event the reply must end stopped with its text; got %v", events)
	}
	if tk := events[len(events)-1]; tk["admin_name"] != "Ann" {
		t.Fatalf("takeover event %v", tk)
	}

	// The bot stays silent: a user message now starts no generation, and a
	// ping proves everything produced before it was delivered.
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "is anyone there?"})
	user.do(protocol.Command{Type: protocol.TypePing, ID: "p"})
	for _, e := range user.until(typ("pong")) {
		if e["type"] == "delta" {
			t.Fatalf("bot text after takeover: %v", e)
		}
	}
	if e := admin.next(func(e map[string]any) bool {
		return e["type"] == "message" && e["message"].(map[string]any)["text"] == "is anyone there?"
	}); e == nil {
		t.Fatal("admin did not see the user's message")
	}
	model.mu.Lock()
	n := len(model.streams)
	model.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d provider calls, want 1 (none while taken over)", n)
	}

	// The admin replies; the user sees it under the admin's name.
	admin.do(protocol.Command{Type: protocol.TypeSend, ID: "a1", SessionID: sid, Text: "I am here"})
	m := user.next(func(e map[string]any) bool {
		return e["type"] == "message" && e["message"].(map[string]any)["role"] == "admin"
	})["message"].(map[string]any)
	if m["author"] != "Ann" || m["text"] != "I am here" {
		t.Fatalf("admin message %v", m)
	}

	// Release: the bot answers again, with the human exchange as context.
	admin.do(protocol.Command{Type: protocol.TypeRelease, SessionID: sid})
	user.next(typ("release"))
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "3", SessionID: sid, Text: "thanks"})
	s2 := model.stream(t, 1)
	s2.chunks <- "welcome"
	close(s2.chunks)
	if m := user.next(func(e map[string]any) bool {
		return e["type"] == "message" && e["message"].(map[string]any)["role"] == "assistant" && e["message"].(map[string]any)["status"] == "complete"
	}); m["message"].(map[string]any)["text"] != "welcome" {
		t.Fatalf("reply after release: %v", m)
	}

	// The audit trail is in the store: who took over and released, and when.
	msgs, err := h.cfg.Store.ListMessages(context.Background(), sid, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var audit []persistence.Message
	for _, m := range msgs {
		if m.Role == persistence.RoleSystem || m.Role == persistence.RoleAdmin {
			audit = append(audit, m)
		}
	}
	if len(audit) != 3 || audit[0].AuthorID != "ann" || audit[1].AuthorID != "ann" || audit[1].Role != persistence.RoleAdmin ||
		audit[2].AuthorID != "ann" || audit[0].CreatedAt.IsZero() {
		t.Fatalf("audit records %+v", audit)
	}
}

func TestRacingAdminsExactlyOneWins(t *testing.T) {
	h, _ := newTestHub(t, &stepModel{})
	user := connect(t, h, alice)
	a, b := connect(t, h, ann), connect(t, h, bert)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	sid := user.next(typ("ack"))["session_id"].(string)

	a.do(protocol.Command{Type: protocol.TypeTakeover, ID: "ta", SessionID: sid})
	b.do(protocol.Command{Type: protocol.TypeTakeover, ID: "tb", SessionID: sid})
	a.do(protocol.Command{Type: protocol.TypePing, ID: "pa"})
	b.do(protocol.Command{Type: protocol.TypePing, ID: "pb"})
	busy := 0
	for _, d := range []*device{a, b} {
		for _, e := range d.until(typ("pong")) {
			if e["type"] == "error" && e["code"] == "busy" {
				busy++
			}
		}
	}
	if busy != 1 {
		t.Fatalf("%d admins got busy, want exactly 1", busy)
	}
	if e := user.next(typ("takeover")); e["admin_name"] != "Ann" && e["admin_name"] != "Bert" {
		t.Fatalf("takeover %v", e)
	}
	// The loser cannot reply or release.
	s, _ := h.cfg.Store.GetSession(context.Background(), sid)
	loser := a
	if s.AdminID == "ann" {
		loser = b
	}
	loser.do(protocol.Command{Type: protocol.TypeSend, ID: "x", SessionID: sid, Text: "me too"})
	if e := loser.next(typ("error")); e["code"] != "forbidden" {
		t.Fatalf("loser's message: %v", e)
	}
	loser.do(protocol.Command{Type: protocol.TypeRelease, ID: "r", SessionID: sid})
	if e := loser.next(typ("error")); e["code"] != "forbidden" {
		t.Fatalf("loser's release: %v", e)
	}
}

func TestWatchTakesEffectBeforeTheNextPong(t *testing.T) {
	h, model := newTestHub(t, &stepModel{})
	user := connect(t, h, alice)
	admin := connect(t, h, ann)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	sid := user.next(typ("ack"))["session_id"].(string)

	admin.do(protocol.Command{Type: protocol.TypeWatch, SessionID: sid})
	admin.do(protocol.Command{Type: protocol.TypePing, ID: "p"})
	admin.next(typ("pong"))
	stream := model.stream(t, 0)
	stream.chunks <- "seen by the watcher"
	if d := admin.next(typ("delta")); d["text"] != "seen by the watcher" {
		t.Fatalf("watcher got %v", d)
	}
	admin.do(protocol.Command{Type: protocol.TypeUnwatch, SessionID: sid})
	admin.do(protocol.Command{Type: protocol.TypePing, ID: "p2"})
	admin.next(typ("pong"))
	stream.chunks <- " and not this"
	// The owner's device may get the two deltas merged into one (its
	// outbox coalesces what it has not written yet).
	user.next(func(e map[string]any) bool {
		text, _ := e["text"].(string)
		return e["type"] == "delta" && strings.HasSuffix(text, " and not this")
	})
	admin.do(protocol.Command{Type: protocol.TypePing, ID: "p3"})
	for _, e := range admin.until(typ("pong")) {
		if e["type"] == "delta" {
			t.Fatalf("unwatched admin still receives %v", e)
		}
	}
}

func TestHelpAlertsEveryAdmin(t *testing.T) {
	notified := make(chan string, 1)
	h, _ := newTestHub(t, &stepModel{}, func(c *Config) {
		c.Notify = notifyFunc(func(sid, uid string) { notified <- sid + "/" + uid })
	})
	user := connect(t, h, alice)
	a, b := connect(t, h, ann), connect(t, h, bert)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	sid := user.next(typ("ack"))["session_id"].(string)
	user.do(protocol.Command{Type: protocol.TypeHelp, SessionID: sid})
	for _, d := range []*device{a, b} {
		if e := d.next(typ("help")); e["session_id"] != sid || e["user_id"] != "alice" {
			t.Fatalf("help alert %v", e)
		}
	}
	select {
	case got := <-notified:
		if got != sid+"/alice" {
			t.Fatalf("webhook notified %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("notifier not called")
	}
	s, err := h.cfg.Store.GetSession(context.Background(), sid)
	if err != nil || !s.HelpRequested {
		t.Fatalf("help not stored: %+v %v", s, err)
	}
}

type notifyFunc func(sessionID, userID string)

func (f notifyFunc) HelpRequested(sessionID, userID string) { f(sessionID, userID) }

func TestIdleSessionStopsAndComesBackFromTheStore(t *testing.T) {
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.SessionIdle, c.UserIdle = 50*time.Millisecond, time.Hour })
	user := connect(t, h, alice)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "first"})
	sid := user.next(typ("ack"))["session_id"].(string)
	s := model.stream(t, 0)
	s.chunks <- "one"
	close(s.chunks)
	user.next(func(e map[string]any) bool {
		return e["type"] == "message" && e["message"].(map[string]any)["role"] == "assistant"
	})

	eventually(t, func() bool { return h.metrics.sessions.Load() == 0 })

	user.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "second"})
	if ack := user.next(typ("ack")); ack["seq"] != float64(3) {
		t.Fatalf("after reload acked at %v, want seq 3", ack["seq"])
	}
	if h.metrics.sessions.Load() != 1 {
		t.Fatalf("%d session actors, want the reloaded one", h.metrics.sessions.Load())
	}
}

func TestAnotherUsersSessionIsNotFound(t *testing.T) {
	h, _ := newTestHub(t, &stepModel{})
	owner := connect(t, h, alice)
	other := connect(t, h, Identity{UserID: "mallory", Name: "M"})
	owner.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "secret"})
	sid := owner.next(typ("ack"))["session_id"].(string)
	for _, typ := range []string{protocol.TypeSend, protocol.TypeSync, protocol.TypeStop, protocol.TypeHelp} {
		other.do(protocol.Command{Type: typ, ID: "x", SessionID: sid, Text: "hi"})
		if e := other.next(func(e map[string]any) bool { return e["type"] == "error" }); e["code"] != "not_found" {
			t.Fatalf("%s on another user's session: %v", typ, e)
		}
	}
}

// protoactor's receive timeout fires once; an actor that was busy when it
// fired must still stop once it becomes idle.
func TestASessionBusyWhenItsIdleTimeoutFiredStillStopsLater(t *testing.T) {
	const idle = 50 * time.Millisecond
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.SessionIdle, c.UserIdle = idle, time.Hour })
	user := connect(t, h, alice)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "a long reply"})
	user.next(typ("ack"))
	s := model.stream(t, 0)
	// The reply streams for longer than the idle timeout (waiting for
	// time to pass, not to order events).
	time.Sleep(4 * idle)
	s.chunks <- "done at last"
	close(s.chunks)
	user.next(isReply("complete"))
	eventually(t, func() bool { return h.metrics.sessions.Load() == 0 })
}

func TestAUserConnectedPastItsIdleTimeoutStopsAfterItsLastConnectionCloses(t *testing.T) {
	const idle = 50 * time.Millisecond
	h, _ := newTestHub(t, &stepModel{}, func(c *Config) { c.UserIdle = idle })
	user := connect(t, h, alice)
	time.Sleep(4 * idle) // connected for longer than the idle timeout
	user.conn.Close()
	eventually(t, func() bool { return h.metrics.users.Load() == 0 })
}
