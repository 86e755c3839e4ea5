package actors

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Limits protect the service from one user's excess; zero turns one off.
// They hold across all of a user's devices and sessions on this node.
type Limits struct {
	MaxConnections     int   // all users together
	ConnectionsPerUser int   // open WebSockets per user
	MessagesPerMinute  int   // sends per user per minute, as a token bucket…
	MessageBurst       int   // …that holds this many
	RepliesInFlight    int   // generations at once per user
	DailyTokens        int64 // model tokens in+out per user per UTC day
}

var (
	// ErrServerFull: MaxConnections reached; the transport answers 503.
	ErrServerFull = errors.New("server is at its connection limit")
	// ErrTooManyConnections: the user's ConnectionsPerUser reached; 429.
	ErrTooManyConnections = errors.New("too many connections for this user")
)

// userState is what the limits track for one user. The counters are
// atomics because connections are admitted by transport goroutines and
// replies counted by session actors; mu guards the rest.
type userState struct {
	conns   atomic.Int32
	replies atomic.Int32

	mu       sync.Mutex
	tokens   float64   // message bucket level
	refilled time.Time // when tokens was last brought up to date
	day      string    // UTC date of used
	used     int64     // model tokens used on day
}

func (h *Hub) user(id string) *userState {
	if u, ok := h.users.Load(id); ok {
		return u.(*userState)
	}
	u, _ := h.users.LoadOrStore(id, &userState{tokens: float64(h.cfg.Limits.MessageBurst), refilled: h.now()})
	return u.(*userState)
}

// Ticket is a connection admitted under the limits, before its upgrade.
// Connect takes it over; if the connection never attaches, Release it.
type Ticket struct {
	hub      *Hub
	user     *userState
	released atomic.Bool
}

// Admit reserves a connection for userID, or says which limit refuses it.
func (h *Hub) Admit(userID string) (*Ticket, error) {
	l := h.cfg.Limits
	if n := h.metrics.liveConns.Add(1); l.MaxConnections > 0 && n > int64(l.MaxConnections) {
		h.metrics.liveConns.Add(-1)
		return nil, ErrServerFull
	}
	u := h.user(userID)
	if n := u.conns.Add(1); l.ConnectionsPerUser > 0 && n > int32(l.ConnectionsPerUser) {
		u.conns.Add(-1)
		h.metrics.liveConns.Add(-1)
		return nil, ErrTooManyConnections
	}
	return &Ticket{hub: h, user: u}, nil
}

// Release gives the reservation back; idempotent.
func (t *Ticket) Release() {
	if t.released.Swap(true) {
		return
	}
	t.user.conns.Add(-1)
	t.hub.metrics.liveConns.Add(-1)
}

// allowMessage takes one send from the user's bucket, or says how long
// until one is available.
func (h *Hub) allowMessage(userID string) (time.Duration, bool) {
	l := h.cfg.Limits
	if l.MessagesPerMinute <= 0 {
		return 0, true
	}
	u := h.user(userID)
	u.mu.Lock()
	defer u.mu.Unlock()
	now := h.now()
	perSecond := float64(l.MessagesPerMinute) / 60
	u.tokens = min(float64(max(l.MessageBurst, 1)), u.tokens+now.Sub(u.refilled).Seconds()*perSecond)
	u.refilled = now
	if u.tokens >= 1 {
		u.tokens--
		return 0, true
	}
	return time.Duration((1 - u.tokens) / perSecond * float64(time.Second)), false
}

// acquireReply counts a generation for the user if under the limit.
func (h *Hub) acquireReply(userID string) bool {
	u := h.user(userID)
	if n := u.replies.Add(1); h.cfg.Limits.RepliesInFlight > 0 && n > int32(h.cfg.Limits.RepliesInFlight) {
		u.replies.Add(-1)
		return false
	}
	return true
}

func (h *Hub) releaseReply(userID string) { h.user(userID).replies.Add(-1) }

// quotaLeft reports whether the user may start a generation today.
func (h *Hub) quotaLeft(userID string) bool {
	if h.cfg.Limits.DailyTokens <= 0 {
		return true
	}
	u := h.user(userID)
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.day != h.now().Format(time.DateOnly) || u.used < h.cfg.Limits.DailyTokens
}

// spendTokens adds a reply's tokens to the user's day.
func (h *Hub) spendTokens(userID string, n int64) {
	if h.cfg.Limits.DailyTokens <= 0 || n <= 0 {
		return
	}
	u := h.user(userID)
	u.mu.Lock()
	defer u.mu.Unlock()
	if today := h.now().Format(time.DateOnly); u.day != today {
		u.day, u.used = today, 0
	}
	u.used += n
}

// sweepUsers forgets users with nothing in flight and nothing to remember,
// so the map tracks active users, not everyone ever seen.
func (h *Hub) sweepUsers() {
	now := h.now()
	today := now.Format(time.DateOnly)
	burst := float64(h.cfg.Limits.MessageBurst)
	perSecond := float64(h.cfg.Limits.MessagesPerMinute) / 60
	h.users.Range(func(k, v any) bool {
		u := v.(*userState)
		u.mu.Lock()
		full := u.tokens+now.Sub(u.refilled).Seconds()*perSecond >= burst
		idle := u.conns.Load() == 0 && u.replies.Load() == 0 && full && (u.day != today || u.used == 0)
		u.mu.Unlock()
		if idle {
			h.users.CompareAndDelete(k, v)
		}
		return true
	})
}
