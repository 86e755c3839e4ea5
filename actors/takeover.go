package actors

import (
	"log/slog"
	"time"

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
// ever follows it. The mode is read from memory but written fenced: if a
// takeover's write loses to another writer (a stale twin of this actor),
// the session is reloaded and the takeover checked once more against it
// (sessionActor.fenced), so an admin who took the session over elsewhere
// wins and this one gets busy.

func (s *sessionActor) help(ctx actor.Context) *protocol.Error {
	if s.session.HelpRequested {
		return nil
	}
	prev := *s.session
	s.session.HelpRequested, s.session.HelpRequestedAt = true, s.hub.now()
	if err := s.saveSession(prev); err != nil {
		return err
	}
	ev := protocol.NewHelp(s.spec.id, s.session.UserID, s.session.Title)
	ctx.Send(s.hub.admins, &alertAdmins{event: ev})
	s.hub.notifyHelp(s.spec.id, s.session.UserID)
	return nil
}

func (s *sessionActor) takeover(ctx actor.Context, admin Identity) *protocol.Error {
	if !admin.Admin {
		return protocol.Err(protocol.CodeForbidden)
	}
	if s.session.Mode == persistence.ModeHuman {
		if s.session.AdminID == admin.UserID {
			return nil // already holding it
		}
		return protocol.Errf(protocol.CodeBusy, "another admin has taken this session over")
	}
	if s.gen != nil {
		s.finish(ctx, persistence.StatusStopped)
	}
	prev := *s.session
	s.session.Mode = persistence.ModeHuman
	s.session.AdminID, s.session.AdminName = admin.UserID, admin.Name
	s.session.HelpRequested, s.session.HelpRequestedAt = false, time.Time{} // a human is here now
	if err := s.saveSession(prev); err != nil {
		return err
	}
	if prev.HelpRequested {
		s.answered(ctx, prev.WaitingSince(s.hub.now()))
	}
	s.audit(ctx, admin, admin.Name+" joined the conversation")
	s.record(admin, persistence.AuditTakeover, s.spec.id)
	s.broadcast(ctx, protocol.NewTakeover(s.spec.id, admin.Name))
	s.hub.metrics.takeovers.Inc()
	return nil
}

func (s *sessionActor) release(ctx actor.Context, admin Identity) *protocol.Error {
	if !admin.Admin {
		return protocol.Err(protocol.CodeForbidden)
	}
	if s.session.Mode != persistence.ModeHuman {
		return nil
	}
	if s.session.AdminID != admin.UserID {
		return protocol.Errf(protocol.CodeForbidden, "only the admin holding this session can release it")
	}
	prev := *s.session
	s.session.Mode = persistence.ModeBot
	s.session.AdminID, s.session.AdminName = "", ""
	if err := s.saveSession(prev); err != nil {
		return err
	}
	s.audit(ctx, admin, admin.Name+" left; the assistant answers again")
	s.record(admin, persistence.AuditRelease, s.spec.id)
	s.broadcast(ctx, protocol.NewRelease(s.spec.id))
	return nil
}

// adminSend stores and delivers an admin's message in a session the admin holds.
func (s *sessionActor) adminSend(ctx actor.Context, c *sessionCommand, res *CallResult) *protocol.Error {
	if s.session.Mode != persistence.ModeHuman || s.session.AdminID != c.identity.UserID {
		return protocol.Errf(protocol.CodeForbidden, "take the session over before replying")
	}
	m, err := s.appendMessage(persistence.RoleAdmin, c.identity, c.cmd.Text)
	if err != nil {
		return err
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
	m, err := s.appendMessage(persistence.RoleSystem, admin, text)
	if err != nil {
		s.log().Error("store audit record", slog.String("admin_id", admin.UserID))
		return
	}
	s.broadcast(ctx, protocol.NewMessage(s.spec.id, protocol.MessageOf(m)))
}
