package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Report is the JSON result of one run.
type Report struct {
	Scenario        string             `json:"scenario"`
	Date            string             `json:"date"`
	GitRev          string             `json:"git_rev"`
	Host            Host               `json:"host"`
	Flags           map[string]string  `json:"flags"`
	Chatbox         *TargetInfo        `json:"chatbox,omitempty"`
	Baseline        *TargetInfo        `json:"baseline,omitempty"`
	Centrifugo      *TargetInfo        `json:"centrifugo,omitempty"`
	Idle            []idleResult       `json:"idle,omitempty"`
	Fanout          []fanoutResult     `json:"fanout,omitempty"`
	TTFT            *ttftResult        `json:"ttft,omitempty"`
	Burst           *burstResult       `json:"burst,omitempty"`
	Soak            *soakResult        `json:"soak,omitempty"`
	Failover        *failoverResult    `json:"failover,omitempty"`
	Crossnode       *crossnodeResult   `json:"crossnode,omitempty"`
	Churn           []churnResult      `json:"churn,omitempty"`
	Ratios          map[string]float64 `json:"chatbox_over_baseline,omitempty"`
	RatiosCent      map[string]float64 `json:"chatbox_over_centrifugo,omitempty"`
	Targets         []Check            `json:"targets,omitempty"`
	Notes           []string           `json:"notes,omitempty"`
	DurationSeconds float64            `json:"duration_seconds"`
}

// Host describes the machine.
type Host struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	NoFile    uint64 `json:"open_file_limit"`
}

// TargetInfo describes a server under test.
type TargetInfo struct {
	URL     string `json:"url"`
	PID     int    `json:"pid,omitempty"`
	Metrics string `json:"metrics_source"`
	Store   string `json:"store,omitempty"` // self-started Chatbox: which store it ran on
	Pprof   bool   `json:"pprof"`
}

// Check is one performance target, as measured.
type Check struct {
	Name     string `json:"name"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      *bool  `json:"met,omitempty"` // nil: not measurable in this run
	Note     string `json:"note,omitempty"`
}

func newReport(cfg *config, e *env, nofile uint64) *Report {
	r := &Report{
		Scenario: cfg.Scenario, Date: time.Now().Format(time.RFC3339), GitRev: cfg.Rev,
		Host:  Host{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), Kernel: kernel(), NoFile: nofile},
		Flags: map[string]string{},
	}
	if e.chatbox != nil {
		r.Chatbox = &TargetInfo{URL: e.chatbox.URL, PID: e.chatbox.PID, Metrics: e.chatbox.MetricsSource,
			Pprof: e.chatbox.PprofURL != ""}
		if cfg.Target == "" {
			r.Chatbox.Store = storeLabel(cfg.Store)
		}
	}
	if c := e.cent; c != nil {
		r.Centrifugo = &TargetInfo{URL: c.URL, PID: c.PID, Metrics: c.MetricsSource, Pprof: c.PprofURL != ""}
	}
	if r.GitRev == "" {
		r.GitRev = gitRev(cfg.ChatboxSrc)
		if cfg.ChatboxBin != "" || cfg.Target != "" {
			r.GitRev += " (of the working tree; the server was not built by this run, label it with -rev)"
		}
	}
	for k := range cfg.set {
		r.Flags[k] = flagValue(cfg, k)
	}
	return r
}

func flagValue(cfg *config, name string) string {
	switch name {
	case "secret":
		return "(set)"
	}
	// A small reflection-free lookup of the flags that matter in a result.
	m := map[string]any{
		"scenario": cfg.Scenario, "target": cfg.Target, "conns": cfg.Conns, "users": cfg.Users,
		"devices": cfg.Devices, "tokens": cfg.Tokens, "token-delay": cfg.TokenDelay, "rate": cfg.Rate,
		"requests": cfg.Requests, "concurrency": cfg.Concurrency, "duration": cfg.Duration,
		"warmup": cfg.Warmup, "timeout": cfg.Timeout, "baseline": cfg.Baseline, "instrument": cfg.Instrument,
		"conns-per-process": cfg.PerProcess, "chatbox-bin": cfg.ChatboxBin, "pid": cfg.PID,
		"chatbox-src": cfg.ChatboxSrc, "only": cfg.Only, "centrifugo": cfg.Centrifugo.v, "centrifugo-publish": cfg.CentPublish, "store": cfg.Store, "rev": cfg.Rev, "profile": cfg.ProfileDir, "out": cfg.Out,
	}
	if v, ok := m[name]; ok {
		return fmt.Sprint(v)
	}
	return "(set)"
}

// finish computes the ratios to the baseline and the target checks.
func (r *Report) finish(e *env, took time.Duration) {
	r.DurationSeconds = round(took.Seconds(), 1)
	if e.base != nil {
		r.Baseline = &TargetInfo{URL: e.base.URL, PID: e.base.PID, Metrics: e.base.MetricsSource, Pprof: true}
	}
	r.Notes = append(r.Notes, e.notes...)
	busy := func(what string, c cpuShare) {
		if c.Others > 25 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s: other processes used %.0f%% of a core during the measurement (machine %.0f%% of %d00%%): the machine was shared, figures are pessimistic", what, c.Others, c.Machine, r.Host.CPUs))
		}
	}
	for _, f := range r.Fanout {
		busy("fanout "+f.Target, f.CPU)
	}
	for _, c := range r.Churn {
		busy("churn "+c.Target, c.CPU)
	}
	if r.TTFT != nil {
		busy("ttft chatbox", r.TTFT.CPU)
	}
	if r.Burst != nil {
		busy("burst chatbox", r.Burst.CPU)
	}
	if r.Soak != nil {
		busy("soak chatbox", r.Soak.CPU)
	}
	r.Ratios, r.RatiosCent = map[string]float64{}, map[string]float64{}
	f := func(v float64) *float64 { return &v }
	// Chatbox over each peer: the baseline (Ratios) and Centrifugo.
	for peer, m := range map[string]map[string]float64{"baseline": r.Ratios, "centrifugo": r.RatiosCent} {
		ratio := func(name string, a, b *float64) {
			if a != nil && b != nil && *b != 0 {
				m[name] = round(*a / *b, 2)
			}
		}
		if c, b, ok := pairWith(r.Idle, peer); ok {
			ratio("idle_rss_per_conn", c.RSSPerConnKiB, b.RSSPerConnKiB)
			ratio("idle_heap_per_conn", c.HeapPerConnKiB, b.HeapPerConnKiB)
			ratio("idle_stack_per_conn", c.StackPerConnKiB, b.StackPerConnKiB)
			ratio("idle_goroutines_per_conn", c.GoroutinesPerConn, b.GoroutinesPerConn)
		}
		if c, b, ok := pairWith(r.Fanout, peer); ok {
			ratio("fanout_frames_per_sec", f(c.FramesPerSec), f(b.FramesPerSec))
			ratio("fanout_tokens_per_sec", f(c.TokensPerSec), f(b.TokensPerSec))
			ratio("fanout_lag_p50", f(c.Lag.P50), f(b.Lag.P50))
			ratio("fanout_lag_p99", f(c.Lag.P99), f(b.Lag.P99))
			ratio("fanout_cpu_per_frame", c.CPUPerFrameUS, b.CPUPerFrameUS)
		}
		if c, b, ok := pairWith(r.Churn, peer); ok {
			ratio("churn_connects_per_sec", f(c.CyclesPerSec), f(b.CyclesPerSec))
		}
	}
	if len(r.Ratios) == 0 {
		r.Ratios = nil
	}
	if len(r.RatiosCent) == 0 {
		r.RatiosCent = nil
	}

	met := func(ok bool) *bool { return &ok }
	if c, ok := pick(r.Idle, "chatbox"); ok {
		ch := Check{Name: "idle memory", Goal: "≤ 8 KiB server memory per idle connection at 15,000 connections"}
		if c.RSSPerConnKiB != nil {
			ch.Measured = fmt.Sprintf("%.1f KiB RSS/conn at %d conns", *c.RSSPerConnKiB, c.Connected)
			if c.HeapPerConnKiB != nil {
				ch.Measured += fmt.Sprintf(" (Go heap %.1f KiB/conn)", *c.HeapPerConnKiB)
			}
			ch.Met = met(*c.RSSPerConnKiB <= 8)
			if c.Connected < 15000 {
				ch.Note = "measured below the target's 15,000 connections"
			}
		} else {
			ch.Measured = "no RSS (server process unknown)"
		}
		r.Targets = append(r.Targets, ch)
		if p, ok := pick(r.Idle, "centrifugo"); ok && c.RSSPerConnKiB != nil && p.RSSPerConnKiB != nil && *p.RSSPerConnKiB > 0 {
			r.Targets = append(r.Targets, Check{Name: "idle memory vs Centrifugo", Goal: "≤ 0.15× Centrifugo's RSS per idle connection, same clients, same run",
				Measured: fmt.Sprintf("%.3f× (%.2f vs %.2f KiB)", *c.RSSPerConnKiB / *p.RSSPerConnKiB, *c.RSSPerConnKiB, *p.RSSPerConnKiB),
				Met:      met(*c.RSSPerConnKiB <= 0.15**p.RSSPerConnKiB)})
		}
	}
	if c, p, ok := pairWith(r.Fanout, "centrifugo"); ok && p.Lag.Count > 0 {
		r.Targets = append(r.Targets, Check{Name: "fan-out vs Centrifugo", Goal: "tokens/s ≥ and lag p99 ≤ Centrifugo's, same clients, same run",
			Measured: fmt.Sprintf("tokens/s %.2f× (%.0f vs %.0f), lag p99 %.1f vs %.1f ms", c.TokensPerSec/max(p.TokensPerSec, 1), c.TokensPerSec, p.TokensPerSec, c.Lag.P99, p.Lag.P99),
			Met:      met(c.Lag.Count > 0 && c.TokensPerSec >= p.TokensPerSec && c.Lag.P99 <= p.Lag.P99)})
	}
	if c, ok := pick(r.Fanout, "chatbox"); ok {
		scale := ""
		if c.Streams < 1000 {
			scale = fmt.Sprintf("measured at %d streams, the target is stated at 1,000", c.Streams)
		}
		r.Targets = append(r.Targets,
			Check{Name: "fan-out rate", Goal: "≥ 100,000 delta frames/s at 1,000 concurrent streams",
				Measured: fmt.Sprintf("%.0f frames/s at %d streams (offered %.0f/s)", c.FramesPerSec, c.Streams, c.OfferedFramesSec),
				Met:      met(c.FramesPerSec >= 100000), Note: scale},
			Check{Name: "fan-out lag", Goal: "p99 lag < 50 ms at 1,000 concurrent streams",
				Measured: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms", c.Lag.P50, c.Lag.P99, c.Lag.P999),
				Met:      met(c.Lag.Count > 0 && c.Lag.P99 < 50), Note: scale})
		if _, b, ok := pair(r.Fanout); ok && b.FramesPerSec > 0 {
			r.Targets = append(r.Targets, Check{Name: "fan-out vs baseline", Goal: "≥ 50% of the baseline's frame rate",
				Measured: fmt.Sprintf("%.0f%% (%.0f vs %.0f frames/s)", 100*c.FramesPerSec/b.FramesPerSec, c.FramesPerSec, b.FramesPerSec),
				Met:      met(c.FramesPerSec >= b.FramesPerSec/2), Note: scale})
		}
		ch := Check{Name: "allocations per frame", Goal: "0 allocations per delivered delta frame in steady state (where the design allows)"}
		if c.AllocsPerFrame != nil {
			ch.Measured = fmt.Sprintf("%.2f server allocations per delivered frame, %.1f per generated token (whole process)", *c.AllocsPerFrame, *c.AllocsPerToken)
			ch.Met = met(*c.AllocsPerFrame < 0.5)
		} else {
			ch.Measured = "not measurable: no allocation counter from the server"
		}
		r.Targets = append(r.Targets, ch)
	}
	if t := r.TTFT; t != nil {
		ch := Check{Name: "time to first token", Goal: "added p99 < 1 ms at 500 req/s",
			Measured: fmt.Sprintf("added p50 %.3f ms, p99 %.3f ms at %.0f req/s", t.AddedP50MS, t.AddedP99MS, t.Rate)}
		switch {
		case t.Chatbox.Count == 0:
		case t.AddedP99MS < 0:
			// The direct run's tail was slower than Chatbox's own: the
			// difference is noise, not a figure to judge.
			ch.Note = "the direct run's p99 exceeded Chatbox's: too noisy to judge; run again"
		default:
			ch.Met = met(t.AddedP99MS < 1)
		}
		if t.Rate < 500 {
			ch.Note = "measured below the target's 500 req/s"
		}
		r.Targets = append(r.Targets, ch)
	}
}

// named is a per-target result.
type named interface{ targetName() string }

func (r idleResult) targetName() string   { return r.Target }
func (r fanoutResult) targetName() string { return r.Target }
func (r churnResult) targetName() string  { return r.Target }

// pick returns the result measured on the target called name.
func pick[T named](rs []T, name string) (T, bool) {
	for _, r := range rs {
		if r.targetName() == name {
			return r, true
		}
	}
	var zero T
	return zero, false
}

// pair returns the Chatbox and the baseline result of a scenario.
func pair[T named](rs []T) (c, b T, ok bool) { return pairWith(rs, "baseline") }

// pairWith returns the Chatbox result of a scenario and that of peer.
func pairWith[T named](rs []T, peer string) (c, p T, ok bool) {
	c, okc := pick(rs, "chatbox")
	p, okp := pick(rs, peer)
	return c, p, okc && okp
}

// peerOrder is the order of the columns of a report table.
var peerOrder = []string{"chatbox", "baseline", "centrifugo"}

// mdTable writes a table with one column per target measured (Chatbox,
// baseline, Centrifugo) and a ratio column for Chatbox over each peer.
type mdTable struct {
	sb     *strings.Builder
	names  []string
	peers  []string
	ratios []map[string]float64 // per peer column: Chatbox over that peer
}

func newMDTable[T named](sb *strings.Builder, r *Report, title string, rs []T) *mdTable {
	t := &mdTable{sb: sb}
	for _, n := range peerOrder {
		if _, ok := pick(rs, n); ok {
			t.names = append(t.names, n)
		}
	}
	_, hasC := pick(rs, "chatbox")
	for _, p := range []struct {
		name string
		m    map[string]float64
	}{{"baseline", r.Ratios}, {"centrifugo", r.RatiosCent}} {
		if _, ok := pick(rs, p.name); ok && hasC {
			t.peers, t.ratios = append(t.peers, p.name), append(t.ratios, p.m)
		}
	}
	fmt.Fprintf(sb, "### %s\n\n| figure |", title)
	for _, n := range t.names {
		fmt.Fprintf(sb, " %s |", n)
	}
	for _, p := range t.peers {
		fmt.Fprintf(sb, " chatbox / %s |", p)
	}
	sb.WriteString("\n|---|" + strings.Repeat("---:|", len(t.names)+len(t.peers)) + "\n")
	return t
}

// row writes one figure: value(name) for each target, then the ratios
// stored under ratio (no ratio when it is ""), each followed by suffix.
func (t *mdTable) row(label string, value func(name string) string, ratio, suffix string) {
	fmt.Fprintf(t.sb, "| %s |", label)
	for _, n := range t.names {
		fmt.Fprintf(t.sb, " %s |", value(n))
	}
	for _, m := range t.ratios {
		cell := ""
		if v, ok := m[ratio]; ok && ratio != "" {
			cell = fmt.Sprintf("%.2f×%s", v, suffix)
		}
		fmt.Fprintf(t.sb, " %s |", cell)
	}
	t.sb.WriteString("\n")
}

func gitRev(root string) string {
	if root == "" {
		var err error
		if root, err = moduleRoot(); err != nil {
			return "unknown"
		}
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		rev += "+dirty"
	}
	return rev
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

// writeReport writes the JSON result and returns its path.
func writeReport(cfg *config, r *Report) (string, error) {
	path := cfg.Out
	if path == "" {
		dir := "bench-results"
		if root, err := moduleRoot(); err == nil {
			dir = filepath.Join(root, "bench", "results")
		}
		path = filepath.Join(dir, fmt.Sprintf("%s-%s.json", cfg.Scenario, time.Now().Format("20060102-150405")))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if r.Soak != nil && len(r.Soak.Samples) > 0 {
		// The plot beside the result, named in it.
		plot := strings.TrimSuffix(path, ".json") + ".png"
		if err := writeSoakPlot(plot, r.Soak); err != nil {
			return "", fmt.Errorf("soak plot: %w", err)
		}
		r.Soak.Plot = filepath.Base(plot)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append(b, '\n'), 0o644)
}

// markdown renders the short human summary.
func markdown(r *Report) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "## bench %s — %s, rev %s, %d CPUs\n\n", r.Scenario, r.Date, r.GitRev, r.Host.CPUs)
	if r.Chatbox != nil {
		fmt.Fprintf(&sb, "Chatbox metrics: %s\n\n", r.Chatbox.Metrics)
		if r.Chatbox.Store != "" {
			fmt.Fprintf(&sb, "Chatbox store: %s\n\n", r.Chatbox.Store)
		}
	}
	row := func(name string, c, b string, ratio string) {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", name, c, b, ratio)
	}
	head := func(title string) {
		fmt.Fprintf(&sb, "### %s\n\n| figure | chatbox | baseline | chatbox / baseline |\n|---|---:|---:|---:|\n", title)
	}
	fp := func(v *float64, unit string) string {
		if v == nil {
			return "n/a"
		}
		return fmt.Sprintf("%.2f%s", *v, unit)
	}
	rt := func(name string) string {
		if v, ok := r.Ratios[name]; ok {
			return fmt.Sprintf("%.2f×", v)
		}
		return ""
	}
	if len(r.Idle) > 0 {
		get := func(n string) idleResult { v, _ := pick(r.Idle, n); return v }
		first := r.Idle[0]
		title := fmt.Sprintf("idle — %d connections", first.Conns)
		if first.Devices > 1 {
			title += fmt.Sprintf(" (%d users × %d devices)", first.Users, first.Devices)
		}
		t := newMDTable(&sb, r, title, r.Idle)
		t.row("connected / failed", func(n string) string { v := get(n); return fmt.Sprintf("%d / %d", v.Connected, v.Failed) }, "", "")
		t.row("connects/s", func(n string) string { return fmt.Sprintf("%.0f", get(n).ConnectsPerSec) }, "", "")
		t.row("RSS per connection", func(n string) string { return fp(get(n).RSSPerConnKiB, " KiB") }, "idle_rss_per_conn", "")
		t.row("Go heap per connection", func(n string) string { return fp(get(n).HeapPerConnKiB, " KiB") }, "idle_heap_per_conn", "")
		t.row("goroutine stack per connection", func(n string) string { return fp(get(n).StackPerConnKiB, " KiB") }, "idle_stack_per_conn", "")
		t.row("goroutines per connection", func(n string) string { return fp(get(n).GoroutinesPerConn, "") }, "idle_goroutines_per_conn", "")
		t.row("RSS held (MiB)", func(n string) string { return fp(get(n).Connected_.RSSMiB, "") }, "", "")
		t.row("goroutines after close (before)", func(n string) string {
			v := get(n)
			return fmt.Sprintf("%s (%s)", fp(v.AfterClose.Goroutines, ""), fp(v.Before.Goroutines, ""))
		}, "", "")
		sb.WriteString("\n")
	}
	if len(r.Fanout) > 0 {
		get := func(n string) fanoutResult { v, _ := pick(r.Fanout, n); return v }
		c := r.Fanout[0]
		_, withCent := pick(r.Fanout, "centrifugo")
		t := newMDTable(&sb, r, fmt.Sprintf("fanout — %d users × %d devices = %d streams, token every %.0f ms, %.0f s window", c.Users, c.Devices, c.Streams, c.TokenDelayMS, c.WindowSeconds), r.Fanout)
		label := "delta frames/s (offered)"
		if withCent {
			label = "delta frames/s (offered); centrifugo: publications/s"
		}
		t.row(label, func(n string) string {
			v := get(n)
			if n == "chatbox" {
				return fmt.Sprintf("%.0f (%.0f)", v.FramesPerSec, v.OfferedFramesSec)
			}
			return fmt.Sprintf("%.0f", v.FramesPerSec)
		}, "fanout_frames_per_sec", "")
		if withCent {
			t.row("WebSocket frames/s", func(n string) string {
				v := get(n)
				if v.WSFramesPerSec != nil {
					return fmt.Sprintf("%.0f", *v.WSFramesPerSec)
				}
				return fmt.Sprintf("%.0f", v.FramesPerSec) // one delta per frame
			}, "", "")
		}
		t.row("tokens/s delivered", func(n string) string { return fmt.Sprintf("%.0f", get(n).TokensPerSec) }, "fanout_tokens_per_sec", "")
		t.row("lag p50 / p99 / p99.9 (ms)", func(n string) string {
			v := get(n)
			return fmt.Sprintf("%.2f / %.2f / %.2f", v.Lag.P50, v.Lag.P99, v.Lag.P999)
		}, "fanout_lag_p99", " (p99)")
		t.row("coalescing (tokens/frame)", func(n string) string { return fmt.Sprintf("%.3f", get(n).Coalescing) }, "", "")
		t.row("server CPU %", func(n string) string { return fp(get(n).ServerCPUPercent, "") }, "", "")
		t.row("server CPU per frame", func(n string) string { return fp(get(n).CPUPerFrameUS, " µs") }, "fanout_cpu_per_frame", "")
		t.row("server allocations per frame", func(n string) string { return fp(get(n).AllocsPerFrame, "") }, "", "")
		t.row("harness CPU %: clients / fake provider", func(n string) string { v := get(n); return fmt.Sprintf("%.1f / %.1f", v.CPU.Harness, v.CPU.Fake) }, "", "")
		if c.CPU.Store > 0 {
			t.row("store stand-in CPU %", func(n string) string { return fmt.Sprintf("%.1f", get(n).CPU.Store) }, "", "")
		}
		if withCent {
			t.row("publisher CPU % (centrifugo's backend)", func(n string) string { return fmt.Sprintf("%.1f", get(n).CPU.Pub) }, "", "")
		}
		t.row("other processes' CPU % (shared machine)", func(n string) string { return fmt.Sprintf("%.1f", get(n).CPU.Others) }, "", "")
		t.row("replies / offset gaps / errors", func(n string) string {
			v := get(n)
			return fmt.Sprintf("%d / %d / %v", v.Replies, v.Gaps, v.ErrorEvents)
		}, "", "")
		if withCent {
			t.row("unexpected disconnects", func(n string) string { return fmt.Sprint(get(n).Disconnects) }, "", "")
		}
		sb.WriteString("\n")
	}
	if t := r.TTFT; t != nil {
		fmt.Fprintf(&sb, "### ttft — %d requests at %.0f/s (achieved %.0f/s), %d connections\n\n| figure | p50 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|\n", t.Requests, t.Rate, t.AchievedRate, t.Users)
		fmt.Fprintf(&sb, "| direct to the fake provider (%d errors) | %.3f | %.3f | %.3f |\n", t.DirectErrors, t.Direct.P50, t.Direct.P99, t.Direct.P999)
		fmt.Fprintf(&sb, "| through Chatbox, send → first delta (%d errors) | %.3f | %.3f | %.3f |\n", t.ChatboxErrors, t.Chatbox.P50, t.Chatbox.P99, t.Chatbox.P999)
		fmt.Fprintf(&sb, "| added by Chatbox | %.3f | %.3f | |\n", t.AddedP50MS, t.AddedP99MS)
		fmt.Fprintf(&sb, "| Chatbox send → ack (user message stored) | %.3f | %.3f | %.3f |\n\n", t.Ack.P50, t.Ack.P99, t.Ack.P999)
		fmt.Fprintf(&sb, "CPU during the Chatbox phase (%% of a core): server %.1f, store stand-in %.1f, harness clients %.1f, fake provider %.1f, other processes %.1f.\n\n", t.CPU.Server, t.CPU.Store, t.CPU.Harness, t.CPU.Fake, t.CPU.Others)
	}
	if b := r.Burst; b != nil {
		fmt.Fprintf(&sb, "### burst — %d users send at once (%d connected), %d-token replies, then a second message each\n\n| figure | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|\n", b.Users, b.Connected, b.TokensPerReply)
		fmt.Fprintf(&sb, "| first send → ack | %.1f | %.1f | %.1f |\n", b.FirstAck.P50, b.FirstAck.P99, b.FirstAck.Max)
		fmt.Fprintf(&sb, "| first send → final message | %.1f | %.1f | %.1f |\n", b.FirstReply.P50, b.FirstReply.P99, b.FirstReply.Max)
		fmt.Fprintf(&sb, "| second send → ack | %.1f | %.1f | %.1f |\n\n", b.SecondAck.P50, b.SecondAck.P99, b.SecondAck.Max)
		fmt.Fprintf(&sb, "%d of %d exchanges completed in %.1f s; error events: %v; store commits %s, writes per commit %s; server CPU %s%%.\n\n",
			b.Completed, b.Connected, b.Seconds, b.ErrorEvents, fp(b.Commits, ""), fp(b.WritesPerCommit, ""), fp(b.ServerCPUPercent, ""))
	}
	if s := r.Soak; s != nil {
		fmt.Fprintf(&sb, "### soak — %d connections (%d connected), %.0f sends/s, %d-token replies, %.0f s, a sample every %.1f s\n\n", s.Conns, s.Connected, s.Rate, s.TokensPerReply, s.Seconds, s.IntervalSeconds)
		sb.WriteString("| figure | second-quarter mean | last-quarter mean | change | tolerance | flat |\n|---|---:|---:|---:|---:|---|\n")
		for _, v := range s.Verdicts {
			tol := fmt.Sprintf("%.0f %%", v.Tolerance)
			if v.Slack > 0 {
				tol += fmt.Sprintf(" or %g", v.Slack)
			}
			fmt.Fprintf(&sb, "| %s | %.2f | %.2f | %+.1f %% | %s | %s |\n", v.Figure, v.SecondQuarter, v.LastQuarter, v.ChangePercent, tol, map[bool]string{true: "yes", false: "**no**"}[v.Flat])
		}
		fmt.Fprintf(&sb, "\n%d sends, %d acked, %d replies completed; lag p50 / p99 / p99.9 %.2f / %.2f / %.2f ms; error events %v, unexpected disconnects %d, offset gaps %d; server CPU %.1f %%, other processes %.1f %%. Plot: %s.\n\n",
			s.Sends, s.Acks, s.Replies, s.Lag.P50, s.Lag.P99, s.Lag.P999, s.ErrorEvents, s.Disconnects, s.Gaps, s.CPU.Server, s.CPU.Others, s.Plot)
	}
	if len(r.Churn) > 0 {
		c, _ := pick(r.Churn, "chatbox")
		b, _ := pick(r.Churn, "baseline")
		c.Parallel, c.Seconds = max(c.Parallel, b.Parallel), max(c.Seconds, b.Seconds)
		head(fmt.Sprintf("churn — %d parallel loops, %.0f s", c.Parallel, c.Seconds))
		row("connect+hello+close per second", fmt.Sprintf("%.0f", c.CyclesPerSec), fmt.Sprintf("%.0f", b.CyclesPerSec), rt("churn_connects_per_sec"))
		row("connect → hello p50 / p99 (ms)", fmt.Sprintf("%.2f / %.2f", c.ConnectToHelo.P50, c.ConnectToHelo.P99), fmt.Sprintf("%.2f / %.2f", b.ConnectToHelo.P50, b.ConnectToHelo.P99), "")
		row("failures", fmt.Sprint(c.Failures), fmt.Sprint(b.Failures), "")
		row("server CPU %", fp(c.ServerCPU, ""), fp(b.ServerCPU, ""), "")
		row("other processes' CPU %", fmt.Sprintf("%.1f", c.CPU.Others), fmt.Sprintf("%.1f", b.CPU.Others), "")
		row("goroutines before → after", fmt.Sprintf("%s → %s", fp(c.Before.Goroutines, ""), fp(c.After.Goroutines, "")), fmt.Sprintf("%s → %s", fp(b.Before.Goroutines, ""), fp(b.After.Goroutines, "")), "")
		row("RSS before → after (MiB)", fmt.Sprintf("%s → %s", fp(c.Before.RSSMiB, ""), fp(c.After.RSSMiB, "")), fmt.Sprintf("%s → %s", fp(b.Before.RSSMiB, ""), fp(b.After.RSSMiB, "")), "")
		sb.WriteString("\n")
	}
	if len(r.Targets) > 0 {
		sb.WriteString("### targets\n\n| target | goal | measured | met |\n|---|---|---|---|\n")
		for _, t := range r.Targets {
			m := "n/a"
			if t.Met != nil {
				m = map[bool]string{true: "**met**", false: "**missed**"}[*t.Met]
			}
			if t.Note != "" {
				m += " (" + t.Note + ")"
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", t.Name, t.Goal, t.Measured, m)
		}
		sb.WriteString("\n")
	}
	if f := r.Failover; f != nil {
		fmt.Fprintf(&sb, "### Failover (%d nodes, %d kills, %d missed)\n\n", f.Nodes, f.Kills, f.Missed)
		fmt.Fprintf(&sb, "| figure | p50 | p99 | max |\n|---|---:|---:|---:|\n| kill -9 of the user's node → next send acked | %.0f ms | %.0f ms | %.0f ms |\n\n",
			f.KillToAck.P50, f.KillToAck.P99, f.KillToAck.Max)
		fmt.Fprintf(&sb, "Samples (ms): %v; sends tried: %d; devices split over two activations before a kill (then connected again): %d\n\n", f.SamplesMS, f.Attempts, f.Split)
	}
	if c := r.Crossnode; c != nil {
		fmt.Fprintf(&sb, "### Cross-node delivery (%d nodes; %d users × %d devices, %d tokens %.0f ms apart)\n\n", c.Nodes, c.Cross.Users, c.Cross.Devices, c.Cross.TokensPerReply, c.Cross.TokenDelayMS)
		sb.WriteString("| devices | delta frames/s | tokens/s | lag p50 | lag p99 | offset gaps | errors | disconnects |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, f := range []fanoutResult{c.Cross, c.Local} {
			errs := 0
			for _, v := range f.ErrorEvents {
				errs += v
			}
			fmt.Fprintf(&sb, "| %s (%d connected) | %.0f | %.0f | %.2f ms | %.2f ms | %d | %d | %d |\n", f.Target, f.Connected, f.FramesPerSec, f.TokensPerSec, f.Lag.P50, f.Lag.P99, f.Gaps, errs, f.Disconnects)
		}
		sb.WriteString("\n")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&sb, "- %s\n", n)
	}
	return sb.String()
}
