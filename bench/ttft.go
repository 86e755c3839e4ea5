package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type ttftOptions struct {
	Rate     float64 // requests per second, open loop
	Requests int
	Users    int // Chatbox connections (one user each)
	Parallel int
	// ProfilePath receives a CPU profile of the server during the Chatbox phase.
	ProfilePath string
}

type ttftResult struct {
	Rate          float64  `json:"rate_per_sec"`
	Requests      int      `json:"requests"`
	Users         int      `json:"users"`
	Direct        Summary  `json:"direct"`
	DirectErrors  int      `json:"direct_errors"`
	Chatbox       Summary  `json:"chatbox"`
	ChatboxErrors int      `json:"chatbox_errors"`
	FirstErrors   []string `json:"first_errors,omitempty"`
	Ack           Summary  `json:"chatbox_send_to_ack"`
	AddedP50MS    float64  `json:"added_p50_ms"`
	AddedP99MS    float64  `json:"added_p99_ms"`
	AchievedRate  float64  `json:"achieved_rate_per_sec"`
	ServerCPU     *float64 `json:"server_cpu_percent,omitempty"`
	CPUProfile    string   `json:"cpu_profile,omitempty"`
	CPU           cpuShare `json:"cpu"`
}

// ttftReply is short: the figure is the first token, and a short reply keeps
// the store and the fan-out out of the way.
const ttftReply = "ok then bye"

// openLoop calls fn(i) for i in [0,n) at rate per second, each in its own
// goroutine, independent of how long earlier calls take; it returns when all
// calls have returned.
func openLoop(ctx context.Context, n int, rate float64, fn func(i int)) time.Duration {
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		sleepUntil(ctx, at)
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() { defer wg.Done(); fn(i) }()
	}
	elapsed := time.Since(start)
	wg.Wait()
	return elapsed
}

// directTTFT posts to the fake provider and times the first SSE data chunk
// that carries content (the chunk Chatbox turns into its first delta).
func directTTFT(ctx context.Context, fakeURL string, o ttftOptions) ([]time.Duration, int, []string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}, Timeout: 10 * time.Second}
	body := []byte(`{"model":"fake","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`)
	one := func() (time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fakeURL+"/chat/completions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("status %s", resp.Status)
		}
		br := bufio.NewReader(resp.Body)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return 0, fmt.Errorf("no content chunk: %w", err)
			}
			if bytes.HasPrefix(line, []byte("data: ")) && bytes.Contains(line, []byte(`"content":"`)) && !bytes.Contains(line, []byte(`"content":""`)) {
				d := time.Since(t0)
				io.Copy(io.Discard, br)
				return d, nil
			}
		}
	}
	for range 50 { // warm the connection pool
		one()
	}
	var mu sync.Mutex
	var out []time.Duration
	errs := &errSet{}
	openLoop(ctx, o.Requests, o.Rate, func(int) {
		d, err := one()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs.add(err)
			return
		}
		out = append(out, d)
	})
	return out, errs.n, errs.first
}

// ttftConn is one Chatbox connection of the TTFT run.
type ttftConn struct {
	c *wsClient

	mu       sync.Mutex
	pending  map[string]time.Time // send id → send time
	sessions map[string]time.Time // session → send time of the reply awaited
	session  string               // the connection's own conversation, reused when idle
	busy     bool                 // a reply in the own session is in flight
	results  chan ttftSample
}

type ttftSample struct {
	ttft, ack time.Duration
	err       string
}

func chatboxTTFT(ctx context.Context, e *env, t *target, o ttftOptions) (ttfts, acks []time.Duration, errs *errSet, share cpuShare, elapsed time.Duration) {
	prefix := fmt.Sprintf("ttft-%s-", e.runID)
	clients, errs := connectUsers(ctx, t, o.Users, o.Parallel, prefix, false, 0, 1)
	results := make(chan ttftSample, o.Requests+len(clients)*2)
	conns := make([]*ttftConn, len(clients))
	var readers sync.WaitGroup
	for i, c := range clients {
		tc := &ttftConn{c: c, pending: map[string]time.Time{}, sessions: map[string]time.Time{}, results: results}
		conns[i] = tc
		readers.Add(1)
		go func() { defer readers.Done(); tc.read() }()
	}
	defer func() {
		for _, tc := range conns {
			tc.c.conn.Close()
		}
		readers.Wait()
	}()
	if len(conns) == 0 {
		return nil, nil, errs, share, 0
	}
	var ids atomic.Int64
	send := func(tc *ttftConn) {
		id := "r" + strconv.FormatInt(ids.Add(1), 10)
		tc.mu.Lock()
		var b []byte
		if tc.session != "" && !tc.busy {
			tc.busy = true
			b = fmt.Appendf(nil, `{"type":"send","id":%q,"session_id":%q,"text":"hi"}`, id, tc.session)
		} else {
			b = fmt.Appendf(nil, `{"type":"send","id":%q,"text":"hi"}`, id)
		}
		tc.pending[id] = time.Now()
		tc.mu.Unlock()
		if err := tc.c.WriteText(b); err != nil {
			results <- ttftSample{err: err.Error()}
		}
	}
	// Warm up: every connection opens its conversation (first sends create
	// the user's actors and a session; not measured).
	for _, tc := range conns {
		send(tc)
	}
	for range conns {
		select {
		case <-results:
		case <-time.After(10 * time.Second):
		}
	}
	time.Sleep(200 * time.Millisecond)
	meter := startCPU(t.PID)
	var profDone chan error
	if o.ProfilePath != "" && t.PprofURL != "" {
		profDone = make(chan error, 1)
		secs := max(1, int(float64(o.Requests)/o.Rate))
		go func() { profDone <- t.cpuProfile(ctx, secs, o.ProfilePath) }()
	}
	elapsed = openLoop(ctx, o.Requests, o.Rate, func(i int) { send(conns[i%len(conns)]) })
	timeout := time.After(10 * time.Second)
collect:
	for range o.Requests {
		select {
		case s := <-results:
			if s.err != "" {
				errs.add(fmt.Errorf("%s", s.err))
				continue
			}
			ttfts = append(ttfts, s.ttft)
			acks = append(acks, s.ack)
		case <-timeout:
			errs.add(fmt.Errorf("%d requests without a first delta after 10s", o.Requests-len(ttfts)))
			break collect
		}
	}
	share = meter.stop()
	if profDone != nil {
		if err := <-profDone; err != nil {
			e.logf("cpu profile: %v", err)
			o.ProfilePath = ""
		}
	}
	return ttfts, acks, errs, share, elapsed
}

func (tc *ttftConn) read() {
	buf := make([]byte, 0, 4096)
	acked := map[string]time.Duration{} // session → send-to-ack of the awaited reply
	for {
		f, err := tc.c.ReadMessage(buf)
		if err != nil {
			return
		}
		buf = f[:0]
		now := time.Now()
		switch readType(f) {
		case "ack":
			id, sid := string(jsonField(f, "id")), string(jsonField(f, "session_id"))
			tc.mu.Lock()
			if t0, ok := tc.pending[id]; ok {
				delete(tc.pending, id)
				tc.sessions[sid] = t0
				acked[sid] = now.Sub(t0)
				if tc.session == "" {
					tc.session, tc.busy = sid, true
				}
			}
			tc.mu.Unlock()
		case "delta":
			if atoi(jsonField(f, "offset")) != 0 {
				continue
			}
			sid := string(jsonField(f, "session_id"))
			tc.mu.Lock()
			t0, ok := tc.sessions[sid]
			delete(tc.sessions, sid)
			tc.mu.Unlock()
			if ok {
				tc.results <- ttftSample{ttft: now.Sub(t0), ack: acked[sid]}
				delete(acked, sid)
			}
		case "message":
			if bytes.Equal(jsonField(f, "role"), []byte("assistant")) {
				sid := string(jsonField(f, "session_id"))
				tc.mu.Lock()
				if sid == tc.session {
					tc.busy = false
				}
				tc.mu.Unlock()
			}
		case "error":
			id := string(jsonField(f, "id"))
			tc.mu.Lock()
			_, ok := tc.pending[id]
			delete(tc.pending, id)
			if sid := string(jsonField(f, "session_id")); sid == tc.session {
				tc.busy = false
			}
			tc.mu.Unlock()
			if ok {
				tc.results <- ttftSample{err: "error event " + string(jsonField(f, "code"))}
			}
		}
	}
}

func runTTFT(ctx context.Context, e *env, t *target, o ttftOptions) ttftResult {
	r := ttftResult{Rate: o.Rate, Requests: o.Requests, Users: o.Users}
	e.fake.Set(ttftReply, 0)
	time.Sleep(time.Second) // let the server settle after start-up or the previous scenario
	direct, derrs, dfirst := directTTFT(ctx, e.fake.URL, o)
	r.Direct, r.DirectErrors = SummarizeDurations(direct), derrs
	e.logf("ttft direct: p50 %.3f ms p99 %.3f ms (%d errors)", r.Direct.P50, r.Direct.P99, derrs)
	cb, acks, errs, share, elapsed := chatboxTTFT(ctx, e, t, o)
	r.CPU = share
	r.Chatbox, r.Ack = SummarizeDurations(cb), SummarizeDurations(acks)
	r.ChatboxErrors, r.FirstErrors = errs.n, append(dfirst, errs.first...)
	if elapsed > 0 {
		r.AchievedRate = round(float64(o.Requests)/elapsed.Seconds(), 1)
	}
	if t.PID > 0 {
		r.ServerCPU = ptr(share.Server)
	}
	if o.ProfilePath != "" && t.PprofURL != "" {
		if _, err := os.Stat(o.ProfilePath); err == nil {
			r.CPUProfile = o.ProfilePath
		}
	}
	r.AddedP50MS = round(r.Chatbox.P50-r.Direct.P50, 3)
	r.AddedP99MS = round(r.Chatbox.P99-r.Direct.P99, 3)
	e.logf("ttft chatbox: p50 %.3f ms p99 %.3f ms (%d errors)", r.Chatbox.P50, r.Chatbox.P99, errs.n)
	return r
}
