package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// soak holds many connections for a long time with a steady, modest chat
// on them (open loop: sends at a fixed rate, each on a random connection
// not already waiting for a reply, continuing its own session), and
// samples the server every few seconds: RSS, goroutines, open files and the
// p99 delivery lag of the tokens in that interval. A server that leaks
// shows a rising line; the verdict compares the last quarter's mean with
// the second quarter's (the first is warm-up). It also counts what must
// not happen: error events, unexpected disconnects, offset gaps, sends
// that were not acked or not answered.

type soakOptions struct {
	Conns      int
	Rate       float64 // sends per second, all connections together
	Tokens     int     // tokens per reply
	TokenDelay time.Duration
	Duration   time.Duration
	Interval   time.Duration // between samples
	Parallel   int
}

// soakDefaultDuration is the soak's length without -duration.
const soakDefaultDuration = 10 * time.Minute

// soakInterval is the sampling interval of a soak of length d: every 5 s,
// and at least 20 samples in a short one.
func soakInterval(d time.Duration) time.Duration {
	return min(5*time.Second, max(d/20, 250*time.Millisecond))
}

// soakSample is one reading of the server; -1 where a figure was not
// available (no process id, no metrics, no tokens in the interval).
type soakSample struct {
	Seconds    float64 `json:"t_seconds"`
	RSSMiB     float64 `json:"rss_mib"`
	Goroutines float64 `json:"goroutines"`
	OpenFiles  float64 `json:"open_files"`
	LagP99MS   float64 `json:"lag_p99_ms"`
	Replies    int64   `json:"replies_in_interval"`
}

// soakVerdict says whether one figure stayed flat: the last quarter's mean
// within Tolerance percent (or Slack in its own unit, for figures near
// zero) of the second quarter's.
type soakVerdict struct {
	Figure        string  `json:"figure"`
	SecondQuarter float64 `json:"second_quarter_mean"`
	LastQuarter   float64 `json:"last_quarter_mean"`
	ChangePercent float64 `json:"change_percent"`
	Tolerance     float64 `json:"tolerance_percent"`
	Slack         float64 `json:"slack,omitempty"`
	Flat          bool    `json:"flat"`
}

type soakResult struct {
	Conns           int            `json:"conns"`
	Connected       int            `json:"connected"`
	ConnectFailures int            `json:"connect_failures"`
	FirstErrors     []string       `json:"first_errors,omitempty"`
	Rate            float64        `json:"sends_per_sec"`
	TokensPerReply  int            `json:"tokens_per_reply"`
	TokenDelayMS    float64        `json:"token_delay_ms"`
	Seconds         float64        `json:"seconds"`
	IntervalSeconds float64        `json:"sample_interval_seconds"`
	Sends           int64          `json:"sends"`
	Acks            int64          `json:"acks"`
	Replies         int64          `json:"replies_completed"`
	Skipped         int64          `json:"sends_skipped_all_busy,omitempty"`
	ErrorEvents     map[string]int `json:"error_events,omitempty"`
	Disconnects     int64          `json:"unexpected_disconnects"`
	Gaps            int64          `json:"offset_gaps"`
	Lag             Summary        `json:"lag"`
	Samples         []soakSample   `json:"samples"`
	Verdicts        []soakVerdict  `json:"verdicts"`
	Flat            bool           `json:"flat"`
	Plot            string         `json:"plot,omitempty"` // PNG next to the JSON result
	CPU             cpuShare       `json:"cpu"`
}

// soakConn is one connection of the soak and its reader's state.
type soakConn struct {
	c       *wsClient
	id      int
	waiting atomic.Bool // a send is out and its reply has not ended
	session []byte      // guarded by waiting: written by the reader only while set
	sends   int

	curMsg     []byte
	nextOffset int64
}

// soakShared is what the readers report into.
type soakShared struct {
	acks, replies, gaps, disconnects atomic.Int64

	mu     sync.Mutex // guards the fields below
	window Histogram  // lag of the tokens since the last sample
	all    Histogram
	errs   map[string]int
}

func runSoak(ctx context.Context, e *env, t *target, o soakOptions) soakResult {
	r := soakResult{Conns: o.Conns, Rate: o.Rate, TokensPerReply: o.Tokens, TokenDelayMS: float64(o.TokenDelay) / 1e6,
		IntervalSeconds: o.Interval.Seconds()}
	e.fake.Set(stampedReply(o.Tokens), o.TokenDelay)
	clients, errs := connectUsers(ctx, t, o.Conns, o.Parallel, fmt.Sprintf("soak-%s-", e.runID), false, 0, 1)
	r.Connected, r.ConnectFailures, r.FirstErrors = len(clients), errs.n, errs.first
	e.logf("soak: %d/%d connected", r.Connected, o.Conns)
	if len(clients) == 0 || ctx.Err() != nil {
		return r
	}

	sh := &soakShared{errs: map[string]int{}}
	conns := make([]*soakConn, len(clients))
	var readers sync.WaitGroup
	closing := make(chan struct{})
	for i, c := range clients {
		sc := &soakConn{c: c, id: i}
		conns[i] = sc
		readers.Go(func() { sc.read(sh, closing) })
	}

	runCtx, stop := context.WithTimeout(ctx, o.Duration)
	defer stop()
	var loops sync.WaitGroup
	// The server's idle timeout is minutes; a connection chosen rarely
	// would outlast it without these pings.
	loops.Go(func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				for _, sc := range conns {
					sc.c.Ping()
				}
			}
		}
	})
	var sends, skipped atomic.Int64
	loops.Go(func() {
		start := time.Now()
		for i := 0; runCtx.Err() == nil; i++ {
			sleepUntil(runCtx, start.Add(time.Duration(float64(i)/o.Rate*float64(time.Second))))
			if runCtx.Err() != nil {
				return
			}
			if sc := pickIdle(conns); sc != nil {
				sends.Add(1)
				sc.send()
			} else {
				skipped.Add(1)
			}
		}
	})

	meter := startCPU(t.PID)
	start := time.Now()
	tick := time.NewTicker(o.Interval)
	var prevReplies int64
	for done := false; !done; {
		select {
		case <-runCtx.Done():
			done = true
		case <-tick.C:
			s := sampleSoak(t, sh, start)
			s.Replies = sh.replies.Load() - prevReplies
			prevReplies += s.Replies
			r.Samples = append(r.Samples, s)
			e.logf("soak %4.0fs: rss %.1f MiB, %0.f goroutines, %.0f files, lag p99 %.2f ms, %d replies", s.Seconds, s.RSSMiB, s.Goroutines, s.OpenFiles, s.LagP99MS, s.Replies)
		}
	}
	tick.Stop()
	loops.Wait()
	r.Seconds = round(time.Since(start).Seconds(), 1)
	r.CPU = meter.stop()

	// Let the replies in flight end, then close.
	deadline := time.Now().Add(time.Duration(o.Tokens)*o.TokenDelay + 30*time.Second)
	for pending(conns) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 100*time.Millisecond)
	}
	if n := pending(conns); n > 0 {
		e.note("soak: %d replies had not ended %.0f s after the last send", n, time.Until(deadline).Seconds()+30)
	}
	close(closing)
	for _, sc := range conns {
		sc.c.conn.Close()
	}
	readers.Wait()

	r.Sends, r.Skipped = sends.Load(), skipped.Load()
	r.Acks, r.Replies, r.Gaps, r.Disconnects = sh.acks.Load(), sh.replies.Load(), sh.gaps.Load(), sh.disconnects.Load()
	sh.mu.Lock()
	r.Lag = SummarizeHist(&sh.all)
	if len(sh.errs) > 0 {
		r.ErrorEvents = sh.errs
	}
	sh.mu.Unlock()
	r.Verdicts, r.Flat = soakVerdicts(r.Samples)
	e.logf("soak: %d sends, %d acks, %d replies, errors %v, flat %v", r.Sends, r.Acks, r.Replies, r.ErrorEvents, r.Flat)
	return r
}

// pickIdle returns a random connection not waiting for a reply (tries a
// few), or nil.
func pickIdle(conns []*soakConn) *soakConn {
	for range 8 {
		sc := conns[rand.IntN(len(conns))]
		if sc.waiting.CompareAndSwap(false, true) {
			return sc
		}
	}
	return nil
}

func pending(conns []*soakConn) int {
	n := 0
	for _, sc := range conns {
		if sc.waiting.Load() {
			n++
		}
	}
	return n
}

// send writes the next message of sc's session; waiting is already set.
func (sc *soakConn) send() {
	sc.sends++
	var b []byte
	if sc.session == nil {
		b = fmt.Appendf(nil, `{"type":"send","id":"s%d-%d","text":"go"}`, sc.id, sc.sends)
	} else {
		b = fmt.Appendf(nil, `{"type":"send","id":"s%d-%d","session_id":%q,"text":"go"}`, sc.id, sc.sends, sc.session)
	}
	if sc.c.WriteText(b) != nil {
		sc.waiting.Store(false)
	}
}

// read consumes frames until the connection ends: acks, deltas (offsets
// checked, each token's lag recorded), the final message of each reply,
// and errors.
func (sc *soakConn) read(sh *soakShared, closing <-chan struct{}) {
	buf := make([]byte, 0, 4<<10)
	for {
		f, err := sc.c.ReadMessage(buf)
		if err != nil {
			select {
			case <-closing:
			default:
				sh.disconnects.Add(1)
			}
			return
		}
		buf = f[:0]
		now := time.Now().UnixNano()
		switch readType(f) {
		case "ack":
			sh.acks.Add(1)
			sc.session = append(sc.session[:0], jsonField(f, "session_id")...)
		case "delta":
			text := jsonField(f, "text")
			if msg := jsonField(f, "message_id"); !bytes.Equal(msg, sc.curMsg) {
				sc.curMsg = append(sc.curMsg[:0], msg...)
				sc.nextOffset = 0
			}
			if off := atoi(jsonField(f, "offset")); off != sc.nextOffset {
				sh.gaps.Add(1)
			}
			sc.nextOffset += int64(len(text))
			sh.mu.Lock()
			eachStamp(text, func(ns int64) {
				sh.window.Record(now - ns)
				sh.all.Record(now - ns)
			})
			sh.mu.Unlock()
		case "message":
			if bytes.Equal(jsonField(f, "role"), []byte("assistant")) {
				sh.replies.Add(1)
				sc.waiting.Store(false)
			}
		case "error":
			sh.mu.Lock()
			sh.errs[string(jsonField(f, "code"))]++
			sh.mu.Unlock()
			if len(jsonField(f, "id")) > 0 { // a refused send: no reply comes
				sc.waiting.Store(false)
			}
		}
	}
}

// sampleSoak reads the server's figures and the lag of the interval.
func sampleSoak(t *target, sh *soakShared, start time.Time) soakSample {
	s := t.Sample()
	out := soakSample{Seconds: round(time.Since(start).Seconds(), 1), RSSMiB: -1, Goroutines: s.Goroutines, OpenFiles: -1, LagP99MS: -1}
	if s.RSS >= 0 {
		out.RSSMiB = round(float64(s.RSS)/(1<<20), 2)
	}
	if t.PID > 0 {
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", t.PID)); err == nil {
			out.OpenFiles = float64(len(fds))
		}
	}
	sh.mu.Lock()
	if sh.window.Count() > 0 {
		out.LagP99MS = round(float64(sh.window.Quantile(0.99))/1e6, 3)
	}
	sh.window = Histogram{}
	sh.mu.Unlock()
	return out
}

// soakFigures are the sampled figures, how each is read from a sample, and
// how far its last quarter may drift from its second: memory and open
// files 10 %, goroutines 5 % (both grow with leaks), the lag 50 % or 2 ms
// (a p99 of a few milliseconds on a shared machine is noisy).
var soakFigures = []struct {
	name       string
	of         func(soakSample) float64
	tol, slack float64
}{
	{"RSS (MiB)", func(s soakSample) float64 { return s.RSSMiB }, 10, 0},
	{"goroutines", func(s soakSample) float64 { return s.Goroutines }, 5, 0},
	{"open files", func(s soakSample) float64 { return s.OpenFiles }, 10, 0},
	{"lag p99 (ms)", func(s soakSample) float64 { return s.LagP99MS }, 50, 2},
}

// soakVerdicts compares each figure's last-quarter mean with its
// second-quarter mean; flat is true when every figure with values is.
func soakVerdicts(samples []soakSample) ([]soakVerdict, bool) {
	flat := true
	var out []soakVerdict
	n := len(samples)
	for _, f := range soakFigures {
		q2 := meanOf(samples[n/4:n/2], f.of)
		q4 := meanOf(samples[n-n/4:], f.of)
		if math.IsNaN(q2) || math.IsNaN(q4) {
			continue
		}
		v := soakVerdict{Figure: f.name, SecondQuarter: round(q2, 2), LastQuarter: round(q4, 2), Tolerance: f.tol, Slack: f.slack}
		if q2 != 0 {
			v.ChangePercent = round(100*(q4-q2)/q2, 1)
		}
		v.Flat = math.Abs(q4-q2) <= f.tol/100*math.Abs(q2) || math.Abs(q4-q2) <= f.slack
		flat = flat && v.Flat
		out = append(out, v)
	}
	return out, flat && len(out) > 0
}

// meanOf is the mean of of over samples, skipping unknown (negative)
// values; NaN if none.
func meanOf(samples []soakSample, of func(soakSample) float64) float64 {
	var sum float64
	var n int
	for _, s := range samples {
		if v := of(s); v >= 0 {
			sum += v
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// writeSoakPlot draws each figure over time, with the two quarters the
// verdict compares shaded and their means dashed.
func writeSoakPlot(path string, r *soakResult) error {
	n := len(r.Samples)
	if n == 0 {
		return fmt.Errorf("no samples to plot")
	}
	at := func(i int) float64 { return r.Samples[min(i, n-1)].Seconds }
	verdicts := map[string]soakVerdict{}
	for _, v := range r.Verdicts {
		verdicts[v.Figure] = v
	}
	var series []plotSeries
	for _, f := range soakFigures {
		s := plotSeries{Title: f.name, Means: [2]float64{math.NaN(), math.NaN()},
			Shade: [2][2]float64{{at(n / 4), at(n/2 - 1)}, {at(n - n/4), at(n - 1)}}}
		for _, smp := range r.Samples {
			v := f.of(smp)
			if v < 0 {
				v = math.NaN()
			}
			s.X, s.Y = append(s.X, smp.Seconds), append(s.Y, v)
		}
		if v, ok := verdicts[f.name]; ok {
			word := "flat"
			if !v.Flat {
				word = "not flat"
			}
			s.Title = fmt.Sprintf("%s - %s: last quarter %+.1f%% of the second", f.name, word, v.ChangePercent)
			s.Means = [2]float64{v.SecondQuarter, v.LastQuarter}
		}
		series = append(series, s)
	}
	return writePlot(path, series)
}
