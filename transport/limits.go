package transport

import (
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/chatbox/chatbox/protocol"
)

// maxTrackedAddrs bounds the addresses an addrLimiter remembers; past it,
// new addresses share one bucket until the next sweep, so a flood of
// addresses costs bounded memory and is limited as one.
const maxTrackedAddrs = 1 << 16

// addrLimiter is a token bucket per client address: perMinute requests a
// minute, as many at once. A bucket that is full again is forgotten (at
// most once a minute, in one sweep), so the map holds only the addresses
// seen in the last minute. A nil *addrLimiter allows everything.
type addrLimiter struct {
	perMinute int
	now       func() time.Time

	mu      sync.Mutex // guards buckets and swept
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func newAddrLimiter(perMinute int, now func() time.Time) *addrLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &addrLimiter{perMinute: perMinute, now: now, buckets: map[string]*bucket{}, swept: now()}
}

// allow takes one request from addr's bucket, or says how long until one
// is available.
func (l *addrLimiter) allow(addr string) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	capacity, perSecond := float64(l.perMinute), float64(l.perMinute)/60
	if now.Sub(l.swept) >= time.Minute {
		for a, b := range l.buckets {
			if b.tokens+now.Sub(b.at).Seconds()*perSecond >= capacity {
				delete(l.buckets, a)
			}
		}
		l.swept = now
	}
	b := l.buckets[addr]
	if b == nil {
		if len(l.buckets) >= maxTrackedAddrs {
			addr = "" // the overflow bucket
			b = l.buckets[addr]
		}
		if b == nil {
			b = &bucket{tokens: capacity, at: now}
			l.buckets[addr] = b
		}
	}
	b.tokens = min(capacity, b.tokens+now.Sub(b.at).Seconds()*perSecond)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / perSecond * float64(time.Second)), false
}

// clientAddr is the address a request is limited by: the peer's IP (an
// IPv6 peer by its /64, which one host usually holds whole). Behind a
// proxy that is the proxy's address; forwarded headers are not trusted.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// limitByAddr answers 429 rate_limited, with Retry-After, to a client
// address past l, before next runs.
func (s *Server) limitByAddr(l *addrLimiter, route string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := l.allow(clientAddr(r)); !ok {
			s.cfg.MetricSet.GetOrCreateCounter(`chatbox_http_rate_limited_total{route="` + route + `"}`).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, protocol.Errf(protocol.CodeRateLimited, "too many requests from this address; try again shortly"))
			return
		}
		next(w, r)
	}
}
