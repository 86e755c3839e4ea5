package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/chatbox/chatbox/cluster/wire"
	"github.com/chatbox/chatbox/protocol"
)

// Placement puts user actors on the nodes of a cluster (cluster mode,
// CONTRACT §12); *cluster.Node satisfies it. With none, the hub's directory
// holds every user on this node, as before.
//
// In cluster mode the user actor is the cluster kind (identity = user id),
// placed by protoactor's identity lookup; its session actors stay its
// children. A connection's actor (clusterConn) lives on the node that holds
// the socket, attaches to its user's actor wherever that is, watches it and
// attaches again when it stops or moves. Everything that crosses nodes is a
// wire.Envelope; a local send of an event stays a pointer.
type Placement interface {
	// Start joins the cluster with system, whose user actors userProps makes.
	Start(system *actor.ActorSystem, userProps *actor.Props) error
	// Get is the pid of the user's actor, activating it; nil if none answers.
	Get(userID string) *actor.PID
	// Forget drops a cached pid that turned out dead.
	Forget(userID string)
	// Owner is the member address the identity lookup places the user's
	// actor on, per this node's latest topology; "" when it has none.
	Owner(userID string) string
	// Members lists the member addresses this node sees.
	Members() []string
	// Leave takes this node out of the other members' topology, so that
	// users find their new owners; before the user actors stop. It returns
	// when the others have seen it or ctx ends.
	Leave(ctx context.Context)
	// Shutdown leaves the cluster; after the actors are stopped.
	Shutdown()
}

// clusterMetrics are cluster mode's series (docs/metrics.md).
type clusterMetrics struct {
	remoteSends *metrics.Counter // envelopes sent to another node
	activations *metrics.Counter // user actors activated on this node
	failovers   *metrics.Counter // connections that attached again after their user's actor stopped or moved
	dropped     *metrics.Counter // envelopes of a kind this node does not know
	strays      *metrics.Counter // user actors stopped because another member owns their user
}

func newClusterMetrics(s *metrics.Set, p Placement) *clusterMetrics {
	s.NewGauge("chatbox_cluster_members", func() float64 { return float64(len(p.Members())) })
	return &clusterMetrics{
		remoteSends: s.NewCounter("chatbox_cluster_remote_sends_total"),
		activations: s.NewCounter("chatbox_cluster_activations_total"),
		failovers:   s.NewCounter("chatbox_cluster_failovers_total"),
		dropped:     s.NewCounter("chatbox_cluster_dropped_total"),
		strays:      s.NewCounter("chatbox_cluster_strays_stopped_total"),
	}
}

// adminsName is the admins actor's name on every node, so that any node can
// address every other node's.
const adminsName = "admins"

// clustered reports whether the hub runs in cluster mode.
func (h *Hub) clustered() bool { return h.cfg.Placement != nil }

// Join makes this node a member of the cluster (after Start): user actors
// are placed by the cluster from then on. It returns once this node is a
// member.
func (h *Hub) Join() (err error) {
	if !h.clustered() {
		return errors.New("join: no Placement configured")
	}
	defer func() {
		// protoactor's cluster panics when its provider cannot start.
		if r := recover(); r != nil {
			err = fmt.Errorf("join the cluster: %v", r)
		}
	}()
	return h.startCluster()
}

// leaveWait bounds how long a shutdown waits for the other members to drop
// this node (Placement.Leave) before it stops the user actors hosted here.
const leaveWait = 3 * time.Second

// stopClusterActors closes this node's connections, leaves the other
// members' topology, then stops the user actors hosted here: the
// connections other nodes hold for those users attach to their new owners
// rather than being closed.
func (h *Hub) stopClusterActors(ctx context.Context) error {
	var errs []error
	if h.conns != nil {
		if err := h.root.StopFuture(h.conns).Wait(); err != nil {
			errs = append(errs, fmt.Errorf("stop connections: %w", err))
		}
	}
	leave, cancel := context.WithTimeout(ctx, leaveWait)
	h.cfg.Placement.Leave(leave)
	cancel()
	if err := h.stopGrains(); err != nil {
		errs = append(errs, fmt.Errorf("stop user actors: %w", err))
	}
	return errors.Join(errs...)
}

// callOwner sends an admin's call to the session owner's actor, wherever
// the cluster placed it; its answer comes back to this user actor.
func (u *userActor) callOwner(ctx actor.Context, owner string, cl *call) {
	self, h := ctx.Self(), u.hub
	env := &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_Call{Call: &wire.Call{
		Identity: identityToWire(cl.identity), Conn: pidToWire(cl.conn), ConnId: cl.connID,
		Cmd: commandToWire(cl.cmd), ReplyTo: pidToWire(self)}}}
	started := h.goroutines.Go(func() {
		pid := h.cfg.Placement.Get(owner)
		if pid == nil {
			h.send(h.root, cl.conn, protocol.NewError(cl.cmd.ID, cl.cmd.SessionID, protocol.Err(protocol.CodeBusy)))
			h.root.Send(self, &callAnswer{connID: cl.connID})
			return
		}
		h.send(h.root, pid, env)
	})
	if !started {
		u.callDone(ctx, cl.connID)
	}
}

// startCluster spawns this node's connection parent and joins the cluster
// with the user actor as its kind.
func (h *Hub) startCluster() error {
	h.cmetrics = newClusterMetrics(h.cfg.Metrics, h.cfg.Placement)
	h.conns = h.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return &connParent{hub: h} },
		actor.WithSupervisor(childSupervisor)))
	props := actor.PropsFromProducer(func() actor.Actor { return &userGrain{userActor: newUserActor(h, "")} },
		actor.WithSupervisor(childSupervisor))
	if err := h.cfg.Placement.Start(h.system, props); err != nil {
		return err
	}
	h.goroutines.Go(h.checkOwners)
	return nil
}

// While the topology settles (ownerSettle after this node last saw it
// change), every ownerCheckEvery each user actor here checks that this
// node still owns its user (userGrain.checkOwner).
const (
	ownerCheckEvery = time.Second
	ownerSettle     = 10 * time.Second
)

// checkOwners runs the owner checks until the hub's goroutines stop.
func (h *Hub) checkOwners() {
	tick := time.NewTicker(ownerCheckEvery)
	defer tick.Stop()
	var members []string
	var changed time.Time
	for {
		select {
		case <-h.goroutines.Stopping():
			return
		case now := <-tick.C:
			if m := h.cfg.Placement.Members(); !slices.Equal(m, members) {
				members, changed = m, now
			}
			if now.Sub(changed) > ownerSettle {
				continue
			}
			h.grains.Range(func(_, v any) bool {
				h.root.Send(v.(*actor.PID), &ownerCheck{})
				return true
			})
		}
	}
}

// Nodes lists the cluster members this node sees; nil on a single node.
func (h *Hub) Nodes() []string {
	if !h.clustered() {
		return nil
	}
	return h.cfg.Placement.Members()
}

// isRemote reports whether pid lives on another node.
func (h *Hub) isRemote(pid *actor.PID) bool {
	return h.clustered() && pid != nil && pid.Address != h.system.Address()
}

// send sends msg to pid: as is when pid is on this node, as an envelope
// otherwise. msg is a *protocol.Event, a *callAnswer or an envelope.
func (h *Hub) send(sender actor.SenderContext, pid *actor.PID, msg any) {
	if h.isRemote(pid) {
		env := h.envelope(msg)
		if env == nil {
			h.log.Error("no wire form for a message to another node", slog.String("type", fmt.Sprintf("%T", msg)))
			return
		}
		h.cmetrics.remoteSends.Inc()
		sender.Send(pid, env)
		return
	}
	sender.Send(pid, msg)
}

func (h *Hub) envelope(msg any) *wire.Envelope {
	env := &wire.Envelope{Version: wire.Version}
	switch m := msg.(type) {
	case *wire.Envelope:
		return m
	case *protocol.Event:
		env.Body = &wire.Envelope_Event{Event: eventToWire(m)}
	case *callAnswer:
		env.Body = &wire.Envelope_CallAnswer{CallAnswer: answerToWire(m)}
	case *closeConn:
		env.Body = &wire.Envelope_CloseConn{CloseConn: &wire.CloseConn{Code: uint32(m.code), Reason: m.reason}}
	case *shareAnswer:
		a := &wire.ShareAnswer{ShareId: m.shareID}
		if m.err != nil {
			a.ErrorCode, a.ErrorMessage = m.err.Code, m.err.Message
		}
		env.Body = &wire.Envelope_ShareAnswer{ShareAnswer: a}
	case []protocol.Watcher:
		ws := &wire.Watchers{}
		for _, w := range m {
			ws.Watchers = append(ws.Watchers, &wire.Watcher{AdminId: w.AdminID, Name: w.Name})
		}
		env.Body = &wire.Envelope_Watchers{Watchers: ws}
	default:
		return nil
	}
	return env
}

// dropUnknown logs an envelope this node cannot read (a newer node's kind).
func (h *Hub) dropUnknown(env *wire.Envelope) {
	h.cmetrics.dropped.Inc()
	h.log.Warn("dropped a message of a kind this node does not know", slog.Uint64("wire_version", uint64(env.GetVersion())))
}

// userGrain is the user actor as a cluster kind: it reads envelopes from
// other nodes into the user actor's own messages. While its user is being
// erased (erase.go) it refuses everything that would write for the user;
// when this node's topology says another member owns the user it stops
// (ownerCheck), and its connections attach to the owner.
type userGrain struct {
	*userActor
	erasing *grainErasure // non-nil from EraseStart until the actor stops
	strayed bool          // the last ownerCheck found another member owns the user
	moving  bool          // stopping because another member owns the user
}

func (g *userGrain) Receive(ctx actor.Context) {
	h := g.hub
	switch m := ctx.Message().(type) {
	case *pcluster.ClusterInit:
		g.userID = m.Identity.Identity
		g.grain = true
		h.metrics.users.Add(1)
		h.cmetrics.activations.Inc()
		h.grains.Store(ctx.Self().Id, ctx.Self())
	case *actor.Stopping:
		if owner := h.cfg.Placement.Owner(g.userID); g.moving || (owner != "" && owner != ctx.Self().Address) {
			// Stopped because the user moved (by checkOwner, or by
			// protoactor's placement actor on a topology change): the
			// connections are not closed; each watches this actor and
			// attaches to the owner once it has stopped.
			g.conns = nil
			return
		}
		if h.stopping.Load() {
			// Its node is shutting down: the connections held here are
			// closed (CloseConnections), those on other nodes attach to
			// the user's new owner, as when it moved.
			g.conns = slices.DeleteFunc(g.conns, func(c *connEntry) bool { return c.pid.Address != ctx.Self().Address })
		}
		g.userActor.Receive(ctx)
	case *actor.Stopped:
		h.metrics.users.Add(-1)
		h.grains.Delete(ctx.Self().Id)
		g.userActor.Receive(ctx)
	case *wire.Envelope:
		if g.erasing != nil {
			g.refuseErasing(ctx, m)
			return
		}
		g.idleT.touch()
		g.envelope(ctx, m)
		g.armIdle(ctx) // an attach or a detach from another node changes whether it is idle
	case *ownerCheck:
		g.checkOwner(ctx)
	case *eraseExpired:
		if g.erasing != nil {
			ctx.Poison(ctx.Self())
		}
	case *idleTick:
		if g.erasing == nil { // an erasing actor stops at EraseDone, not idle
			g.userActor.Receive(ctx)
		}
	case *actor.Terminated:
		g.userActor.Receive(ctx)
		g.eraseReady(ctx)
	default:
		g.userActor.Receive(ctx)
	}
}

// ownerCheck asks a user actor whether this node still owns its user.
type ownerCheck struct{}

// checkOwner stops the actor when this node's topology has placed its user
// on another member at two checks in a row: protoactor's placement actor
// stops an actor whose owner changed only on the topology change it sees
// itself, so a node whose view lagged behind the others' (a killed node
// rejoining) can activate a user another member owns, and keep it. Two
// checks, so that a view that differs for a moment (a dead member not yet
// dropped) stops nothing.
func (g *userGrain) checkOwner(ctx actor.Context) {
	owner := g.hub.cfg.Placement.Owner(g.userID)
	if owner == "" || owner == ctx.Self().Address || g.erasing != nil {
		g.strayed = false
		return
	}
	if !g.strayed {
		g.strayed = true
		return
	}
	if !g.moving {
		g.moving = true
		g.hub.cmetrics.strays.Inc()
		g.hub.log.Info("stopping a user actor another member owns", slog.String("user_id", g.userID), slog.String("owner", owner))
		ctx.Poison(ctx.Self())
	}
}

func (g *userGrain) envelope(ctx actor.Context, env *wire.Envelope) {
	switch b := env.Body.(type) {
	case *wire.Envelope_Attach:
		a := b.Attach
		pid := pidFromWire(a.Conn)
		g.conns.remove(a.ConnId) // a repeated attach replaces the entry
		g.conns = append(g.conns, &connEntry{id: a.ConnId, pid: pid, identity: identityFromWire(a.Identity)})
		ctx.Watch(pid)
		if ctx.Sender() != nil {
			ctx.Respond(&wire.Envelope{Version: wire.Version, Body: &wire.Envelope_Attached{Attached: &wire.Attached{ConnId: a.ConnId}}})
		}
	case *wire.Envelope_Command:
		c := b.Command
		cmd := &command{connID: c.ConnId, conn: pidFromWire(c.Conn), cmd: commandFromWire(c.Cmd)}
		if c.Reject != nil {
			cmd.reject = eventFromWire(c.Reject)
		}
		g.command(ctx, cmd)
	case *wire.Envelope_Detach:
		if c := g.conns.remove(b.Detach.ConnId); c != nil {
			ctx.Unwatch(c.pid)
		}
	case *wire.Envelope_Call:
		c := b.Call
		cl := &call{identity: identityFromWire(c.Identity), conn: pidFromWire(c.Conn), connID: c.ConnId,
			cmd: commandFromWire(c.Cmd), replyTo: pidFromWire(c.ReplyTo)}
		if cl.replyTo == nil {
			cl.replyTo = ctx.Sender() // an HTTP request's future
		}
		g.runCall(ctx, cl)
	case *wire.Envelope_CallAnswer:
		g.callDone(ctx, b.CallAnswer.ConnId)
	case *wire.Envelope_SetShare:
		g.toSession(ctx, b.SetShare.SessionId, false, &setShare{sessionID: b.SetShare.SessionId, on: b.SetShare.On, replyTo: ctx.Sender()})
	case *wire.Envelope_WatchersOf:
		if ctx.Sender() != nil {
			g.hub.send(ctx, ctx.Sender(), g.watcherList(b.WatchersOf.SessionId))
		}
	case *wire.Envelope_EraseStart:
		g.startErase(ctx, time.Duration(b.EraseStart.HoldMs)*time.Millisecond)
	default:
		g.hub.dropUnknown(env)
	}
}

// closeConn asks a connection's actor to close its socket with code once
// what is queued on it is written, and to stop without attaching again.
type closeConn struct {
	code   uint16
	reason string
}

// closeClusterConn sends pid, a connection's actor, a closeConn: as an
// envelope when pid is on another node.
func closeClusterConn(ctx actor.Context, pid *actor.PID, code uint16, reason string) {
	if pid.Address != ctx.ActorSystem().Address() {
		ctx.Send(pid, &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_CloseConn{CloseConn: &wire.CloseConn{Code: uint32(code), Reason: reason}}})
		return
	}
	ctx.Send(pid, &closeConn{code: code, reason: reason})
}

// connParent is the parent of this node's connection actors in cluster
// mode: it spawns them and closes them all at shutdown.
type connParent struct {
	hub *Hub
}

func (p *connParent) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *attach:
		c := &clusterConn{conn: newConn(p.hub, m)}
		pid, err := ctx.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return c }), "conn-"+m.connID)
		if err != nil {
			p.hub.log.Error("spawn connection actor", slog.String("conn_id", m.connID), slog.Any("err", err))
			m.reply <- &attached{}
			return
		}
		// The transport sends the connection's commands and its detach to
		// the connection's own actor, which forwards them to the user's.
		m.reply <- &attached{user: pid, conn: pid}
	case *closeConns:
		for _, c := range ctx.Children() {
			ctx.Poison(c)
		}
	}
}

// clusterConn is a connection's actor in cluster mode: the connection's
// outbound queue, plus its attachment to the user's actor. Commands wait in
// queued while it is not attached, and go out in order once it is.
type clusterConn struct {
	conn
	user      *actor.PID // the user's actor it is attached to; nil while attaching
	attaching bool
	attempt   int
	attached  bool // attached at least once: a later attachment is a failover
	queued    []*wire.Envelope
	detached  bool
}

// attachResult is the outcome of one attempt to attach.
type attachResult struct {
	user *actor.PID
	err  error
}

// attachRetry is the pause between attempts while no member hosts the user;
// attachTimeout bounds one attempt. It is short because a dead node's pid
// answers nothing: the attempt times out, the pid is forgotten, and the
// next lookup places the actor on a live member.
const (
	attachRetry   = 200 * time.Millisecond
	attachTimeout = time.Second
)

func (c *clusterConn) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.start(ctx.Self())
		c.attach(ctx, 0)
	case *attachResult:
		c.attachDone(ctx, m)
	case *command:
		env := &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_Command{Command: &wire.Command{
			ConnId: c.id, Conn: pidToWire(ctx.Self()), Cmd: commandToWire(m.cmd)}}}
		if m.reject != nil {
			env.GetCommand().Reject = eventToWire(m.reject)
		}
		c.toUser(ctx, env)
	case *detach:
		c.detach(ctx)
		ctx.Stop(ctx.Self())
	case *wire.Envelope:
		switch {
		case m.GetEvent() != nil:
			c.push(eventFromWire(m.GetEvent()))
		case m.GetCloseConn() != nil:
			c.closeWith(ctx, &closeConn{code: uint16(m.GetCloseConn().GetCode()), reason: m.GetCloseConn().GetReason()})
		default:
			c.hub.dropUnknown(m)
		}
	case *closeConn:
		c.closeWith(ctx, m)
	case *actor.Terminated:
		if c.user != nil && m.Who.Equal(c.user) {
			// The user's actor stopped or moved (a topology change): attach
			// to wherever it is now. Events sent meanwhile are lost; every
			// event carries its seq, so the client sees the gap and syncs.
			c.user = nil
			c.hub.cfg.Placement.Forget(c.identity.UserID)
			c.attach(ctx, 0)
		}
	case *protocol.Event:
		c.push(m)
	case *actor.Restarting:
		// The socket's state is unknown after a crash: close it, the client
		// reconnects and syncs. Only this connection is affected.
		c.out.close(closeInternal, "internal error")
	case *actor.Stopped:
		c.detach(ctx)
		// Frames already queued (a reply's final message) still go out.
		c.out.closeAfterFlush(CloseGoingAway, closeReasonServer)
	}
}

// closeWith closes the socket with m's code after what is queued, and stops
// the actor without attaching again.
func (c *clusterConn) closeWith(ctx actor.Context, m *closeConn) {
	c.detach(ctx)
	c.out.closeAfterFlush(m.code, m.reason)
	ctx.Stop(ctx.Self())
}

func (c *clusterConn) toUser(ctx actor.Context, env *wire.Envelope) {
	if c.user == nil {
		c.queued = append(c.queued, env)
		return
	}
	c.hub.send(ctx, c.user, env)
}

func (c *clusterConn) detach(ctx actor.Context) {
	if c.detached {
		return
	}
	c.detached = true
	if c.user != nil {
		c.hub.send(ctx, c.user, &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_Detach{Detach: &wire.Detach{ConnId: c.id}}})
	}
}

// attach looks up the user's actor and registers this connection with it,
// on a hub goroutine (the lookup may wait on another node); the outcome
// comes back as an attachResult.
func (c *clusterConn) attach(ctx actor.Context, delay time.Duration) {
	if c.attaching || c.detached {
		return
	}
	c.attaching = true
	self, h, userID := ctx.Self(), c.hub, c.identity.UserID
	req := &wire.Envelope{Version: wire.Version, Body: &wire.Envelope_Attach{Attach: &wire.Attach{
		Identity: identityToWire(c.identity), ConnId: c.id, Conn: pidToWire(self)}}}
	started := h.goroutines.Go(func() {
		if delay > 0 {
			t := time.NewTimer(delay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-h.goroutines.Stopping():
				return
			}
		}
		pid := h.cfg.Placement.Get(userID)
		if pid == nil {
			h.root.Send(self, &attachResult{err: errors.New("no member hosts the user's actor")})
			return
		}
		res, err := h.root.RequestFuture(pid, req, attachTimeout).Result()
		if err == nil {
			if env, ok := res.(*wire.Envelope); !ok || env.GetAttached() == nil {
				err = fmt.Errorf("attach: unexpected answer %T", res)
			}
		}
		h.root.Send(self, &attachResult{user: pid, err: err})
	})
	if !started {
		c.attaching = false
	}
}

func (c *clusterConn) attachDone(ctx actor.Context, m *attachResult) {
	c.attaching = false
	if c.detached {
		return
	}
	if m.err != nil {
		c.attempt++
		c.hub.cfg.Placement.Forget(c.identity.UserID)
		if c.attempt%10 == 1 {
			c.hub.log.Warn("attach connection to its user's actor; retrying", slog.String("conn_id", c.id), slog.Any("err", m.err))
		}
		c.attach(ctx, attachRetry)
		return
	}
	if c.attached {
		c.hub.cmetrics.failovers.Inc()
	}
	c.attached, c.attempt, c.user = true, 0, m.user
	ctx.Watch(m.user)
	for _, env := range c.queued {
		c.hub.send(ctx, c.user, env)
	}
	c.queued = nil
}

// clusterRequest sends msg (a *call or *setShare) to the user's actor
// wherever it is and waits for its answer.
func (h *Hub) clusterRequest(ctx context.Context, userID string, msg any, timeout time.Duration) (any, error) {
	env := &wire.Envelope{Version: wire.Version}
	switch m := msg.(type) {
	case *call:
		env.Body = &wire.Envelope_Call{Call: &wire.Call{Identity: identityToWire(m.identity), ConnId: m.connID, Cmd: commandToWire(m.cmd)}}
	case *setShare:
		env.Body = &wire.Envelope_SetShare{SetShare: &wire.SetShare{SessionId: m.sessionID, On: m.on}}
	case *watchersOf:
		env.Body = &wire.Envelope_WatchersOf{WatchersOf: &wire.WatchersOf{SessionId: m.sessionID}}
	default:
		return nil, protocol.Errf(protocol.CodeUnsupported, "not available in cluster mode yet")
	}
	_, res, err := h.clusterAsk(ctx, userID, env, timeout)
	if err != nil {
		return nil, err
	}
	switch r := res.(type) {
	case *callAnswer, *shareAnswer, []protocol.Watcher: // the user's actor is on this node
		return r, nil
	case *wire.Envelope:
		if a := r.GetWatchers(); a != nil {
			ws := []protocol.Watcher{}
			for _, w := range a.Watchers {
				ws = append(ws, protocol.Watcher{AdminID: w.AdminId, Name: w.Name})
			}
			return ws, nil
		}
		if a := r.GetCallAnswer(); a != nil {
			return answerFromWire(a), nil
		}
		if a := r.GetShareAnswer(); a != nil {
			s := &shareAnswer{shareID: a.ShareId}
			if a.ErrorCode != "" {
				s.err = &protocol.Error{Code: a.ErrorCode, Message: a.ErrorMessage}
			}
			return s, nil
		}
	}
	return nil, fmt.Errorf("unexpected answer %T", res)
}

// clusterAsk sends env to the user's actor wherever it is and returns its
// answer and the pid that gave it, asking the identity lookup again once if
// the first pid is dead.
func (h *Hub) clusterAsk(ctx context.Context, userID string, env *wire.Envelope, timeout time.Duration) (*actor.PID, any, error) {
	deadline := time.Now().Add(timeout)
	for attempt := 0; ; attempt++ {
		pid := h.cfg.Placement.Get(userID)
		var res any
		err := errors.New("no member hosts the user's actor")
		if pid != nil {
			res, err = h.root.RequestFuture(pid, env, time.Until(deadline)).Result()
		}
		if err == nil {
			if _, dead := res.(*actor.DeadLetterResponse); !dead {
				return pid, res, nil
			}
			err = actor.ErrDeadLetter
		}
		h.cfg.Placement.Forget(userID)
		if attempt > 0 || time.Until(deadline) < time.Second || ctx.Err() != nil {
			return nil, nil, err
		}
	}
}

// alertEverywhere sends an alert to this node's admins and to every other
// node's admins actor.
func (a *admins) alertEverywhere(ctx actor.Context, h *Hub, ev *protocol.Event) {
	self := h.system.Address()
	for _, member := range h.cfg.Placement.Members() {
		if member != self {
			h.send(ctx, actor.NewPID(member, adminsName), &wire.Envelope{Version: wire.Version,
				Body: &wire.Envelope_AdminAlert{AdminAlert: &wire.AdminAlert{Event: eventToWire(ev)}}})
		}
	}
}

// grainsStop stops every user actor on this node (its sessions store a
// reply in flight as interrupted) before the cluster is left.
func (h *Hub) stopGrains() error {
	var errs []error
	var wg sync.WaitGroup
	var mu sync.Mutex
	h.grains.Range(func(_, v any) bool {
		wg.Add(1)
		go func(pid *actor.PID) {
			defer wg.Done()
			if err := h.root.PoisonFuture(pid).Wait(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(v.(*actor.PID))
		return true
	})
	wg.Wait()
	return errors.Join(errs...)
}

// Conversions between the actors' messages and their wire form.

func pidToWire(p *actor.PID) *wire.Pid {
	if p == nil {
		return nil
	}
	return &wire.Pid{Address: p.Address, Id: p.Id}
}

func pidFromWire(p *wire.Pid) *actor.PID {
	if p == nil || p.Id == "" {
		return nil
	}
	return actor.NewPID(p.Address, p.Id)
}

func identityToWire(i Identity) *wire.Identity {
	return &wire.Identity{UserId: i.UserID, Name: i.Name, Admin: i.Admin}
}

func identityFromWire(i *wire.Identity) Identity {
	return Identity{UserID: i.GetUserId(), Name: i.GetName(), Admin: i.GetAdmin()}
}

func commandToWire(c protocol.Command) *wire.ClientCommand {
	return &wire.ClientCommand{Type: c.Type, Id: c.ID, SessionId: c.SessionID, Text: c.Text, Model: c.Model,
		AfterSeq: c.AfterSeq, ParentId: c.ParentID, MessageId: c.MessageID, Title: c.Title,
		Attachments: c.Attachments, Score: int32(c.Score), Comment: c.Comment}
}

func commandFromWire(c *wire.ClientCommand) protocol.Command {
	return protocol.Command{Type: c.GetType(), ID: c.GetId(), SessionID: c.GetSessionId(), Text: c.GetText(),
		Model: c.GetModel(), AfterSeq: c.GetAfterSeq(), ParentID: c.GetParentId(), MessageID: c.GetMessageId(), Title: c.GetTitle(),
		Attachments: c.GetAttachments(), Score: int(c.GetScore()), Comment: c.GetComment()}
}

func eventToWire(e *protocol.Event) *wire.Event {
	return &wire.Event{Kind: uint32(e.Kind), Frame: e.Frame, SessionId: e.SessionID, MessageId: e.MessageID,
		Seq: e.Seq, Offset: int64(e.Offset), Text: e.Text}
}

// eventFromWire rebuilds the event, its frame header included.
func eventFromWire(w *wire.Event) *protocol.Event {
	buf := protocol.AppendFrameHeader(make([]byte, 0, 10+len(w.Frame)), len(w.Frame))
	buf = append(buf, w.Frame...)
	return &protocol.Event{Kind: protocol.Kind(w.Kind), Wire: buf, Frame: buf[len(buf)-len(w.Frame):],
		SessionID: w.SessionId, MessageID: w.MessageId, Seq: w.Seq, Offset: int(w.Offset), Text: w.Text}
}

func answerToWire(a *callAnswer) *wire.CallAnswer {
	w := &wire.CallAnswer{ConnId: a.connID, MessageId: a.result.MessageID, Seq: a.result.Seq}
	if a.err != nil {
		w.ErrorCode, w.ErrorMessage, w.RetryAfterMs = a.err.Code, a.err.Message, a.err.RetryAfter.Milliseconds()
	}
	return w
}

func answerFromWire(w *wire.CallAnswer) *callAnswer {
	a := &callAnswer{connID: w.ConnId, result: CallResult{MessageID: w.MessageId, Seq: w.Seq}}
	if w.ErrorCode != "" {
		a.err = &protocol.Error{Code: w.ErrorCode, Message: w.ErrorMessage, RetryAfter: time.Duration(w.RetryAfterMs) * time.Millisecond}
	}
	return a
}

// throttled passes a log record only if no record with the same message
// passed in the last `every`: a cluster provider reports an unreachable
// peer on every poll, a few times a second.
type throttled struct {
	slog.Handler
	every time.Duration
	mu    *sync.Mutex          // guards last
	last  map[string]time.Time // message → when it last passed
}

func newThrottled(h slog.Handler, every time.Duration) throttled {
	return throttled{Handler: h, every: every, mu: new(sync.Mutex), last: map[string]time.Time{}}
}

func (t throttled) Handle(ctx context.Context, r slog.Record) error {
	t.mu.Lock()
	prev, seen := t.last[r.Message]
	pass := !seen || r.Time.Sub(prev) >= t.every
	if pass {
		if len(t.last) > 1000 {
			clear(t.last)
		}
		t.last[r.Message] = r.Time
	}
	t.mu.Unlock()
	if !pass {
		return nil
	}
	return t.Handler.Handle(ctx, r)
}

func (t throttled) WithAttrs(a []slog.Attr) slog.Handler {
	return throttled{t.Handler.WithAttrs(a), t.every, t.mu, t.last}
}
func (t throttled) WithGroup(n string) slog.Handler {
	return throttled{t.Handler.WithGroup(n), t.every, t.mu, t.last}
}
