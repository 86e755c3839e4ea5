package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// chatboxBinary builds the real program once per test run.
func chatboxBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the real binary; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "chatbox-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "chatbox")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is the real binary running as a child process.
type process struct {
	*testServer
	cmd    *exec.Cmd
	exited chan error
}

// startProcess runs `chatbox serve -config` with the same config as
// startServer (writeConfig) and waits for its listening line.
func startProcess(t *testing.T, dir, extra string) *process {
	t.Helper()
	bin := chatboxBinary(t)
	cmd := exec.Command(bin, "serve", "-config", writeConfig(t, dir, extra))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{testServer: &testServer{dir: dir}, cmd: cmd, exited: make(chan error, 1)}
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if rest, ok := strings.CutPrefix(lines.Text(), "chatbox listening on "); ok {
			p.base = strings.Fields(rest)[0]
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	go func() { p.exited <- cmd.Wait() }()
	if p.base == "" {
		t.Fatalf("binary did not start: %v", <-p.exited)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// wait returns the process's exit error, failing after limit.
func (p *process) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-p.exited:
		p.exited <- err // for the cleanup
		return err
	case <-time.After(limit):
		t.Fatalf("process still running after %v", limit)
		return nil
	}
}

func TestSIGTERMLetsTheReplyFinishThenClosesWith1001(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CHATBOX_SERVER_SHUTDOWN_TIMEOUT", "10s")
	p := startProcess(t, dir, `demo_delay = "50ms"`)
	tok := signToken(t, "alice", "Alice")
	c := p.dial(t, tok, false)
	c.send(map[string]any{"type": "send", "id": "1", "text": "finish this before you go"})
	sid := c.next(isType("ack")).str("session_id")
	c.next(isType("delta"))

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, "readyz 503 while draining", func() bool { return p.status(t, "/readyz") == 503 })
	final := c.next(isFinal).msg()
	if final.str("status") != "complete" {
		t.Fatalf("reply in flight ended %q, want complete", final.str("status"))
	}
	select {
	case ce := <-c.closed:
		if ce.Code != 1001 {
			t.Fatalf("closed with %d, want 1001", ce.Code)
		}
	case <-time.After(waitFor):
		t.Fatal("socket not closed after the drain")
	}
	if err := p.wait(t, 10*time.Second); err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
	t.Logf("shutdown took %v", time.Since(start))

	// The reply was stored before the exit.
	p2 := startProcess(t, dir, "")
	var stored struct {
		Messages []map[string]any `json:"messages"`
	}
	p2.getJSON(t, tok, "/api/sessions/"+sid+"/messages", &stored)
	if len(stored.Messages) != 2 || stored.Messages[1]["status"] != "complete" || stored.Messages[1]["text"] != final.str("text") {
		t.Fatalf("stored after shutdown: %v", stored.Messages)
	}
}

func TestShutdownTimeoutStoresTheReplyAsInterrupted(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CHATBOX_SERVER_SHUTDOWN_TIMEOUT", "1s")
	p := startProcess(t, dir, `demo_delay = "400ms"`) // a reply of ~10 s
	tok := signToken(t, "alice", "Alice")
	c := p.dial(t, tok, false)
	c.send(map[string]any{"type": "send", "id": "1", "text": "a long story"})
	sid := c.next(isType("ack")).str("session_id")
	c.next(isType("delta"))
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 5*time.Second); err != nil {
		t.Fatalf("exit: %v, want status 0 within the timeout", err)
	}
	p2 := startProcess(t, dir, "")
	var stored struct {
		Messages []map[string]any `json:"messages"`
	}
	p2.getJSON(t, tok, "/api/sessions/"+sid+"/messages", &stored)
	if len(stored.Messages) != 2 || stored.Messages[1]["status"] != "interrupted" || stored.Messages[1]["text"] == "" {
		t.Fatalf("stored after a cut-off shutdown: %v", stored.Messages)
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	t.Setenv("CHATBOX_SERVER_SHUTDOWN_TIMEOUT", "30s")
	p := startProcess(t, t.TempDir(), `demo_delay = "400ms"`)
	c := p.dial(t, signToken(t, "alice", "Alice"), false)
	c.send(map[string]any{"type": "send", "id": "1", "text": "a long story"})
	c.next(isType("delta"))
	p.cmd.Process.Signal(syscall.SIGTERM)
	pollUntil(t, "readyz 503 while draining", func() bool { return p.status(t, "/readyz") == 503 }) // draining
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.wait(t, 3*time.Second); err == nil {
		t.Fatal("second signal: exit status 0, want the immediate non-zero exit")
	}
}

func (s *testServer) status(t *testing.T, path string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
