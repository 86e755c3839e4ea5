package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatbox/chatbox/auth"
)

//go:embed instrument.go.txt
var instrumentSource []byte

// target is a server under test: Chatbox or the baseline.
type target struct {
	Name          string // "chatbox" or "baseline"
	URL           string // ws://host:port/ws
	Secret        []byte // HS256 secret; nil: no auth (baseline)
	PID           int    // 0 when unknown
	MetricsURL    string // Prometheus text with go_memstats_heap_inuse_bytes, go_goroutines; "" if none
	MetricsSource string // where MetricsURL comes from, for the report
	PprofURL      string // base of /debug/pprof; "" if none
	LogPath       string // the child's log file, if self-started

	tokMu  sync.Mutex
	tokens map[string]string
}

// Token returns a bearer token for userID (cached; signed once per user).
func (t *target) Token(userID string) string {
	if t.Secret == nil {
		return "user:" + userID // the baseline groups connections by this header value
	}
	t.tokMu.Lock()
	defer t.tokMu.Unlock()
	if tok, ok := t.tokens[userID]; ok {
		return tok
	}
	tok, err := auth.Sign(t.Secret, auth.Identity{UserID: userID, Name: userID}, 2*time.Hour, "", "")
	if err != nil {
		panic("sign bench token: " + err.Error())
	}
	if t.tokens == nil {
		t.tokens = map[string]string{}
	}
	t.tokens[userID] = tok
	return tok
}

// sample is one reading of a server process.
type sample struct {
	At         time.Time
	RSS        int64         // bytes; -1 unknown
	CPU        time.Duration // user+system time; -1 unknown
	HeapInuse  float64       // bytes; -1 unknown
	Goroutines float64       // -1 unknown
	Mallocs    float64       // cumulative heap allocations (objects); -1 unknown
	Stack      float64       // bytes of goroutine stacks in use; -1 unknown
}

var metricsClient = &http.Client{Timeout: 5 * time.Second}

// Sample reads the process figures now.
func (t *target) Sample() sample {
	s := sample{At: time.Now(), RSS: -1, CPU: -1, HeapInuse: -1, Goroutines: -1, Mallocs: -1, Stack: -1}
	if t.PID > 0 {
		s.RSS = procRSS(t.PID)
		s.CPU = procCPU(t.PID)
	}
	if t.MetricsURL != "" {
		m := scrape(t.MetricsURL)
		pick := func(name string) float64 {
			if v, ok := m[name]; ok {
				return v
			}
			return -1
		}
		s.HeapInuse = pick("go_memstats_heap_inuse_bytes")
		s.Goroutines = pick("go_goroutines")
		s.Mallocs = pick("go_memstats_mallocs_total")
		s.Stack = pick("go_memstats_stack_inuse_bytes")
	}
	return s
}

// scrape reads the unlabelled samples of a Prometheus text page.
func scrape(u string) map[string]float64 {
	out := map[string]float64{}
	resp, err := metricsClient.Get(u)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return out
	}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.ContainsRune(name, '{') {
			continue
		}
		if f, err := strconv.ParseFloat(strings.Fields(val)[0], 64); err == nil {
			out[name] = f
		}
	}
	return out
}

// procRSS is VmRSS of pid in bytes, -1 if unreadable.
func procRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return -1
}

// clockTick is USER_HZ, 100 on every Linux the harness targets.
const clockTick = 10 * time.Millisecond

// procCPU is the user+system CPU time of pid (all threads), -1 if unreadable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may contain spaces; fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return -1
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	return time.Duration(ut+st) * clockTick
}

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

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// moduleRoot finds the Chatbox module root from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/chatbox/chatbox")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the github.com/chatbox/chatbox module; run from the repository")
		}
		dir = parent
	}
}

// buildChatbox builds ./cmd/chatbox into dir. With instrument it adds, by a
// build overlay (the source tree is untouched), a file that serves pprof and
// runtime figures on a separate loopback port when BENCH_CHATBOX_DEBUG_ADDR is
// set. It reports whether the instrumented build succeeded.
func buildChatbox(ctx context.Context, root, dir string, instrument bool, logf func(string, ...any)) (string, bool, error) {
	bin := filepath.Join(dir, "chatbox")
	build := func(extra ...string) error {
		args := append([]string{"build"}, extra...)
		args = append(args, "-o", bin, "./cmd/chatbox")
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build ./cmd/chatbox: %w\n%s", err, out)
		}
		return nil
	}
	if instrument {
		src := filepath.Join(dir, "zz_bench_debug.go")
		overlay := filepath.Join(dir, "overlay.json")
		j, _ := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(root, "cmd", "chatbox", "zz_bench_debug.go"): src}})
		if err := os.WriteFile(src, instrumentSource, 0o644); err == nil {
			if err := os.WriteFile(overlay, j, 0o644); err == nil {
				err := build("-overlay", overlay)
				if err == nil {
					return bin, true, nil
				}
				logf("instrumented build failed, building plain: %v", err)
			}
		}
	}
	return bin, false, build()
}

// selfStartOptions configures a self-started Chatbox.
type selfStartOptions struct {
	Bin        string // prebuilt binary; "" builds one
	Src        string // checkout to build from; "" is the module root
	Instrument bool
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
		cfg := chatboxConfig(port, secret, filepath.Join(tmp, fmt.Sprintf("data%d", attempt)), o.FakeURL, optional)
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
func chatboxConfig(port int, secret, dataDir, fakeURL string, optional []optionalKey) string {
	extra := map[string][]string{}
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

[llm]
default_model = "fake"
max_retries = 0

[[llm.models]]
id = "fake"
name = "Fake"
provider = "openai"
model = "fake"
base_url = %q
`, port, lines(extra["server"]), secret, dataDir, fakeURL)
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

// findMetrics prefers the server's own /metrics; without one, the bench
// debug endpoint of an instrumented build; else none (RSS only).
func (t *target) findMetrics(httpBase, debugAddr string) {
	if m := scrape(httpBase + "/metrics"); hasGoMetrics(m) {
		t.MetricsURL, t.MetricsSource = httpBase+"/metrics", "server GET /metrics"
	} else if debugAddr != "" {
		t.MetricsURL, t.MetricsSource = "http://"+debugAddr+"/metrics", "no usable /metrics on the server; runtime figures from the bench build overlay's debug port"
	} else {
		t.MetricsSource = "no /metrics with go_memstats_heap_inuse_bytes and go_goroutines: RSS only"
	}
	for _, base := range []string{httpBase, "http://" + debugAddr} {
		if debugAddr == "" && base != httpBase {
			continue
		}
		resp, err := metricsClient.Get(base + "/debug/pprof/cmdline")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.PprofURL = base + "/debug/pprof"
				return
			}
		}
	}
}

func hasGoMetrics(m map[string]float64) bool {
	_, a := m["go_memstats_heap_inuse_bytes"]
	_, b := m["go_goroutines"]
	return a && b
}

// externalTarget describes an already running server at wsURL.
func externalTarget(wsURL, secret string, pid int) (*target, error) {
	u, err := url.Parse(wsURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return nil, fmt.Errorf("-target %q: want ws://host:port/path", wsURL)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		if host != "localhost" {
			return nil, fmt.Errorf("-target %q: only loopback targets (127.0.0.0/8) are allowed", wsURL)
		}
	}
	if secret == "" {
		return nil, errors.New("-target needs -secret (the server's auth.jwt_secret)")
	}
	t := &target{Name: "chatbox", URL: wsURL, Secret: []byte(secret), PID: pid}
	if t.PID == 0 {
		port, _ := strconv.Atoi(u.Port())
		t.PID = pidListeningOn(port)
	}
	base := "http://" + u.Host + strings.TrimSuffix(u.Path, "/ws")
	t.findMetrics(base, "")
	return t, nil
}

// pidListeningOn finds the process holding a listening TCP socket on port
// (via /proc/net/tcp and /proc/*/fd), 0 if not found or not permitted.
func pidListeningOn(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			_, p, _ := strings.Cut(fs[1], ":")
			if v, err := strconv.ParseInt(p, 16, 32); err == nil && int(v) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

func waitHTTP(ctx context.Context, u string, limit time.Duration, ch *child) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := metricsClient.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ch != nil && ch.Exited() {
			return errors.New("the process exited")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from %s within %s", u, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
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

// cpuProfile fetches a CPU profile of seconds from t into path.
func (t *target) cpuProfile(ctx context.Context, seconds int, path string) error {
	if t.PprofURL == "" {
		return errors.New("no pprof endpoint")
	}
	return fetch(ctx, fmt.Sprintf("%s/profile?seconds=%d", t.PprofURL, seconds), path)
}

// heapProfile fetches a heap profile from t into path.
func (t *target) heapProfile(ctx context.Context, path string) error {
	if t.PprofURL == "" {
		return errors.New("no pprof endpoint")
	}
	return fetch(ctx, t.PprofURL+"/heap", path)
}

func fetch(ctx context.Context, u, path string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// machineBusy is the CPU time all processes have used since boot (user,
// nice, system, irq, softirq, steal) from /proc/stat; -1 if unreadable.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return -1
	}
	var busy int64
	for i, v := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * clockTick
}

// cpuShare is where the machine's CPU went during a measurement, in percent
// of one core: the server, this harness's clients, the fake provider's
// process, and every other process (a shared machine disturbs the figures).
type cpuShare struct {
	Machine float64 `json:"machine_cpu_percent"`
	Server  float64 `json:"server_cpu_percent"`
	Harness float64 `json:"harness_cpu_percent"`
	Fake    float64 `json:"fake_provider_cpu_percent"`
	Others  float64 `json:"other_processes_cpu_percent"`
}

type cpuMeter struct {
	at                          time.Time
	machine, server, self, fake time.Duration
	pid, fakePID                int
}

// fakePID is the fake provider's process, when it has one; its CPU is
// reported apart from the harness's.
var fakePID int

func startCPU(pid int) cpuMeter {
	m := cpuMeter{at: time.Now(), machine: machineBusy(), self: procCPU(os.Getpid()), pid: pid, server: -1, fake: -1, fakePID: fakePID}
	if pid > 0 {
		m.server = procCPU(pid)
	}
	if m.fakePID > 0 {
		m.fake = procCPU(m.fakePID)
	}
	return m
}

func (m cpuMeter) stop() cpuShare {
	n := startCPU(m.pid)
	secs := n.at.Sub(m.at).Seconds()
	pct := func(a, b time.Duration) float64 {
		if a < 0 || b < 0 || secs <= 0 {
			return 0
		}
		return round(100*(b-a).Seconds()/secs, 1)
	}
	s := cpuShare{Machine: pct(m.machine, n.machine), Server: pct(m.server, n.server), Harness: pct(m.self, n.self), Fake: pct(m.fake, n.fake)}
	s.Others = round(max(0, s.Machine-s.Server-s.Harness-s.Fake), 1)
	return s
}
