// Child processes: each in its own process group, stopped at exit, on
// Ctrl-C and at the hard timeout through the cleanup list.

package main

import (
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child is a process the harness started in its own process group.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	once sync.Once
}

// startChild starts cmd in a new process group and registers its cleanup.
func startChild(cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(c.done) }()
	onCleanup(c.Stop)
	return c, nil
}

// Stop terminates the child's process group: SIGTERM, then SIGKILL after 5s.
func (c *child) Stop() {
	c.once.Do(func() {
		pgid := c.cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-c.done
		}
	})
}

// Exited reports whether the child has exited.
func (c *child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

var (
	cleanupMu sync.Mutex
	cleanups  []func()
)

// onCleanup registers fn to run at exit, on Ctrl-C and on the hard timeout.
func onCleanup(fn func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanups = append(cleanups, fn)
}

// runCleanups runs the registered functions, newest first, once each.
func runCleanups() {
	cleanupMu.Lock()
	fns := cleanups
	cleanups = nil
	cleanupMu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// raiseNoFile lifts the soft open-file limit to the hard limit; children
// inherit it. It returns the new soft limit.
func raiseNoFile() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	return r.Cur
}
