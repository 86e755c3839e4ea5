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

// userState is what the limits track for one user. Connections are
// admitted by transport goroutines and replies counted by session actors.
// The counters only go up under mu, on a state that is not swept (see
// withUser), and sweepUsers drops a state under mu, so no increment can
// land in a dropped state; they go down without the lock (a count above
// zero keeps the state from being swept).
type userState struct {
	conns   atomic.Int32
	replies atomic.Int32

	mu       sync.Mutex // guards the fields below, and the counters' increments
	swept    bool       // dropped from h.users: never changed again
	day      int32      // UTC day of used (dayOf); one state per user, so it is kept small
	tokens   float64    // message bucket level
	refilled int64      // when tokens was last brought up to date, unix nanos
	used     int64      // model tokens used on day
}

// dayOf numbers t's UTC day.
func dayOf(t time.Time) int32 { return int32(t.Unix() / (24 * 60 * 60)) }

// sinceRefill is how long ago tokens was brought up to date.
func (u *userState) sinceRefill(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, u.refilled))
}

func (h *Hub) user(id string) *userState {
	if u, ok := h.users.Load(id); ok {
		return u.(*userState)
	}
	u, _ := h.users.LoadOrStore(id, &userState{tokens: float64(h.cfg.Limits.MessageBurst), refilled: h.now().UnixNano()})
	return u.(*userState)
}

// withUser runs f on the user's current state with its mu held. A state
// the sweep dropped between the lookup and the lock is skipped for the one
// that replaced it, so what f records is seen by the next caller.
func (h *Hub) withUser(id string, f func(u *userState)) {
	for {
		u := h.user(id)
		u.mu.Lock()
		if !u.swept {
			f(u)
			u.mu.Unlock()
			return
		}
		u.mu.Unlock()
	}
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
	var admitted *userState
	h.withUser(userID, func(u *userState) {
		if n := u.conns.Add(1); l.ConnectionsPerUser > 0 && n > int32(l.ConnectionsPerUser) {
			u.conns.Add(-1)
			return
		}
		admitted = u
	})
	if admitted == nil {
		h.metrics.liveConns.Add(-1)
		return nil, ErrTooManyConnections
	}
	return &Ticket{hub: h, user: admitted}, nil
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
	var (
		wait time.Duration
		ok   bool
	)
	h.withUser(userID, func(u *userState) {
		now := h.now()
		perSecond := float64(l.MessagesPerMinute) / 60
		u.tokens = min(float64(max(l.MessageBurst, 1)), u.tokens+u.sinceRefill(now).Seconds()*perSecond)
		u.refilled = now.UnixNano()
		if u.tokens >= 1 {
			u.tokens--
			ok = true
			return
		}
		wait = time.Duration((1 - u.tokens) / perSecond * float64(time.Second))
	})
	return wait, ok
}

// acquireReply counts a generation for the user if under the limit.
func (h *Hub) acquireReply(userID string) bool {
	ok := true
	h.withUser(userID, func(u *userState) {
		if n := u.replies.Add(1); h.cfg.Limits.RepliesInFlight > 0 && n > int32(h.cfg.Limits.RepliesInFlight) {
			u.replies.Add(-1)
			ok = false
		}
	})
	return ok
}

// releaseReply undoes an acquireReply; the state it counted in cannot have
// been swept meanwhile (its count was above zero).
func (h *Hub) releaseReply(userID string) { h.user(userID).replies.Add(-1) }

// quotaLeft reports whether the user may start a generation today.
func (h *Hub) quotaLeft(userID string) bool {
	if h.cfg.Limits.DailyTokens <= 0 {
		return true
	}
	left := true
	h.withUser(userID, func(u *userState) {
		left = u.day != dayOf(h.now()) || u.used < h.cfg.Limits.DailyTokens
	})
	return left
}

// spendTokens adds a reply's tokens to the user's day.
func (h *Hub) spendTokens(userID string, n int64) {
	if h.cfg.Limits.DailyTokens <= 0 || n <= 0 {
		return
	}
	h.withUser(userID, func(u *userState) {
		if today := dayOf(h.now()); u.day != today {
			u.day, u.used = today, 0
		}
		u.used += n
	})
}

// sweepUsers forgets users with nothing in flight and nothing to remember,
// so the map tracks active users, not everyone ever seen. A state is
// marked swept and dropped under its mu, so a withUser that found it
// before the drop moves on to the new one.
func (h *Hub) sweepUsers() {
	now := h.now()
	today := dayOf(now)
	burst := float64(h.cfg.Limits.MessageBurst)
	perSecond := float64(h.cfg.Limits.MessagesPerMinute) / 60
	h.users.Range(func(k, v any) bool {
		u := v.(*userState)
		u.mu.Lock()
		full := u.tokens+u.sinceRefill(now).Seconds()*perSecond >= burst
		idle := u.conns.Load() == 0 && u.replies.Load() == 0 && full && (u.day != today || u.used == 0)
		if idle && h.users.CompareAndDelete(k, v) {
			u.swept = true
		}
		u.mu.Unlock()
		return true
	})
}
