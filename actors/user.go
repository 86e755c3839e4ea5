package actors

import (
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/protocol"
)

// connEntry is one of the user's connections. While a command of it is in
// flight elsewhere (an admin's call to another user's session), its later
// commands wait in queued, so a connection's commands take effect in order.
type connEntry struct {
	id       string
	pid      *actor.PID
	proc     *connProcess // nil for a connection on another node (cluster mode)
	identity Identity
	pending  int
	queued   []*command
	// lastTyping is when its latest typing notice was relayed.
	lastTyping time.Time
}

// userActor is the fan-out point of one user: it owns the user's connection
// and session actors, routes commands to sessions, and sends every session
// event to every connection and to the admins watching that session.
type userActor struct {
	hub      *Hub
	userID   string
	seen     uint64 // routed messages received, for the idle handshake
	conns    connSet
	sessions children
	watchers map[string]map[string]*actor.PID // session id → admin conn pid id → pid
	owners   map[string]string                // session id → owner, as looked up for this user's admin commands
	// watcherIDs is who is behind each watching admin connection (pid id),
	// for presence (desk.go).
	watcherIDs map[string]Identity
	grain      bool // a cluster kind (cluster.go): it stops itself when idle
	idleT      idleTimer
}

// connSet is a user's connections, most often one or a few: a slice
// searched by id costs less memory than a map, and no more time.
type connSet []*connEntry

func (s connSet) get(id string) *connEntry {
	for _, c := range s {
		if c.id == id {
			return c
		}
	}
	return nil
}

// remove takes the connection id out of *s and returns it, or nil.
func (s *connSet) remove(id string) *connEntry {
	for i, c := range *s {
		if c.id == id {
			*s = slices.Delete(*s, i, i+1)
			return c
		}
	}
	return nil
}

// close closes the connection with code and reason once what is queued on
// it is written. A connection's actor in cluster mode gets the close as a
// message, behind what was sent to it before (cluster.go).
func (c *connEntry) close(ctx actor.Context, code uint16, reason string) {
	if c.proc != nil {
		c.proc.stop(code, reason)
		return
	}
	closeClusterConn(ctx, c.pid, code, reason)
}

func newUserActor(hub *Hub, userID string) *userActor {
	// watchers and owners are made on first use: most users never need them.
	return &userActor{hub: hub, userID: userID, sessions: newChildren()}
}

func (u *userActor) Receive(ctx actor.Context) {
	if _, tick := ctx.Message().(*idleTick); !tick {
		u.idleT.touch()
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if u.userID == "" {
			u.userID = userOf(ctx.Self().Id)
		}
		return // the message that spawned it follows: armIdle runs after that
	case *actor.Stopping, *actor.Restarting:
		// Its connections are not its children: close them here. After a
		// restart the new instance knows none of them; their clients
		// reconnect and sync.
		for _, c := range u.conns {
			c.close(ctx, CloseGoingAway, closeReasonServer)
		}
		u.conns = nil
		u.idleT.stop()
		return
	case *actor.Stopped:
		u.idleT.stop()
		return
	case *routed:
		u.seen++
		u.receiveRouted(ctx, m.msg)
	case *command:
		u.command(ctx, m)
	case *deliver:
		u.deliver(ctx, m)
	case *protocol.Event: // a session's broadcast
		u.broadcast(ctx, m, nil, false)
	case *relay:
		u.hub.send(ctx, m.to, m.msg)
	case *callAnswer:
		u.callDone(ctx, m.connID)
	case *ownerFound:
		u.ownerFound(ctx, m)
	case *detach:
		if c := u.conns.remove(m.connID); c != nil {
			c.close(ctx, CloseGoingAway, closeReasonServer)
		}
	case *childIdle:
		u.sessions.stopIfIdle(ctx, m)
	case *actor.Terminated:
		u.terminated(ctx, m.Who)
	case *idleTick:
		if u.idleT.armed() && u.idleT.quiet() && u.idle() {
			if u.grain {
				ctx.Poison(ctx.Self()) // the identity lookup activates it again on the next message
				return
			}
			ctx.Send(ctx.Parent(), &childIdle{name: u.userID, seen: u.seen})
		}
		if u.idleT.armed() {
			u.idleT.arm(u.hub, ctx.Self(), u.hub.cfg.UserIdle) // its parent may keep it: ask again later
		}
	}
	u.armIdle(ctx)
}

// idle: nothing keeps the actor alive.
func (u *userActor) idle() bool {
	return len(u.conns) == 0 && u.sessions.len() == 0 && len(u.watchers) == 0
}

// armIdle keeps the idle timer (idle.go) running exactly while the actor
// is idle: a connected user's actor has no timer.
func (u *userActor) armIdle(ctx actor.Context) {
	switch armed := u.idleT.armed(); {
	case u.idle() && !armed:
		u.idleT.arm(u.hub, ctx.Self(), u.hub.cfg.UserIdle)
	case !u.idle() && armed:
		u.idleT.stop()
	}
}

func (u *userActor) deliver(ctx actor.Context, m *deliver) {
	if m.to != nil {
		u.hub.send(ctx, m.to, m.event)
		return
	}
	u.broadcast(ctx, m.event, m.except, m.adminsOnly)
}

// broadcast sends ev to every connection of the user but except (unless
// adminsOnly) and to the admins watching its session.
func (u *userActor) broadcast(ctx actor.Context, ev *protocol.Event, except *actor.PID, adminsOnly bool) {
	for _, c := range u.conns {
		switch {
		case adminsOnly || c.pid.Equal(except):
		case c.proc != nil:
			c.proc.push(ev) // what a send to its pid does, without the lookup
		default:
			u.hub.send(ctx, c.pid, ev)
		}
	}
	for _, w := range u.watchers[ev.SessionID] {
		if !w.Equal(except) {
			u.hub.send(ctx, w, ev)
		}
	}
}

func (u *userActor) terminated(ctx actor.Context, who *actor.PID) {
	u.conns = slices.DeleteFunc(u.conns, func(c *connEntry) bool { return c.pid.Equal(who) })
	for sid, ws := range u.watchers {
		if _, ok := ws[who.Id]; !ok {
			continue
		}
		delete(ws, who.Id)
		if len(ws) == 0 {
			delete(u.watchers, sid)
		}
		u.presence(ctx, sid)
	}
	delete(u.watcherIDs, who.Id)
	u.sessions.removePID(who)
}

func (u *userActor) receiveRouted(ctx actor.Context, msg any) {
	switch m := msg.(type) {
	case *attach:
		c, err := u.hub.spawnConn(ctx.Self().Id, m)
		if err != nil {
			u.hub.log.Error("attach connection", slog.String("conn_id", m.connID), slog.Any("err", err))
			m.reply <- &attached{}
			return
		}
		u.conns = append(u.conns, &connEntry{id: m.connID, pid: c.pid, proc: c, identity: m.identity})
		m.reply <- &attached{user: ctx.Self(), conn: c.pid}
	case *adopt:
		u.adopt(m)
	case *detach:
		if c := u.conns.remove(m.connID); c != nil {
			c.close(ctx, CloseGoingAway, closeReasonServer)
		}
	case *call:
		u.runCall(ctx, m)
	case *setShare:
		u.toSession(ctx, m.sessionID, false, m)
	case *closeConns:
		for _, c := range u.conns {
			c.close(ctx, CloseGoingAway, closeReasonServer)
		}
	case *closeForErasure:
		u.closeForErasure(ctx)
	case *forgetUser:
		u.forget(m.userID)
	case *watchersOf:
		u.hub.send(ctx, m.replyTo, u.watcherList(m.sessionID))
	}
}

func (u *userActor) command(ctx actor.Context, m *command) {
	c := u.conns.get(m.connID)
	if c == nil {
		return // the connection detached while its command was in flight
	}
	if m.cmd.Type == protocol.TypeTyping && !m.admitted {
		if !c.allowTyping(u.hub.now(), u.hub.typingEvery) {
			return
		}
		m.admitted = true
	}
	if c.pending > 0 {
		c.queued = append(c.queued, m)
		return
	}
	if m.reject != nil {
		u.hub.send(ctx, c.pid, m.reject)
		return
	}
	cmd := m.cmd
	if cmd.Type == protocol.TypePing {
		u.hub.send(ctx, c.pid, protocol.NewPong(cmd.ID))
		return
	}
	isAdminOp := cmd.Type == protocol.TypeWatch || cmd.Type == protocol.TypeUnwatch ||
		cmd.Type == protocol.TypeTakeover || cmd.Type == protocol.TypeRelease
	if isAdminOp && !c.identity.Admin {
		u.hub.send(ctx, c.pid, protocol.NewError(cmd.ID, cmd.SessionID, protocol.Err(protocol.CodeForbidden)))
		return
	}
	if (cmd.Type == protocol.TypeSend || cmd.Type == protocol.TypeEdit || cmd.Type == protocol.TypeRegenerate) && !c.identity.Admin {
		if wait, ok := u.hub.allowMessage(u.userID); !ok {
			u.hub.metrics.rateLimited.Inc()
			u.hub.send(ctx, c.pid, protocol.NewError(cmd.ID, cmd.SessionID, &protocol.Error{
				Code: protocol.CodeRateLimited, Message: "too many messages; try again shortly", RetryAfter: wait}))
			return
		}
	}
	// Everything else acts on a session. It runs as a call that answers
	// back here, and the connection's next commands wait for that answer,
	// so a pong proves every command before it has taken effect.
	c.pending++
	call := &sessionCommand{conn: c.pid, identity: c.identity, cmd: cmd, replyTo: ctx.Self(), connID: m.connID}
	if cmd.Type == protocol.TypeSend && cmd.SessionID == "" {
		call.cmd.SessionID = newID()
		u.toSession(ctx, call.cmd.SessionID, true, call)
		return
	}
	_, live := u.sessions.get(cmd.SessionID)
	if !c.identity.Admin || (live && !isAdminOp) {
		u.toSession(ctx, cmd.SessionID, false, call)
		return
	}
	// An admin may address any user's session: find its owner, then call.
	if owner, ok := u.owners[cmd.SessionID]; ok {
		u.ownerFound(ctx, &ownerFound{cmd: m, owner: owner})
		return
	}
	self, root, store := ctx.Self(), u.hub.root, u.hub.cfg.Store
	started := u.hub.goroutines.Go(func() {
		sctx, cancel := u.hub.storeContext()
		defer cancel()
		s, err := store.GetSession(sctx, cmd.SessionID)
		found := &ownerFound{cmd: m, err: err}
		if err == nil {
			found.owner = s.UserID
		}
		root.Send(self, found)
	})
	if !started {
		u.ownerFound(ctx, &ownerFound{cmd: m, err: ErrShuttingDown})
	}
}

// ownerFound continues an admin's command once its session's owner is
// known: it becomes a call to the owner's user actor (this one, for the
// admin's own sessions).
func (u *userActor) ownerFound(ctx actor.Context, m *ownerFound) {
	c := u.conns.get(m.cmd.connID)
	if c == nil {
		return
	}
	cmd := m.cmd.cmd
	if m.err != nil {
		u.hub.send(ctx, c.pid, protocol.NewError(cmd.ID, cmd.SessionID, storeError(m.err)))
		u.callDone(ctx, m.cmd.connID)
		return
	}
	if u.owners == nil {
		u.owners = map[string]string{}
	}
	u.owners[cmd.SessionID] = m.owner
	cl := &call{identity: c.identity, conn: c.pid, connID: m.cmd.connID, cmd: cmd, replyTo: ctx.Self()}
	if m.owner == u.userID {
		u.runCall(ctx, cl)
		return
	}
	if u.hub.clustered() {
		u.callOwner(ctx, m.owner, cl)
		return
	}
	ctx.Send(u.hub.directory, &forUser{userID: m.owner, msg: cl})
}

// callDone ends an admin connection's call in flight and runs the commands
// that waited for it.
func (u *userActor) callDone(ctx actor.Context, connID string) {
	c := u.conns.get(connID)
	if c == nil {
		return
	}
	c.pending--
	for c.pending == 0 && len(c.queued) > 0 {
		next := c.queued[0]
		c.queued = c.queued[1:]
		u.command(ctx, next)
	}
}

// runCall runs a call on one of this user's sessions: watching is kept
// here, everything else goes to the session actor.
func (u *userActor) runCall(ctx actor.Context, m *call) {
	sid := m.cmd.SessionID
	switch m.cmd.Type {
	case protocol.TypeWatch, protocol.TypeUnwatch:
		if m.cmd.Type == protocol.TypeWatch {
			u.watch(ctx, sid, m.conn, m.identity)
		} else if ws := u.watchers[sid]; ws != nil && m.conn != nil {
			if _, ok := ws[m.conn.Id]; ok {
				delete(ws, m.conn.Id)
				if len(ws) == 0 {
					delete(u.watchers, sid)
				}
				u.forgetWatcher(m.conn)
				u.presence(ctx, sid)
			}
		}
		u.hub.send(ctx, m.replyTo, &callAnswer{connID: m.connID})
		return
	case protocol.TypeTakeover:
		u.watch(ctx, sid, m.conn, m.identity) // whoever holds a session sees it
	case protocol.TypeTyping:
		// An admin's typing reaches a session only from a connection that
		// watches it (or from the owner's own).
		if !u.mayType(sid, m.conn) {
			u.hub.send(ctx, m.replyTo, &callAnswer{connID: m.connID})
			return
		}
	}
	u.toSession(ctx, sid, false, &sessionCommand{conn: m.conn, identity: m.identity, cmd: m.cmd, replyTo: m.replyTo, connID: m.connID})
}

// mayType reports whether conn, an admin's, may send typing notices to the
// session: it watches it, or it is one of the owner's own.
func (u *userActor) mayType(sessionID string, conn *actor.PID) bool {
	if conn == nil {
		return false
	}
	if u.conns.get(connIDOf(conn)) != nil {
		return true
	}
	_, watching := u.watchers[sessionID][conn.Id]
	return watching
}

func (u *userActor) watch(ctx actor.Context, sessionID string, conn *actor.PID, who Identity) {
	if conn == nil {
		return
	}
	if u.conns.get(connIDOf(conn)) != nil {
		return // the owner's own connections see everything already
	}
	ws := u.watchers[sessionID]
	if ws == nil {
		if u.watchers == nil {
			u.watchers = map[string]map[string]*actor.PID{}
		}
		ws = map[string]*actor.PID{}
		u.watchers[sessionID] = ws
	}
	if _, ok := ws[conn.Id]; !ok {
		ws[conn.Id] = conn
		ctx.Watch(conn)
		u.addWatcher(conn, who)
		u.presence(ctx, sessionID)
	}
}

// connIDOf recovers the connection id from a connActor's pid.
func connIDOf(pid *actor.PID) string {
	const prefix = "conn-"
	id := pid.Id
	for i := len(id) - 1; i >= 0; i-- {
		if id[i] == '/' {
			id = id[i+1:]
			break
		}
	}
	if len(id) > len(prefix) && id[:len(prefix)] == prefix {
		return id[len(prefix):]
	}
	return ""
}

// toSession forwards msg (a *sessionCommand or *setShare) to the session's
// actor, spawning it (fresh: a new conversation; otherwise loaded from the
// store) when it is not live.
func (u *userActor) toSession(ctx actor.Context, sessionID string, fresh bool, msg any) {
	if _, ok := u.sessions.get(sessionID); !ok {
		spec := &sessionSpec{id: sessionID, ownerID: u.userID, fresh: fresh}
		props := actor.PropsFromProducer(func() actor.Actor { return newSessionActor(u.hub, spec) })
		u.sessions.add(sessionID, ctx.SpawnPrefix(props, "session-"))
	}
	u.sessions.send(ctx, sessionID, msg)
}
