package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/chatbox/chatbox/lifecycle"
)

// epoller watches every idle socket with one epoll instance and one
// goroutine, the gobwas "million WebSockets" design: a connection holds a
// goroutine only while a message is being read from it. The loop and each
// ready are goroutines of the server's group; once it is stopping, the loop
// starts no more reads (Shutdown is closing the sockets).
//
// Registrations are one-shot: after an event the socket is not watched
// until the connection re-arms it, so at most one ready runs per
// connection. Events carry a connection id, never reused while the
// connection is registered, so a descriptor number reused by a new socket
// cannot reach the old connection.
//
// close may be called while connections are still registered: add, rearm
// and remove then fail or do nothing instead of touching a closed (and
// perhaps reused) epoll descriptor.
type epoller struct {
	epfd   int
	wakefd int // an eventfd that wakes the loop to stop
	log    *slog.Logger
	owner  *lifecycle.Group

	mu     sync.Mutex // guards conns and nextID
	conns  map[int32]*wsConn
	nextID int32

	fdMu   sync.RWMutex // held for reading while epfd is used, for writing by close
	closed bool         // guarded by fdMu

	done chan struct{} // closed when loop has returned
}

var errPollerClosed = errors.New("poller closed")

const epollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller(log *slog.Logger, owner *lifecycle.Group) (poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	p := &epoller{epfd: epfd, wakefd: wakefd, log: log, owner: owner, conns: map[int32]*wsConn{}, done: make(chan struct{})}
	if !owner.Go(p.loop) {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, errShuttingDown
	}
	return p, nil
}

func (p *epoller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			p.log.Error("epoll_wait", slog.Any("err", err))
			return
		}
		for _, ev := range events[:n] {
			if ev.Fd == -1 {
				return // woken to stop
			}
			p.mu.Lock()
			c := p.conns[ev.Fd]
			p.mu.Unlock()
			if c != nil {
				p.owner.Go(c.ready) // refused only while Shutdown closes the sockets
			}
		}
	}
}

// fd is the socket's descriptor.
func fd(c *wsConn) (int, error) {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return 0, errors.New("connection has no descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	if err := raw.Control(func(f uintptr) { n = int(f) }); err != nil {
		return 0, err
	}
	return n, nil
}

func (p *epoller) add(c *wsConn) error {
	n, err := fd(c)
	if err != nil {
		return err
	}
	p.mu.Lock()
	for {
		p.nextID++
		if p.nextID < 0 {
			p.nextID = 0
		}
		if _, taken := p.conns[p.nextID]; !taken {
			break
		}
	}
	c.pollID = p.nextID
	p.conns[c.pollID] = c
	p.mu.Unlock()
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.closed {
		p.forget(c)
		return errPollerClosed
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, n, &unix.EpollEvent{Events: epollEvents, Fd: c.pollID}); err != nil {
		p.forget(c)
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

func (p *epoller) rearm(c *wsConn) error {
	n, err := fd(c)
	if err != nil {
		return err
	}
	p.fdMu.RLock()
	defer p.fdMu.RUnlock()
	if p.closed {
		return errPollerClosed
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, n, &unix.EpollEvent{Events: epollEvents, Fd: c.pollID}); err != nil {
		return fmt.Errorf("epoll_ctl mod: %w", err)
	}
	return nil
}

// remove is called with the socket still open, before it is closed.
func (p *epoller) remove(c *wsConn) {
	if n, err := fd(c); err == nil {
		p.fdMu.RLock()
		if !p.closed {
			unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, n, nil) // may be unregistered already
		}
		p.fdMu.RUnlock()
	}
	p.forget(c)
}

func (p *epoller) forget(c *wsConn) {
	p.mu.Lock()
	if p.conns[c.pollID] == c {
		delete(p.conns, c.pollID)
	}
	p.mu.Unlock()
}

// close stops the loop, waits for it and closes the descriptors, whether
// or not every connection has been removed. Idempotent.
func (p *epoller) close() {
	p.fdMu.Lock()
	already := p.closed
	p.closed = true
	p.fdMu.Unlock()
	if already {
		return
	}
	var one [8]byte
	one[0] = 1 // eventfd counters are host-endian; 1 in any byte order wakes it
	unix.Write(p.wakefd, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}
