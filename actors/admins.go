package actors

import "github.com/asynkron/protoactor-go/actor"

// admins keeps the connections of every online admin, to alert them live
// (a user asking for a human). It watches each one and forgets it when the
// connection's actor stops.
type admins struct {
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
	}
}
