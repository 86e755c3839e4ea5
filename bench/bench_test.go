package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 100; i >= 1; i-- {
		v = append(v, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0, 1 * time.Millisecond}, {0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {0.999, 100 * time.Millisecond}, {1, 100 * time.Millisecond}} {
		if got := Percentile(v, c.q); got != c.want {
			t.Errorf("Percentile(1..100ms, %v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := Percentile(nil, 0.5); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

// The histogram agrees with exact nearest-rank percentiles within its
// bucket precision (under 1.6%), and merging equals recording together.
func TestHistogramMatchesExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var a, b, all Histogram
	var exact []time.Duration
	for i := range 50000 {
		v := int64(r.ExpFloat64() * 2e6) // ~2 ms mean, long tail
		if i%1000 == 0 {
			v = int64(r.IntN(100)) // a few tiny values in the linear range
		}
		exact = append(exact, time.Duration(v))
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	a.Merge(&b)
	if a != all {
		t.Fatal("merged histograms differ from one recorded with everything")
	}
	slices.Sort(exact)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		want := float64(Percentile(exact, q))
		got := float64(all.Quantile(q))
		if d := got - want; d > 0.016*want+1 || -d > 0.016*want+1 {
			t.Errorf("q%v: histogram %v, exact %v", q, got, want)
		}
	}
	if all.Count() != 50000 {
		t.Errorf("count %d", all.Count())
	}
}

func TestHistogramIndexIsMonotonic(t *testing.T) {
	prev := -1
	for v := int64(0); v < 1<<20; v += 1 + v/97 {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index of %d is %d, below %d", v, i, prev)
		}
		if lo := histValue(i); float64(lo) > float64(v)*1.02+1 || float64(lo) < float64(v)*0.98-1 {
			t.Fatalf("bucket value %d for %d", lo, v)
		}
		prev = i
	}
	if histIndex(1<<62) != histBuckets-1 {
		t.Fatal("huge values must land in the last bucket")
	}
}

func TestFrameParsing(t *testing.T) {
	f := []byte(`{"type":"delta","session_id":"s1","message_id":"m\"x","seq":4,"offset":42,"text":"t1732530000000000001 t1732530000000000002 "}`)
	if got := readType(f); got != "delta" {
		t.Errorf("type %q", got)
	}
	if got := string(jsonField(f, "message_id")); got != `m\"x` {
		t.Errorf("message_id %q", got)
	}
	if got := atoi(jsonField(f, "offset")); got != 42 {
		t.Errorf("offset %d", got)
	}
	if got := string(jsonField(f, "id")); got != "" {
		t.Errorf(`"id" matched inside another key: %q`, got)
	}
	var stamps []int64
	n := eachStamp(jsonField(f, "text"), func(ns int64) { stamps = append(stamps, ns) })
	if n != 2 || stamps[0] != 1732530000000000001 || stamps[1] != 1732530000000000002 {
		t.Errorf("stamps %v", stamps)
	}
}

func TestStampedReply(t *testing.T) {
	r := stampedReply(3)
	if strings.Count(r, placeholder) != 3 || strings.HasSuffix(r, " ") {
		t.Errorf("reply %q", r)
	}
}

// A tiny end-to-end run of the quick-scenario logic against the baseline
// server only (in this process; Chatbox is not built): idle, fan-out with
// per-token lag, churn.
func TestQuickAgainstBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fake, err := startFake(stampedReply(5), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	base, stop, err := startBaselineInProcess(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	e := &env{runID: "test", fake: fake, logf: t.Logf}

	idle := runIdle(ctx, e, base, idleOptions{Conns: 50, Parallel: 8, Hold: 100 * time.Millisecond, PerProcess: 1000})
	if idle.Connected != 50 || idle.Failed != 0 {
		t.Errorf("idle: %d connected, %d failed: %v", idle.Connected, idle.Failed, idle.FirstErrors)
	}
	if idle.GoroutinesPerConn == nil || *idle.GoroutinesPerConn < 0.5 {
		t.Errorf("idle: goroutines per connection %v, want about 1 (in-process, the clients hold none)", idle.GoroutinesPerConn)
	}

	fan := runFanout(ctx, e, base, fanoutOptions{Users: 3, Devices: 2, Tokens: 5, TokenDelay: time.Millisecond,
		Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond, Parallel: 4})
	if fan.Connected != 6 {
		t.Fatalf("fanout: %d devices connected: %v", fan.Connected, fan.FirstErrors)
	}
	if fan.Frames == 0 || fan.Tokens < fan.Frames || fan.Lag.Count != int(fan.Tokens) {
		t.Errorf("fanout: frames %d, tokens %d, lag samples %d", fan.Frames, fan.Tokens, fan.Lag.Count)
	}
	if fan.Gaps != 0 || fan.Replies == 0 {
		t.Errorf("fanout: %d gaps, %d replies", fan.Gaps, fan.Replies)
	}
	if fan.Lag.P50 <= 0 || fan.Lag.P50 > 1000 {
		t.Errorf("fanout: implausible lag p50 %v ms", fan.Lag.P50)
	}

	churn := runChurn(ctx, e, base, churnOptions{Duration: 300 * time.Millisecond, Parallel: 4, Users: 10})
	if churn.Cycles == 0 || churn.Failures != 0 {
		t.Errorf("churn: %d cycles, %d failures: %v", churn.Cycles, churn.Failures, churn.FirstErrors)
	}

	// The report, with the baseline's results standing in for Chatbox's too.
	ci, cf, cc := idle, fan, churn
	ci.Target, cf.Target, cc.Target = "chatbox", "chatbox", "chatbox"
	rep := &Report{Scenario: "quick", Idle: []idleResult{ci, idle}, Fanout: []fanoutResult{cf, fan}, Churn: []churnResult{cc, churn}}
	rep.finish(e, time.Second)
	if md := markdown(rep); !strings.Contains(md, "fan-out lag") || !strings.Contains(md, "idle memory") {
		t.Errorf("markdown lacks the target rows:\n%s", md)
	}
	if r := rep.Ratios["fanout_frames_per_sec"]; r != 1 {
		t.Errorf("frames/s ratio of identical results = %v, want 1", r)
	}
}

func TestFlags(t *testing.T) {
	var sb strings.Builder
	if _, _, err := parseFlags([]string{"-scenario", "nope"}, &sb); err == nil {
		t.Error("unknown scenario accepted")
	}
	c, _, err := parseFlags([]string{"-scenario", "fanout", "-users", "3"}, &sb)
	if err != nil || !c.given("users") || c.given("devices") {
		t.Errorf("parse: %v %+v", err, c)
	}
	for _, args := range [][]string{
		{"-scenario", "idle", "-store", "ferret"},
		{"-scenario", "idle", "-store", "mongo", "-target", "ws://127.0.0.1:1/ws"},
	} {
		if _, _, err := parseFlags(args, &sb); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if c, _, err := parseFlags([]string{"-scenario", "idle"}, &sb); err != nil || c.Store != "embedded" {
		t.Errorf("default store: %v %+v", err, c)
	}
	sb.Reset()
	parseFlags([]string{"-h"}, &sb)
	if strings.Contains(sb.String(), "internal-") {
		t.Error("usage shows the hidden flags")
	}
}

// The TTFT verdict: met or missed by the added p99, and no verdict when
// the direct run's tail was slower than Chatbox's (a negative "added").
func TestTTFTVerdict(t *testing.T) {
	for _, tt := range []struct {
		added float64
		want  string
	}{{0.5, "met"}, {2.5, "missed"}, {-496, "none"}} {
		rep := &Report{TTFT: &ttftResult{Rate: 500, Chatbox: Summary{Count: 10}, AddedP99MS: tt.added}}
		rep.finish(&env{}, time.Second)
		var got string
		for _, c := range rep.Targets {
			if c.Name != "time to first token" {
				continue
			}
			switch {
			case c.Met == nil:
				got = "none"
			case *c.Met:
				got = "met"
			default:
				got = "missed"
			}
		}
		if got != tt.want {
			t.Errorf("added p99 %v ms: verdict %q, want %q", tt.added, got, tt.want)
		}
	}
}
