package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// The owner's commands on a session as a whole (rename, delete) and
// presence (typing). Rename and delete reach the session actor like any
// command, so they are ordered with its writes.

// rename sets the session's title, a fenced header write, and tells every
// device and watcher.
func (s *sessionActor) rename(ctx actor.Context, title string) *protocol.Error {
	if err := protocol.CheckTitle(title); err != nil {
		return protocol.Errf(protocol.CodeBadRequest, "%v", err)
	}
	if s.session.Title == title {
		return nil
	}
	prev := *s.session
	s.session.Title = title
	if err := s.saveSession(prev); err != nil {
		return err
	}
	s.broadcast(ctx, protocol.NewRenamed(s.spec.id, title))
	return nil
}

// deleteSession deletes the session and every message of it from the store
// for real. A reply in flight is cancelled and not stored (its checkpoint,
// if one is being written, is waited for first, so it cannot land after
// the delete). Every device and watcher is told; from then on the actor
// answers not_found until it stops, and a new one finds nothing.
func (s *sessionActor) deleteSession(ctx actor.Context) *protocol.Error {
	if g := s.gen; g != nil {
		if w := g.checkpoint; w != nil {
			<-w.done // bounded by the store timeout
		}
		s.abandon()
	}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	if err := s.hub.cfg.Store.DeleteSession(storeCtx, s.spec.id); err != nil {
		s.log().Warn("delete session", slog.Any("err", err))
		return storeError(err)
	}
	s.broadcast(ctx, protocol.NewDeleted(s.spec.id))
	s.session, s.tree, s.loadErr = nil, nil, persistence.ErrNotFound
	s.askToStop(ctx)
	return nil
}

// typing relays that someone is typing to the session's other parties: the
// owner's other devices and the watching admins (the sender excluded).
// Nothing is stored.
func (s *sessionActor) typing(ctx actor.Context, c *sessionCommand) {
	if s.spec.fresh {
		return
	}
	role := protocol.TypingUser
	if s.actingAdmin(c.identity) {
		role = protocol.TypingAdmin
	}
	ctx.Send(ctx.Parent(), &deliver{event: protocol.NewTyping(s.spec.id, role, c.identity.Name, "", ""), except: c.conn})
}

// typingEvery is the most often one connection's typing is relayed;
// more is dropped silently (CONTRACT §7). Hub.typingEvery holds it, so
// that a test can widen it.
const typingEvery = time.Second

// allowTyping reports whether c may send a typing notice now, at most one
// per every, and if so counts it.
func (c *connEntry) allowTyping(now time.Time, every time.Duration) bool {
	if !c.lastTyping.IsZero() && now.Sub(c.lastTyping) < every {
		return false
	}
	c.lastTyping = now
	return true
}
