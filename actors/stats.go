package actors

import (
	"slices"
	"sync"
	"time"
)

// LiveStats are the figures only the running actors know.
type LiveStats struct {
	Connections int64 `json:"connections"`
	Users       int64 `json:"users"`    // user actors alive: users connected or with a session active
	Sessions    int64 `json:"sessions"` // session actors alive
	Replies     int64 `json:"replies"`  // generations in flight
	// Recent time to first token and whole-reply duration, over the last
	// replies this node served.
	TTFTP50  time.Duration `json:"-"`
	TTFTP99  time.Duration `json:"-"`
	ReplyP50 time.Duration `json:"-"`
	ReplyP99 time.Duration `json:"-"`
}

// Stats reads the live figures; safe from any goroutine.
func (h *Hub) Stats() LiveStats {
	s := LiveStats{
		Connections: h.metrics.liveConns.Load(),
		Users:       h.metrics.users.Load(),
		Sessions:    h.metrics.sessions.Load(),
		Replies:     h.metrics.replies.Load(),
	}
	s.TTFTP50, s.TTFTP99 = h.ttftWindow.quantiles()
	s.ReplyP50, s.ReplyP99 = h.replyWindow.quantiles()
	return s
}

// window keeps the last durations recorded, for quantiles on demand.
type window struct {
	mu   sync.Mutex // guards buf and next
	buf  []time.Duration
	next int
}

const windowSize = 1024

func (w *window) add(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) < windowSize {
		w.buf = append(w.buf, d)
		return
	}
	w.buf[w.next] = d
	w.next = (w.next + 1) % windowSize
}

// quantiles returns the median and the 99th percentile (zero when empty).
func (w *window) quantiles() (p50, p99 time.Duration) {
	w.mu.Lock()
	s := slices.Clone(w.buf)
	w.mu.Unlock()
	if len(s) == 0 {
		return 0, 0
	}
	slices.Sort(s)
	return s[len(s)/2], s[(len(s)*99)/100]
}
