package actors

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/providers"
)

// hubMetrics are the hub's Prometheus series (docs/metrics.md) and the live
// counters that Stats reads; all are safe from any goroutine.
type hubMetrics struct {
	liveConns   *atomic.Int64
	users       *atomic.Int64 // user actors alive
	sessions    *atomic.Int64 // session actors alive
	replies     *atomic.Int64 // generations in flight
	takeovers   *metrics.Counter
	checkpoints *metrics.Counter
	reloads     *metrics.Counter // sessions reloaded after a fenced write lost to another writer
	connects    *metrics.Counter
	coalesced   *metrics.Counter
	slowCloses  *metrics.Counter
	rateLimited *metrics.Counter
	// auditFailures counts audit entries that could not be stored;
	// erasures counts users erased.
	auditFailures *metrics.Counter
	erasures      *metrics.Counter
	byRole        map[persistence.Role]*metrics.Counter
	// helpWait is the time from a help request to its takeover.
	helpWait *metrics.PrometheusHistogram
	set      *metrics.Set // per-model series are created on first use
}

func newHubMetrics(s *metrics.Set) hubMetrics {
	live, users, sessions, replies := new(atomic.Int64), new(atomic.Int64), new(atomic.Int64), new(atomic.Int64)
	s.NewGauge("chatbox_replies_in_flight", func() float64 { return float64(replies.Load()) })
	s.NewGauge("chatbox_connections", func() float64 { return float64(live.Load()) })
	s.NewGauge("chatbox_active_users", func() float64 { return float64(users.Load()) })
	s.NewGauge("chatbox_active_sessions", func() float64 { return float64(sessions.Load()) })
	m := hubMetrics{
		liveConns:     live,
		users:         users,
		sessions:      sessions,
		replies:       replies,
		takeovers:     s.NewCounter("chatbox_takeovers_total"),
		checkpoints:   s.NewCounter("chatbox_reply_checkpoints_total"),
		reloads:       s.NewCounter("chatbox_session_reloads_total"),
		connects:      s.NewCounter("chatbox_connects_total"),
		coalesced:     s.NewCounter("chatbox_deltas_coalesced_total"),
		slowCloses:    s.NewCounter("chatbox_slow_consumer_closes_total"),
		rateLimited:   s.NewCounter("chatbox_rate_limited_total"),
		auditFailures: s.NewCounter("chatbox_audit_write_failures_total"),
		erasures:      s.NewCounter("chatbox_user_erasures_total"),
		byRole:        map[persistence.Role]*metrics.Counter{},
		helpWait:      s.NewPrometheusHistogramExt("chatbox_help_wait_seconds", helpWaitBuckets),
		set:           s,
	}
	for _, r := range []persistence.Role{persistence.RoleUser, persistence.RoleAssistant, persistence.RoleAdmin, persistence.RoleSystem, persistence.RoleNote} {
		m.byRole[r] = s.NewCounter(fmt.Sprintf(`chatbox_messages_total{role=%q}`, r))
	}
	return m
}

// helpWaitBuckets are the upper bounds, in seconds, of the help wait
// histogram: from seconds to an hour, as people wait.
var helpWaitBuckets = []float64{5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}

func (m hubMetrics) messages(r persistence.Role) *metrics.Counter { return m.byRole[r] }

// firstToken records the time from a reply's start to its first text.
func (m hubMetrics) firstToken(model string, started time.Time) {
	m.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`chatbox_time_to_first_token_seconds{model=%q}`, model)).UpdateDuration(started)
}

// reply records a finished reply: its outcome, duration and tokens.
func (m hubMetrics) reply(model string, status persistence.Status, started time.Time, usage *providers.Usage) {
	m.set.GetOrCreateCounter(fmt.Sprintf(`chatbox_replies_total{model=%q,status=%q}`, model, status)).Inc()
	m.set.GetOrCreatePrometheusHistogram(fmt.Sprintf(`chatbox_reply_duration_seconds{model=%q}`, model)).UpdateDuration(started)
	if usage != nil {
		m.set.GetOrCreateCounter(fmt.Sprintf(`chatbox_tokens_total{model=%q,direction="in"}`, model)).AddInt64(usage.InputTokens)
		m.set.GetOrCreateCounter(fmt.Sprintf(`chatbox_tokens_total{model=%q,direction="out"}`, model)).AddInt64(usage.OutputTokens)
	}
}
