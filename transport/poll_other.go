//go:build !linux

package transport

import (
	"log/slog"

	"github.com/chatbox/chatbox/lifecycle"
)

// goroutinePoller is the portable reader: one goroutine per connection,
// started through the server's group, that blocks in ready until the peer
// sends. The epoll reader replaces it on Linux, where idle connections then
// hold no goroutine.
type goroutinePoller struct{ owner *lifecycle.Group }

func newPoller(_ *slog.Logger, owner *lifecycle.Group) (poller, error) {
	return goroutinePoller{owner}, nil
}

func (p goroutinePoller) add(c *wsConn) error {
	// Blocking reads wait up to the idle timeout for a peer's first byte.
	c.cfg.readTimeout = c.cfg.idle
	if !p.owner.Go(func() {
		for !c.isClosed() {
			c.ready()
		}
	}) {
		return errShuttingDown
	}
	return nil
}

func (goroutinePoller) rearm(*wsConn) error { return nil }
func (goroutinePoller) remove(*wsConn)      {}
func (goroutinePoller) close()              {}
