package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/protocol"
)

// directory finds or spawns the actor of a user. It is the only way to
// reach a user's actor by id, so that cluster mode can replace it with
// protoactor's identity lookup without touching the other actors.
type directory struct {
	hub     *Hub
	users   children
	parked  map[string][]*connProcess // connections of users with no actor yet (parked.go); made on first use
	erasing erasures                  // made on first use
}

func (d *directory) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *attach:
		if _, live := d.users.get(m.identity.UserID); live || d.erasing.active(m.identity.UserID) {
			d.route(ctx, m.identity.UserID, m)
			return
		}
		d.park(ctx, m)
	case *ensureUser:
		if d.erasing.active(m.userID) {
			m.reply <- nil
			return
		}
		m.reply <- d.userActorOf(ctx, m.userID)
	case *detach: // a connection that never had its user's actor, or one adopted since
		if !d.unpark(m.userID, m.connID) {
			if _, live := d.users.get(m.userID); live {
				d.users.send(ctx, m.userID, m)
			}
		}
	case *closeConns:
		d.closeParked("", CloseGoingAway, closeReasonServer)
		for name := range d.users.pids {
			d.users.send(ctx, name, m)
		}
	case *actor.Stopping:
		d.closeParked("", CloseGoingAway, closeReasonServer)
	case *forUser:
		// An HTTP request's future is the sender; it gets the answer.
		switch r := m.msg.(type) {
		case *call:
			if r.replyTo == nil {
				r.replyTo = ctx.Sender()
			}
		case *setShare:
			r.replyTo = ctx.Sender()
		case *watchersOf:
			r.replyTo = ctx.Sender()
		}
		d.route(ctx, m.userID, m.msg)
	case *childIdle:
		if d.users.stopIfIdle(ctx, m) {
			d.hub.metrics.users.Add(-1)
		}
	case *eraseUser:
		d.startErase(ctx, m)
	case *eraseDone:
		d.finishErase(ctx, m)
	case *actor.Terminated:
		if d.userStopped(ctx, m.Who) {
			return
		}
		if d.users.removePID(m.Who) {
			d.hub.metrics.users.Add(-1)
		}
	}
}

func (d *directory) route(ctx actor.Context, userID string, msg any) {
	if d.erasing.active(userID) {
		d.refuseErasing(ctx, msg)
		return
	}
	d.userActorOf(ctx, userID)
	d.users.send(ctx, userID, msg)
}

// A user's actor is named for its user, so that every user actor is
// spawned from one Props (a Props and a producer per user would cost memory
// per connected user) and learns its user from its own pid:
// <directory>/user-<user id>$<unique suffix> (SpawnPrefix adds the $).
func userName(userID string) string { return "user-" + userID }

// userOf is the user id in a local user actor's pid id, or "" for another
// pid (a cluster kind's, which learns its user from ClusterInit).
func userOf(pidID string) string {
	_, name, found := strings.Cut(pidID, "/user-")
	if i := strings.LastIndexByte(name, '$'); found && i >= 0 {
		return name[:i]
	}
	return ""
}

// childSupervisor restarts a crashed session or connection actor (a session
// comes back from the store); one that keeps crashing is stopped.
var childSupervisor = actor.NewOneForOneStrategy(3, 10*time.Second, actor.DefaultDecider)

// callTimeout bounds an HTTP call into the actors.
const callTimeout = 10 * time.Second

// errNoAnswer: the actors did not answer a call in time.
var errNoAnswer = errors.New("no answer from the actors")

// request sends msg to the actor of userID through the directory and waits
// for its answer, until ctx's deadline or callTimeout.
func (h *Hub) request(ctx context.Context, userID string, msg any) (any, error) {
	timeout := callTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(d))
	}
	var res any
	var err error
	if h.clustered() {
		res, err = h.clusterRequest(ctx, userID, msg, timeout)
		if perr, ok := errors.AsType[*protocol.Error](err); ok {
			return nil, perr
		}
	} else {
		res, err = h.root.RequestFuture(h.directory, &forUser{userID: userID, msg: msg}, timeout).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoAnswer, err)
	}
	return res, nil
}

// Call runs cmd on the session of ownerID on behalf of identity (an admin,
// or the owner over HTTP) and waits for its result. A refusal is a
// *protocol.Error; any other error means the actors did not answer.
func (h *Hub) Call(ctx context.Context, identity Identity, ownerID string, cmd protocol.Command) (CallResult, error) {
	res, err := h.request(ctx, ownerID, &call{identity: identity, cmd: cmd})
	if err != nil {
		return CallResult{}, fmt.Errorf("call %s: %w", cmd.Type, err)
	}
	a, ok := res.(*callAnswer)
	switch {
	case !ok:
		return CallResult{}, protocol.Err(protocol.CodeInternal)
	case a.err != nil:
		return a.result, a.err
	}
	return a.result, nil
}
