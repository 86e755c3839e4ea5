package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/cluster/wire"
)

// admins keeps the connections of every online admin, to alert them live
// (a user asking for a human). It watches each one and forgets it when the
// connection's actor stops.
type admins struct {
	hub   *Hub
	conns map[string]*actor.PID
}

func (a *admins) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *adminOnline:
		a.conns[m.conn.Id] = m.conn
		ctx.Watch(m.conn)
	case *actor.Terminated:
		delete(a.conns, m.Who.Id)
	case *alertAdmins:
		for _, c := range a.conns {
			ctx.Send(c, m.event)
		}
		if a.hub != nil && a.hub.clustered() {
			a.alertEverywhere(ctx, a.hub, m.event)
		}
	case *wire.Envelope: // another node's alert, for the admins connected here
		if al := m.GetAdminAlert(); al != nil {
			ev := eventFromWire(al.Event)
			for _, c := range a.conns {
				ctx.Send(c, ev)
			}
		} else if a.hub != nil {
			a.hub.dropUnknown(m)
		}
	}
}
