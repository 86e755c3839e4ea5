package actors

import (
	"context"
	"iter"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/persistence/storetest"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// faultStore is the real store with faults injected where a test asks: a
// hook runs before each write reaches the store, and an error it returns is
// the answer instead (nothing is written). Hooks may also block or panic.
// It counts the writes that reached the store.
var _ persistence.Store = (*faultStore)(nil)

type faultStore struct {
	persistence.Store

	mu            sync.Mutex // guards the hooks and writes
	updateSession func(*persistence.Session) error
	appendMessage func(*persistence.Message) error
	updateMessage func(*persistence.Message) error
	writes        map[string]int
}

func newFaultStore(t *testing.T) *faultStore {
	return &faultStore{Store: storetest.Open(t), writes: map[string]int{}}
}

// hooks sets the hooks under the lock; nil leaves one unset.
func (f *faultStore) hooks(us func(*persistence.Session) error, am, um func(*persistence.Message) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updateSession, f.appendMessage, f.updateMessage = us, am, um
}

func (f *faultStore) written() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.writes)
}

func (f *faultStore) count(op string) {
	f.mu.Lock()
	f.writes[op]++
	f.mu.Unlock()
}

func (f *faultStore) CreateSession(ctx context.Context, s *persistence.Session) error {
	f.count("create_session")
	return f.Store.CreateSession(ctx, s)
}

func (f *faultStore) UpdateSession(ctx context.Context, s *persistence.Session) error {
	f.mu.Lock()
	hook := f.updateSession
	f.mu.Unlock()
	if hook != nil {
		if err := hook(s); err != nil {
			return err
		}
	}
	f.count("update_session")
	return f.Store.UpdateSession(ctx, s)
}

func (f *faultStore) AppendMessage(ctx context.Context, m *persistence.Message) error {
	f.mu.Lock()
	hook := f.appendMessage
	f.mu.Unlock()
	if hook != nil {
		if err := hook(m); err != nil {
			return err
		}
	}
	f.count("append_message")
	return f.Store.AppendMessage(ctx, m)
}

func (f *faultStore) UpdateMessage(ctx context.Context, m *persistence.Message) error {
	f.mu.Lock()
	hook := f.updateMessage
	f.mu.Unlock()
	if hook != nil {
		if err := hook(m); err != nil {
			return err
		}
	}
	f.count("update_message")
	return f.Store.UpdateMessage(ctx, m)
}

// once makes a hook that acts on its first call only.
func once[T any](act func(T) error) func(T) error {
	var done sync.Once
	return func(v T) error {
		var err error
		done.Do(func() { err = act(v) })
		return err
	}
}

func isReply(status string) func(map[string]any) bool {
	return func(e map[string]any) bool {
		if e["type"] != "message" {
			return false
		}
		m := e["message"].(map[string]any)
		return m["role"] == "assistant" && m["status"] == status
	}
}

// exchange sends text and completes the reply with reply; it returns the
// session id.
func exchange(t *testing.T, d *device, model *stepModel, n int, sessionID, text, reply string) string {
	t.Helper()
	d.do(protocol.Command{Type: protocol.TypeSend, ID: text, SessionID: sessionID, Text: text})
	sid := d.next(typ("ack"))["session_id"].(string)
	s := model.stream(t, n)
	s.chunks <- reply
	close(s.chunks)
	d.next(isReply("complete"))
	return sid
}

// handToBert is another writer (a stale twin of the session actor, on
// another node) giving the session to the admin Bert, in the store only.
func handToBert(t *testing.T, store persistence.Store, sid string) {
	t.Helper()
	s, err := store.GetSession(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	s.Mode, s.AdminID, s.AdminName = persistence.ModeHuman, "bert", "Bert"
	if err := store.UpdateSession(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func (m *stepModel) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.streams)
}

func TestATakeoverThatLosesTheFenceReloadsAndAnswersBusy(t *testing.T) {
	store := newFaultStore(t)
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = store })
	user := connect(t, h, alice)
	admin := connect(t, h, ann)
	sid := exchange(t, user, model, 0, "", "hi", "hello")

	handToBert(t, store.Store, sid)
	// The actor's header write carries the version it read, which Bert's
	// write moved on: the store answers conflict and writes nothing. (The
	// hook gives that answer so the test holds on any Store.)
	store.hooks(once(func(*persistence.Session) error { return persistence.ErrConflict }), nil, nil)
	admin.do(protocol.Command{Type: protocol.TypeTakeover, ID: "t1", SessionID: sid})
	if e := admin.next(typ("error")); e["id"] != "t1" || e["code"] != "busy" || e["message"] != "another admin has taken this session over" {
		t.Fatalf("takeover after another writer's: %v, want busy", e)
	}
	user.do(protocol.Command{Type: protocol.TypePing, ID: "p"})
	for _, e := range user.until(typ("pong")) {
		if e["type"] == "takeover" || e["type"] == "message" {
			t.Fatalf("the refused takeover reached the user: %v", e)
		}
	}

	s, err := store.GetSession(context.Background(), sid)
	if err != nil || s.Mode != persistence.ModeHuman || s.AdminID != "bert" {
		t.Fatalf("stored session %+v (%v), want Bert's takeover kept", s, err)
	}
	if msgs, _ := store.ListMessages(context.Background(), sid, 0, 10); len(msgs) != 2 {
		t.Fatalf("%d stored messages, want the first exchange only (no audit record of Ann)", len(msgs))
	}
	// The actor now holds what the store holds: the session is Bert's, so a
	// user message starts no reply, and sync says who answers.
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "anyone?"})
	if ack := user.next(typ("ack")); ack["seq"] != float64(3) {
		t.Fatalf("ack %v, want seq 3", ack)
	}
	user.do(protocol.Command{Type: protocol.TypeSync, SessionID: sid, AfterSeq: 3})
	if e := user.next(typ("takeover")); e["admin_name"] != "Bert" {
		t.Fatalf("sync after the reload: %v, want Bert holding the session", e)
	}
	if n := model.calls(); n != 1 {
		t.Fatalf("%d model calls, want 1: none while Bert holds the session", n)
	}
}

// recordingModel is a stepModel that also keeps the conversation each
// Stream call was given.
type recordingModel struct {
	stepModel
	mu    sync.Mutex // guards convo, and is held while streams grows
	convo [][]providers.Message
}

// Stream registers the conversation and the stream under m.mu, so that
// convo[i] is what streams[i] was given.
func (m *recordingModel) Stream(ctx context.Context, id string, msgs []providers.Message) iter.Seq2[providers.Chunk, error] {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.convo = append(m.convo, slices.Clone(msgs))
	return m.stepModel.Stream(ctx, id, msgs)
}

func TestASendThatLosesItsSeqIsStoredOnceAtTheNextOne(t *testing.T) {
	model := &recordingModel{}
	h, _ := newTestHub(t, model)
	user := connect(t, h, alice)
	sid := exchange(t, user, &model.stepModel, 0, "", "first", "one")

	// A stale twin appends at seq 3 behind the actor's back.
	twin := persistence.Message{ID: "twin", SessionID: sid, Seq: 3, Role: persistence.RoleUser, Author: "Alice",
		AuthorID: "alice", Text: "from the twin", Status: persistence.StatusComplete, CreatedAt: time.Now()}
	if err := h.cfg.Store.AppendMessage(context.Background(), &twin); err != nil {
		t.Fatal(err)
	}
	// The actor's append at seq 3 loses for real; it reloads and stores the
	// message at seq 4.
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "second"})
	if ack := user.next(typ("ack")); ack["id"] != "2" || ack["seq"] != float64(4) {
		t.Fatalf("ack %v, want the send stored at seq 4", ack)
	}
	// Two model calls for it: the one started beside the lost write, with
	// the stale context, cancelled; and the one after the reload.
	var fresh, stale *stepStream
	eventually(t, func() bool { return model.calls() == 3 })
	model.mu.Lock()
	for i, c := range model.convo[1:] {
		if slices.ContainsFunc(c, func(m providers.Message) bool { return m.Text == "from the twin" }) {
			fresh = model.streams[i+1]
		} else {
			stale = model.streams[i+1]
		}
	}
	model.mu.Unlock()
	if fresh == nil || stale == nil {
		t.Fatal("want one model call with the reloaded history and one without")
	}
	select {
	case <-stale.cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the model call of the lost attempt was not cancelled")
	}
	fresh.chunks <- "two"
	close(fresh.chunks)
	if m := user.next(isReply("complete"))["message"].(map[string]any); m["seq"] != float64(5) || m["text"] != "two" {
		t.Fatalf("reply %v, want seq 5", m)
	}

	msgs, err := h.cfg.Store.ListMessages(context.Background(), sid, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for i, m := range msgs {
		if m.Seq != int64(i+1) {
			t.Fatalf("stored seqs %v have a gap", msgs)
		}
		texts = append(texts, m.Text)
	}
	if want := []string{"first", "one", "from the twin", "second", "two"}; !slices.Equal(texts, want) {
		t.Fatalf("stored %q, want %q", texts, want)
	}
}

// injectedCrash is what a store hook panics with.
const injectedCrash = "injected crash"

func TestACrashedSessionActorComesBackFromTheStoreAndTheConnectionGoesOn(t *testing.T) {
	store := newFaultStore(t)
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = store })
	user := connect(t, h, alice)
	other := connect(t, h, alice) // a second device of the same user
	sid := exchange(t, user, model, 0, "", "hi", "hello")

	handToBert(t, store.Store, sid) // only the store knows
	store.hooks(once(func(*persistence.Session) error { panic(injectedCrash) }), nil, nil)
	user.do(protocol.Command{Type: protocol.TypeHelp, ID: "h1", SessionID: sid})
	if e := user.next(typ("error")); e["id"] != "h1" || e["code"] != "internal" {
		t.Fatalf("the command that crashed the actor: %v, want internal", e)
	}

	// The same connections go on, with a session actor loaded from the
	// store: it knows Bert holds the session, so no reply starts.
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "still there?"})
	if ack := user.next(typ("ack")); ack["seq"] != float64(3) {
		t.Fatalf("ack after the crash %v, want seq 3", ack)
	}
	other.next(func(e map[string]any) bool { // fails the test if it never comes
		return e["type"] == "message" && e["message"].(map[string]any)["text"] == "still there?"
	})
	user.do(protocol.Command{Type: protocol.TypeSync, SessionID: sid, AfterSeq: 3})
	if e := user.next(typ("takeover")); e["admin_name"] != "Bert" {
		t.Fatalf("sync after the restart: %v, want Bert holding the session", e)
	}
	user.do(protocol.Command{Type: protocol.TypeHelp, ID: "h2", SessionID: sid})
	user.do(protocol.Command{Type: protocol.TypePing, ID: "p"})
	for _, e := range user.until(typ("pong")) {
		if e["type"] == "error" {
			t.Fatalf("help after the restart: %v", e)
		}
	}
	if s, err := store.GetSession(context.Background(), sid); err != nil || !s.HelpRequested || s.AdminID != "bert" {
		t.Fatalf("stored session %+v (%v), want help requested and Bert kept", s, err)
	}
	if n := model.calls(); n != 1 {
		t.Fatalf("%d model calls, want 1", n)
	}
	if n := h.metrics.sessions.Load(); n != 1 {
		t.Fatalf("%d session actors, want the restarted one", n)
	}
}

func TestARestartedSessionActorStillStopsWhenIdle(t *testing.T) {
	store := newFaultStore(t)
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = store; c.SessionIdle = 50 * time.Millisecond; c.UserIdle = time.Hour })
	user := connect(t, h, alice)
	sid := exchange(t, user, model, 0, "", "hi", "hello")
	store.hooks(once(func(*persistence.Session) error { panic(injectedCrash) }), nil, nil)
	user.do(protocol.Command{Type: protocol.TypeHelp, ID: "h1", SessionID: sid})
	if e := user.next(typ("error")); e["code"] != "internal" {
		t.Fatalf("help: %v", e)
	}
	// The idle handshake compares what the parent routed with what the
	// child saw; a restart must not forget the count.
	eventually(t, func() bool { return h.metrics.sessions.Load() == 0 })
}

func TestAReplyWhoseFinalWriteFailsStillEndsOnEveryDevice(t *testing.T) {
	store := newFaultStore(t)
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = store; c.CheckpointEvery = time.Hour })
	user := connect(t, h, alice)
	other := connect(t, h, alice)
	store.hooks(nil, func(m *persistence.Message) error {
		if m.Role == persistence.RoleAssistant {
			return persistence.ErrUnavailable
		}
		return nil
	}, nil)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	sid := user.next(typ("ack"))["session_id"].(string)
	s := model.stream(t, 0)
	s.chunks <- "the text so far"
	close(s.chunks)
	for _, d := range []*device{user, other} {
		events := d.until(typ("error"))
		if len(events) < 2 {
			t.Fatalf("events %v, want the final message before the error", events)
		}
		final, e := events[len(events)-2], events[len(events)-1]
		if !isReply("failed")(final) || final["message"].(map[string]any)["text"] != "the text so far" {
			t.Fatalf("before the error: %v, want the reply's final message, failed, with its text", final)
		}
		if e["code"] != "storage_unavailable" || e["session_id"] != sid {
			t.Fatalf("error %v", e)
		}
	}
	msgs, err := store.ListMessages(context.Background(), sid, 0, 10)
	if err != nil || len(msgs) != 1 || msgs[0].Text != "hi" {
		t.Fatalf("stored %+v (%v), want only the acked user message", msgs, err)
	}
	// The session goes on once the store takes writes again.
	store.hooks(nil, nil, nil)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "again"})
	if ack := user.next(typ("ack")); ack["seq"] != float64(2) {
		t.Fatalf("ack %v, want seq 2 (the failed reply was not stored)", ack)
	}
}

func TestACheckpointDoesNotHoldUpTheStreamAndTheFinalWriteWaitsForIt(t *testing.T) {
	store := newFaultStore(t)
	h, model := newTestHub(t, &stepModel{}, func(c *Config) { c.Store = store; c.CheckpointEvery = time.Nanosecond })
	user := connect(t, h, alice)

	gate := make(chan struct{})
	var mu sync.Mutex // guards the fields below
	var inFlight, checkpoints int
	var finalDuringCheckpoint bool
	var finalOp string
	write := func(op string) func(*persistence.Message) error {
		return func(m *persistence.Message) error {
			if m.Role != persistence.RoleAssistant {
				return nil
			}
			mu.Lock()
			if m.Status != persistence.StatusInterrupted {
				finalOp, finalDuringCheckpoint = op, inFlight > 0
				mu.Unlock()
				return nil
			}
			inFlight++
			checkpoints++
			mu.Unlock()
			<-gate
			mu.Lock()
			inFlight--
			mu.Unlock()
			return nil
		}
	}
	store.hooks(nil, write("append"), write("update"))
	state := func() (int, int) { mu.Lock(); defer mu.Unlock(); return inFlight, checkpoints }

	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	sid := user.next(typ("ack"))["session_id"].(string)
	s := model.stream(t, 0)
	s.chunks <- "a"
	user.next(typ("delta"))
	eventually(t, func() bool { n, _ := state(); return n == 1 })
	// While the checkpoint waits on the store, the deltas go on, and no
	// second checkpoint of the reply starts.
	for _, text := range []string{"b", "c"} {
		s.chunks <- text
		if d := user.next(typ("delta")); d["text"] != text {
			t.Fatalf("delta %v, want %q", d, text)
		}
	}
	if n, total := state(); n != 1 || total != 1 {
		t.Fatalf("%d checkpoints in flight, %d started; want 1 and 1", n, total)
	}
	// The reply ends while its checkpoint is still being written.
	close(s.chunks)
	ended := h.metrics.set.GetOrCreateCounter(`chatbox_replies_total{model="step",status="complete"}`)
	eventually(t, func() bool { return ended.Get() == 1 })
	close(gate)

	if m := user.next(isReply("complete"))["message"].(map[string]any); m["text"] != "abc" {
		t.Fatalf("final message %v", m)
	}
	mu.Lock()
	op, raced := finalOp, finalDuringCheckpoint
	mu.Unlock()
	if raced || op != "update" {
		t.Fatalf("final write: %q, during a checkpoint: %v; want an update after the checkpoint's append", op, raced)
	}
	msgs, err := store.ListMessages(context.Background(), sid, 0, 10)
	if err != nil || len(msgs) != 2 || msgs[1].Text != "abc" || msgs[1].Status != persistence.StatusComplete {
		t.Fatalf("stored %+v (%v), want the complete reply", msgs, err)
	}
}

// usageModel answers every call at once with one text and its usage.
type usageModel struct{}

func (usageModel) Models() []providers.ModelInfo { return []providers.ModelInfo{{ID: "u", Name: "U"}} }
func (usageModel) Default() string               { return "u" }
func (usageModel) Has(id string) bool            { return id == "u" }
func (usageModel) Stream(context.Context, string, []providers.Message) iter.Seq2[providers.Chunk, error] {
	return func(yield func(providers.Chunk, error) bool) {
		if yield(providers.Chunk{Text: "answer"}, nil) {
			yield(providers.Chunk{Usage: &providers.Usage{InputTokens: 7, OutputTokens: 3}}, nil)
		}
	}
}

func TestAReplyIsStoredWithItsUsageInOneWrite(t *testing.T) {
	store := newFaultStore(t)
	h, _ := newTestHub(t, usageModel{}, func(c *Config) { c.Store = store; c.CheckpointEvery = time.Hour })
	user := connect(t, h, alice)
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "1", Text: "hi"})
	sid := user.next(typ("ack"))["session_id"].(string)
	user.next(isReply("complete"))

	before := store.written()
	user.do(protocol.Command{Type: protocol.TypeSend, ID: "2", SessionID: sid, Text: "more"})
	user.next(typ("ack"))
	user.next(isReply("complete"))
	got := store.written()
	for op := range before {
		got[op] -= before[op]
		if got[op] == 0 {
			delete(got, op)
		}
	}
	// The user message and the reply: one append each, nothing else.
	if len(got) != 1 || got["append_message"] != 2 {
		t.Fatalf("writes of one exchange: %v, want 2 appends", got)
	}
	msgs, err := store.ListMessages(context.Background(), sid, 3, 10)
	if err != nil || len(msgs) != 1 || msgs[0].TokensIn != 7 || msgs[0].TokensOut != 3 {
		t.Fatalf("stored reply %+v (%v), want its usage", msgs, err)
	}
}
