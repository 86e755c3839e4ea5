package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// Ending and deleting a session (CONTRACT §6 and §8), and the audit trail
// the session actor keeps of what admins (and owners, for their own data)
// did to it. Both run on the session actor, so they are ordered with the
// session's other commands: a reply in flight is stopped and stored before
// the ended event, and nothing of the session is written after its delete.

// endedRefuses reports whether a command of type typ is refused with
// `ended` once the session has ended: everything that would add to it.
// "edit" and "regenerate" are the commands of CONTRACT §6.
func endedRefuses(typ string) bool {
	switch typ {
	case protocol.TypeSend, protocol.TypeHelp, protocol.TypeTakeover, "edit", "regenerate":
		return true
	}
	return false
}

// end stops the reply in flight (stored as stopped, its final message sent
// first), marks the session ended, tells every device and watcher, and
// records who did it. Ending an ended session does nothing.
func (s *sessionActor) end(ctx actor.Context, who Identity) *protocol.Error {
	if !who.Admin && who.UserID != s.session.UserID {
		return protocol.Err(protocol.CodeNotFound)
	}
	if s.session.Status == persistence.SessionEnded {
		return nil
	}
	if s.gen != nil {
		s.finish(ctx, persistence.StatusStopped)
	}
	prev := *s.session
	s.session.Status = persistence.SessionEnded
	s.session.HelpRequested, s.session.HelpRequestedAt = false, time.Time{} // no one is waiting for a human any more
	if err := s.saveSession(prev); err != nil {
		return err
	}
	if prev.HelpRequested {
		s.leftQueue(ctx)
	}
	s.broadcast(ctx, protocol.NewEnded(s.spec.id))
	s.record(who, persistence.AuditEnd, s.spec.id)
	return nil
}

// remove deletes the session and everything in it for real, on its
// owner's request. A reply in flight is dropped unstored (its checkpoint,
// if one is being written, first lands, so the delete takes it too). From
// here on the actor answers not_found, and asks to be stopped.
func (s *sessionActor) remove(ctx actor.Context, who Identity) *protocol.Error {
	if who.UserID != s.session.UserID {
		return protocol.Err(protocol.CodeNotFound)
	}
	if g := s.gen; g != nil {
		if w := g.checkpoint; w != nil {
			<-w.done // bounded by the store timeout, as in finish
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
	// The entry names the owner, not the session: nothing of it is kept.
	s.record(who, persistence.AuditDelete, "")
	s.askToStop(ctx)
	return nil
}

// record stores an audit entry of action by who on this session. A failed
// write is logged and counted; the action itself stands.
func (s *sessionActor) record(who Identity, action, sessionID string) {
	role := persistence.AuditByUser
	if who.Admin && who.UserID != s.spec.ownerID {
		role = persistence.AuditByAdmin
	}
	now := s.hub.now()
	e := &persistence.AuditEntry{ID: persistence.NewAuditID(now), At: now, AdminID: who.UserID, AdminName: who.Name,
		Role: role, Action: action, SessionID: sessionID, UserID: s.spec.ownerID}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	if err := s.hub.cfg.Store.AppendAudit(storeCtx, e); err != nil {
		s.hub.metrics.auditFailures.Inc()
		s.log().Error("store audit entry", slog.String("action", action), slog.String("admin_id", who.UserID), slog.Any("err", err))
	}
}
