package gemini

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

	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if want := "Hello, wörld!\n"; r.Text() != want {
		t.Errorf("text %q, want %q", r.Text(), want)
	}
	if r.Usage == nil || *r.Usage != (providers.Usage{InputTokens: 9, OutputTokens: 5}) {
		t.Errorf("usage %+v", r.Usage)
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
	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
	pe := providertest.AsError(t, r.Err)
	if r.Text() != "Hi" || pe.Kind != providers.KindUnavailable || pe.Status != 0 || !strings.Contains(pe.Error(), "overloaded") {
		t.Fatalf("text %q err %+v", r.Text(), pe)
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
	if r := providertest.Collect(c.Stream(context.Background(), convo)); !errors.Is(r.Err, providers.ErrIncomplete) || r.Text() != "Hi" {
		t.Fatalf("incomplete: text %q err %v", r.Text(), r.Err)
	}
	req := convo
	req.Model = "blocked"
	if r := providertest.Collect(c.Stream(context.Background(), req)); providertest.AsError(t, r.Err).Kind != providers.KindBadRequest {
		t.Fatalf("blocked: err %v", r.Err)
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
			r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), convo))
			pe := providertest.AsError(t, r.Err)
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

func TestNewNeedsKey(t *testing.T) {
	if _, err := New(Config{BaseURL: "http://127.0.0.1:1"}); err == nil {
		t.Fatal("no error without a key")
	}
}

// wire is streamGenerateContent?alt=sse as the Gemini API writes it: CRLF
// line ends, usage in every chunk, no keep-alives.
var wire = providertest.Wire{
	Text: func(text string) string { return chunk(text, "") },
	End: func(in, out int64) string {
		return fmt.Sprintf("data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": %d,\"candidatesTokenCount\": %d,\"totalTokenCount\": %d},\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n", in, out, in+out)
	},
	Error: func(status int) string {
		s := map[int]string{401: "UNAUTHENTICATED", 429: "RESOURCE_EXHAUSTED"}[status]
		return fmt.Sprintf(`{"error": {"code": %d, "message": "injected", "status": %q}}`, status, s)
	},
}

func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Vendor{
		Wire:    wire,
		New:     func(t *testing.T, url string, to providers.Timeouts) providers.Provider { return newClient(t, url, to) },
		Request: convo,
	})
}
