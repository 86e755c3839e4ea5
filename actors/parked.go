package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// A connected user who has not sent a command has no actor yet. The user
// actor is what serializes a user's commands and fans out the events of
// the user's sessions; until the user acts, there is nothing to serialize
// and no session to hear from, yet its protoactor process (mailbox,
// context, registry entry, the directory's child entry) would be most of
// what an idle connection costs. So the directory keeps such a user's
// connections itself, parked: each has its outbox and its pid, got its
// hello and is registered for admins' alerts. The first command of one of
// them, or anything addressed to the user (an admin's call, a share link),
// spawns the user actor, which adopts the parked connections before
// anything else reaches it.

// adopt hands a user's parked connections to its new actor; the directory
// routes it first of all.
type adopt struct{ conns []*connProcess }

// ensureUser asks the directory for the user's actor, spawning it; reply
// (buffered) gets its pid, or nil while the user is being erased.
type ensureUser struct {
	userID string
	reply  chan *actor.PID
}

// park attaches a connection of a user with no actor to the directory.
func (d *directory) park(ctx actor.Context, m *attach) {
	uid := m.identity.UserID
	c, err := d.hub.spawnConn(ctx.Self().Id+"/"+userName(uid), m)
	if err != nil {
		d.hub.log.Error("attach connection", slog.String("conn_id", m.connID), slog.Any("err", err))
		m.reply <- &attached{}
		return
	}
	if d.parked == nil {
		d.parked = map[string][]*connProcess{}
	}
	if len(d.parked[uid]) == 0 {
		d.hub.metrics.users.Add(1) // a user with a connection, actor or not
	}
	d.parked[uid] = append(d.parked[uid], c)
	m.reply <- &attached{conn: c.pid}
}

// unpark stops a parked connection whose socket is gone; it reports
// whether the connection was parked.
func (d *directory) unpark(userID, connID string) bool {
	conns := d.parked[userID]
	for i, c := range conns {
		if c.id == connID {
			c.stop(CloseGoingAway, closeReasonServer)
			if conns = append(conns[:i], conns[i+1:]...); len(conns) == 0 {
				delete(d.parked, userID)
				d.hub.metrics.users.Add(-1)
			} else {
				d.parked[userID] = conns
			}
			return true
		}
	}
	return false
}

// closeParked closes the parked connections of userID (every user when
// userID is "") with code, after what is queued on them.
func (d *directory) closeParked(userID string, code uint16, reason string) {
	for uid, conns := range d.parked {
		if userID != "" && uid != userID {
			continue
		}
		for _, c := range conns {
			c.stop(code, reason)
		}
		delete(d.parked, uid)
		d.hub.metrics.users.Add(-1)
	}
}

// userActorOf is the pid of the user's actor, spawned (adopting its parked
// connections) if it has none.
func (d *directory) userActorOf(ctx actor.Context, userID string) *actor.PID {
	if pid, ok := d.users.get(userID); ok {
		return pid
	}
	pid := ctx.SpawnPrefix(d.hub.userProps, userName(userID))
	d.users.add(userID, pid)
	if conns, ok := d.parked[userID]; ok {
		delete(d.parked, userID) // already counted in metrics.users
		d.users.send(ctx, userID, &adopt{conns: conns})
	} else {
		d.hub.metrics.users.Add(1)
	}
	return pid
}

// adopt takes over connections the directory parked.
func (u *userActor) adopt(m *adopt) {
	for _, c := range m.conns {
		u.conns = append(u.conns, &connEntry{id: c.id, pid: c.pid, proc: c, identity: c.identity})
	}
}

// ensureTimeout bounds a connection's wait for its user's actor.
const ensureTimeout = 5 * time.Second

// userActor returns the pid of the user's actor, asking the directory to
// spawn it the first time (a parked connection's first command). The
// transport's reader waits for it; nil means the user is being erased or
// the hub is stopping, and the command is dropped with the connection.
func (c *Conn) userActor() *actor.PID {
	if u := c.user.Load(); u != nil {
		return u
	}
	req := &ensureUser{userID: c.userID, reply: make(chan *actor.PID, 1)}
	c.hub.root.Send(c.hub.directory, req)
	t := time.NewTimer(ensureTimeout)
	defer t.Stop()
	select {
	case u := <-req.reply:
		if u != nil {
			c.user.Store(u)
		}
		return u
	case <-t.C:
		return nil
	case <-c.hub.baseCtx.Done():
		return nil
	}
}
