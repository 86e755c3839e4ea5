package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type churnOptions struct {
	Duration time.Duration
	Parallel int
	Users    int // distinct users the connections cycle through
	// ProfilePath receives a CPU profile of the server during the run.
	ProfilePath string
}

type churnResult struct {
	Target        string   `json:"target"`
	Parallel      int      `json:"parallel"`
	Seconds       float64  `json:"seconds"`
	Cycles        int64    `json:"cycles"`
	Failures      int      `json:"failures"`
	FirstErrors   []string `json:"first_errors,omitempty"`
	CyclesPerSec  float64  `json:"connects_per_sec"`
	ConnectToHelo Summary  `json:"connect_to_hello"`
	ServerCPU     *float64 `json:"server_cpu_percent,omitempty"`
	Before        figures  `json:"before"`
	After         figures  `json:"after_settle"`
	CPUProfile    string   `json:"cpu_profile,omitempty"`
	CPU           cpuShare `json:"cpu"`
}

// runChurn connects (TCP, upgrade with a JWT, hello received) and closes
// again, from Parallel loops, for Duration.
func runChurn(ctx context.Context, e *env, t *target, o churnOptions) churnResult {
	r := churnResult{Target: t.Name, Parallel: o.Parallel}
	prefix := fmt.Sprintf("churn-%s-%s-", e.runID, t.Name)
	for i := range o.Users {
		t.Token(fmt.Sprintf("%s%d", prefix, i)) // sign before timing
	}
	before := t.Sample()
	r.Before = figuresOf(before)
	errs := &errSet{}
	var cycles atomic.Int64
	lat := make([][]time.Duration, o.Parallel)
	var profDone chan error
	if o.ProfilePath != "" && t.PprofURL != "" {
		profDone = make(chan error, 1)
		go func() { profDone <- t.cpuProfile(ctx, max(1, int(o.Duration.Seconds())), o.ProfilePath) }()
	}
	meter := startCPU(t.PID)
	start := time.Now()
	end := start.Add(o.Duration)
	var wg sync.WaitGroup
	for w := range o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := dialOptions{URL: t.URL, ReadBuf: 1024}
			for i := w; time.Now().Before(end) && ctx.Err() == nil; i += o.Parallel {
				tok := t.Token(fmt.Sprintf("%s%d", prefix, i%o.Users))
				t0 := time.Now()
				c, err := dialWS(ctx, opts, tok)
				if err == nil {
					if err = c.expectHello(time.Now().Add(10 * time.Second)); err == nil {
						lat[w] = append(lat[w], time.Since(t0))
						cycles.Add(1)
					}
					c.Close()
				}
				if err != nil {
					errs.add(err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	r.CPU = meter.stop()
	mid := t.Sample()
	if profDone != nil {
		if err := <-profDone; err == nil {
			r.CPUProfile = o.ProfilePath
		}
	}
	r.Seconds = round(elapsed.Seconds(), 2)
	r.Cycles = cycles.Load()
	r.CyclesPerSec = round(float64(r.Cycles)/elapsed.Seconds(), 0)
	r.Failures, r.FirstErrors = errs.n, errs.first
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	r.ConnectToHelo = SummarizeDurations(all)
	if before.CPU >= 0 && mid.CPU >= 0 {
		r.ServerCPU = ptr(round(100*(mid.CPU-before.CPU).Seconds()/mid.At.Sub(before.At).Seconds(), 1))
	}
	r.After = figuresOf(t.settled(ctx, before))
	e.logf("%s churn: %d cycles in %.1fs (%.0f/s), %d failures", t.Name, r.Cycles, r.Seconds, r.CyclesPerSec, r.Failures)
	return r
}
