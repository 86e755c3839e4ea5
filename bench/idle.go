package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// figures is a sample in report units; nil fields were not available.
type figures struct {
	RSSMiB     *float64 `json:"rss_mib,omitempty"`
	HeapMiB    *float64 `json:"heap_inuse_mib,omitempty"`
	Goroutines *float64 `json:"goroutines,omitempty"`
	StackMiB   *float64 `json:"stack_inuse_mib,omitempty"`
}

func figuresOf(s sample) figures {
	var f figures
	if s.RSS >= 0 {
		f.RSSMiB = ptr(round(float64(s.RSS)/(1<<20), 2))
	}
	if s.HeapInuse >= 0 {
		f.HeapMiB = ptr(round(s.HeapInuse/(1<<20), 2))
	}
	if s.Goroutines >= 0 {
		f.Goroutines = ptr(s.Goroutines)
	}
	if s.Stack >= 0 {
		f.StackMiB = ptr(round(s.Stack/(1<<20), 2))
	}
	return f
}

type idleResult struct {
	Target            string   `json:"target"`
	Conns             int      `json:"conns"`
	Users             int      `json:"users"`
	Devices           int      `json:"devices_per_user"`
	Connected         int      `json:"connected"`
	Failed            int      `json:"failed"`
	FirstErrors       []string `json:"first_errors,omitempty"`
	ClientProcesses   int      `json:"client_processes"`
	ConnectSeconds    float64  `json:"connect_seconds"`
	ConnectsPerSec    float64  `json:"connects_per_sec"`
	Before            figures  `json:"before"`
	Connected_        figures  `json:"connected_state"`
	AfterClose        figures  `json:"after_close"`
	RSSPerConnKiB     *float64 `json:"rss_per_conn_kib,omitempty"`
	HeapPerConnKiB    *float64 `json:"heap_per_conn_kib,omitempty"`
	StackPerConnKiB   *float64 `json:"stack_per_conn_kib,omitempty"`
	GoroutinesPerConn *float64 `json:"goroutines_per_conn,omitempty"`
	HeapProfile       string   `json:"heap_profile,omitempty"`
}

// errSet keeps a count and the first few distinct error texts.
type errSet struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (e *errSet) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	msg := err.Error()
	if len(e.first) < 5 && !contains(e.first, msg) {
		e.first = append(e.first, msg)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// idleHolder holds connections open in this process or in worker processes.
type idleHolder struct {
	conns   []*wsClient
	workers []*idleWorker
}

type idleWorker struct {
	ch    *child
	stdin io.WriteCloser
}

func (h *idleHolder) Close() {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range h.conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() { defer wg.Done(); c.Close(); <-sem }()
	}
	for _, w := range h.workers {
		w.stdin.Close()
	}
	wg.Wait()
	for _, w := range h.workers {
		select {
		case <-w.ch.done:
		case <-time.After(30 * time.Second):
			w.ch.Stop()
		}
	}
}

// keepalive pings every held connection every interval until ctx ends, so a
// server with a short idle timeout keeps them.
func (h *idleHolder) keepalive(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, c := range h.conns {
				c.Ping()
			}
		}
	}
}

// connectOptions says which connections connectMany opens.
type connectOptions struct {
	N           int                // connections
	Parallel    int                // dialers at once; below 1 means 1
	User        func(i int) string // user ID of connection i
	URL         func(i int) string // server of connection i; nil: the target's URL
	ReadBuf     int                // client read buffer in bytes; 0: 1024
	DropReaders bool               // free the read buffer once hello is in (idle)
}

// connectMany opens o.N authenticated connections to t, o.Parallel at a
// time; each waits for its hello. conns[i] is connection i, nil where it
// failed (errs says why) or ctx ended first.
func connectMany(ctx context.Context, t *target, o connectOptions) (conns []*wsClient, errs *errSet) {
	errs = &errSet{}
	conns = make([]*wsClient, o.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	opts := dialOptions{URL: t.URL, ReadBuf: cmp.Or(o.ReadBuf, 1024)}
	for range max(o.Parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.N || ctx.Err() != nil {
					return
				}
				opts := opts
				if o.URL != nil {
					opts.URL = o.URL(i)
				}
				c, err := t.dialHello(ctx, opts, o.User(i))
				if err != nil {
					errs.add(err)
					continue
				}
				if o.DropReaders {
					c.DropReader()
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	return conns, errs
}

// connectUsers is connectMany with devices connections per user (one
// when devices < 2): connection i is a device of user
// prefix+(first+i)/devices. It keeps only the connections that opened.
func connectUsers(ctx context.Context, t *target, n, parallel int, prefix string, dropReaders bool, first, devices int) ([]*wsClient, *errSet) {
	devices = max(devices, 1)
	conns, errs := connectMany(ctx, t, connectOptions{
		N: n, Parallel: parallel, DropReaders: dropReaders,
		User: func(i int) string { return prefix + strconv.Itoa((first+i)/devices) },
	})
	return slices.DeleteFunc(conns, func(c *wsClient) bool { return c == nil }), errs
}

type idleOptions struct {
	Conns       int
	Devices     int // connections per user; below 2 means one user per connection
	Parallel    int
	Hold        time.Duration
	PerProcess  int // connections one client process holds; more means workers
	ProfilePath string
}

func runIdle(ctx context.Context, e *env, t *target, o idleOptions) idleResult {
	o.Devices = max(o.Devices, 1)
	r := idleResult{Target: t.Name, Conns: o.Conns, Devices: o.Devices, Users: (o.Conns + o.Devices - 1) / o.Devices}
	time.Sleep(500 * time.Millisecond)
	before := t.Sample()
	r.Before = figuresOf(before)
	prefix := fmt.Sprintf("idle-%s-%s-", e.runID, t.Name)

	start := time.Now()
	h := &idleHolder{}
	errs := &errSet{}
	if o.Conns <= o.PerProcess {
		h.conns, errs = connectUsers(ctx, t, o.Conns, o.Parallel, prefix, true, 0, o.Devices)
		r.Connected = len(h.conns)
		r.ClientProcesses = 1
	} else {
		r.Connected, r.ClientProcesses = e.idleWorkers(ctx, t, h, o, prefix, errs)
	}
	r.ConnectSeconds = round(time.Since(start).Seconds(), 2)
	r.ConnectsPerSec = round(float64(r.Connected)/time.Since(start).Seconds(), 0)
	r.Failed, r.FirstErrors = errs.n, errs.first
	e.logf("%s idle: %d/%d connected in %.1fs (%d client process(es))", t.Name, r.Connected, o.Conns, r.ConnectSeconds, r.ClientProcesses)

	kctx, stopKeepalive := context.WithCancel(ctx)
	go h.keepalive(kctx, 20*time.Second)
	sleepCtx(ctx, o.Hold)
	after := t.Sample()
	r.Connected_ = figuresOf(after)
	if o.ProfilePath != "" && t.PprofURL != "" {
		if err := t.heapProfile(ctx, o.ProfilePath); err == nil {
			r.HeapProfile = o.ProfilePath
		}
	}
	stopKeepalive()
	if n := float64(r.Connected); n > 0 {
		if before.RSS >= 0 && after.RSS >= 0 {
			r.RSSPerConnKiB = ptr(round(float64(after.RSS-before.RSS)/n/1024, 2))
		}
		if before.HeapInuse >= 0 && after.HeapInuse >= 0 {
			r.HeapPerConnKiB = ptr(round((after.HeapInuse-before.HeapInuse)/n/1024, 2))
		}
		if before.Stack >= 0 && after.Stack >= 0 {
			r.StackPerConnKiB = ptr(round((after.Stack-before.Stack)/n/1024, 2))
		}
		if before.Goroutines >= 0 && after.Goroutines >= 0 {
			r.GoroutinesPerConn = ptr(round((after.Goroutines-before.Goroutines)/n, 3))
		}
	}
	h.Close()
	r.AfterClose = figuresOf(t.settled(ctx, before))
	return r
}

// idleWorkers spreads the connections over worker processes (this binary
// re-executed with -internal-idle-worker), each within the open-file limit.
func (e *env) idleWorkers(ctx context.Context, t *target, h *idleHolder, o idleOptions, prefix string, errs *errSet) (connected, procs int) {
	self, err := selfExecutable()
	if err != nil {
		errs.add(err)
		return 0, 0
	}
	type result struct {
		Connected int      `json:"connected"`
		Failed    int      `json:"failed"`
		Errors    []string `json:"errors"`
	}
	results := make(chan result)
	for off := 0; off < o.Conns; off += o.PerProcess {
		n := min(o.PerProcess, o.Conns-off)
		cmd := execCommand(self, "-internal-idle-worker", "-target", t.URL, "-conns", fmt.Sprint(n),
			"-concurrency", fmt.Sprint(o.Parallel), "-internal-prefix", prefix,
			"-internal-first", fmt.Sprint(off), "-devices", fmt.Sprint(o.Devices), "-internal-proto", fmt.Sprint(int(t.proto)))
		cmd.Env = append(os.Environ(), "BENCH_WORKER_SECRET="+string(t.Secret))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		ch, err := startChild(cmd)
		if err != nil {
			errs.add(err)
			continue
		}
		procs++
		h.workers = append(h.workers, &idleWorker{ch: ch, stdin: stdin})
		go func() {
			line, err := readLineTimeout(stdout, 10*time.Minute)
			var r result
			if err == nil {
				err = json.Unmarshal([]byte(strings.TrimPrefix(line, "CONNECTED ")), &r)
			}
			if err != nil {
				r.Failed = n
				r.Errors = []string{"worker: " + err.Error()}
			}
			go io.Copy(io.Discard, stdout)
			results <- r
		}()
	}
	for range procs {
		r := <-results
		connected += r.Connected
		for _, s := range r.Errors {
			errs.add(fmt.Errorf("%s", s))
		}
		errs.mu.Lock()
		errs.n += r.Failed - len(r.Errors)
		errs.mu.Unlock()
	}
	return connected, procs
}

// runIdleWorker is the hidden worker mode: connect, report, hold until the
// parent closes stdin, close.
// Its connections are numbered from first, devices to a user, as if the
// parent had opened them.
func runIdleWorker(ctx context.Context, url string, n, parallel int, prefix string, first, devices int, p proto) error {
	raiseNoFile()
	t := &target{Name: "worker", URL: url, proto: p}
	if s := os.Getenv("BENCH_WORKER_SECRET"); s != "" {
		t.Secret = []byte(s)
	}
	conns, errs := connectUsers(ctx, t, n, parallel, prefix, true, first, devices)
	b, _ := json.Marshal(map[string]any{"connected": len(conns), "failed": errs.n, "errors": errs.first})
	fmt.Printf("CONNECTED %s\n", b)
	h := &idleHolder{conns: conns}
	kctx, cancel := context.WithCancel(ctx)
	go h.keepalive(kctx, 20*time.Second)
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, bufio.NewReader(os.Stdin)); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	cancel()
	h.Close()
	return nil
}
