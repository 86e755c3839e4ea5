package actors

import (
	"context"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// generation is a reply in flight. Its provider stream runs in a goroutine
// that sends genChunk/genDone back, and its checkpoints are written by
// another; everything else is the actor's.
type generation struct {
	id             uint64
	messageID      string
	parentID       string // the user message it answers
	seq            int64
	model          string
	text           []byte
	cancel         context.CancelFunc
	started        time.Time
	gotFirst       bool
	lastCheckpoint time.Time
	stored         bool             // a checkpoint appended the reply; later writes update it
	checkpoint     *checkpointWrite // the checkpoint being written, if any: at most one at a time
	usage          *providers.Usage
}

// checkpointWrite is one checkpoint of a reply, written by a hub goroutine.
// err is set before done is closed; the actor reads it only after that.
type checkpointWrite struct {
	first bool // the reply's first write: an append, not an update
	done  chan struct{}
	err   error
}

// startGeneration starts the model's stream on a goroutine of the hub; a
// hub that is stopping refuses it, and the command is answered busy.
func (s *sessionActor) startGeneration(ctx actor.Context, model string, seq int64, msgs []providers.Message) *protocol.Error {
	s.genSeq++
	genCtx, cancel := context.WithCancel(s.hub.baseCtx)
	now := s.hub.now()
	g := &generation{
		id: s.genSeq, messageID: newID(), seq: seq, model: model, cancel: cancel,
		started: now, lastCheckpoint: now,
	}
	s.gen = g
	s.hub.metrics.replies.Add(1)
	self, root := ctx.Self(), s.hub.root
	stream := s.modelStream(model)
	started := s.hub.goroutines.Go(func() {
		defer cancel()
		var usage *providers.Usage
		for chunk, err := range stream(genCtx, msgs) {
			if err != nil {
				root.Send(self, &genDone{gen: g.id, err: err})
				return
			}
			if chunk.Text != "" {
				c := genChunks.Get().(*genChunk)
				c.gen, c.text = g.id, chunk.Text
				root.Send(self, c)
			}
			if chunk.Usage != nil {
				usage = chunk.Usage
			}
		}
		root.Send(self, &genDone{gen: g.id, usage: usage})
	})
	if !started {
		s.abandon()
		return protocol.Errf(protocol.CodeBusy, "the server is restarting; reconnect in a moment")
	}
	return nil
}

// mayGenerate checks the limits a new generation must pass.
func (s *sessionActor) mayGenerate() *protocol.Error {
	switch {
	case s.hub.draining.Load():
		return protocol.Errf(protocol.CodeBusy, "the server is restarting; reconnect in a moment")
	case !s.hub.quotaLeft(s.spec.ownerID):
		s.hub.metrics.rateLimited.Inc()
		return protocol.Errf(protocol.CodeRateLimited, "the daily token quota is used up")
	case !s.hub.acquireReply(s.spec.ownerID):
		return protocol.Errf(protocol.CodeBusy, "too many replies in progress; wait for one to finish")
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
	if g.checkpoint == nil && now.Sub(g.lastCheckpoint) >= s.hub.cfg.CheckpointEvery {
		g.lastCheckpoint = now
		s.startCheckpoint(ctx, g)
	}
}

// startCheckpoint stores the partial reply as interrupted, so that a crash
// leaves it there saying it was cut off: one write every CheckpointEvery,
// never per token. The write runs on a hub goroutine, off this actor, so
// the deltas keep flowing while it waits on the store; it reports back with
// checkpointDone. chunk starts no second one while one is in flight, and
// finish waits for it before the final write.
func (s *sessionActor) startCheckpoint(ctx actor.Context, g *generation) {
	w := &checkpointWrite{first: !g.stored, done: make(chan struct{})}
	g.checkpoint = w
	s.hub.metrics.checkpoints.Inc()
	m := s.replyMessage(g, persistence.StatusInterrupted)
	self, root, hub := ctx.Self(), s.hub.root, s.hub
	started := s.hub.goroutines.Go(func() {
		storeCtx, cancel := hub.storeContext()
		if w.first {
			w.err = hub.cfg.Store.AppendMessage(storeCtx, &m)
		} else {
			w.err = hub.cfg.Store.UpdateMessage(storeCtx, &m)
		}
		cancel()
		close(w.done)
		root.Send(self, &checkpointDone{gen: g.id, write: w})
	})
	if !started {
		// The hub is stopping: no checkpoint, and nothing for finish to wait for.
		w.err = ErrShuttingDown
		close(w.done)
		g.checkpoint = nil
	}
}

// checkpointed takes in the result of g's checkpoint write, which has
// returned.
func (s *sessionActor) checkpointed(g *generation) {
	w := g.checkpoint
	g.checkpoint = nil
	if w.err != nil {
		// The final write tries again, and handles a lost fence.
		s.log().Warn("checkpoint reply", slog.Int64("seq", g.seq), slog.Any("err", w.err))
		return
	}
	if w.first {
		g.stored = true
		s.advanced(s.replyMessage(g, persistence.StatusInterrupted))
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
		s.broadcast(ctx, protocol.NewError("", s.spec.id, protocol.Err(protocol.CodeProviderUnavailable)))
		return
	}
	s.finish(ctx, persistence.StatusComplete)
}

// finish ends the reply in flight with status: it cancels the provider,
// stores the reply with one write (its usage included: the store adds it
// to the session's totals), and sends the final message event. Output of
// the generation that is still in the mailbox is ignored from here on.
//
// If the final write fails the reply still ends on every device: the final
// message goes out with status failed and the text so far, followed by the
// error. What the store holds then is the user's message and, if a
// checkpoint was written, the reply as of that checkpoint (interrupted).
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
	if w := g.checkpoint; w != nil {
		// The final write must not race the checkpoint (both may be the
		// reply's first write): wait for it. Its store call is bounded by
		// the store timeout, and this happens only when a reply ends while
		// its checkpoint is being written.
		<-w.done
		s.checkpointed(g)
	}
	if err := s.storeReply(g, status); err != nil {
		s.log().Error("store reply", slog.Int64("seq", g.seq), slog.Any("err", err))
		failed := s.replyMessage(g, persistence.StatusFailed)
		s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(failed)))
		s.broadcast(ctx, protocol.NewError("", s.spec.id, storeError(err)))
		s.reloadIfStale(err)
		return
	}
	if g.usage != nil && s.session != nil {
		// The store added the reply's usage to the session's totals.
		s.session.TokensIn += g.usage.InputTokens
		s.session.TokensOut += g.usage.OutputTokens
	}
	if s.tree != nil {
		s.tree.add(s.replyMessage(g, status)) // its final text
	}
	s.hub.metrics.messages(persistence.RoleAssistant).Inc()
	s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(s.replyMessage(g, status))))
}

func (s *sessionActor) replyMessage(g *generation, status persistence.Status) persistence.Message {
	m := persistence.Message{
		ID: g.messageID, SessionID: s.spec.id, Seq: g.seq, Role: persistence.RoleAssistant,
		Author: s.hub.modelName(g.model), Text: string(g.text), Status: status, CreatedAt: g.started,
		ParentID: g.parentID,
	}
	if g.usage != nil {
		m.TokensIn, m.TokensOut = g.usage.InputTokens, g.usage.OutputTokens
	}
	return m
}

// storeReply is the reply's final write: an append at its seq, or an update
// when a checkpoint appended it already.
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
	s.advanced(m)
	return nil
}
