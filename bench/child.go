// Child processes: each in its own process group, stopped at exit, on
// Ctrl-C and at the hard timeout through the cleanup list; the harness's own
// helpers (baseline, fake provider, store stand-in) are this binary
// re-executed in a hidden mode.

package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
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

// startSelf re-executes this binary with args (a hidden -internal-* mode)
// as a child and waits for the first line it prints, "LISTEN addr...". It
// returns the child and what follows LISTEN; later output is discarded.
func startSelf(args ...string) (*child, string, error) { return startSelfEnv(nil, args...) }

// startSelfEnv is startSelf with extra environment variables (secrets that
// should not show on a command line).
func startSelfEnv(env []string, args ...string) (*child, string, error) {
	self, err := selfExecutable()
	if err != nil {
		return nil, "", err
	}
	cmd := execCommand(self, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	ch, err := startChild(cmd)
	if err != nil {
		return nil, "", err
	}
	line, err := readLineTimeout(stdout, 15*time.Second)
	addrs, ok := strings.CutPrefix(line, "LISTEN ")
	if err != nil || !ok {
		ch.Stop()
		return nil, "", fmt.Errorf("%s: said %q (%v)", args[0], line, err)
	}
	go io.Copy(io.Discard, stdout)
	return ch, addrs, nil
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
