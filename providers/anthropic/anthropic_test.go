package anthropic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if want := "Hello, wörld!\n"; r.Text() != want {
		t.Errorf("text %q, want %q", r.Text(), want)
	}
	if r.Usage == nil || *r.Usage != (providers.Usage{InputTokens: 25, OutputTokens: 15}) {
		t.Errorf("usage %+v", r.Usage)
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
	if r := providertest.Collect(c.Stream(context.Background(), convo)); r.Err != nil || maxTokens != 4096 {
		t.Fatalf("max_tokens %v err %v", maxTokens, r.Err)
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
	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	pe := providertest.AsError(t, r.Err)
	if r.Text() != "Hi" || pe.Kind != providers.KindUnavailable || !strings.Contains(pe.Error(), "overloaded_error: Overloaded") {
		t.Fatalf("text %q err %v", r.Text(), r.Err)
	}
}

func TestIncompleteStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, startEvent+textEvent)
	}))
	defer srv.Close()
	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	if !errors.Is(r.Err, providers.ErrIncomplete) {
		t.Fatalf("err %v", r.Err)
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
			r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
			pe := providertest.AsError(t, r.Err)
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

// wire is the Messages API stream as api.anthropic.com writes it.
var wire = providertest.Wire{
	Start: func(in int64) string {
		return providertest.SSE("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","usage":{"input_tokens":%d,"output_tokens":1}}}`, in)) +
			providertest.SSE("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
	},
	Text: func(text string) string {
		b, _ := json.Marshal(text)
		return providertest.SSE("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+string(b)+`}}`)
	},
	End: func(_, out int64) string {
		return providertest.SSE("content_block_stop", `{"type":"content_block_stop","index":0}`) +
			providertest.SSE("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":%d}}`, out)) +
			providertest.SSE("message_stop", `{"type":"message_stop"}`)
	},
	KeepAlive: providertest.SSE("ping", `{"type": "ping"}`),
	Error: func(status int) string {
		typ := map[int]string{401: "authentication_error", 429: "rate_limit_error"}[status]
		return fmt.Sprintf(`{"type":"error","error":{"type":%q,"message":"injected %d"}}`, typ, status)
	},
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Vendor{
		Wire:    wire,
		New:     func(t *testing.T, url string, to providers.Timeouts) providers.Provider { return newClient(t, url, to) },
		Request: convo,
	})
}
