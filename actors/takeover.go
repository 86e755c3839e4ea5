package actors

import (
	"errors"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// Takeover is a state of the session record: mode "bot" (the model answers)
// or "human" (an admin answers). The session actor is the only place that
// changes it, one command at a time, so two admins racing to take over are
// ordered: the first wins, the second gets busy. In human mode send never
// starts a generation; a generation in flight when the takeover arrives is
// stopped and stored before the takeover event is emitted, so no bot text
// ever follows it.

// saveSession writes the session header, restoring prev in memory if the
// write fails so memory never runs ahead of the store.
func (s *sessionActor) saveSession(prev persistence.Session) *failure {
	s.session.UpdatedAt = s.hub.now()
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	if err := s.hub.cfg.Store.UpdateSession(storeCtx, s.session); err != nil {
		s.log().Warn("store session", slog.Any("err", err))
		*s.session = prev
		s.reloadIfStale(err)
		return storeFailure(err)
	}
	return nil
}

func (s *sessionActor) help(ctx actor.Context) *failure {
	if s.session.HelpRequested {
		return nil
	}
	prev := *s.session
	s.session.HelpRequested = true
	if f := s.saveSession(prev); f != nil {
		return f
	}
	ev := protocol.NewHelp(s.spec.id, s.session.UserID, s.session.Title)
	ctx.Send(s.hub.admins, &alertAdmins{event: ev})
	s.hub.notifyHelp(s.spec.id, s.session.UserID)
	return nil
}

func (s *sessionActor) takeover(ctx actor.Context, admin Identity) *failure {
	if !admin.Admin {
		return fail(protocol.CodeForbidden)
	}
	if s.session.Mode == persistence.ModeHuman {
		if s.session.AdminID == admin.UserID {
			return nil // already holding it
		}
		return &failure{code: protocol.CodeBusy, message: "another admin has taken this session over"}
	}
	if s.gen != nil {
		s.finish(ctx, persistence.StatusStopped)
	}
	prev := *s.session
	s.session.Mode = persistence.ModeHuman
	s.session.AdminID, s.session.AdminName = admin.UserID, admin.Name
	s.session.HelpRequested = false // a human is here now
	if f := s.saveSession(prev); f != nil {
		return f
	}
	s.audit(ctx, admin, admin.Name+" joined the conversation")
	s.broadcast(ctx, protocol.NewTakeover(s.spec.id, admin.Name))
	s.hub.metrics.takeovers.Inc()
	return nil
}

func (s *sessionActor) release(ctx actor.Context, admin Identity) *failure {
	if !admin.Admin {
		return fail(protocol.CodeForbidden)
	}
	if s.session.Mode != persistence.ModeHuman {
		return nil
	}
	if s.session.AdminID != admin.UserID {
		return &failure{code: protocol.CodeForbidden, message: "only the admin holding this session can release it"}
	}
	prev := *s.session
	s.session.Mode = persistence.ModeBot
	s.session.AdminID, s.session.AdminName = "", ""
	if f := s.saveSession(prev); f != nil {
		return f
	}
	s.audit(ctx, admin, admin.Name+" left; the assistant answers again")
	s.broadcast(ctx, protocol.NewRelease(s.spec.id))
	return nil
}

// adminSend stores and delivers an admin's message in a session the admin holds.
func (s *sessionActor) adminSend(ctx actor.Context, c *sessionCommand, res *CallResult) *failure {
	if s.session.Mode != persistence.ModeHuman || s.session.AdminID != c.identity.UserID {
		return &failure{code: protocol.CodeForbidden, message: "take the session over before replying"}
	}
	m, f := s.appendMessage(persistence.RoleAdmin, c.identity, c.cmd.Text)
	if f != nil {
		return f
	}
	res.MessageID, res.Seq = m.ID, m.Seq
	if c.conn != nil {
		s.reply(ctx, c.conn, protocol.NewAck(c.cmd.ID, s.spec.id, m.ID, m.Seq))
	}
	s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(m)))
	return nil
}

// audit stores a system message recording what an admin did, with the
// admin's id and name and the time, and shows it in the conversation.
func (s *sessionActor) audit(ctx actor.Context, admin Identity, text string) {
	m, f := s.appendMessage(persistence.RoleSystem, admin, text)
	if f != nil {
		s.log().Error("store audit record", slog.String("admin_id", admin.UserID))
		return
	}
	s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(m)))
}

// appendMessage stores a complete message at the next seq.
func (s *sessionActor) appendMessage(role persistence.Role, author Identity, text string) (persistence.Message, *failure) {
	m := persistence.Message{
		ID: newID(), SessionID: s.spec.id, Seq: s.session.LastSeq + 1, Role: role,
		Author: author.Name, AuthorID: author.UserID, Text: text, Status: persistence.StatusComplete, CreatedAt: s.hub.now(),
	}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	err := s.hub.cfg.Store.AppendMessage(storeCtx, &m)
	s.hub.storeDown.Store(errors.Is(err, persistence.ErrUnavailable))
	if err != nil {
		s.log().Warn("store message", slog.Int64("seq", m.Seq), slog.Any("err", err))
		s.reloadIfStale(err)
		return m, storeFailure(err)
	}
	s.session.LastSeq = m.Seq
	s.session.MessageCount++
	s.session.UpdatedAt = m.CreatedAt
	s.remember(role, text)
	s.hub.metrics.messages(role).Inc()
	return m, nil
}

// share creates (or revokes) the session's read-only share link.
func (s *sessionActor) share(on bool, res *CallResult) *failure {
	prev := *s.session
	switch {
	case on && s.session.ShareID == "":
		s.session.ShareID = newID()
	case !on:
		s.session.ShareID = ""
	}
	if s.session.ShareID != prev.ShareID {
		if f := s.saveSession(prev); f != nil {
			return f
		}
	}
	res.ShareID = s.session.ShareID
	return nil
}
