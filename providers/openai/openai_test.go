package openai

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
	"github.com/chatbox/chatbox/providers/openai/openaitest"
	"github.com/chatbox/chatbox/providers/providertest"
)

// A stream as api.openai.com sends it, plus what compatible servers add:
// an SSE comment keep-alive (OpenRouter, proxies) and one chunk spread over
// two data lines, which SSE joins with "\n" (still valid JSON).
const realStream = `data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

: keep-alive

data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18",
data: "system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":", \"w\u00f6rld\"\n"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":" 😀"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":6,"total_tokens":25,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

data: [DONE]

`

func newClient(t *testing.T, url string, to providers.Timeouts) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: url, APIKey: "sk-test-secret", Timeouts: to})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var convo = providers.Request{
	Model:    "gpt-4o-mini",
	System:   "Be brief.",
	Messages: []providers.Message{{Role: providers.RoleUser, Text: "hi"}, {Role: providers.RoleAssistant, Text: "hello"}, {Role: providers.RoleUser, Text: "how are you?"}},
}

func TestStreamTextAndUsage(t *testing.T) {
	var got struct {
		path, auth string
		body       map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.path, got.auth = r.URL.Path, r.Header.Get("Authorization")
		json.NewDecoder(r.Body).Decode(&got.body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, realStream)
	}))
	defer srv.Close()

	r := providertest.Collect(newClient(t, srv.URL+"/v1/", providertest.Timeouts()).Stream(context.Background(), convo))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if want := "Hello, \"wörld\"\n 😀"; r.Text() != want || len(r.Texts) != 3 {
		t.Errorf("text %q in %d chunks, want %q in 3", r.Text(), len(r.Texts), want)
	}
	if r.Usage == nil || *r.Usage != (providers.Usage{InputTokens: 19, OutputTokens: 6}) {
		t.Errorf("usage %+v", r.Usage)
	}
	if got.path != "/v1/chat/completions" || got.auth != "Bearer sk-test-secret" {
		t.Errorf("path %q auth %q", got.path, got.auth)
	}
	msgs, _ := json.Marshal(got.body["messages"])
	if want := `[{"content":"Be brief.","role":"system"},{"content":"hi","role":"user"},{"content":"hello","role":"assistant"},{"content":"how are you?","role":"user"}]`; string(msgs) != want {
		t.Errorf("messages %s", msgs)
	}
	if got.body["stream"] != true || fmt.Sprint(got.body["stream_options"]) != "map[include_usage:true]" || got.body["model"] != "gpt-4o-mini" {
		t.Errorf("body %v", got.body)
	}
}

func TestEmptyKeyAllowedWithBaseURL(t *testing.T) {
	fake := openaitest.NewServer(openaitest.Config{})
	defer fake.Close()
	c, err := New(Config{BaseURL: fake.URL, Timeouts: providertest.Timeouts()})
	if err != nil {
		t.Fatal(err)
	}
	r := providertest.Collect(c.Stream(context.Background(), providers.Request{Model: "llama3.2", Messages: convo.Messages}))
	if r.Err != nil || r.Text() != openaitest.DefaultReply {
		t.Fatalf("text %q err %v", r.Text(), r.Err)
	}
	if reqs := fake.Requests(); len(reqs) != 1 || reqs[0].Authorization != "" || reqs[0].Model != "llama3.2" || len(reqs[0].Messages) != 3 {
		t.Fatalf("requests %+v", reqs)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without key or base URL: no error")
	}
	if _, err := New(Config{BaseURL: "127.0.0.1:11434"}); err == nil {
		t.Error("New with a schemeless base URL: no error")
	}
}

func TestMidStreamError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`+"\n\n")
		io.WriteString(w, `data: {"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}`+"\n\n")
	}))
	defer srv.Close()
	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	if r.Text() != "Hi" {
		t.Errorf("text %q", r.Text())
	}
	pe := providertest.AsError(t, r.Err)
	if pe.Kind != providers.KindUnavailable || !strings.Contains(pe.Error(), "server_error") {
		t.Errorf("err %v", pe)
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
		{401, "", `{"error":{"message":"Incorrect API key provided: sk-test-secret.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`, providers.KindAuth, 0},
		{429, "2", `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`, providers.KindRateLimited, 2 * time.Second},
		{400, "", `{"error":{"message":"bad","type":"invalid_request_error"}}`, providers.KindBadRequest, 0},
		{404, "", `{"error":"model \"llama9\" not found, try pulling it first"}`, providers.KindBadRequest, 0},
		{503, "", `upstream connect error`, providers.KindUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
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
			r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
			pe := providertest.AsError(t, r.Err)
			if pe.Kind != tt.kind || pe.Status != tt.status || pe.RetryAfter != tt.retry || pe.Model != "gpt-4o-mini" {
				t.Errorf("got %+v", pe)
			}
			if strings.Contains(pe.Error(), "sk-test-secret") {
				t.Errorf("key leaked: %v", pe)
			}
			if n.Load() != 1 {
				t.Errorf("%d requests", n.Load())
			}
		})
	}
}

func TestIncompleteStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `data: {"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`+"\n\n")
	}))
	defer srv.Close()
	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	if !errors.Is(r.Err, providers.ErrIncomplete) || r.Text() != "Hi" {
		t.Fatalf("text %q err %v", r.Text(), r.Err)
	}
}

// wire is the Chat Completions stream as api.openai.com writes it.
var wire = providertest.Wire{
	Start: func(int64) string {
		return providertest.SSE("", `{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`)
	},
	Text: func(text string) string {
		b, _ := json.Marshal(text)
		return providertest.SSE("", `{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":`+string(b)+`},"logprobs":null,"finish_reason":null}],"usage":null}`)
	},
	End: func(in, out int64) string {
		return providertest.SSE("", `{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`) +
			providertest.SSE("", fmt.Sprintf(`{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, in, out, in+out)) +
			providertest.SSE("", "[DONE]")
	},
	KeepAlive: ": keep-alive\n\n",
	Error: func(status int) string {
		typ := map[int]string{401: "invalid_request_error", 429: "requests"}[status]
		return fmt.Sprintf(`{"error":{"message":"injected %d","type":%q,"param":null,"code":null}}`, status, typ)
	},
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Vendor{
		Wire:    wire,
		New:     func(t *testing.T, url string, to providers.Timeouts) providers.Provider { return newClient(t, url, to) },
		Request: convo,
	})
}

func mustNew(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The fast chunk parser must agree with encoding/json whenever it accepts.
func FuzzDecodeChunk(f *testing.F) {
	for _, line := range strings.Split(realStream, "\n\n") {
		f.Add([]byte(strings.ReplaceAll(strings.TrimPrefix(line, "data: "), "\ndata: ", "\n")))
	}
	f.Add([]byte(`{"choices":[{"delta":{"content":"a\ud83d\ude00\u00e9\/\"","Content":"x"}}]}`))
	f.Add([]byte(`{"choices":null,"usage":{"prompt_tokens":-0,"completion_tokens":1e2},"error":null}`))
	f.Add([]byte(`{"error":{"message":"x","code":429}}`))
	var scratch []byte
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast chunk
		if !parseChunk(data, &fast, &scratch) {
			return
		}
		var ref chunk
		var w wireChunk
		if err := json.Unmarshal(data, &w); err != nil {
			return // the fast path is allowed to be more lenient
		}
		if len(w.Choices) > 0 {
			ref.Content = w.Choices[0].Delta.Content
			ref.Finished = w.Choices[0].FinishReason != nil
		}
		if w.Usage != nil {
			ref.HasUsage, ref.PromptTokens, ref.CompletionTokens = true, w.Usage.PromptTokens, w.Usage.CompletionTokens
		}
		if len(w.Error) > 0 && string(w.Error) != "null" {
			ref.Error = w.Error
		}
		if fast.Content != ref.Content || fast.Finished != ref.Finished || fast.HasUsage != ref.HasUsage ||
			fast.PromptTokens != ref.PromptTokens || fast.CompletionTokens != ref.CompletionTokens ||
			(fast.Error == nil) != (ref.Error == nil) {
			t.Fatalf("fast %+v, encoding/json %+v", fast, ref)
		}
	})
}

func TestDecodeChunkFallback(t *testing.T) {
	var c chunk
	var scratch []byte
	// An escaped key is declined by the fast path and decoded by encoding/json.
	if err := decodeChunk([]byte(`{"choices":[{"delta":{"cont\u0065nt":"x"}}]}`), &c, &scratch); err != nil || c.Content != "x" {
		t.Fatalf("content %q err %v", c.Content, err)
	}
	if err := decodeChunk([]byte(`{"choices":[{"delta":{"content":5}}]}`), &c, &scratch); err == nil {
		t.Fatal("wrong type accepted")
	}
}

// BenchmarkOpenAIStream measures a whole streamed reply through the client,
// per token: the client's own overhead over the network.
func BenchmarkOpenAIStream(b *testing.B) {
	const tokens = 200
	var stream strings.Builder
	for i := range tokens {
		fmt.Fprintf(&stream, `data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":" tok%d"},"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n", i%10)
	}
	stream.WriteString(`data: {"id":"chatcmpl-AX1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":200,"total_tokens":219}}` + "\n\ndata: [DONE]\n\n")
	body := stream.String()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	c, _ := New(Config{BaseURL: srv.URL, Timeouts: providertest.Timeouts()})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for ch, err := range c.Stream(ctx, convo) {
			if err != nil {
				b.Fatal(err)
			}
			if ch.Text != "" {
				n++
			}
		}
		if n != tokens {
			b.Fatalf("%d tokens", n)
		}
	}
	b.ReportMetric(tokens, "tokens/op")
}

// BenchmarkDecodeChunk isolates the per-token parse.
func BenchmarkDecodeChunk(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-AX1","object":"chat.completion.chunk","created":1732530000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}],"usage":null}`)
	var c chunk
	var scratch []byte
	b.ReportAllocs()
	for b.Loop() {
		if err := decodeChunk(data, &c, &scratch); err != nil || c.Content != " token" {
			b.Fatal(err)
		}
	}
}

func TestFakeSeesStop(t *testing.T) {
	fake := openaitest.NewServer(openaitest.Config{TokenDelay: 5 * time.Millisecond, Reply: func(openaitest.Request) string { return strings.Repeat("word ", 1000) }})
	defer fake.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var err error
	for c, e := range mustNew(t, Config{BaseURL: fake.URL, Timeouts: providertest.Timeouts()}).Stream(ctx, convo) {
		if e != nil {
			err = e
			break
		}
		if c.Text != "" {
			cancel()
		}
	}
	if pe := providertest.AsError(t, err); pe.Kind != providers.KindCanceled {
		t.Fatalf("err %v", err)
	}
	providertest.Eventually(t, "the fake to see the disconnect", func() bool { return fake.Disconnects() == 1 })
}
