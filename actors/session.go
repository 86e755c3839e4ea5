package actors

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// sessionSpec is what a session actor is spawned with. It outlives restarts
// of the actor (the producer captures it), so a restarted actor knows
// whether its session is stored yet.
type sessionSpec struct {
	id      string
	ownerID string
	fresh   bool // a new conversation, not stored until its first message
}

// sessionActor serialises everything that touches one conversation: it
// assigns seq, stores messages, runs generations and holds takeover state.
// It is the only writer of its session's records; its writes are fenced by
// seq, so if a stale twin exists the store rejects one of them.
type sessionActor struct {
	hub  *Hub
	spec *sessionSpec
	seen uint64 // routed messages received, for the idle handshake

	session *persistence.Session // nil when loadErr is set
	loadErr error                // the session cannot be served: not found, foreign, or store down
	history []providers.Message  // recent conversation, oldest first, for the model's context
	gen     *generation          // the reply in flight, if any
	genSeq  uint64               // id of the latest generation
}

// generation is a reply in flight. Its provider stream runs in a goroutine
// that sends genChunk/genDone back; everything else is the actor's.
type generation struct {
	id             uint64
	messageID      string
	seq            int64
	model          string
	text           []byte
	cancel         context.CancelFunc
	started        time.Time
	gotFirst       bool
	lastCheckpoint time.Time
	stored         bool // a checkpoint inserted the message; later writes update it
	usage          *providers.Usage
}

func newSessionActor(hub *Hub, spec *sessionSpec) *sessionActor {
	return &sessionActor{hub: hub, spec: spec}
}

func (s *sessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.hub.metrics.sessions.Add(1)
		s.load()
		ctx.SetReceiveTimeout(s.hub.cfg.SessionIdle)
	case *actor.Stopped:
		s.hub.metrics.sessions.Add(-1)
	case *actor.Restarting:
		// A restart skips Stopped and runs Started again on a new instance.
		s.hub.metrics.sessions.Add(-1)
		if s.gen != nil {
			s.finish(ctx, persistence.StatusInterrupted)
		}
	case *routed:
		s.seen++
		if c, ok := m.msg.(*sessionCommand); ok {
			s.command(ctx, c)
		}
	case *genChunk:
		s.chunk(ctx, m)
	case *genDone:
		s.done(ctx, m)
	case *actor.ReceiveTimeout:
		if s.gen == nil {
			s.askToStop(ctx)
		}
	case *actor.Stopping:
		if s.gen != nil {
			s.finish(ctx, persistence.StatusInterrupted)
		}
	}
}

func (s *sessionActor) log() *slog.Logger {
	return s.hub.log.With(slog.String("session_id", s.spec.id))
}

func (s *sessionActor) askToStop(ctx actor.Context) {
	ctx.Send(ctx.Parent(), &childIdle{name: s.spec.id, seen: s.seen})
}

// load brings the session and its recent history from the store, or starts
// a fresh one in memory.
func (s *sessionActor) load() {
	now := s.hub.now()
	if s.spec.fresh {
		s.session = &persistence.Session{
			ID: s.spec.id, UserID: s.spec.ownerID, Status: "active", Mode: persistence.ModeBot,
			CreatedAt: now, UpdatedAt: now,
		}
		return
	}
	ctx, cancel := s.hub.storeContext()
	defer cancel()
	sess, err := s.hub.cfg.Store.GetSession(ctx, s.spec.id)
	if err == nil && sess.UserID != s.spec.ownerID {
		// Another user's session is indistinguishable from a missing one.
		err = persistence.ErrNotFound
	}
	if err != nil {
		s.loadErr = err
		return
	}
	window := int64(s.hub.cfg.HistoryWindow)
	msgs, err := s.hub.cfg.Store.ListMessages(ctx, s.spec.id, max(0, sess.LastSeq-window), int(window))
	if err != nil {
		s.loadErr = err
		return
	}
	s.session = sess
	for _, m := range msgs {
		s.remember(m.Role, m.Text)
	}
}

// reloadIfStale re-reads the session after a fenced write lost: the store,
// not this actor's memory, says what the session holds.
func (s *sessionActor) reloadIfStale(err error) {
	if !errors.Is(err, persistence.ErrConflict) {
		return
	}
	s.log().Warn("session state was stale; reloading from the store")
	s.session, s.history, s.loadErr = nil, nil, nil
	s.load()
}

// remember adds a message to the model's context. Admin words are the
// assistant side for the model; empty texts (a reply that failed before its
// first token) are left out.
func (s *sessionActor) remember(role persistence.Role, text string) {
	if text == "" {
		return
	}
	switch role {
	case persistence.RoleUser:
		s.history = append(s.history, providers.Message{Role: providers.RoleUser, Text: text})
	case persistence.RoleAssistant, persistence.RoleAdmin:
		s.history = append(s.history, providers.Message{Role: providers.RoleAssistant, Text: text})
	}
	if n := len(s.history) - s.hub.cfg.HistoryWindow; n > 0 {
		s.history = append(s.history[:0], s.history[n:]...)
	}
}

// failure is why a command was refused: a wire code and, where generic text
// would not help, a message for people.
type failure struct{ code, message string }

func fail(code string) *failure { return &failure{code: code, message: protocol.DefaultMessage(code)} }

func storeFailure(err error) *failure { return fail(storeErrorCode(err)) }

// command runs one command and answers it: an error event to the caller's
// connection on failure, and a CallResult when the caller waits for one.
func (s *sessionActor) command(ctx actor.Context, c *sessionCommand) {
	res := &CallResult{connID: c.connID}
	defer func() {
		// A crash still answers the caller, whose connection waits for it;
		// then the supervisor restarts this actor from the store.
		if r := recover(); r != nil {
			if c.replyTo != nil {
				ctx.Send(c.replyTo, &CallResult{connID: c.connID, Code: protocol.CodeInternal, Message: protocol.DefaultMessage(protocol.CodeInternal)})
			}
			panic(r)
		}
	}()
	var f *failure
	if s.loadErr != nil {
		f = storeFailure(s.loadErr)
		s.askToStop(ctx)
	} else {
		f = s.run(ctx, c, res)
	}
	if f != nil {
		res.Code, res.Message = f.code, f.message
		if c.conn != nil {
			s.reply(ctx, c.conn, protocol.NewError(c.cmd.ID, c.cmd.SessionID, f.code, f.message))
		}
	}
	if c.replyTo != nil {
		ctx.Send(ctx.Parent(), &relay{to: c.replyTo, msg: res})
	}
}

func (s *sessionActor) run(ctx actor.Context, c *sessionCommand, res *CallResult) *failure {
	acting := s.actingAdmin(c.identity)
	switch c.cmd.Type {
	case protocol.TypeSend:
		if acting {
			return s.adminSend(ctx, c, res)
		}
		return s.send(ctx, c)
	case protocol.TypeStop:
		if s.gen != nil {
			s.finish(ctx, persistence.StatusStopped)
		}
	case protocol.TypeSync:
		return s.sync(ctx, c)
	case protocol.TypeHelp:
		if acting {
			return fail(protocol.CodeForbidden)
		}
		return s.help(ctx)
	case protocol.TypeTakeover:
		return s.takeover(ctx, c.identity)
	case protocol.TypeRelease:
		return s.release(ctx, c.identity)
	case typeShare, typeUnshare:
		if acting {
			return fail(protocol.CodeForbidden)
		}
		return s.share(c.cmd.Type == typeShare, res)
	}
	return nil
}

// Commands the HTTP API sends to a session; they are not part of the
// WebSocket protocol.
const (
	typeShare   = "share"
	typeUnshare = "unshare"
)

// actingAdmin reports whether id acts on this session as an admin rather
// than as its owner.
func (s *sessionActor) actingAdmin(id Identity) bool {
	return id.Admin && id.UserID != s.session.UserID
}

func (s *sessionActor) send(ctx actor.Context, c *sessionCommand) *failure {
	cmd := c.cmd
	if s.gen != nil {
		return &failure{code: protocol.CodeBusy, message: "a reply is already in progress; try again when it ends"}
	}
	model := cmd.Model
	if model == "" {
		model = s.session.Model
	}
	if model == "" {
		model = s.hub.cfg.Models.Default()
	}
	if !s.hub.cfg.Models.Has(model) {
		return &failure{code: protocol.CodeBadRequest, message: "unknown model"}
	}

	if s.spec.fresh {
		storeCtx, cancel := s.hub.storeContext()
		defer cancel()
		s.session.Title = title(cmd.Text)
		s.session.Model = model
		if err := s.hub.cfg.Store.CreateSession(storeCtx, s.session); err != nil {
			s.log().Warn("create session", slog.Any("err", err))
			s.askToStop(ctx)
			return storeFailure(err)
		}
		s.spec.fresh = false
	}

	var generate func() *failure
	if s.session.Mode == persistence.ModeBot {
		if f := s.mayGenerate(); f != nil {
			return f
		}
		convo := append(s.history[:len(s.history):len(s.history)], providers.Message{Role: providers.RoleUser, Text: cmd.Text})
		seq := s.session.LastSeq + 2
		generate = func() *failure {
			return s.startGeneration(ctx, model, seq, providers.Trim(convo, s.hub.cfg.ContextBudget))
		}
	}
	// While the store is healthy the provider call starts before the user
	// message is stored, so its connection set-up overlaps the write; its
	// output waits in this actor's mailbox until the write has succeeded,
	// and is dropped if it fails. After a store failure the write goes
	// first, so no model is called while the store is down.
	overlap := generate != nil && !s.hub.storeDown.Load()
	if overlap {
		if f := generate(); f != nil {
			return f
		}
	}
	msg, f := s.appendMessage(persistence.RoleUser, c.identity, cmd.Text)
	if f != nil {
		s.abandon()
		if generate != nil && !overlap {
			s.hub.releaseReply(s.spec.ownerID) // mayGenerate counted it
		}
		return f
	}
	if generate != nil && !overlap {
		if f := generate(); f != nil {
			return f // the message is stored; the client sees it on sync
		}
	}
	if model != s.session.Model {
		// The session remembers the new model only once that is stored; this
		// reply uses it either way.
		prev := *s.session
		s.session.Model = model
		s.saveSession(prev)
	}
	s.reply(ctx, c.conn, protocol.NewAck(cmd.ID, s.spec.id, msg.ID, msg.Seq))
	s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(msg)))
	return nil
}

// startGeneration starts the model's stream on a goroutine of the hub; a
// hub that is stopping refuses it, and the command is answered busy.
func (s *sessionActor) startGeneration(ctx actor.Context, model string, seq int64, msgs []providers.Message) *failure {
	s.genSeq++
	genCtx, cancel := context.WithCancel(s.hub.baseCtx)
	now := s.hub.now()
	g := &generation{
		id: s.genSeq, messageID: newID(), seq: seq, model: model, cancel: cancel,
		started: now, lastCheckpoint: now,
	}
	s.gen = g
	s.hub.metrics.replies.Add(1)
	self, root, models := ctx.Self(), s.hub.root, s.hub.cfg.Models
	started := s.hub.goroutines.Go(func() {
		defer cancel()
		var usage *providers.Usage
		for chunk, err := range models.Stream(genCtx, model, msgs) {
			if err != nil {
				root.Send(self, &genDone{gen: g.id, err: err})
				return
			}
			if chunk.Text != "" {
				root.Send(self, &genChunk{gen: g.id, text: chunk.Text})
			}
			if chunk.Usage != nil {
				usage = chunk.Usage
			}
		}
		root.Send(self, &genDone{gen: g.id, usage: usage})
	})
	if !started {
		s.abandon()
		return &failure{code: protocol.CodeBusy, message: "the server is restarting; reconnect in a moment"}
	}
	return nil
}

// mayGenerate checks the limits a new generation must pass.
func (s *sessionActor) mayGenerate() *failure {
	switch {
	case s.hub.draining.Load():
		return &failure{code: protocol.CodeBusy, message: "the server is restarting; reconnect in a moment"}
	case !s.hub.quotaLeft(s.spec.ownerID):
		s.hub.metrics.rateLimited.Inc()
		return &failure{code: protocol.CodeRateLimited, message: "the daily token quota is used up"}
	case !s.hub.acquireReply(s.spec.ownerID):
		return &failure{code: protocol.CodeBusy, message: "too many replies in progress; wait for one to finish"}
	}
	return nil
}

// abandon cancels the generation in flight without storing anything: its
// user message was never stored.
func (s *sessionActor) abandon() {
	if s.gen == nil {
		return
	}
	s.gen.cancel()
	s.gen = nil
	s.hub.metrics.replies.Add(-1)
	s.hub.releaseReply(s.spec.ownerID)
}

func (s *sessionActor) chunk(ctx actor.Context, m *genChunk) {
	g := s.gen
	if g == nil || g.id != m.gen {
		return // output of a generation that was stopped or taken over
	}
	text := m.text
	if !utf8.ValidString(text) {
		// Offsets count bytes of what clients receive; keep them equal.
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	now := s.hub.now()
	if !g.gotFirst {
		g.gotFirst = true
		s.hub.metrics.firstToken(g.model, g.started)
		s.hub.ttftWindow.add(now.Sub(g.started))
	}
	offset := len(g.text)
	g.text = append(g.text, text...)
	s.broadcast(ctx, protocol.NewDelta(s.spec.id, g.messageID, g.seq, offset, text))
	if now.Sub(g.lastCheckpoint) >= s.hub.cfg.CheckpointEvery {
		g.lastCheckpoint = now
		s.checkpoint(g)
	}
}

// checkpoint stores the partial reply as interrupted, so a crash leaves it
// there saying it was cut off; one write every CheckpointEvery, never per token.
func (s *sessionActor) checkpoint(g *generation) {
	if err := s.storeReply(g, persistence.StatusInterrupted); err != nil {
		s.log().Warn("checkpoint reply", slog.Int64("seq", g.seq), slog.Any("err", err))
	}
}

func (s *sessionActor) done(ctx actor.Context, m *genDone) {
	g := s.gen
	if g == nil || g.id != m.gen {
		return
	}
	g.usage = m.usage
	if m.err != nil {
		s.log().Warn("generation failed", slog.String("model", g.model), slog.Int("reply_bytes", len(g.text)), slog.Any("err", m.err))
		s.finish(ctx, persistence.StatusFailed)
		s.broadcast(ctx, errorEvent("", s.spec.id, protocol.CodeProviderUnavailable))
		return
	}
	s.finish(ctx, persistence.StatusComplete)
}

// finish ends the reply in flight with status: it cancels the provider,
// stores the reply once, and sends the final message event. Output of the
// generation that is still in the mailbox is ignored from here on.
func (s *sessionActor) finish(ctx actor.Context, status persistence.Status) {
	g := s.gen
	s.gen = nil
	g.cancel()
	// The reply counts as in flight until its final event is on its way, so
	// a draining shutdown does not close sockets before it.
	defer s.hub.metrics.replies.Add(-1)
	s.hub.releaseReply(s.spec.ownerID)
	s.hub.replyWindow.add(s.hub.now().Sub(g.started))
	s.hub.metrics.reply(g.model, status, g.started, g.usage)
	if g.usage != nil {
		s.hub.spendTokens(s.spec.ownerID, g.usage.InputTokens+g.usage.OutputTokens)
	}
	if err := s.storeReply(g, status); err != nil {
		s.log().Error("store reply", slog.Int64("seq", g.seq), slog.Any("err", err))
		s.broadcast(ctx, errorEvent("", s.spec.id, storeErrorCode(err)))
		s.reloadIfStale(err)
		return
	}
	if g.usage != nil {
		// The store added the reply's usage to the session's totals.
		s.session.TokensIn += g.usage.InputTokens
		s.session.TokensOut += g.usage.OutputTokens
	}
	s.remember(persistence.RoleAssistant, string(g.text))
	s.hub.metrics.messages(persistence.RoleAssistant).Inc()
	s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(s.replyMessage(g, status))))
}

func (s *sessionActor) replyMessage(g *generation, status persistence.Status) persistence.Message {
	m := persistence.Message{
		ID: g.messageID, SessionID: s.spec.id, Seq: g.seq, Role: persistence.RoleAssistant,
		Author: s.hub.modelName(g.model), Text: string(g.text), Status: status, CreatedAt: g.started,
	}
	if g.usage != nil {
		m.TokensIn, m.TokensOut = g.usage.InputTokens, g.usage.OutputTokens
	}
	return m
}

// storeReply inserts the reply at its seq the first time and updates it after.
func (s *sessionActor) storeReply(g *generation, status persistence.Status) error {
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	m := s.replyMessage(g, status)
	if g.stored {
		return s.hub.cfg.Store.UpdateMessage(storeCtx, &m)
	}
	if err := s.hub.cfg.Store.AppendMessage(storeCtx, &m); err != nil {
		return err
	}
	g.stored = true
	s.session.LastSeq = g.seq
	s.session.MessageCount++
	s.session.UpdatedAt = s.hub.now()
	return nil
}

// syncPage is how many stored messages one sync reads per store call.
const syncPage = 500

// sync replays stored messages after the client's seq to that connection,
// then the reply in flight so far as one delta at offset 0; live events
// follow through the same user actor, so nothing falls in between.
func (s *sessionActor) sync(ctx actor.Context, c *sessionCommand) *failure {
	if c.conn == nil {
		return fail(protocol.CodeBadRequest)
	}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	after := c.cmd.AfterSeq
	for {
		msgs, err := s.hub.cfg.Store.ListMessages(storeCtx, s.spec.id, after, syncPage)
		if err != nil {
			s.log().Warn("sync", slog.Any("err", err))
			return storeFailure(err)
		}
		for _, m := range msgs {
			after = m.Seq
			if s.gen != nil && m.Seq == s.gen.seq {
				continue // the checkpoint of the reply in flight; sent as a delta below
			}
			s.reply(ctx, c.conn, protocol.NewMessage(s.spec.id, protocol.MessageOf(m)))
		}
		if len(msgs) < syncPage {
			break
		}
	}
	if g := s.gen; g != nil {
		s.reply(ctx, c.conn, protocol.NewDelta(s.spec.id, g.messageID, g.seq, 0, string(g.text)))
	}
	if s.session.Mode == persistence.ModeHuman {
		s.reply(ctx, c.conn, protocol.NewTakeover(s.spec.id, s.session.AdminName))
	}
	return nil
}

// reply sends ev to one connection, through the user actor so that it keeps
// its place among the session's other events.
func (s *sessionActor) reply(ctx actor.Context, conn *actor.PID, ev *protocol.Event) {
	if conn == nil {
		return // an HTTP call: its answer is the CallResult
	}
	ctx.Send(ctx.Parent(), &deliver{event: ev, to: conn})
}

// broadcast sends ev to every connection of the user.
func (s *sessionActor) broadcast(ctx actor.Context, ev *protocol.Event) {
	ctx.Send(ctx.Parent(), &deliver{event: ev})
}

// storeErrorCode classifies a store error for clients.
func storeErrorCode(err error) string {
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return protocol.CodeNotFound
	case errors.Is(err, persistence.ErrConflict), errors.Is(err, ErrShuttingDown):
		return protocol.CodeBusy
	default:
		return protocol.CodeStorageUnavailable
	}
}

// titleLen is how much of the first message names a session.
const titleLen = 60

func title(text string) string {
	t := strings.Join(strings.Fields(text), " ")
	if len(t) <= titleLen {
		return t
	}
	cut := titleLen
	for cut > 0 && !utf8.RuneStart(t[cut]) {
		cut--
	}
	return t[:cut] + "…"
}
