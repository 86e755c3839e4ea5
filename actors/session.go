package actors

import (
	"errors"
	"log/slog"
	"strings"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// sessionSpec is what a session actor is spawned with. It outlives restarts
// of the actor (the producer captures it), so a restarted actor knows
// whether its session is stored yet, and how many routed messages its
// parent has seen it receive. Only the session actor touches it.
type sessionSpec struct {
	id      string
	ownerID string
	fresh   bool   // a new conversation, not stored until its first message
	seen    uint64 // routed messages received, for the idle handshake
}

// sessionActor serialises everything that touches one conversation: it
// assigns seq, stores messages, runs generations and holds takeover state.
// It is the only writer of its session's records; its writes are fenced by
// seq and by the header's version, so if a stale twin exists the store
// rejects one of them, and the loser reloads (fenced).
type sessionActor struct {
	hub  *Hub
	spec *sessionSpec

	session *persistence.Session // nil when loadErr is set
	loadErr error                // the session cannot be served: not found, foreign, or store down
	reloads int                  // times the session was reloaded after losing a write
	tree    *convTree            // the conversation's messages, for paths and for the model's context
	gen     *generation          // the reply in flight, if any
	idle    idleTimer
	genSeq  uint64 // id of the latest generation
}

func newSessionActor(hub *Hub, spec *sessionSpec) *sessionActor {
	return &sessionActor{hub: hub, spec: spec}
}

func (s *sessionActor) Receive(ctx actor.Context) {
	if _, tick := ctx.Message().(*idleTick); !tick {
		s.idle.touch()
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.hub.metrics.sessions.Add(1)
		s.load()
		s.idle.arm(s.hub, ctx.Self(), s.hub.cfg.SessionIdle)
	case *actor.Stopped:
		s.hub.metrics.sessions.Add(-1)
		s.idle.stop()
	case *actor.Restarting:
		// A restart skips Stopped and runs Started again on a new instance.
		s.hub.metrics.sessions.Add(-1)
		s.idle.stop()
		if s.gen != nil {
			s.finish(ctx, persistence.StatusInterrupted)
		}
	case *routed:
		s.spec.seen++
		switch r := m.msg.(type) {
		case *sessionCommand:
			s.command(ctx, r)
		case *setShare:
			s.share(ctx, r)
		}
	case *genChunk:
		s.chunk(ctx, m)
		*m = genChunk{}
		genChunks.Put(m) // nothing keeps a chunk once handled
	case *genDone:
		s.done(ctx, m)
	case *checkpointDone:
		if g := s.gen; g != nil && g.id == m.gen && g.checkpoint == m.write {
			s.checkpointed(g)
		}
	case *idleTick:
		// Every period while it lives: it asks to stop after a quiet one
		// with no reply in flight (its parent may still keep it, having
		// routed it a message meanwhile).
		if s.idle.armed() {
			if s.idle.quiet() && s.gen == nil {
				s.askToStop(ctx)
			}
			s.idle.arm(s.hub, ctx.Self(), s.hub.cfg.SessionIdle)
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
	ctx.Send(ctx.Parent(), &childIdle{name: s.spec.id, seen: s.spec.seen})
}

// load brings the session and its recent history from the store, or starts
// a fresh one in memory.
func (s *sessionActor) load() {
	now := s.hub.now()
	s.tree = newConvTree(s.hub.cfg.HistoryWindow)
	if s.spec.fresh {
		s.session = &persistence.Session{
			ID: s.spec.id, UserID: s.spec.ownerID, Status: persistence.SessionActive, Mode: persistence.ModeBot,
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
		s.tree.add(m)
	}
	if sess.HeadID == "" && sess.LastSeq > 0 {
		sess.HeadID = s.tree.lastOf(sess.LastSeq) // stored before v1.1: no branches, the newest is the head
	}
}

// reloadIfStale re-reads the session after a fenced write lost: the store,
// not this actor's memory, says what the session holds. If the reload
// fails, loadErr is set and every later command answers it until the actor
// stops and a new one loads.
func (s *sessionActor) reloadIfStale(err error) {
	if !errors.Is(err, persistence.ErrConflict) {
		return
	}
	s.log().Warn("session state was stale; reloading from the store")
	s.reloads++
	s.hub.metrics.reloads.Inc()
	s.session, s.tree, s.loadErr = nil, nil, nil
	s.load()
}

// fenced runs op, which may write the session. If one of its writes lost to
// another writer (ErrConflict), the session has been reloaded from the
// store, and op runs once more against what the store holds now: its own
// checks decide afresh (is the session still in bot mode? does another
// admin hold it now? is help already requested?). A second loss in a row
// means another writer is active right now: the command is answered busy
// (storeError) and nothing of it is stored.
func (s *sessionActor) fenced(op func() *protocol.Error) *protocol.Error {
	reloads := s.reloads
	err := op()
	if err != nil && s.reloads != reloads && s.loadErr == nil {
		err = op()
	}
	return err
}

// advanced records in memory that the store appended m, which is now the
// session's head.
func (s *sessionActor) advanced(m persistence.Message) {
	if s.session == nil {
		return // a reload failed meanwhile; the next actor loads what is stored
	}
	s.session.LastSeq = m.Seq
	s.session.UpdatedAt = s.hub.now()
	if m.Role == persistence.RoleNote {
		return // not part of the conversation (desk.go)
	}
	s.session.HeadID = m.ID
	s.session.MessageCount++
	s.tree.add(m)
}

// onPanic, deferred, answers the caller of the message being handled if
// handling it panics, then lets the panic go on to the supervisor, which
// restarts this actor from the store.
func onPanic(answer func()) {
	if r := recover(); r != nil {
		answer()
		panic(r)
	}
}

// command runs one command and answers it: an error event to the caller's
// connection on failure, and a callAnswer when the caller waits for one.
func (s *sessionActor) command(ctx actor.Context, c *sessionCommand) {
	// A crash still answers the caller, whose connection waits for it.
	defer onPanic(func() {
		err := protocol.Err(protocol.CodeInternal)
		s.reply(ctx, c.conn, protocol.NewError(c.cmd.ID, c.cmd.SessionID, err))
		s.answer(ctx, c, &callAnswer{connID: c.connID, err: err})
	})
	a := &callAnswer{connID: c.connID}
	if s.loadErr != nil {
		a.err = storeError(s.loadErr)
		s.askToStop(ctx)
	} else {
		a.err = s.fenced(func() *protocol.Error { return s.run(ctx, c, &a.result) })
	}
	if a.err != nil && c.cmd.Type != protocol.TypeTyping { // presence fails silently
		s.reply(ctx, c.conn, protocol.NewError(c.cmd.ID, c.cmd.SessionID, a.err))
	}
	s.answer(ctx, c, a)
}

// answer sends a to the caller waiting for it, after the events this actor
// already sent for c. The owner's own commands wait in the parent, which
// receives a directly, behind those events. An admin's call waits in the
// admin's user actor, and its events reach the admin's connection through
// this actor's parent: a goes that way too, so the admin's next command is
// answered after them. An HTTP call's future has no connection to keep in
// order with.
func (s *sessionActor) answer(ctx actor.Context, c *sessionCommand, a *callAnswer) {
	switch {
	case c.replyTo == nil:
	case c.conn == nil || c.replyTo.Equal(ctx.Parent()):
		s.hub.send(ctx, c.replyTo, a)
	default:
		ctx.Send(ctx.Parent(), &relay{to: c.replyTo, msg: a})
	}
}

func (s *sessionActor) run(ctx actor.Context, c *sessionCommand, res *CallResult) *protocol.Error {
	acting := s.actingAdmin(c.identity)
	if s.session.Status == persistence.SessionEnded && endedRefuses(c.cmd.Type) {
		return protocol.Err(protocol.CodeEnded)
	}
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
			return protocol.Err(protocol.CodeForbidden)
		}
		return s.help(ctx)
	case protocol.TypeTakeover:
		return s.takeover(ctx, c.identity)
	case protocol.TypeRelease:
		return s.release(ctx, c.identity)
	case protocol.TypeEnd:
		return s.end(ctx, c.identity)
	case protocol.TypeTyping:
		s.typing(ctx, c)
	case protocol.TypeRegenerate:
		if acting {
			return protocol.Err(protocol.CodeForbidden)
		}
		return s.regenerate(ctx, c)
	case protocol.TypeEdit:
		if acting {
			return protocol.Err(protocol.CodeForbidden)
		}
		return s.edit(ctx, c)
	case protocol.TypeRename:
		if acting {
			return protocol.Err(protocol.CodeForbidden)
		}
		return s.rename(ctx, c.cmd.Title)
	case protocol.TypeDelete:
		return s.remove(ctx, c.identity)
	case protocol.TypeNote:
		return s.note(ctx, c, res)
	case protocol.TypeRate:
		return s.rate(ctx, c)
	}
	return nil
}

// actingAdmin reports whether id acts on this session as an admin rather
// than as its owner.
func (s *sessionActor) actingAdmin(id Identity) bool {
	return id.Admin && id.UserID != s.session.UserID
}

func (s *sessionActor) send(ctx actor.Context, c *sessionCommand) *protocol.Error {
	parent := c.cmd.ParentID
	if parent == "" {
		parent = s.session.HeadID
	} else if n, err := s.node(parent); err != nil {
		return err
	} else if n == nil {
		return protocol.Errf(protocol.CodeNotFound, "there is no such message in this conversation")
	}
	return s.sendAfter(ctx, c, parent, c.cmd.Text)
}

// sendAfter stores the user's text as a child of parent ("" for a new
// root) and, in bot mode, starts the model's reply to it: send, and edit
// with the edited message's parent.
func (s *sessionActor) sendAfter(ctx actor.Context, c *sessionCommand, parent, text string) *protocol.Error {
	cmd := c.cmd
	if s.gen != nil {
		return protocol.Errf(protocol.CodeBusy, "a reply is already in progress; try again when it ends")
	}
	model := cmd.Model
	if model == "" {
		model = s.session.Model
	}
	if model == "" {
		model = s.hub.cfg.Models.Default()
	}
	if !s.hub.cfg.Models.Has(model) {
		return protocol.Errf(protocol.CodeBadRequest, "unknown model")
	}
	refs, perr := s.attachments(c)
	if perr != nil {
		return perr // refused before anything is stored
	}

	var generate func() *protocol.Error
	if s.session.Mode == persistence.ModeBot {
		path, err := s.path(parent)
		if err != nil {
			return err
		}
		if err := s.mayGenerate(); err != nil {
			return err // refused before anything, a fresh session included, is stored
		}
		convo := append(modelContext(path), providers.Message{Role: providers.RoleUser, Text: text, Attachments: modelAttachments(refs)})
		seq := s.session.LastSeq + 2
		generate = func() *protocol.Error {
			return s.startGeneration(ctx, model, seq, providers.Trim(convo, s.hub.cfg.ContextBudget))
		}
	}
	created := false // this send stored the session: a refusal takes it back
	if s.spec.fresh {
		storeCtx, cancel := s.hub.storeContext()
		defer cancel()
		s.session.Title = title(text)
		if s.session.Title == "" && len(refs) > 0 {
			s.session.Title = title(refs[0].Name) // a voice note or a file alone
		}
		s.session.Model = model
		if err := s.hub.cfg.Store.CreateSession(storeCtx, s.session); err != nil {
			s.log().Warn("create session", slog.Any("err", err))
			if generate != nil {
				s.hub.releaseReply(s.spec.ownerID) // mayGenerate counted it
			}
			s.askToStop(ctx)
			return storeError(err)
		}
		s.spec.fresh = false
		created = true
	}

	// While the store is healthy the provider call starts before the user
	// message is stored, so its connection set-up overlaps the write; its
	// output waits in this actor's mailbox until the write has succeeded,
	// and is dropped if it fails. After a store failure the write goes
	// first, so no model is called while the store is down.
	overlap := generate != nil && !s.hub.storeDown.Load()
	if overlap {
		if err := generate(); err != nil {
			s.uncreate(ctx, created)
			return err
		}
	}
	msg, err := s.appendChildWith(persistence.RoleUser, c.identity, text, parent, refs)
	if err != nil {
		s.abandon()
		if generate != nil && !overlap {
			s.hub.releaseReply(s.spec.ownerID) // mayGenerate counted it
		}
		s.uncreate(ctx, created)
		return err
	}
	var refused *protocol.Error
	if generate != nil && !overlap {
		// Refused only while the hub stops: the message is stored, so it
		// is acked, and the error says that no reply follows.
		refused = generate()
	}
	if model != s.session.Model {
		// The session remembers the new model only once that is stored; this
		// reply uses it either way.
		prev := *s.session
		s.session.Model = model
		s.saveSession(prev)
	}
	if s.gen != nil {
		s.gen.parentID = msg.ID
	}
	s.reply(ctx, c.conn, protocol.NewAck(cmd.ID, s.spec.id, msg.ID, msg.Seq))
	s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(msg)))
	s.thinking(ctx)
	return refused
}

// uncreate deletes the session this send created when the send is refused
// after all (its first message could not be stored): a refused send
// creates nothing (CONTRACT §14). The client got no session id, so this
// actor is done. If the delete fails too, the empty session stays, logged.
func (s *sessionActor) uncreate(ctx actor.Context, created bool) {
	if !created {
		return
	}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	if err := s.hub.cfg.Store.DeleteSession(storeCtx, s.spec.id); err != nil {
		s.log().Warn("delete the session of a refused first message", slog.Any("err", err))
	}
	s.session, s.tree, s.loadErr = nil, nil, persistence.ErrNotFound
	s.askToStop(ctx)
}

// saveSession writes the session header, restoring prev in memory if the
// write fails so memory never runs ahead of the store; a lost fence reloads
// the session instead.
func (s *sessionActor) saveSession(prev persistence.Session) *protocol.Error {
	s.session.UpdatedAt = s.hub.now()
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	if err := s.hub.cfg.Store.UpdateSession(storeCtx, s.session); err != nil {
		s.log().Warn("store session", slog.Any("err", err))
		*s.session = prev
		s.reloadIfStale(err)
		return storeError(err)
	}
	return nil
}

// appendMessage stores a complete message at the next seq, following the
// session's head.
func (s *sessionActor) appendMessage(role persistence.Role, author Identity, text string) (persistence.Message, *protocol.Error) {
	return s.appendChild(role, author, text, s.session.HeadID)
}

// appendChild stores a complete message at the next seq, as a child of
// parent. A lost fence (another writer took the seq) stores nothing and
// reloads the session.
func (s *sessionActor) appendChild(role persistence.Role, author Identity, text, parent string) (persistence.Message, *protocol.Error) {
	return s.appendChildWith(role, author, text, parent, nil)
}

// appendChildWith is appendChild for a message that carries attachments.
func (s *sessionActor) appendChildWith(role persistence.Role, author Identity, text, parent string, refs []persistence.AttachmentRef) (persistence.Message, *protocol.Error) {
	m := persistence.Message{
		ID: newID(), SessionID: s.spec.id, Seq: s.session.LastSeq + 1, Role: role,
		Author: author.Name, AuthorID: author.UserID, Text: text, Status: persistence.StatusComplete, CreatedAt: s.hub.now(),
		ParentID: parent, Attachments: refs,
	}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	err := s.hub.cfg.Store.AppendMessage(storeCtx, &m)
	s.hub.storeDown.Store(errors.Is(err, persistence.ErrUnavailable))
	if err != nil {
		s.log().Warn("store message", slog.Int64("seq", m.Seq), slog.Any("err", err))
		s.reloadIfStale(err)
		return m, storeError(err)
	}
	s.advanced(m)
	s.hub.metrics.messages(role).Inc()
	return m, nil
}

// syncPage is how many stored messages one sync reads per store call.
const syncPage = 500

// sync replays stored messages after the client's seq to that connection,
// then the reply in flight so far as one delta at offset 0; live events
// follow through the same user actor, so nothing falls in between.
func (s *sessionActor) sync(ctx actor.Context, c *sessionCommand) *protocol.Error {
	if c.conn == nil {
		return protocol.Err(protocol.CodeBadRequest)
	}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	after := c.cmd.AfterSeq
	notes := s.actingAdmin(c.identity) // the owner's devices never see a note
	for {
		msgs, err := s.hub.cfg.Store.ListMessages(storeCtx, s.spec.id, after, syncPage)
		if err != nil {
			s.log().Warn("sync", slog.Any("err", err))
			return storeError(err)
		}
		for _, m := range msgs {
			after = m.Seq
			if s.gen != nil && m.Seq == s.gen.seq {
				continue // the checkpoint of the reply in flight; sent as a delta below
			}
			if m.Role == persistence.RoleNote && !notes {
				continue
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
	if s.session.Status == persistence.SessionEnded {
		s.reply(ctx, c.conn, protocol.NewEnded(s.spec.id))
	}
	return nil
}

// reply sends ev to one connection, through the user actor so that it keeps
// its place among the session's other events.
func (s *sessionActor) reply(ctx actor.Context, conn *actor.PID, ev *protocol.Event) {
	if conn == nil {
		return // an HTTP call: its answer is the callAnswer
	}
	ctx.Send(ctx.Parent(), &deliver{event: ev, to: conn})
}

// broadcast sends ev to every connection of the user.
func (s *sessionActor) broadcast(ctx actor.Context, ev *protocol.Event) {
	ctx.Send(ctx.Parent(), ev) // a bare event is a broadcast (userActor.Receive): no deliver per token
}

// storeError classifies a store error for clients.
func storeError(err error) *protocol.Error {
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		return protocol.Err(protocol.CodeNotFound)
	case errors.Is(err, persistence.ErrConflict), errors.Is(err, ErrShuttingDown):
		return protocol.Err(protocol.CodeBusy)
	default:
		return protocol.Err(protocol.CodeStorageUnavailable)
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
