package actors

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/cluster/wire"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// Erasure of a user (CONTRACT §8). On one node the directory runs it, since
// it alone reaches user actors by id (cluster mode: below):
//
//  1. It marks the user as being erased: while the mark stands, a new
//     connection of the user is refused and calls into the user's sessions
//     answer not_found, so nothing new is written for the user.
//  2. It tells the user's actor to close every connection (CloseErased,
//     after what is queued) and to stop; the session actors under it stop
//     first, storing a reply in flight as interrupted, so once the
//     directory sees the user actor terminated, no actor writes for the
//     user any more.
//  3. A hub goroutine erases the user in the store, which also stores the
//     audit record.
//  4. The directory forgets the user's rate and quota state, tells every
//     live user actor to drop what it remembers of the user's sessions
//     (the owners an admin's commands looked up), lifts the mark and
//     answers the caller.

// CloseErased closes the connections of a user whose data is erased. 4000
// and up are the application's own close codes (RFC 6455 §7.4.2).
const CloseErased uint16 = 4001

const closeReasonErased = "this account's data was erased"

// eraseUser asks the directory to erase a user; the answer goes to reply
// (buffered).
type eraseUser struct {
	ctx    context.Context // the caller's: bounds the store's erasure
	userID string
	record *persistence.AuditEntry
	reply  chan eraseAnswer
}

type eraseAnswer struct {
	result persistence.EraseResult
	err    error
}

// eraseDone tells the directory that the store erased a user.
type eraseDone struct {
	req    *eraseUser
	answer eraseAnswer
}

// closeForErasure asks a user actor to close its connections and stop.
type closeForErasure struct{}

// forgetUser asks a user actor to forget what it remembers of another
// user's sessions.
type forgetUser struct{ userID string }

// EraseUser deletes every session and message of userID for real and
// stores record in the audit trail, after closing the user's connections
// and stopping the user's actors; see the steps above. It waits for the
// store, within ctx.
func (h *Hub) EraseUser(ctx context.Context, userID string, record *persistence.AuditEntry) (persistence.EraseResult, error) {
	if h.baseCtx.Err() != nil {
		return persistence.EraseResult{}, ErrShuttingDown
	}
	if h.clustered() {
		res, err := h.eraseClustered(ctx, userID, record)
		if err != nil {
			return res, fmt.Errorf("erase user %s: %w", userID, err)
		}
		h.metrics.erasures.Inc()
		return res, nil
	}
	req := &eraseUser{ctx: ctx, userID: userID, record: record, reply: make(chan eraseAnswer, 1)}
	h.root.Send(h.directory, req)
	select {
	case a := <-req.reply:
		if a.err != nil {
			return a.result, fmt.Errorf("erase user %s: %w", userID, a.err)
		}
		h.metrics.erasures.Inc()
		return a.result, nil
	case <-ctx.Done():
		return persistence.EraseResult{}, fmt.Errorf("erase user %s: %w", userID, ctx.Err())
	}
}

// erasures is the directory's state of the erasures in progress.
type erasures struct {
	byUser   map[string]*eraseUser // users being erased
	stopping map[string]*eraseUser // the user actor's pid id → its erasure, until it has stopped
}

func (e *erasures) active(userID string) bool { return e.byUser[userID] != nil }

// startErase runs step 1 and 2, or 3 at once when the user has no actor.
func (d *directory) startErase(ctx actor.Context, m *eraseUser) {
	if d.erasing.active(m.userID) {
		m.reply <- eraseAnswer{err: protocol.Errf(protocol.CodeBusy, "this user is being erased already")}
		return
	}
	if d.erasing.byUser == nil {
		d.erasing.byUser, d.erasing.stopping = map[string]*eraseUser{}, map[string]*eraseUser{}
	}
	d.erasing.byUser[m.userID] = m
	d.closeParked(m.userID, CloseErased, closeReasonErased)
	pid, ok := d.users.get(m.userID)
	if !ok {
		d.eraseStored(ctx, m)
		return
	}
	d.users.send(ctx, m.userID, &closeForErasure{})
	d.users.remove(m.userID)
	d.hub.metrics.users.Add(-1)
	d.erasing.stopping[pid.Id] = m
}

// userStopped continues the erasure whose user actor has terminated.
func (d *directory) userStopped(ctx actor.Context, who *actor.PID) bool {
	m, ok := d.erasing.stopping[who.Id]
	if !ok {
		return false
	}
	delete(d.erasing.stopping, who.Id)
	d.eraseStored(ctx, m)
	return true
}

// eraseStored runs step 3 on a hub goroutine.
func (d *directory) eraseStored(ctx actor.Context, m *eraseUser) {
	self, root, store := ctx.Self(), d.hub.root, d.hub.cfg.Store
	started := d.hub.goroutines.Go(func() {
		res, err := store.EraseUser(m.ctx, m.userID, m.record)
		root.Send(self, &eraseDone{req: m, answer: eraseAnswer{result: res, err: err}})
	})
	if !started {
		d.finishErase(ctx, &eraseDone{req: m, answer: eraseAnswer{err: ErrShuttingDown}})
	}
}

// finishErase runs step 4.
func (d *directory) finishErase(ctx actor.Context, m *eraseDone) {
	delete(d.erasing.byUser, m.req.userID)
	d.hub.users.Delete(m.req.userID)
	for name := range d.users.pids {
		d.users.send(ctx, name, &forgetUser{userID: m.req.userID})
	}
	m.req.reply <- m.answer
}

// refuseErasing answers what is routed to a user being erased as if the
// user had nothing: no connection, no session.
func (d *directory) refuseErasing(ctx actor.Context, msg any) {
	notFound := protocol.Err(protocol.CodeNotFound)
	switch m := msg.(type) {
	case *attach:
		m.reply <- &attached{}
	case *call:
		if m.conn != nil {
			ctx.Send(m.conn, protocol.NewError(m.cmd.ID, m.cmd.SessionID, notFound))
		}
		if m.replyTo != nil {
			ctx.Send(m.replyTo, &callAnswer{connID: m.connID, err: notFound})
		}
	case *setShare:
		if m.replyTo != nil {
			ctx.Send(m.replyTo, &shareAnswer{err: notFound})
		}
	}
}

// closeForErasure closes the user's sockets once what is queued on them is
// written, then stops this actor and so its children. It poisons itself
// rather than stopping at once: a stop would drop the commands already in
// its mailbox, among them an admin's call whose connection would then wait
// for an answer that never comes; poison lets them be answered first (the
// store is erased only once this actor has terminated, and what arrives
// later is refused by the directory).
func (u *userActor) closeForErasure(ctx actor.Context) {
	for _, c := range u.conns {
		c.close(ctx, CloseErased, closeReasonErased)
	}
	ctx.Poison(ctx.Self())
}

// forget drops the session owners this actor looked up for its admin's
// commands that belong to userID.
func (u *userActor) forget(userID string) {
	for sid, owner := range u.owners {
		if owner == userID {
			delete(u.owners, sid)
		}
	}
}

// Erasure in cluster mode. The user's actor (a cluster kind, on whichever
// node owns the user) takes the directory's part: it is the one place every
// connection of the user, on any node, attaches to and every command and
// call for the user goes through.
//
//  1. The erasing node asks the user's actor (EraseStart). It closes every
//     connection attached to it with CloseErased, after what is queued,
//     and stops its sessions (a reply in flight is stored as interrupted);
//     from then on it refuses every attach (the connection is closed with
//     CloseErased), command, call and share change, as if the user had
//     nothing. It answers EraseReady once none of its sessions runs.
//  2. The erasing node erases the user in the store, with the audit record.
//  3. It tells the user's actor (EraseDone), which forgets the user's limit
//     state and stops. Should EraseDone never come (the erasing node died),
//     the actor stops after eraseHold.

// eraseHold bounds how long a user's actor refuses everything for an
// erasure whose node never said it was done.
const eraseHold = 2 * time.Minute

// eraseExpired: eraseHold has passed since EraseStart.
type eraseExpired struct{}

// grainErasure is a user actor's erasure in progress.
type grainErasure struct {
	waiting []*actor.PID // EraseStart's senders still waiting for EraseReady
	ready   bool
}

// eraseClustered runs the steps above.
func (h *Hub) eraseClustered(ctx context.Context, userID string, record *persistence.AuditEntry) (persistence.EraseResult, error) {
	timeout := callTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	start := &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_EraseStart{EraseStart: &wire.EraseStart{HoldMs: eraseHold.Milliseconds()}}}
	pid, res, err := h.clusterAsk(ctx, userID, start, timeout)
	if err == nil {
		if env, ok := res.(*wire.Envelope); !ok || env.GetEraseReady() == nil {
			err = fmt.Errorf("unexpected answer %T", res)
		}
	}
	if err != nil {
		// Nothing is erased: the user's connections may still be open.
		h.log.Warn("erase: the user's actor did not answer", slog.String("user_id", userID), slog.Any("err", err))
		return persistence.EraseResult{}, protocol.Errf(protocol.CodeBusy, "the user's actor did not answer; try again")
	}
	erased, err := h.cfg.Store.EraseUser(ctx, userID, record)
	h.send(h.root, pid, &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_EraseDone{EraseDone: &wire.EraseDone{}}})
	h.users.Delete(userID)
	return erased, err
}

// startErase runs step 1 in the user's actor.
func (g *userGrain) startErase(ctx actor.Context, hold time.Duration) {
	g.erasing = &grainErasure{waiting: []*actor.PID{ctx.Sender()}}
	for _, c := range g.conns {
		ctx.Unwatch(c.pid)
		c.close(ctx, CloseErased, closeReasonErased)
	}
	g.conns = nil
	for _, pid := range g.sessions.pids {
		ctx.Poison(pid)
	}
	self, h := ctx.Self(), g.hub
	h.goroutines.Go(func() {
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-t.C:
			h.root.Send(self, &eraseExpired{})
		case <-h.goroutines.Stopping():
		}
	})
	g.eraseReady(ctx)
}

// eraseReady answers EraseReady once none of the actor's sessions runs.
func (g *userGrain) eraseReady(ctx actor.Context) {
	e := g.erasing
	if e == nil || g.sessions.len() > 0 {
		return
	}
	e.ready = true
	for _, to := range e.waiting {
		if to != nil {
			g.hub.send(ctx, to, &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_EraseReady{EraseReady: &wire.EraseReady{}}})
		}
	}
	e.waiting = nil
}

// refuseErasing answers what reaches the user's actor while its user is
// erased as if the user had nothing: no connection, no session.
func (g *userGrain) refuseErasing(ctx actor.Context, env *wire.Envelope) {
	notFound := protocol.Err(protocol.CodeNotFound)
	h := g.hub
	switch b := env.Body.(type) {
	case *wire.Envelope_Attach:
		if conn := pidFromWire(b.Attach.Conn); conn != nil {
			closeClusterConn(ctx, conn, CloseErased, closeReasonErased)
		}
		if ctx.Sender() != nil {
			ctx.Respond(&wire.Envelope{Version: wire.Version, Body: &wire.Envelope_Attached{Attached: &wire.Attached{ConnId: b.Attach.ConnId}}})
		}
	case *wire.Envelope_Command:
		if conn := pidFromWire(b.Command.Conn); conn != nil {
			cmd := b.Command.GetCmd()
			h.send(ctx, conn, protocol.NewError(cmd.GetId(), cmd.GetSessionId(), notFound))
		}
	case *wire.Envelope_Call:
		c := b.Call
		if conn := pidFromWire(c.Conn); conn != nil {
			h.send(ctx, conn, protocol.NewError(c.GetCmd().GetId(), c.GetCmd().GetSessionId(), notFound))
		}
		replyTo := pidFromWire(c.ReplyTo)
		if replyTo == nil {
			replyTo = ctx.Sender()
		}
		if replyTo != nil {
			h.send(ctx, replyTo, &callAnswer{connID: c.ConnId, err: notFound})
		}
	case *wire.Envelope_SetShare:
		if ctx.Sender() != nil {
			h.send(ctx, ctx.Sender(), &shareAnswer{err: notFound})
		}
	case *wire.Envelope_WatchersOf: // nobody watches a session being erased
		if ctx.Sender() != nil {
			h.send(ctx, ctx.Sender(), []protocol.Watcher{})
		}
	case *wire.Envelope_EraseStart:
		if g.erasing.ready {
			h.send(ctx, ctx.Sender(), &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_EraseReady{EraseReady: &wire.EraseReady{}}})
		} else {
			g.erasing.waiting = append(g.erasing.waiting, ctx.Sender())
		}
	case *wire.Envelope_EraseDone:
		h.users.Delete(g.userID)
		ctx.Poison(ctx.Self())
	}
}
