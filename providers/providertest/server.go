package providertest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Wire is one vendor's streaming format, as the fake server writes it.
// Every method returns whole events, separators included.
type Wire struct {
	// Start is what the vendor sends before the first text (a role delta,
	// message_start), given the input tokens that some vendors report
	// there; nil sends nothing.
	Start func(in int64) string
	// Text is one event carrying text.
	Text func(text string) string
	// End ends a reply, reporting usage.
	End func(in, out int64) string
	// KeepAlive is an event that shows no progress (an SSE comment, a
	// ping); empty when the vendor sends none while it thinks.
	KeepAlive string
	// Error is the JSON body of an HTTP error answer with status.
	Error func(status int) string
}

// Answer is what the fake server does with one request.
type Answer struct {
	Status     int      // non-2xx: an error answer with Wire.Error's body
	RetryAfter string   // the Retry-After header of an error answer
	Texts      []string // a 2xx answer streams these, then Wire.End
	In, Out    int64    // the usage Wire.End reports
	// Stall, when set, sends Texts and then, instead of Wire.End, only
	// keep-alives until the client goes away.
	Stall bool
	// Hang sends nothing, not even the response headers, until the client
	// goes away.
	Hang bool
}

// Server is a fake vendor on a loopback port: each request takes the next
// queued Answer (the last one repeats). It records when requests arrive and
// how many ended because the client went away. Safe for concurrent use.
type Server struct {
	URL string

	wire Wire
	ts   *httptest.Server

	mu       sync.Mutex // guards the fields below
	answers  []Answer
	arrivals []time.Time
	gone     int
}

// NewServer starts a fake speaking wire that gives answers in order; it is
// closed when the test ends.
func NewServer(t testing.TB, wire Wire, answers ...Answer) *Server {
	t.Helper()
	if len(answers) == 0 {
		t.Fatal("providertest.NewServer: no answers")
	}
	s := &Server{wire: wire, answers: answers}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL
	t.Cleanup(func() {
		s.ts.CloseClientConnections()
		s.ts.Close()
	})
	return s
}

// Requests is the number of requests received so far.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.arrivals)
}

// Arrivals returns when each request arrived, in order.
func (s *Server) Arrivals() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals...)
}

// Gone is the number of requests that ended because the client went away
// before the reply did.
func (s *Server) Gone() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	a := s.answers[0]
	if len(s.answers) > 1 {
		s.answers = s.answers[1:]
	}
	s.arrivals = append(s.arrivals, time.Now())
	s.mu.Unlock()

	if a.Hang {
		<-r.Context().Done()
		s.wentAway()
		return
	}
	if a.Status != 0 && a.Status/100 != 2 {
		if a.RetryAfter != "" {
			w.Header().Set("Retry-After", a.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.Status)
		io.WriteString(w, s.wire.Error(a.Status))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher := w.(http.Flusher)
	send := func(event string) bool {
		if _, err := io.WriteString(w, event); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	if s.wire.Start != nil {
		send(s.wire.Start(a.In))
	}
	for _, text := range a.Texts {
		send(s.wire.Text(text))
	}
	if !a.Stall {
		send(s.wire.End(a.In, a.Out))
		return
	}
	// Keep-alives show the connection is open but give no text: only the
	// client's timeouts or cancellation end this.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			s.wentAway()
			return
		case <-tick.C:
			if s.wire.KeepAlive != "" {
				send(s.wire.KeepAlive)
			}
		}
	}
}

func (s *Server) wentAway() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone++
}

// SSE formats one Server-Sent Event: "event: NAME" when name is set, then
// the data line.
func SSE(name, data string) string {
	var b strings.Builder
	if name != "" {
		fmt.Fprintf(&b, "event: %s\n", name)
	}
	fmt.Fprintf(&b, "data: %s\n\n", data)
	return b.String()
}
