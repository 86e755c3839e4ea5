package actors

import "github.com/asynkron/protoactor-go/actor"

// children tracks a parent's named children and how many messages it has
// routed to each, for the idle handshake: a child that reports idle after
// seeing n routed messages is stopped only if the parent has sent it exactly
// n, so nothing in flight is lost to a stopping actor.
type children struct {
	pids   map[string]*actor.PID
	routed map[string]uint64
}

// newChildren is an empty set; its maps are made on the first add, since
// most user actors never have a session and memory per connection counts.
func newChildren() children { return children{} }

func (c *children) get(name string) (*actor.PID, bool) {
	pid, ok := c.pids[name]
	return pid, ok
}

func (c *children) add(name string, pid *actor.PID) {
	if c.pids == nil {
		c.pids, c.routed = map[string]*actor.PID{}, map[string]uint64{}
	}
	c.pids[name] = pid
	c.routed[name] = 0
}

func (c *children) len() int { return len(c.pids) }

// send forwards msg to the named child, counting it.
func (c *children) send(ctx actor.Context, name string, msg any) {
	c.routed[name]++
	ctx.Send(c.pids[name], &routed{msg: msg})
}

// stopIfIdle stops the child when its report covers everything routed to it.
func (c *children) stopIfIdle(ctx actor.Context, m *childIdle) bool {
	pid, ok := c.pids[m.name]
	if !ok || c.routed[m.name] != m.seen {
		return false
	}
	c.remove(m.name)
	ctx.Stop(pid)
	return true
}

func (c *children) remove(name string) {
	delete(c.pids, name)
	delete(c.routed, name)
}

// removePID forgets a child that terminated on its own (a crash past its
// restart budget), so the next message spawns a fresh one.
func (c *children) removePID(pid *actor.PID) bool {
	for name, p := range c.pids {
		if p.Equal(pid) {
			c.remove(name)
			return true
		}
	}
	return false
}
