package main

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// burst is the thundering herd: U users, one connection each, all send
// their first message at the same instant; each sends a second message in
// the same session the moment its reply has ended. It measures what a
// store has to absorb when many writes arrive together (send → ack of both
// rounds), and counts every error event: there must be none.

type burstOptions struct {
	Users      int
	Tokens     int // tokens per reply
	TokenDelay time.Duration
	Parallel   int
}

type burstResult struct {
	Users           int            `json:"users"`
	Connected       int            `json:"connected"`
	ConnectFailures int            `json:"connect_failures"`
	TokensPerReply  int            `json:"tokens_per_reply"`
	TokenDelayMS    float64        `json:"token_delay_ms"`
	FirstAck        Summary        `json:"first_send_to_ack"`
	SecondAck       Summary        `json:"second_send_to_ack"`
	FirstReply      Summary        `json:"first_send_to_final_message"`
	Completed       int            `json:"exchanges_completed"`
	ErrorEvents     map[string]int `json:"error_events,omitempty"`
	FirstErrors     []string       `json:"first_errors,omitempty"`
	Seconds         float64        `json:"seconds"`
	// Group commits of the embedded store during the run, from the
	// server's chatbox_store_batch_writes histogram (absent on MongoDB).
	Commits          *float64 `json:"store_commits,omitempty"`
	WritesPerCommit  *float64 `json:"store_writes_per_commit,omitempty"`
	ServerCPUPercent *float64 `json:"server_cpu_percent,omitempty"`
	CPU              cpuShare `json:"cpu"`
}

// burstConn is one user of the burst and what its reader saw.
type burstConn struct {
	c *wsClient

	sent    [2]time.Time
	acked   [2]time.Duration
	replied time.Duration
	session []byte
	errs    map[string]int
	done    bool
}

func runBurst(ctx context.Context, e *env, t *target, o burstOptions) burstResult {
	r := burstResult{Users: o.Users, TokensPerReply: o.Tokens, TokenDelayMS: float64(o.TokenDelay) / 1e6, ErrorEvents: map[string]int{}}
	e.fake.Set(stampedReply(o.Tokens), o.TokenDelay)
	clients, errs := connectUsers(ctx, t, o.Users, o.Parallel, fmt.Sprintf("burst-%s-", e.runID), false, 0, 1)
	r.Connected, r.ConnectFailures, r.FirstErrors = len(clients), errs.n, errs.first
	e.logf("burst: %d/%d users connected", r.Connected, o.Users)
	if len(clients) == 0 || ctx.Err() != nil {
		return r
	}

	before := scrape(t.MetricsURL)
	meter := startCPU(t.PID)
	start := time.Now()
	release := make(chan struct{})
	conns := make([]*burstConn, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		bc := &burstConn{c: c, errs: map[string]int{}}
		conns[i] = bc
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
			bc.sent[0] = time.Now()
			if err := c.WriteText([]byte(`{"type":"send","id":"b0","text":"go"}`)); err != nil {
				bc.errs["write"]++
				return
			}
			bc.read(ctx)
		}()
	}
	close(release)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2*time.Minute + time.Duration(o.Tokens)*o.TokenDelay*2):
		r.FirstErrors = append(r.FirstErrors, "some exchanges had not ended after the time limit")
	case <-ctx.Done():
	}
	for _, c := range clients {
		c.conn.Close()
	}
	<-waited
	r.Seconds = round(time.Since(start).Seconds(), 2)
	r.CPU = meter.stop()
	if t.PID > 0 {
		r.ServerCPUPercent = ptr(r.CPU.Server)
	}
	after := scrape(t.MetricsURL)
	if n := after["chatbox_store_batch_writes_count"] - before["chatbox_store_batch_writes_count"]; n > 0 {
		r.Commits = ptr(n)
		r.WritesPerCommit = ptr(round((after["chatbox_store_batch_writes_sum"]-before["chatbox_store_batch_writes_sum"])/n, 2))
	}

	var ack0, ack1, reply []time.Duration
	for _, bc := range conns {
		for code, n := range bc.errs {
			r.ErrorEvents[code] += n
		}
		if bc.acked[0] > 0 {
			ack0 = append(ack0, bc.acked[0])
		}
		if bc.replied > 0 {
			reply = append(reply, bc.replied)
		}
		if bc.acked[1] > 0 {
			ack1 = append(ack1, bc.acked[1])
		}
		if bc.done {
			r.Completed++
		}
	}
	r.FirstAck, r.SecondAck, r.FirstReply = SummarizeDurations(ack0), SummarizeDurations(ack1), SummarizeDurations(reply)
	e.logf("burst: %d/%d exchanges, ack p99 %.1f / %.1f ms, errors %v", r.Completed, r.Connected, r.FirstAck.P99, r.SecondAck.P99, r.ErrorEvents)
	return r
}

// read follows the two exchanges of one user: the ack and the final
// message of the first, then the second send, its ack and its final
// message. Any error event ends the user's run.
func (bc *burstConn) read(ctx context.Context) {
	buf := make([]byte, 0, 16<<10)
	round := 0
	for ctx.Err() == nil {
		f, err := bc.c.ReadMessage(buf)
		if err != nil {
			return
		}
		buf = f[:0]
		now := time.Now()
		switch readType(f) {
		case "ack":
			bc.acked[round] = now.Sub(bc.sent[round])
			bc.session = append(bc.session[:0], jsonField(f, "session_id")...)
		case "error":
			bc.errs[string(jsonField(f, "code"))]++
			return
		case "message":
			if string(jsonField(f, "role")) != "assistant" {
				continue
			}
			if round == 1 {
				bc.done = true
				return
			}
			bc.replied = now.Sub(bc.sent[0])
			round = 1
			bc.sent[1] = time.Now()
			msg := fmt.Appendf(nil, `{"type":"send","id":"b1","session_id":%q,"text":"again"}`, bc.session)
			if err := bc.c.WriteText(msg); err != nil {
				bc.errs["write"]++
				return
			}
		}
	}
}
