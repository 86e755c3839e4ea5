// A target is a server under test, self-started or already running: how to
// reach it, sign its tokens, sample its process and fetch its profiles.

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chatbox/chatbox/auth"
)

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
	PublisherURL  string // centrifugo: the publisher in front of its API

	proto proto

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
	var tok string
	if t.proto == protoCentrifugo {
		tok = centrifugoToken(t.Secret, userID, time.Now(), 2*time.Hour)
	} else {
		var err error
		if tok, err = auth.Sign(t.Secret, auth.Identity{UserID: userID, Name: userID}, 2*time.Hour, "", ""); err != nil {
			panic("sign bench token: " + err.Error())
		}
	}
	if t.tokens == nil {
		t.tokens = map[string]string{}
	}
	t.tokens[userID] = tok
	return tok
}

// dialHello opens an authenticated connection for userID and waits for the
// server's greeting: Chatbox's hello (token in the upgrade's Authorization
// header), or for Centrifugo the reply to connect (token in the command).
func (t *target) dialHello(ctx context.Context, o dialOptions, userID string) (*wsClient, error) {
	tok := t.Token(userID)
	if t.proto == protoCentrifugo {
		tok = ""
	}
	c, err := dialWS(ctx, o, tok)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	if t.proto == protoCentrifugo {
		err = centrifugoHello(c, t.Token(userID), userID, deadline)
	} else {
		err = c.expectHello(deadline)
	}
	if err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
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

// settled samples t once it has torn down what a measurement opened: when
// its goroutines are back within 10 of before, or after 10 s. What is left
// then is a leak.
func (t *target) settled(ctx context.Context, before sample) sample {
	deadline := time.Now().Add(10 * time.Second)
	for {
		sleepCtx(ctx, 500*time.Millisecond)
		s := t.Sample()
		if s.Goroutines < 0 || s.Goroutines <= before.Goroutines+10 || time.Now().After(deadline) || ctx.Err() != nil {
			return s
		}
	}
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

// proto is the wire protocol a target's clients speak.
type proto int

const (
	protoChatbox    proto = iota // Chatbox's JSON frames (Chatbox and the baseline)
	protoCentrifugo              // Centrifugo's JSON protocol
)
