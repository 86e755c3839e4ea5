package transport

import "time"

// Keepalive of every upgraded socket comes from one goroutine of the
// server: each tick it takes the sockets whose ping is due (wsConn.pingDue)
// and runs their keepalive each on a goroutine of its own, as a timer per
// socket would, so a socket whose write blocks delays no other. A socket
// so holds an int64 for its keepalive instead of a runtime timer and its
// callback, for as long as it is idle.

// keepaliveTicks is how many ticks a ping interval has: a ping goes out
// within an eighth of an interval of when it is due.
const keepaliveTicks = 8

// keepalives runs until the server's goroutines stop; Listen starts it.
func (s *Server) keepalives() {
	tick := time.NewTicker(max(s.cfg.PingInterval/keepaliveTicks, time.Millisecond))
	defer tick.Stop()
	stopping := s.goroutines.Stopping()
	var due []*wsConn
	for {
		select {
		case <-stopping:
			return
		case now := <-tick.C:
			due = s.duePings(now.UnixNano(), due[:0])
			for _, c := range due {
				// Refused once the server stops: Shutdown closes the socket.
				s.goroutines.Go(c.keepalive)
			}
			clear(due)
		}
	}
}

// duePings appends to due the sockets whose keepalive is due at now, and
// marks it running.
func (s *Server) duePings(now int64, due []*wsConn) []*wsConn {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	for c := range s.live {
		if d := c.pingDue.Load(); d != 0 && d <= now && c.pingDue.CompareAndSwap(d, 0) {
			due = append(due, c)
		}
	}
	return due
}
