package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

// A stream as streamGenerateContent?alt=sse sends it: CRLF line ends, a
// thought part (not reply text), usage growing to the final chunk.
var realStream = strings.ReplaceAll(`data: {"candidates": [{"content": {"parts": [{"text": "The user greets me.","thought": true}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}]},"modelVersion": "gemini-2.5-flash","responseId": "mFdEaeWKA9Tq"}

data: {"candidates": [{"content": {"parts": [{"text": "Hello"}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}]},"modelVersion": "gemini-2.5-flash","responseId": "mFdEaeWKA9Tq"}

data: {"candidates": [{"content": {"parts": [{"text": ", w\u00f6rld!\n"}],"role": "model"},"finishReason": "STOP","index": 0}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 5,"totalTokenCount": 30,"promptTokensDetails": [{"modality": "TEXT","tokenCount": 9}],"thoughtsTokenCount": 16},"modelVersion": "gemini-2.5-flash","responseId": "mFdEaeWKA9Tq"}

`, "\n", "\r\n")

func chunk(text, finish string) string {
	f := ""
	if finish != "" {
		f = `,"finishReason": "` + finish + `"`
	}
	t, _ := json.Marshal(text)
	return `data: {"candidates": [{"content": {"parts": [{"text": ` + string(t) + `}],"role": "model"}` + f + `,"index": 0}],"usageMetadata": {"promptTokenCount": 3,"candidatesTokenCount": 1,"totalTokenCount": 4},"modelVersion": "gemini-2.5-flash"}` + "\r\n\r\n"
}

type result struct {
	text  string
	usage *providers.Usage
	err   error
}

func collect(seq iter.Seq2[providers.Chunk, error]) result {
	var r result
	for c, err := range seq {
		if err != nil {
			r.err = err
			break
		}
		r.text += c.Text
		if c.Usage != nil {
			r.usage = c.Usage
		}
	}
	return r
}

func asError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err %v (%T), want *providers.Error", err, err)
	}
	return pe
}

func newClient(t *testing.T, url string, to providers.Timeouts) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: url, APIKey: "AIza-secret", Timeouts: to})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var convo = providers.Request{
	Model:  "gemini-2.5-flash",
	System: "Be brief.",
	Messages: []providers.Message{
		{Role: providers.RoleUser, Text: "hi"},
		{Role: providers.RoleAssistant, Text: "hello"},
		{Role: providers.RoleUser, Text: "how are you?"},
	},
}

func TestStreamTextAndUsage(t *testing.T) {
	var got struct {
		path, query, key string
		body             map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.path, got.query, got.key = r.URL.Path, r.URL.RawQuery, r.Header.Get("x-goog-api-key")
		json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, realStream)
	}))
	defer srv.Close()

	r := collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if want := "Hello, wörld!\n"; r.text != want {
		t.Errorf("text %q, want %q", r.text, want)
	}
	if r.usage == nil || *r.usage != (providers.Usage{InputTokens: 9, OutputTokens: 5}) {
		t.Errorf("usage %+v", r.usage)
	}
	if got.path != "/v1beta/models/gemini-2.5-flash:streamGenerateContent" || got.query != "alt=sse" || got.key != "AIza-secret" {
		t.Errorf("path %q query %q key %q", got.path, got.query, got.key)
	}
	contents, _ := json.Marshal(got.body["contents"])
	if want := `[{"parts":[{"text":"hi"}],"role":"user"},{"parts":[{"text":"hello"}],"role":"model"},{"parts":[{"text":"how are you?"}],"role":"user"}]`; string(contents) != want {
		t.Errorf("contents %s", contents)
	}
	if sys, _ := json.Marshal(got.body["systemInstruction"]); !strings.Contains(string(sys), `"text":"Be brief."`) {
		t.Errorf("systemInstruction %s", sys)
	}
}

func TestMidStreamError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, chunk("Hi", ""))
		io.WriteString(w, "data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded. Please try again later.\", \"status\": \"UNAVAILABLE\"}}\r\n\r\n")
	}))
	defer srv.Close()
	r := collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	pe := asError(t, r.err)
	if r.text != "Hi" || pe.Kind != providers.KindUnavailable || pe.Status != 0 || !strings.Contains(pe.Error(), "overloaded") {
		t.Fatalf("text %q err %+v", r.text, pe)
	}
}

func TestIncompleteAndBlocked(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "blocked") {
			io.WriteString(w, "data: {\"candidates\": [{\"finishReason\": \"SAFETY\",\"index\": 0}],\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n")
			return
		}
		io.WriteString(w, chunk("Hi", ""))
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, providertest.Timeouts())
	if r := collect(c.Stream(context.Background(), convo)); !errors.Is(r.err, providers.ErrIncomplete) || r.text != "Hi" {
		t.Fatalf("incomplete: text %q err %v", r.text, r.err)
	}
	req := convo
	req.Model = "blocked"
	if r := collect(c.Stream(context.Background(), req)); asError(t, r.err).Kind != providers.KindBadRequest {
		t.Fatalf("blocked: err %v", r.err)
	}
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		status int
		header string
		body   string
		kind   providers.Kind
		retry  time.Duration
	}{
		{400, "", `{"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}`, providers.KindAuth, 0},
		{401, "", `{"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}`, providers.KindAuth, 0},
		{400, "", `{"error": {"code": 400, "message": "Please use a valid role: user, model.", "status": "INVALID_ARGUMENT"}}`, providers.KindBadRequest, 0},
		{429, "7", `{"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED"}}`, providers.KindRateLimited, 7 * time.Second},
		{503, "", `{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}`, providers.KindUnavailable, 0},
		{502, "", `<html>Bad Gateway</html>`, providers.KindUnavailable, 0},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i, "-", tt.status), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if tt.header != "" {
					w.Header().Set("Retry-After", tt.header)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			r := collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
			pe := asError(t, r.err)
			if pe.Kind != tt.kind || pe.Status != tt.status || pe.RetryAfter != tt.retry {
				t.Errorf("got %+v", pe)
			}
			if strings.Contains(pe.Error(), "AIza-secret") {
				t.Errorf("key leaked: %v", pe)
			}
			if n.Load() != 1 {
				t.Errorf("%d requests: the SDK retried", n.Load())
			}
		})
	}
}

// holdServer sends events, then nothing until the client goes away.
func holdServer(t *testing.T, events string) (url string, gone <-chan struct{}) {
	ch := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, events)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(ch)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

func TestStallEndsByIdleTimeout(t *testing.T) {
	url, gone := holdServer(t, chunk("Hi", ""))
	r := collect(newClient(t, url, providers.Timeouts{Connect: 5 * time.Second, FirstToken: 5 * time.Second, Idle: 100 * time.Millisecond}).Stream(context.Background(), convo))
	if pe := asError(t, r.err); pe.Kind != providers.KindTimeout || !errors.Is(pe, providers.ErrIdleTimeout) || r.text != "Hi" {
		t.Fatalf("text %q err %v", r.text, r.err)
	}
	<-gone
}

func TestCancelAbortsRequest(t *testing.T) {
	url, gone := holdServer(t, chunk("Hi", ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var err error
	for c, e := range newClient(t, url, providertest.Timeouts()).Stream(ctx, convo) {
		if e != nil {
			err = e
			break
		}
		if c.Text != "" {
			cancel()
		}
	}
	if pe := asError(t, err); pe.Kind != providers.KindCanceled || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("server never saw the request end")
	}
}

func TestCatalogRetry(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error": {"code": 429, "message": "Resource has been exhausted.", "status": "RESOURCE_EXHAUSTED"}}`)
			return
		}
		io.WriteString(w, chunk("Hi", "STOP"))
	}))
	defer srv.Close()
	cat, err := providers.NewCatalogWithOptions([]providers.Entry{{ID: "g", Provider: newClient(t, srv.URL, providertest.Timeouts()), Model: "gemini-2.5-flash"}}, "g",
		fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	r := collect(cat.Stream(context.Background(), "g", convo.Messages))
	if r.err != nil || r.text != "Hi" || r.usage == nil || n.Load() != 2 {
		t.Fatalf("text %q usage %v err %v requests %d", r.text, r.usage, r.err, n.Load())
	}
}

func TestNewNeedsKey(t *testing.T) {
	if _, err := New(Config{BaseURL: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("no error without a key")
	}
}

// fastOptions are the configured retries with millisecond waits.
func fastOptions() providers.Options {
	o := providertest.Options()
	o.Backoff, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return o
}
