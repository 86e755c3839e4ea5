// Command bench is Chatbox's load harness: it drives a self-started (or an
// already running) Chatbox over real WebSockets on loopback, measures it
// against a minimal gobwas/ws baseline in the same run, and writes a JSON
// result and a Markdown table. See bench/README.md.
//
//	go run ./bench -scenario quick
//	go run ./bench -scenario idle -conns 15000
//	go run ./bench -scenario fanout -users 250 -devices 4 -token-delay 10ms
//	go run ./bench -scenario ttft -rate 500 -requests 5000
//	go run ./bench -scenario churn -duration 20s
//	go run ./bench -scenario burst -users 300 -tokens 50
//	go run ./bench -scenario soak -conns 5000 -duration 10m
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// config is the command line.
type config struct {
	Scenario    string
	Target      string
	Secret      string
	PID         int
	ChatboxBin  string
	ChatboxSrc  string
	Rev         string
	Instrument  bool
	Store       string
	Sync        string
	Baseline    bool
	Centrifugo  centrifugoFlag
	CentPublish string
	Only        string
	Conns       int
	PerProcess  int
	Users       int
	Devices     int
	Tokens      int
	TokenDelay  time.Duration
	Rate        float64
	Requests    int
	Kills       int
	Concurrency int
	Duration    time.Duration
	Warmup      time.Duration
	Timeout     time.Duration
	Out         string
	ProfileDir  string
	Verbose     bool

	set map[string]bool // flags given on the command line
}

func (c *config) given(name string) bool { return c.set[name] }

const scenarios = "idle, fanout, ttft, churn, burst, soak, failover, crossnode, quick"

func parseFlags(args []string, stderr io.Writer) (*config, *internalFlags, error) {
	c := &config{}
	in := &internalFlags{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Scenario, "scenario", "", "what to run: "+scenarios+" (required)")
	fs.StringVar(&c.Target, "target", "", "drive this running server (ws://127.x.x.x:port/ws) instead of self-starting one")
	fs.StringVar(&c.Secret, "secret", "", "with -target: the server's auth.jwt_secret, to sign tokens")
	fs.IntVar(&c.PID, "pid", 0, "with -target: the server's process id for RSS/CPU (default: found from the listening port)")
	fs.StringVar(&c.ChatboxBin, "chatbox-bin", "", "self-start this prebuilt binary instead of building ./cmd/chatbox")
	fs.StringVar(&c.ChatboxSrc, "chatbox-src", "", "self-start: build ./cmd/chatbox from this checkout (default: the module containing the working directory), e.g. a `git archive` snapshot while others edit the tree")
	fs.StringVar(&c.Rev, "rev", "", "label the result with this revision (default: git rev-parse --short HEAD of the built source, +dirty if modified)")
	fs.BoolVar(&c.Instrument, "instrument", true, "self-start: add a pprof/runtime-metrics listener to the build by go build -overlay (source untouched)")
	fs.StringVar(&c.Store, "store", "embedded", "self-start: embedded (the server's default store: no mongo_uri) or mongo (the MongoDB store against FerretDB, a stand-in the harness runs in a child process)")
	fs.StringVar(&c.Sync, "sync", "", "self-start: the embedded store's storage.sync (normal or full; default: the server's own default)")
	fs.BoolVar(&c.Baseline, "baseline", true, "also measure the raw gobwas/ws baseline server in the same run (never for ttft)")
	fs.Var(&c.Centrifugo, "centrifugo", "idle, fanout: also measure Centrifugo "+centrifugoVersion+" in the same run: bare -centrifugo builds it once into the user cache dir with go install (not a dependency of this module); -centrifugo=PATH runs a prebuilt binary")
	fs.StringVar(&c.CentPublish, "centrifugo-publish", "each", "with -centrifugo: how the publisher feeds Centrifugo's HTTP API: each (one POST /api/publish per token, waiting for its answer) or batch (4 queues by channel; what a queue holds goes in one POST /api/batch, one request in flight per queue)")
	fs.StringVar(&c.Only, "only", "", "measure only this server: chatbox, baseline or centrifugo (baseline alone calibrates the machine and the harness; centrifugo needs -centrifugo)")
	fs.IntVar(&c.Conns, "conns", 2000, "idle: connections to hold; soak: connections, one user each (default 5000)")
	fs.IntVar(&c.PerProcess, "conns-per-process", 0, "idle: connections per client process; more are spread over worker processes (default: open-file limit - 500)")
	fs.IntVar(&c.Users, "users", 0, "fanout: users (default 250); ttft: connections, one user each (default 50); churn: distinct users (default 1000); burst: users sending at once (default 300)")
	fs.IntVar(&c.Devices, "devices", 4, "fanout: connections (devices) per user; idle: likewise (default 1: one user per connection)")
	fs.IntVar(&c.Tokens, "tokens", 200, "fanout: tokens per reply (burst: default 50; soak: default 20)")
	fs.DurationVar(&c.TokenDelay, "token-delay", 10*time.Millisecond, "fanout, soak: the fake provider's pause before each token")
	fs.Float64Var(&c.Rate, "rate", 100, "ttft: requests per second (open loop); soak: sends per second, all connections together (default 20)")
	fs.IntVar(&c.Kills, "kills", 10, "failover: kill -9 of the node hosting the user's actor, this many times")
	fs.IntVar(&c.Requests, "requests", 1000, "ttft: requests per phase (direct, then through Chatbox)")
	fs.IntVar(&c.Concurrency, "concurrency", 0, "parallel dialers: idle/fanout connect (default 64), churn loops (default 32)")
	fs.DurationVar(&c.Duration, "duration", 0, "idle: hold after connecting (default 5s); fanout: measured window (default 20s); churn: length (default 20s); soak: length (default 10m)")
	fs.DurationVar(&c.Warmup, "warmup", 3*time.Second, "fanout: streaming before the measured window")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "hard limit for the whole run; children are killed when it passes (soak: default its duration + 10m)")
	fs.StringVar(&c.Out, "out", "", "JSON result path (default bench/results/SCENARIO-DATE.json)")
	fs.StringVar(&c.ProfileDir, "profile", "", "save profiles here: server CPU + allocations of the fanout window, server heap of idle, server CPU of ttft and churn, and the harness's own CPU in fanout")
	fs.BoolVar(&c.Verbose, "v", false, "print progress and the server's log path")
	// Hidden: the harness re-executes itself for the baseline server and
	// for extra idle client processes.
	fs.BoolVar(&in.baseline, "internal-baseline-server", false, "")
	fs.StringVar(&in.fakeURL, "internal-fake-url", "", "")
	fs.BoolVar(&in.idleWorker, "internal-idle-worker", false, "")
	fs.BoolVar(&in.fake, "internal-fake-server", false, "")
	fs.StringVar(&in.prefix, "internal-prefix", "", "")
	fs.StringVar(&in.standIn, "internal-mongo-standin", "", "")
	fs.BoolVar(&in.publisher, "internal-centrifugo-publisher", false, "")
	fs.IntVar(&in.first, "internal-first", 0, "")
	fs.IntVar(&in.proto, "internal-proto", 0, "")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./bench -scenario %s [flags]\n", strings.ReplaceAll(scenarios, ", ", "|"))
		fs.VisitAll(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "internal-") {
				return
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(stderr, "  -%s\n    \t%s%s\n", f.Name, f.Usage, def)
		})
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if in.baseline || in.idleWorker || in.fake || in.standIn != "" || in.publisher {
		return c, in, nil
	}
	switch c.Scenario {
	case "idle", "fanout", "ttft", "churn", "burst", "soak", "failover", "crossnode", "quick":
	case "":
		fs.Usage()
		return nil, nil, errors.New("-scenario is required")
	default:
		return nil, nil, fmt.Errorf("-scenario %q: want one of %s", c.Scenario, scenarios)
	}
	if c.Only != "" && c.Only != "chatbox" && c.Only != "baseline" && c.Only != "centrifugo" {
		return nil, nil, fmt.Errorf("-only %q: want chatbox, baseline or centrifugo", c.Only)
	}
	if c.Centrifugo.v != "" && c.Scenario != "idle" && c.Scenario != "fanout" {
		return nil, nil, fmt.Errorf("-centrifugo: the Centrifugo peer is measured in idle and fanout, not %s", c.Scenario)
	}
	if !slices.Contains(publishModes, c.CentPublish) {
		return nil, nil, fmt.Errorf("-centrifugo-publish %q: want each or batch", c.CentPublish)
	}
	if c.Only == "centrifugo" && c.Centrifugo.v == "" {
		return nil, nil, errors.New("-only centrifugo needs -centrifugo (to build it) or -centrifugo=PATH")
	}
	if c.Store != "embedded" && c.Store != "mongo" {
		return nil, nil, fmt.Errorf("-store %q: want embedded or mongo", c.Store)
	}
	if c.Target != "" && c.given("store") {
		return nil, nil, errors.New("-store chooses the store of a self-started Chatbox; a -target has its own")
	}
	if c.Only == "baseline" && (c.Scenario == "ttft" || c.Scenario == "burst" || c.Scenario == "soak") {
		return nil, nil, fmt.Errorf("-only baseline: %s measures Chatbox's store and provider path; there is no baseline run", c.Scenario)
	}
	if c.Rate <= 0 || c.Requests <= 0 || c.Conns <= 0 || c.Devices <= 0 || c.Tokens <= 0 {
		return nil, nil, errors.New("-rate, -requests, -conns, -devices and -tokens must be positive")
	}
	if c.Scenario == "soak" && !c.given("timeout") {
		// The soak outlasts the usual limit: connecting and draining too.
		d := soakDefaultDuration
		if c.given("duration") {
			d = c.Duration
		}
		c.Timeout = d + 10*time.Minute
	}
	return c, in, nil
}

type internalFlags struct {
	fake       bool
	baseline   bool
	idleWorker bool
	publisher  bool // the Centrifugo publisher (-target is its API URL)
	first      int  // idle worker: number of its first connection
	proto      int  // idle worker: the target's wire protocol
	fakeURL    string
	prefix     string
	standIn    string // data directory of the MongoDB stand-in
}

// env is what the scenarios share.
type env struct {
	cfg     *config
	runID   string
	fake    *fakeProvider
	chatbox *target
	base    *target // started on first use
	cent    *target // -centrifugo: the Centrifugo peer
	logf    func(string, ...any)
	notes   []string
}

func (e *env) note(format string, a ...any) { e.notes = append(e.notes, fmt.Sprintf(format, a...)) }

// baseline returns the baseline server, starting it on first use.
func (e *env) baseline(ctx context.Context) (*target, error) {
	if e.base == nil {
		b, err := startBaseline(ctx, e.fake.URL)
		if err != nil {
			return nil, err
		}
		e.base = b
	}
	return e.base, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, in, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case in.baseline:
		if err := runBaselineChild(ctx, in.fakeURL, stdout); err != nil {
			fmt.Fprintln(stderr, "baseline:", err)
			return 1
		}
		return 0
	case in.fake:
		if err := runFakeChild(ctx, stdout); err != nil {
			fmt.Fprintln(stderr, "fake provider:", err)
			return 1
		}
		return 0
	case in.standIn != "":
		if err := runStandInChild(ctx, in.standIn, stdout); err != nil {
			fmt.Fprintln(stderr, "mongo stand-in:", err)
			return 1
		}
		return 0
	case in.publisher:
		if err := runPublisherChild(ctx, in.fakeURL, cfg.Target, cfg.CentPublish, stdout); err != nil {
			fmt.Fprintln(stderr, "centrifugo publisher:", err)
			return 1
		}
		return 0
	case in.idleWorker:
		if err := runIdleWorker(ctx, cfg.Target, cfg.Conns, max(cfg.Concurrency, 1), in.prefix, in.first, cfg.Devices, proto(in.proto)); err != nil {
			fmt.Fprintln(stderr, "idle worker:", err)
			return 1
		}
		return 0
	}

	defer runCleanups()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	// If something hangs past the timeout, still kill the children and go.
	watchdog := time.AfterFunc(cfg.Timeout+30*time.Second, func() {
		fmt.Fprintln(stderr, "bench: hard timeout; killing child processes")
		runCleanups()
		os.Exit(3)
	})
	defer watchdog.Stop()

	rep, err := runScenario(ctx, cfg, stderr)
	if rep != nil && ctx.Err() != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the run was cut short (%v): partial figures", context.Cause(ctx)))
	}
	if rep != nil {
		path, werr := writeReport(cfg, rep)
		if werr != nil {
			fmt.Fprintln(stderr, "bench: write result:", werr)
		}
		fmt.Fprint(stdout, markdown(rep))
		if path != "" {
			fmt.Fprintf(stdout, "\nresult: %s\n", path)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "bench: stopped:", context.Cause(ctx))
		return 1
	}
	return 0
}

func runScenario(ctx context.Context, cfg *config, stderr io.Writer) (*Report, error) {
	started := time.Now()
	e := &env{cfg: cfg, runID: fmt.Sprintf("%x", started.UnixNano()&0xffffff)}
	e.logf = func(format string, a ...any) {
		if cfg.Verbose {
			fmt.Fprintf(stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, a...))
		}
	}
	nofile := raiseNoFile()
	fake, err := startFakeProcess(ctx)
	if err != nil {
		return nil, err
	}
	onCleanup(fake.Close)
	e.fake = fake
	fakePID = fake.PID

	if cfg.Centrifugo.v != "" && (cfg.Only == "" || cfg.Only == "centrifugo") {
		bin, err := centrifugoBinary(ctx, cfg.Centrifugo.v, e.logf)
		if err != nil {
			return nil, err
		}
		e.logf("starting centrifugo %s", bin)
		if e.cent, err = startCentrifugo(ctx, bin, fake.URL, cfg.CentPublish, cfg.Verbose, e.logf); err != nil {
			return nil, err
		}
		e.logf("centrifugo at %s, pid %d; metrics: %s", e.cent.URL, e.cent.PID, e.cent.MetricsSource)
		if cfg.Centrifugo.v == "build" {
			e.note("centrifugo: %s@%s built with go install (a development build: it reports version 0.0.0), run with a generated config (server-side personal channel per user, memory engine, no history); publications through its HTTP API (%s) from the harness's publisher process (its CPU is publisher_cpu_percent)", centrifugoModule, centrifugoVersion, publishLabel(cfg.CentPublish))
		} else {
			e.note("centrifugo: prebuilt binary %s, run with a generated config (server-side personal channel per user, memory engine, no history); publications through its HTTP API (%s) from the harness's publisher process (its CPU is publisher_cpu_percent)", bin, publishLabel(cfg.CentPublish))
		}
	}
	if cfg.Only == "baseline" || cfg.Only == "centrifugo" || cfg.Scenario == "failover" || cfg.Scenario == "crossnode" {
		// no single Chatbox in this run (failover and crossnode start their own cluster)
	} else if cfg.Target != "" {
		e.chatbox, err = externalTarget(cfg.Target, cfg.Secret, cfg.PID)
		if err == nil && cfg.Scenario != "idle" && cfg.Scenario != "churn" {
			e.note("external target: fanout and ttft need its model to point at this run's fake provider (%s); they were run as given", fake.URL)
		}
	} else {
		e.logf("building and starting chatbox")
		e.note("self-started Chatbox runs with its limits off (server.max_connections and [limits] = 0): the bench measures capacity, not policy")
		if cfg.Store == "mongo" {
			e.note("store: %s; the server's CPU and memory figures do not include it (its CPU is store_cpu_percent)", storeLabel(cfg.Store))
		}
		e.chatbox, err = startChatbox(ctx, selfStartOptions{Bin: cfg.ChatboxBin, Src: cfg.ChatboxSrc, Instrument: cfg.Instrument, Store: cfg.Store, Sync: cfg.Sync, FakeURL: fake.URL, Verbose: cfg.Verbose}, e.logf)
	}
	if err != nil {
		return nil, err
	}
	if e.chatbox != nil {
		e.logf("chatbox at %s, pid %d; metrics: %s", e.chatbox.URL, e.chatbox.PID, e.chatbox.MetricsSource)
		if e.chatbox.PID == 0 {
			e.note("server process not found: no RSS or CPU figures")
		}
	}

	// Is the machine ours? Other processes' CPU makes every figure worse.
	pid := 0
	if e.chatbox != nil {
		pid = e.chatbox.PID
	}
	pre := startCPU(pid)
	sleepCtx(ctx, time.Second)
	if c := pre.stop(); c.Others > 25 {
		load, _ := os.ReadFile("/proc/loadavg")
		e.note("before the run other processes used %.0f%% of a core (load average %s): the machine was shared", c.Others, strings.Join(strings.Fields(string(load))[:3], " "))
	}
	rep := newReport(cfg, e, nofile)
	wantBaseline := (cfg.Baseline || cfg.Only == "baseline") && cfg.Scenario != "ttft" && cfg.Scenario != "burst" && cfg.Scenario != "soak" && cfg.Only != "chatbox" && cfg.Only != "centrifugo"
	perProc := cfg.PerProcess
	if perProc <= 0 {
		perProc = max(int(nofile)-500, 100)
	}
	prof := func(name string) string {
		if cfg.ProfileDir == "" {
			return ""
		}
		os.MkdirAll(cfg.ProfileDir, 0o755)
		return filepath.Join(cfg.ProfileDir, name)
	}
	// both runs a measurement against the baseline, then Centrifugo if it
	// is in the run, then Chatbox (results are stored Chatbox first),
	// waiting after each until the server is quiet again so that none
	// measures another's leftover work.
	both := func(fn func(t *target, tag string)) error {
		if wantBaseline && ctx.Err() == nil {
			b, err := e.baseline(ctx)
			if err != nil {
				return err
			}
			fn(b, "baseline")
			e.waitQuiet(ctx, b)
		}
		if e.cent != nil && ctx.Err() == nil {
			fn(e.cent, "centrifugo")
			e.waitQuiet(ctx, e.cent)
		}
		if e.chatbox != nil && ctx.Err() == nil {
			fn(e.chatbox, "chatbox")
			e.waitQuiet(ctx, e.chatbox)
		}
		return nil
	}
	def := func(name string, v, d int) int {
		if cfg.given(name) {
			return v
		}
		return d
	}
	defDur := func(d time.Duration) time.Duration {
		if cfg.given("duration") {
			return cfg.Duration
		}
		return d
	}

	var err2 error
	idle := func(o idleOptions) {
		err2 = errors.Join(err2, both(func(t *target, tag string) {
			o.ProfilePath = prof("idle-heap-" + tag + ".pprof")
			rep.Idle = prepend(rep.Idle, runIdle(ctx, e, t, o), tag)
		}))
	}
	fanout := func(o fanoutOptions) {
		err2 = errors.Join(err2, both(func(t *target, tag string) {
			o.ProfilePath = prof("fanout-cpu-" + tag + ".pprof")
			rep.Fanout = prepend(rep.Fanout, runFanout(ctx, e, t, o), tag)
		}))
	}
	churn := func(o churnOptions) {
		err2 = errors.Join(err2, both(func(t *target, tag string) {
			o.ProfilePath = prof("churn-cpu-" + tag + ".pprof")
			rep.Churn = prepend(rep.Churn, runChurn(ctx, e, t, o), tag)
		}))
	}
	ttft := func(o ttftOptions) {
		if e.chatbox == nil {
			return
		}
		o.ProfilePath = prof("ttft-cpu-chatbox.pprof")
		r := runTTFT(ctx, e, e.chatbox, o)
		rep.TTFT = &r
		e.waitQuiet(ctx, e.chatbox)
	}

	burst := func(o burstOptions) {
		if e.chatbox == nil {
			return
		}
		r := runBurst(ctx, e, e.chatbox, o)
		rep.Burst = &r
		e.waitQuiet(ctx, e.chatbox)
	}
	soak := func(o soakOptions) {
		if e.chatbox == nil {
			return
		}
		r := runSoak(ctx, e, e.chatbox, o)
		rep.Soak = &r
	}

	switch cfg.Scenario {
	case "burst":
		burst(burstOptions{Users: def("users", cfg.Users, 300), Tokens: def("tokens", cfg.Tokens, 50), TokenDelay: cfg.TokenDelay, Parallel: def("concurrency", cfg.Concurrency, 64)})
	case "soak":
		d := defDur(soakDefaultDuration)
		rate := 20.0
		if cfg.given("rate") {
			rate = cfg.Rate
		}
		soak(soakOptions{Conns: def("conns", cfg.Conns, def("users", cfg.Users, 5000)), Rate: rate, Tokens: def("tokens", cfg.Tokens, 20),
			TokenDelay: cfg.TokenDelay, Duration: d, Interval: soakInterval(d), Parallel: def("concurrency", cfg.Concurrency, 64)})
	case "crossnode":
		r, err := runCrossnode(ctx, e, fanoutOptions{Users: def("users", cfg.Users, 20), Devices: cfg.Devices, Tokens: cfg.Tokens,
			TokenDelay: cfg.TokenDelay, Warmup: cfg.Warmup, Duration: defDur(10 * time.Second), Parallel: def("concurrency", cfg.Concurrency, 16)})
		rep.Crossnode = &r
		err2 = err
	case "failover":
		r, err := runFailover(ctx, e, failoverOptions{Kills: cfg.Kills})
		rep.Failover = &r
		err2 = err
	case "idle":
		idle(idleOptions{Conns: cfg.Conns, Devices: def("devices", cfg.Devices, 1), Parallel: def("concurrency", cfg.Concurrency, 64), Hold: defDur(5 * time.Second), PerProcess: perProc})
	case "fanout":
		fanout(fanoutOptions{Users: def("users", cfg.Users, 250), Devices: cfg.Devices, Tokens: cfg.Tokens, TokenDelay: cfg.TokenDelay,
			Warmup: cfg.Warmup, Duration: defDur(20 * time.Second), Parallel: def("concurrency", cfg.Concurrency, 64)})
	case "ttft":
		ttft(ttftOptions{Rate: cfg.Rate, Requests: cfg.Requests, Users: def("users", cfg.Users, 50), Parallel: 16})
	case "churn":
		churn(churnOptions{Duration: defDur(20 * time.Second), Parallel: def("concurrency", cfg.Concurrency, 32), Users: def("users", cfg.Users, 1000)})
	case "quick":
		// About 30 seconds at small scale: a smoke test of every path.
		idle(idleOptions{Conns: def("conns", cfg.Conns, 500), Parallel: 32, Hold: 1 * time.Second, PerProcess: perProc})
		fanout(fanoutOptions{Users: def("users", cfg.Users, 25), Devices: cfg.Devices, Tokens: 100, TokenDelay: cfg.TokenDelay,
			Warmup: time.Second, Duration: defDur(4 * time.Second), Parallel: 32})
		ttft(ttftOptions{Rate: cfg.Rate, Requests: def("requests", cfg.Requests, 200), Users: 20, Parallel: 16})
		churn(churnOptions{Duration: defDur(3 * time.Second), Parallel: 16, Users: 200})
	}
	rep.finish(e, time.Since(started))
	return rep, err2
}

// prepend keeps Chatbox's result first: the baseline runs first but is
// stored second.
func prepend[T any](rs []T, r T, tag string) []T {
	if tag == "chatbox" {
		return append([]T{r}, rs...)
	}
	return append(rs, r)
}

// waitQuiet waits (up to a minute) until t uses under 5% of a core, so
// that work left over from one measurement (replies still streaming, store
// writes queued) does not run into the next. How long it took is noted.
func (e *env) waitQuiet(ctx context.Context, t *target) {
	if t.PID == 0 {
		return
	}
	start := time.Now()
	prev := procCPU(t.PID)
	for time.Since(start) < time.Minute && ctx.Err() == nil && prev >= 0 {
		sleepCtx(ctx, 500*time.Millisecond)
		cur := procCPU(t.PID)
		if cur-prev < 25*time.Millisecond {
			break
		}
		prev = cur
	}
	if d := time.Since(start); d > 2*time.Second {
		e.note("%s stayed busy for %.0f s after a measurement (leftover work); the next one waited for it", t.Name, d.Seconds())
	}
	e.logf("%s quiet after %s", t.Name, time.Since(start).Round(100*time.Millisecond))
}

// selfExecutable is this program's binary, for re-executing it.
func selfExecutable() (string, error) { return os.Executable() }

func execCommand(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }

// readLineTimeout reads one line from r, or fails after d.
func readLineTimeout(r io.Reader, d time.Duration) (string, error) {
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		ch <- res{strings.TrimSpace(line), err}
	}()
	select {
	case r := <-ch:
		if r.err != nil && r.line == "" {
			return "", r.err
		}
		return r.line, nil
	case <-time.After(d):
		return "", fmt.Errorf("no answer within %s", d)
	}
}

func ptr[T any](v T) *T { return &v }

func round(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}
