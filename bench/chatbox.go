// Self-starting Chatbox: the generated config and the child process that
// serves it, retried without the limit keys an older build rejects.

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// selfStartOptions configures a self-started Chatbox.
type selfStartOptions struct {
	Bin        string // prebuilt binary; "" builds one
	Src        string // checkout to build from; "" is the module root
	Instrument bool
	Store      string // "embedded" or "mongo"; see store.go
	Sync       string // storage.sync of the embedded store; "" leaves the server's default
	FakeURL    string
	Verbose    bool
}

// startChatbox builds (unless given a binary) and runs Chatbox as a child
// with a generated config, and waits until it answers /healthz.
func startChatbox(ctx context.Context, o selfStartOptions, logf func(string, ...any)) (*target, error) {
	tmp, err := os.MkdirTemp("", "chatbox-bench-")
	if err != nil {
		return nil, err
	}
	onCleanup(func() { os.RemoveAll(tmp) })
	bin, instrumented := o.Bin, false
	if bin == "" {
		root := o.Src
		if root == "" {
			if root, err = moduleRoot(); err != nil {
				return nil, err
			}
		}
		t0 := time.Now()
		bin, instrumented, err = buildChatbox(ctx, root, tmp, o.Instrument, logf)
		if err != nil {
			return nil, err
		}
		logf("built chatbox in %s (instrumented: %v)", time.Since(t0).Round(time.Millisecond), instrumented)
	}
	mongoURI := ""
	if o.Store == "mongo" {
		if mongoURI, storePID, err = startStandIn(filepath.Join(tmp, "standin")); err != nil {
			return nil, err
		}
		logf("mongo stand-in at %s, pid %d", mongoURI, storePID)
	}
	secret := randomSecret(48)
	cfgPath := filepath.Join(tmp, "chatbox.toml")
	logPath := filepath.Join(tmp, "server.log")
	// The harness measures capacity, not policy: limits are turned off.
	// Builds that predate a key reject it by name; it is dropped and the
	// start retried.
	optional := []optionalKey{
		{"server", "max_connections", "0"},
		{"limits", "messages_per_minute", "0"},
		{"limits", "message_burst", "0"},
		{"limits", "connections_per_user", "0"},
		{"limits", "replies_in_flight", "0"},
		{"limits", "daily_tokens_per_user", "0"},
	}
	if o.Sync != "" {
		optional = append(optional, optionalKey{"storage", "sync", strconv.Quote(o.Sync)})
	}
	var (
		port      int
		ch        *child
		cmd       *exec.Cmd
		debugAddr string
	)
	for attempt := 0; ; attempt++ {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		cfg := chatboxConfig(port, secret, filepath.Join(tmp, fmt.Sprintf("data%d", attempt)), mongoURI, o.FakeURL, optional)
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, err
		}
		logFile, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		onCleanup(func() { logFile.Close() })
		cmd = exec.Command(bin, "serve", "-config", cfgPath)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		env := []string{}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CHATBOX_") && !strings.HasPrefix(kv, "BENCH_") {
				env = append(env, kv) // CHATBOX_* would override the generated config
			}
		}
		if instrumented {
			dp, err := freePort()
			if err != nil {
				return nil, err
			}
			debugAddr = fmt.Sprintf("127.0.0.1:%d", dp)
			env = append(env, "BENCH_CHATBOX_DEBUG_ADDR="+debugAddr)
		}
		cmd.Env = env
		if ch, err = startChild(cmd); err != nil {
			return nil, err
		}
		err = waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), 90*time.Second, ch)
		if err == nil {
			break
		}
		ch.Stop()
		tail, _ := os.ReadFile(logPath)
		kept := optional[:0:0]
		for _, k := range optional {
			if !bytes.Contains(tail, []byte(k.key)) {
				kept = append(kept, k)
			}
		}
		if len(kept) == len(optional) || attempt > 3 {
			return nil, fmt.Errorf("chatbox did not become healthy: %w\n%s", err, lastLines(tail, 20))
		}
		logf("this build rejects some limit keys; retrying without them")
		optional = kept
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	t := &target{Name: "chatbox", URL: fmt.Sprintf("ws://127.0.0.1:%d/ws", port), Secret: []byte(secret), PID: cmd.Process.Pid, LogPath: logPath}
	t.findMetrics(base, debugAddr)
	if o.Verbose {
		logf("chatbox pid %d, log %s", t.PID, logPath)
	}
	return t, nil
}

// optionalKey is a config key newer builds know and older ones reject.
type optionalKey struct{ section, key, value string }

// chatboxConfig is the generated configuration of a self-started server.
// With no mongoURI the server opens its default embedded store in dataDir.
func chatboxConfig(port int, secret, dataDir, mongoURI, fakeURL string, optional []optionalKey) string {
	extra := map[string][]string{}
	if mongoURI != "" {
		extra["storage"] = []string{fmt.Sprintf("mongo_uri = %q", mongoURI), fmt.Sprintf("database = %q", standInDatabase)}
	}
	for _, k := range optional {
		extra[k.section] = append(extra[k.section], k.key+" = "+k.value)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `[server]
listen = "127.0.0.1:%d"
mode = "dev"
max_message_bytes = 65536
idle_timeout = "5m"
ping_interval = "2m"
%s
[auth]
jwt_secret = %q

[storage]
data_dir = %q
%s
[llm]
default_model = "fake"
max_retries = 0

[[llm.models]]
id = "fake"
name = "Fake"
provider = "openai"
model = "fake"
base_url = %q
`, port, lines(extra["server"]), secret, dataDir, lines(extra["storage"]), fakeURL)
	if l := extra["limits"]; len(l) > 0 {
		fmt.Fprintf(&b, "\n[limits]\n%s", lines(l))
	}
	return b.String()
}

func lines(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return strings.Join(l, "\n") + "\n"
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func randomSecret(n int) string {
	b := make([]byte, n/2)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
