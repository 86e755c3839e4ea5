// Package openaitest is a fake OpenAI-compatible server for tests and the
// load harness: it streams a configurable reply in the Chat Completions
// wire format, records what it received, and can be told to fail or stall.
//
// A Server is safe for concurrent use; its methods may be called while
// requests are in flight.
package openaitest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// DefaultReply is streamed when Config.Reply is nil.
const DefaultReply = "Hello from the fake model."

// Message is one received chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Request is one received chat completion request.
type Request struct {
	Model         string    `json:"model"`
	Messages      []Message `json:"messages"`
	Stream        bool      `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	// Authorization is the header as received.
	Authorization string `json:"-"`
}

// Config configures a Server. The zero value streams DefaultReply at full
// speed.
type Config struct {
	// Reply returns the reply to a request; nil means DefaultReply. It is
	// streamed word by word, each word with its following space.
	Reply func(Request) string
	// TokenDelay is the pause before each token.
	TokenDelay time.Duration
}

// Server is a running fake. URL is the base URL to configure, ending in /v1.
type Server struct {
	URL string

	cfg  Config
	ts   *httptest.Server
	done chan struct{} // closed by Close: releases stalled handlers

	mu          sync.Mutex // guards the fields below
	requests    []Request
	failures    []failure // answers for the next requests, in order
	stalls      []int     // the next requests stall after this many tokens
	disconnects int
	closed      bool
}

type failure struct {
	status     int
	retryAfter string
}

// NewServer starts a fake on a loopback port. Call Close when done.
func NewServer(cfg Config) *Server {
	s := &Server{cfg: cfg, done: make(chan struct{})}
	s.ts = httptest.NewServer(s)
	s.URL = s.ts.URL + "/v1"
	return s
}

// Close stops the server, first releasing any stalled stream.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.done)
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// FailNext makes the next n requests fail with status and an OpenAI error
// body, with a Retry-After header when retryAfter is not empty.
func (s *Server) FailNext(n, status int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{status, retryAfter})
	}
}

// StallNext makes the next request send afterTokens tokens and then go
// silent, holding the connection until the client gives up.
func (s *Server) StallNext(afterTokens int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stalls = append(s.stalls, afterTokens)
}

// Requests returns copies of the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Count is the number of requests received so far.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// Disconnects counts streams whose client went away before the reply ended
// (the user pressed stop, or a timeout fired).
func (s *Server) Disconnects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disconnects
}

// ServeHTTP answers POST /v1/chat/completions; it lets the fake be mounted
// on another server too.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
		writeError(w, http.StatusNotFound, "", "not_found", "unknown route")
		return
	}
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "", "invalid_request_error", "bad JSON: "+err.Error())
		return
	}
	req.Authorization = r.Header.Get("Authorization")

	s.mu.Lock()
	n := len(s.requests)
	s.requests = append(s.requests, req)
	var fail *failure
	if len(s.failures) > 0 {
		fail = &s.failures[0]
		s.failures = s.failures[1:]
	}
	stallAfter := -1
	if fail == nil && len(s.stalls) > 0 {
		stallAfter = s.stalls[0]
		s.stalls = s.stalls[1:]
	}
	s.mu.Unlock()

	if fail != nil {
		writeError(w, fail.status, fail.retryAfter, errorType(fail.status), "injected failure")
		return
	}
	reply := DefaultReply
	if s.cfg.Reply != nil {
		reply = s.cfg.Reply(req)
	}
	s.stream(w, r, req, n, reply, stallAfter)
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request, req Request, n int, reply string, stallAfter int) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	id := fmt.Sprintf("chatcmpl-fake%d", n)
	head := `{"id":"` + id + `","object":"chat.completion.chunk","created":1732530000,"model":` + quote(req.Model) + `,"system_fingerprint":"fp_fake",`
	send := func(payload string) {
		fmt.Fprintf(w, "data: %s\n\n", payload)
		if flusher != nil {
			flusher.Flush()
		}
	}
	send(head + `"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`)

	var timer *time.Timer
	if s.cfg.TokenDelay > 0 {
		timer = time.NewTimer(s.cfg.TokenDelay)
		defer timer.Stop()
	}
	tokens := 0
	for i := 0; i < len(reply); {
		if tokens == stallAfter {
			s.waitGone(r)
			return
		}
		if timer != nil {
			timer.Reset(s.cfg.TokenDelay)
			select {
			case <-timer.C:
			case <-r.Context().Done():
				s.gone()
				return
			case <-s.done:
				return
			}
		}
		j := strings.IndexByte(reply[i:], ' ')
		if j < 0 {
			j = len(reply)
		} else {
			j += i + 1
		}
		send(head + `"choices":[{"index":0,"delta":{"content":` + quote(reply[i:j]) + `},"logprobs":null,"finish_reason":null}],"usage":null}`)
		tokens++
		i = j
	}
	if tokens == stallAfter {
		s.waitGone(r)
		return
	}
	send(head + `"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`)
	if req.StreamOptions.IncludeUsage {
		prompt := 0
		for _, m := range req.Messages {
			prompt += len(strings.Fields(m.Content))
		}
		send(head + fmt.Sprintf(`"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, prompt, tokens, prompt+tokens))
	}
	send("[DONE]")
	if r.Context().Err() != nil {
		s.gone()
	}
}

func (s *Server) waitGone(r *http.Request) {
	select {
	case <-r.Context().Done():
		s.gone()
	case <-s.done:
	}
}

func (s *Server) gone() {
	s.mu.Lock()
	s.disconnects++
	s.mu.Unlock()
}

func quote(v string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func errorType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "invalid_request_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_exceeded"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func writeError(w http.ResponseWriter, status int, retryAfter, typ, msg string) {
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%s,"type":%s,"param":null,"code":null}}`+"\n", quote(msg), quote(typ))
}
