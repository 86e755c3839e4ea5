// Package gemini streams replies from Google's Gemini API through the
// maintained SDK, google.golang.org/genai: GenerateContentStream, which calls
// POST {base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse.
//
// The SDK's own retries and automatic stream continuation are turned off so
// that each Stream call makes exactly one HTTP request; retries and failover
// belong to the Catalog. A small RoundTripper around the HTTP client keeps
// what the SDK drops: the Retry-After header, and the read error of a body
// cut short, which it would otherwise print with the standard logger.
//
// A Client is immutable after New and safe for concurrent use.
package gemini

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/genai"

	"github.com/chatbox/chatbox/providers"
)

// DefaultBaseURL is Google's own endpoint.
const DefaultBaseURL = "https://generativelanguage.googleapis.com/"

// Config configures a Client. Zero values are documented per field.
type Config struct {
	// BaseURL is the API root; empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as x-goog-api-key; required.
	APIKey string
	// Timeouts bound each request; all three are required.
	Timeouts providers.Timeouts
	// HTTPClient overrides the client built from Timeouts.Connect.
	HTTPClient *http.Client
}

// Client is the Gemini provider.
type Client struct {
	models   *genai.Models
	key      string
	timeouts providers.Timeouts
}

var _ providers.Provider = (*Client)(nil)

// New checks cfg and builds a Client. It does no I/O. The key is always
// passed explicitly, so the SDK never falls back to GEMINI_API_KEY or
// GOOGLE_API_KEY from the environment on its own.
func New(cfg Config) (*Client, error) {
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("gemini: %w", err)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("gemini: an API key is required")
	}
	base := cfg.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gemini: base URL %q is not an http(s) URL", base)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = providers.NewHTTPClient(cfg.Timeouts)
	}
	transport := hc.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	wrapped := *hc
	wrapped.Transport = &recorder{base: transport}
	client, err := genai.NewClient(context.Background(), &genai.ClientConfig{
		APIKey:     cfg.APIKey,
		Backend:    genai.BackendGeminiAPI,
		HTTPClient: &wrapped,
		HTTPOptions: genai.HTTPOptions{
			BaseURL:      base,
			APIVersion:   "v1beta",
			RetryOptions: &genai.HTTPRetryOptions{Attempts: genai.Ptr[int32](1)},
		},
	})
	if err != nil {
		// The SDK prints its whole config, key included, into some errors.
		return nil, fmt.Errorf("gemini: create client: %s", providers.Redact(err.Error(), cfg.APIKey))
	}
	return &Client{models: client.Models, key: cfg.APIKey, timeouts: cfg.Timeouts}, nil
}

// exchange is what the recorder learns about one request. It is written and
// read only by the goroutine running the Stream, where the SDK sends the
// request and reads its body.
type exchange struct {
	status     int
	retryAfter time.Duration
	readErr    error
}

type exchangeKey struct{}

// recorder notes the status and Retry-After of each response, and turns a
// failed body read into a clean end of stream after noting the error: the
// SDK would log the error and lose its cause, while Stream reports it as a
// typed error.
type recorder struct{ base http.RoundTripper }

func (rt *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	x, ok := req.Context().Value(exchangeKey{}).(*exchange)
	if err != nil || !ok {
		return resp, err
	}
	x.status = resp.StatusCode
	x.retryAfter = providers.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	resp.Body = &quietBody{ReadCloser: resp.Body, x: x}
	return resp, nil
}

type quietBody struct {
	io.ReadCloser
	x *exchange
}

func (b *quietBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.x.readErr = err
		err = io.EOF
	}
	return n, err
}

func toContents(msgs []providers.Message) []*genai.Content {
	out := make([]*genai.Content, 0, len(msgs))
	for _, m := range msgs {
		// Empty parts are rejected, and a conversation opens with the user.
		if (m.Text == "" && len(m.Attachments) == 0) || (len(out) == 0 && m.Role == providers.RoleAssistant) {
			continue
		}
		role := genai.RoleUser
		if m.Role == providers.RoleAssistant {
			role = genai.RoleModel
		}
		// Images and PDFs go as inline data, before the text.
		parts := make([]*genai.Part, 0, len(m.Attachments)+1)
		for _, a := range m.Attachments {
			parts = append(parts, &genai.Part{InlineData: &genai.Blob{MIMEType: a.Type, Data: a.Data}})
		}
		if m.Text != "" {
			parts = append(parts, &genai.Part{Text: m.Text})
		}
		out = append(out, &genai.Content{Role: role, Parts: parts})
	}
	return out
}

// Stream sends one streamGenerateContent request and yields its text as it
// arrives, then a final chunk with usage.
func (c *Client) Stream(ctx context.Context, req providers.Request) iter.Seq2[providers.Chunk, error] {
	return func(yield func(providers.Chunk, error) bool) {
		wd := providers.NewWatchdog(ctx, c.timeouts, req.Model)
		defer wd.Stop()
		contents := toContents(req.Messages)
		if len(contents) == 0 {
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindBadRequest, Model: req.Model, Err: errors.New("no user message to send")})
			return
		}
		cfg := &genai.GenerateContentConfig{AutomaticContinuation: genai.Ptr(false)}
		if req.System != "" {
			cfg.SystemInstruction = &genai.Content{Parts: []*genai.Part{{Text: req.System}}}
		}
		x := &exchange{}
		rctx := context.WithValue(wd.Context(), exchangeKey{}, x)

		var (
			usage  *providers.Usage
			finish genai.FinishReason
			text   bool
		)
		for resp, err := range c.models.GenerateContentStream(rctx, req.Model, contents, cfg) {
			if err != nil {
				yield(providers.Chunk{}, c.classify(wd, x, req.Model, err))
				return
			}
			wd.Event()
			if u := resp.UsageMetadata; u != nil {
				usage = &providers.Usage{InputTokens: int64(u.PromptTokenCount), OutputTokens: int64(u.CandidatesTokenCount)}
			}
			if pf := resp.PromptFeedback; pf != nil && pf.BlockReason != "" {
				yield(providers.Chunk{}, providers.StreamError(providers.KindBadRequest, req.Model, "prompt blocked: %s", pf.BlockReason))
				return
			}
			if len(resp.Candidates) == 0 || resp.Candidates[0] == nil {
				continue
			}
			cand := resp.Candidates[0]
			if cand.Content != nil {
				for _, p := range cand.Content.Parts {
					if p == nil || p.Text == "" || p.Thought {
						continue
					}
					text = true
					wd.Text()
					if !yield(providers.Chunk{Text: p.Text}, nil) {
						return
					}
				}
			}
			if cand.FinishReason != "" && cand.FinishReason != genai.FinishReasonUnspecified {
				finish = cand.FinishReason
			}
		}
		switch {
		case x.readErr != nil:
			yield(providers.Chunk{}, wd.Err(req.Model, x.readErr))
		case finish == "" && wd.Context().Err() != nil:
			yield(providers.Chunk{}, wd.Err(req.Model, wd.Context().Err()))
		case finish == "":
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindUnavailable, Model: req.Model, Err: providers.ErrIncomplete})
		case !text && finish != genai.FinishReasonStop && finish != genai.FinishReasonMaxTokens:
			// SAFETY, RECITATION and the like: the model refused.
			yield(providers.Chunk{}, providers.StreamError(providers.KindBadRequest, req.Model, "reply blocked: %s", finish))
		case usage != nil:
			yield(providers.Chunk{Usage: usage}, nil)
		}
	}
}

// classify turns an SDK error into a *providers.Error. An APIError is an
// HTTP error response when the recorder saw an error status, otherwise an
// error object sent inside the stream.
func (c *Client) classify(wd *providers.Watchdog, x *exchange, model string, err error) *providers.Error {
	var apiErr genai.APIError
	if !errors.As(err, &apiErr) {
		return wd.Err(model, err)
	}
	msg := providers.Redact(fmt.Sprintf("%s: %s", apiErr.Status, apiErr.Message), c.key)
	kind := providers.StatusKind(apiErr.Code)
	if apiErr.Code == 0 {
		kind = providers.KindUnavailable
	}
	// Gemini answers a bad key with 400 INVALID_ARGUMENT.
	if strings.Contains(fmt.Sprint(apiErr.Details), "API_KEY_INVALID") {
		kind = providers.KindAuth
	}
	if x.status >= 400 {
		return &providers.Error{Kind: kind, Status: x.status, RetryAfter: x.retryAfter, Model: model, Err: errors.New(msg)}
	}
	return providers.StreamError(kind, model, "stream error: %s", msg)
}
