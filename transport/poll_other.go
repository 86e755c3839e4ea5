//go:build !linux

package transport

import "log/slog"

// goroutinePoller is the portable reader: one goroutine per connection
// that blocks in ready until the peer sends. The epoll reader replaces it
// on Linux, where idle connections then hold no goroutine.
type goroutinePoller struct{}

func newPoller(*slog.Logger) (poller, error) { return goroutinePoller{}, nil }

func (goroutinePoller) add(c *wsConn) error {
	// Blocking reads wait up to the idle timeout for a peer's first byte.
	c.cfg.readTimeout = c.cfg.idle
	go func() {
		for !c.isClosed() {
			c.ready()
		}
	}()
	return nil
}

func (goroutinePoller) rearm(*wsConn) error { return nil }
func (goroutinePoller) remove(*wsConn)      {}
func (goroutinePoller) close()              {}

func (c *wsConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}
