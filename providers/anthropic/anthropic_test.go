package anthropic

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

// A stream as the Messages API sends it, with a ping, a thinking block
// (not reply text) and one event whose JSON spans two data lines.
const realStream = `event: message_start
data: {"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me think."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,
data: "delta":{"type":"text_delta","text":", w\u00f6rld!\n"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

`

const (
	startEvent = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
	textEvent  = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
	stopEvents = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
)

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
	c, err := New(Config{BaseURL: url, APIKey: "sk-ant-secret", Timeouts: to})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var convo = providers.Request{
	Model:  "claude-sonnet-4-5",
	System: "Be brief.",
	Messages: []providers.Message{
		{Role: providers.RoleAssistant, Text: "Welcome! (an admin greeting)"},
		{Role: providers.RoleUser, Text: "hi"},
		{Role: providers.RoleAssistant, Text: ""},
		{Role: providers.RoleUser, Text: "how are you?"},
	},
}

func TestStreamTextAndUsage(t *testing.T) {
	var got struct {
		path    string
		headers http.Header
		body    map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.path, got.headers = r.URL.Path, r.Header.Clone()
		json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
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
	if r.usage == nil || *r.usage != (providers.Usage{InputTokens: 25, OutputTokens: 15}) {
		t.Errorf("usage %+v", r.usage)
	}
	if got.path != "/v1/messages" || got.headers.Get("x-api-key") != "sk-ant-secret" || got.headers.Get("anthropic-version") != "2023-06-01" {
		t.Errorf("path %q headers %v", got.path, got.headers)
	}
	msgs, _ := json.Marshal(got.body["messages"])
	if want := `[{"content":"hi","role":"user"},{"content":"how are you?","role":"user"}]`; string(msgs) != want {
		t.Errorf("messages %s", msgs)
	}
	if got.body["system"] != "Be brief." || got.body["max_tokens"] != float64(DefaultMaxTokens) || got.body["stream"] != true {
		t.Errorf("body %v", got.body)
	}
}

func TestMaxTokensConfigurable(t *testing.T) {
	var maxTokens float64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		maxTokens, _ = body["max_tokens"].(float64)
		io.WriteString(w, startEvent+textEvent+stopEvents)
	}))
	defer srv.Close()
	c, _ := New(Config{BaseURL: srv.URL, MaxTokens: 4096, Timeouts: providertest.Timeouts()})
	if r := collect(c.Stream(context.Background(), convo)); r.err != nil || maxTokens != 4096 {
		t.Fatalf("max_tokens %v err %v", maxTokens, r.err)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without key or base URL: no error")
	}
}

func TestMidStreamError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, startEvent+textEvent)
		io.WriteString(w, "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n")
	}))
	defer srv.Close()
	r := collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	pe := asError(t, r.err)
	if r.text != "Hi" || pe.Kind != providers.KindUnavailable || !strings.Contains(pe.Error(), "overloaded_error: Overloaded") {
		t.Fatalf("text %q err %v", r.text, r.err)
	}
}

func TestIncompleteStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, startEvent+textEvent)
	}))
	defer srv.Close()
	r := collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	if !errors.Is(r.err, providers.ErrIncomplete) {
		t.Fatalf("err %v", r.err)
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
		{401, "", `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key sk-ant-secret"}}`, providers.KindAuth, 0},
		{403, "", `{"type":"error","error":{"type":"permission_error","message":"no access"}}`, providers.KindAuth, 0},
		{400, "", `{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate"}}`, providers.KindBadRequest, 0},
		{429, "3", `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`, providers.KindRateLimited, 3 * time.Second},
		{529, "", `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, providers.KindUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				if tt.header != "" {
					w.Header().Set("retry-after", tt.header)
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			r := collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
			pe := asError(t, r.err)
			if pe.Kind != tt.kind || pe.Status != tt.status || pe.RetryAfter != tt.retry {
				t.Errorf("got %+v", pe)
			}
			if strings.Contains(pe.Error(), "sk-ant-secret") {
				t.Errorf("key leaked: %v", pe)
			}
			if n.Load() != 1 {
				t.Errorf("%d requests", n.Load())
			}
		})
	}
}

// pingServer sends events, then only pings until the client goes away.
func pingServer(t *testing.T, events string) (url string, gone <-chan struct{}) {
	ch := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, events)
		w.(http.Flusher).Flush()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-r.Context().Done():
				close(ch)
				return
			case <-tick.C:
				io.WriteString(w, "event: ping\ndata: {\"type\": \"ping\"}\n\n")
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

func TestStallEndsByIdleTimeout(t *testing.T) {
	url, gone := pingServer(t, startEvent+textEvent)
	r := collect(newClient(t, url, providers.Timeouts{Connect: 5 * time.Second, FirstToken: 5 * time.Second, Idle: 100 * time.Millisecond}).Stream(context.Background(), convo))
	if pe := asError(t, r.err); pe.Kind != providers.KindTimeout || !errors.Is(pe, providers.ErrIdleTimeout) || r.text != "Hi" {
		t.Fatalf("text %q err %v", r.text, r.err)
	}
	<-gone

	url, gone = pingServer(t, startEvent)
	r = collect(newClient(t, url, providers.Timeouts{Connect: 5 * time.Second, FirstToken: 100 * time.Millisecond, Idle: 5 * time.Second}).Stream(context.Background(), convo))
	if !errors.Is(r.err, providers.ErrFirstTokenTimeout) {
		t.Fatalf("err %v", r.err)
	}
	<-gone
}

func TestCancelAbortsRequest(t *testing.T) {
	url, gone := pingServer(t, startEvent+textEvent)
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
	if pe := asError(t, err); pe.Kind != providers.KindCanceled {
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
		switch n.Add(1) {
		case 1:
			w.Header().Set("retry-after", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
		case 2:
			w.WriteHeader(529)
			io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		default:
			io.WriteString(w, startEvent+textEvent+stopEvents)
		}
	}))
	defer srv.Close()
	cat, err := providers.NewCatalogWithOptions([]providers.Entry{{ID: "claude", Provider: newClient(t, srv.URL, providertest.Timeouts()), Model: "claude-sonnet-4-5"}}, "claude",
		fastOptions())
	if err != nil {
		t.Fatal(err)
	}
	r := collect(cat.Stream(context.Background(), "claude", convo.Messages))
	if r.err != nil || r.text != "Hi" || n.Load() != 3 || cat.Stats().Retries != 2 {
		t.Fatalf("text %q err %v requests %d stats %+v", r.text, r.err, n.Load(), cat.Stats())
	}
}

// fastOptions are the configured retries with millisecond waits.
func fastOptions() providers.Options {
	o := providertest.Options()
	o.Backoff, o.MaxBackoff = time.Millisecond, 5*time.Millisecond
	return o
}
