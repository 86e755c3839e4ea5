package actors

import (
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// Branching commands: regenerate a reply, edit a user message (tree.go says
// what the tree is). Both leave the old branch as it is and grow a new one
// beside it; the model is sent only the path of the new one.

// node is the session's message id, loading the older part of the tree
// from the store when the tree in memory does not reach it; nil when the
// session has no such message.
func (s *sessionActor) node(id string) (*convNode, *protocol.Error) {
	if n := s.tree.get(id); n != nil || s.tree.complete() {
		return n, nil
	}
	if err := s.loadOlder(); err != nil {
		return nil, err
	}
	return s.tree.get(id), nil
}

// path is the branch from id up to the root, oldest first, at most
// HistoryWindow messages, loading older messages when it reaches past what
// the tree holds.
func (s *sessionActor) path(id string) ([]*convNode, *protocol.Error) {
	p, missing := s.tree.path(id, s.hub.cfg.HistoryWindow)
	if !missing {
		return p, nil
	}
	if err := s.loadOlder(); err != nil {
		return nil, err
	}
	p, _ = s.tree.path(id, s.hub.cfg.HistoryWindow)
	return p, nil
}

// loadOlder reads every stored message before the oldest the tree holds.
func (s *sessionActor) loadOlder() *protocol.Error {
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	var older []persistence.Message
	for after := int64(0); after < s.tree.lowest-1; {
		msgs, err := s.hub.cfg.Store.ListMessages(storeCtx, s.spec.id, after, syncPage)
		if err != nil {
			s.log().Warn("load older messages", slog.Any("err", err))
			return storeError(err)
		}
		for _, m := range msgs {
			if m.Seq < s.tree.lowest {
				older = append(older, m)
			}
			after = m.Seq
		}
		if len(msgs) < syncPage {
			break
		}
	}
	s.tree.addOlder(older)
	return nil
}

// regenerate starts a new reply to the user message that the assistant
// message cmd.MessageID answers (by default, the reply on the head's
// branch), beside the old one. It is acked like a send, with the new
// reply's id and seq.
func (s *sessionActor) regenerate(ctx actor.Context, c *sessionCommand) *protocol.Error {
	if s.gen != nil {
		return protocol.Errf(protocol.CodeBusy, "a reply is already in progress; try again when it ends")
	}
	if s.session.Mode != persistence.ModeBot {
		return protocol.Errf(protocol.CodeForbidden, "a person answers in this conversation now")
	}
	target := c.cmd.MessageID
	if target == "" {
		// The newest user or assistant message on the head's branch.
		p, err := s.path(s.session.HeadID)
		if err != nil {
			return err
		}
		for i := len(p) - 1; i >= 0 && target == ""; i-- {
			if p[i].role == persistence.RoleUser || p[i].role == persistence.RoleAssistant {
				target = p[i].id
			}
		}
		if target == "" {
			return protocol.Errf(protocol.CodeBadRequest, "there is no reply to regenerate")
		}
	}
	n, err := s.node(target)
	if err != nil {
		return err
	}
	switch {
	case n == nil:
		return protocol.Errf(protocol.CodeNotFound, "there is no such message in this conversation")
	case n.role == persistence.RoleAssistant:
		if n, err = s.node(n.parent); err != nil {
			return err
		}
	case c.cmd.MessageID != "":
		return protocol.Errf(protocol.CodeBadRequest, "only a reply of the assistant can be regenerated")
	}
	if n == nil || n.role != persistence.RoleUser {
		return protocol.Errf(protocol.CodeBadRequest, "that reply answers no message of the user")
	}
	path, err := s.path(n.id)
	if err != nil {
		return err
	}
	model := s.session.Model
	if model == "" || !s.hub.cfg.Models.Has(model) {
		model = s.hub.cfg.Models.Default()
	}
	if err := s.mayGenerate(); err != nil {
		return err
	}
	seq := s.session.LastSeq + 1
	if err := s.startGeneration(ctx, model, seq, providers.Trim(modelContext(path), s.hub.cfg.ContextBudget)); err != nil {
		return err
	}
	s.gen.parentID = n.id
	s.reply(ctx, c.conn, protocol.NewAck(c.cmd.ID, s.spec.id, s.gen.messageID, seq))
	s.thinking(ctx)
	return nil
}

// edit stores a new version of the user message cmd.MessageID: a sibling
// with the same parent and the new text, acked like a send, and in bot mode
// a reply to it. The old version and its branch stay.
func (s *sessionActor) edit(ctx actor.Context, c *sessionCommand) *protocol.Error {
	n, err := s.node(c.cmd.MessageID)
	if err != nil {
		return err
	}
	switch {
	case n == nil:
		return protocol.Errf(protocol.CodeNotFound, "there is no such message in this conversation")
	case n.role != persistence.RoleUser:
		return protocol.Errf(protocol.CodeBadRequest, "only the user's own messages can be edited")
	}
	if len(c.cmd.Attachments) == 0 {
		c.cmd.Attachments = refIDs(n.attachments) // an edit keeps the files unless it names others
	}
	return s.sendAfter(ctx, c, n.parent, c.cmd.Text)
}

// thinking tells every device and watcher that the model has started the
// reply in flight, before its first text.
func (s *sessionActor) thinking(ctx actor.Context) {
	if g := s.gen; g != nil && !g.gotFirst {
		s.broadcast(ctx, protocol.NewTyping(s.spec.id, protocol.TypingAssistant, s.hub.modelName(g.model), g.messageID, g.parentID))
	}
}
