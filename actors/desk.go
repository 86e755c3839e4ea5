package actors

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// The help desk (CONTRACT §11). On the session actor: the time of a help
// request and how long it waited, internal notes, and the owner's rating.
// On the user actor: who watches each session (presence), told to the
// watchers whenever it changes and asked for by the admin's session view.
//
// A note is stored like a message (its seq in the session's order) but is
// not part of the conversation: it moves neither the head nor the count
// (persistence.RoleNote), the conversation tree never holds it, and it is
// delivered to watching admins only (deliver.adminsOnly); a sync from the
// owner's devices skips it.

// note stores an admin's internal note and shows it to the watching admins.
func (s *sessionActor) note(ctx actor.Context, c *sessionCommand, res *CallResult) *protocol.Error {
	if !c.identity.Admin {
		return protocol.Err(protocol.CodeForbidden)
	}
	m, err := s.appendChild(persistence.RoleNote, c.identity, c.cmd.Text, s.session.HeadID)
	if err != nil {
		return err
	}
	res.MessageID, res.Seq = m.ID, m.Seq
	if c.conn != nil {
		s.reply(ctx, c.conn, protocol.NewAck(c.cmd.ID, s.spec.id, m.ID, m.Seq))
	}
	ctx.Send(ctx.Parent(), &deliver{event: protocol.NewMessage(s.spec.id, protocol.MessageOf(m)), adminsOnly: true})
	s.record(c.identity, persistence.AuditNote, s.spec.id)
	return nil
}

// rate stores the owner's satisfaction rating; a later one replaces it.
// The chat page asks after a release or an end, and the server takes the
// owner's rating whenever it comes: only the owner rates, not an admin.
func (s *sessionActor) rate(ctx actor.Context, c *sessionCommand) *protocol.Error {
	if s.actingAdmin(c.identity) {
		return protocol.Errf(protocol.CodeForbidden, "only the user of a conversation rates it")
	}
	if s.spec.fresh {
		return protocol.Err(protocol.CodeNotFound)
	}
	if err := protocol.CheckRating(c.cmd.Score, c.cmd.Comment); err != nil {
		return protocol.Errf(protocol.CodeBadRequest, "%v", err)
	}
	prev := *s.session
	s.session.Rating, s.session.RatingComment = c.cmd.Score, c.cmd.Comment
	if err := s.saveSession(prev); err != nil {
		return err
	}
	s.broadcast(ctx, protocol.NewRated(s.spec.id, protocol.Rating{Score: c.cmd.Score, Comment: c.cmd.Comment}))
	return nil
}

// answered is called once a human has taken over a session that waited
// for one: the wait goes into the histogram, and the session leaves the
// queue.
func (s *sessionActor) answered(ctx actor.Context, waited time.Duration) {
	s.hub.metrics.helpWait.Update(waited.Seconds())
	s.leftQueue(ctx)
}

// leftQueue tells every online admin that the session no longer waits,
// so their queue views drop it.
func (s *sessionActor) leftQueue(ctx actor.Context) {
	ctx.Send(s.hub.admins, &alertAdmins{event: protocol.NewQueueLeft(s.spec.id)})
}

// watchersOf asks a user actor who watches one of its sessions; it
// answers []protocol.Watcher to replyTo (set by the directory for an HTTP
// request).
type watchersOf struct {
	sessionID string
	replyTo   *actor.PID
}

// Watchers lists the admins watching a session of ownerID, each once.
func (h *Hub) Watchers(ctx context.Context, ownerID, sessionID string) ([]protocol.Watcher, error) {
	res, err := h.request(ctx, ownerID, &watchersOf{sessionID: sessionID})
	if err != nil {
		return nil, fmt.Errorf("watchers of session %s: %w", sessionID, err)
	}
	ws, ok := res.([]protocol.Watcher)
	if !ok {
		return nil, protocol.Err(protocol.CodeInternal)
	}
	return ws, nil
}

// watcherList is who watches the session: each admin once, by name.
func (u *userActor) watcherList(sessionID string) []protocol.Watcher {
	seen := map[string]bool{}
	out := []protocol.Watcher{}
	for pidID := range u.watchers[sessionID] {
		who := u.watcherIDs[pidID]
		if who.UserID == "" || seen[who.UserID] {
			continue
		}
		seen[who.UserID] = true
		out = append(out, protocol.Watcher{AdminID: who.UserID, Name: who.Name})
	}
	slices.SortFunc(out, func(a, b protocol.Watcher) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.AdminID, b.AdminID))
	})
	return out
}

// presence tells the session's watchers who watches it now.
func (u *userActor) presence(ctx actor.Context, sessionID string) {
	ev := protocol.NewWatchers(sessionID, u.watcherList(sessionID))
	for _, w := range u.watchers[sessionID] {
		u.hub.send(ctx, w, ev)
	}
}

// addWatcher remembers who is behind an admin connection that watches.
func (u *userActor) addWatcher(conn *actor.PID, who Identity) {
	if u.watcherIDs == nil {
		u.watcherIDs = map[string]Identity{}
	}
	u.watcherIDs[conn.Id] = who
}

// forgetWatcher drops a connection that watches nothing here any more.
func (u *userActor) forgetWatcher(conn *actor.PID) {
	for _, ws := range u.watchers {
		if _, ok := ws[conn.Id]; ok {
			return
		}
	}
	delete(u.watcherIDs, conn.Id)
}
