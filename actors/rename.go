package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/protocol"
)

// The owner's rename of a session (delete is in end.go) and presence
// (typing). Rename and delete reach the session actor like any
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
