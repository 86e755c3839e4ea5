// Package anthropic streams replies from the Anthropic Messages API:
// POST {base_url}/v1/messages with stream: true, read as Server-Sent Events
// (message_start, content_block_*, message_delta, message_stop, ping, error).
//
// It makes exactly one HTTP request per Stream call; retries and failover
// belong to the Catalog. A Client is immutable after New and safe for
// concurrent use.
package anthropic

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/sse"
)

const (
	// DefaultBaseURL is Anthropic's own endpoint.
	DefaultBaseURL = "https://api.anthropic.com"
	// DefaultMaxTokens bounds a reply when Config.MaxTokens is zero; the
	// API requires a bound.
	DefaultMaxTokens = 1024
	// APIVersion is the anthropic-version header this client speaks.
	APIVersion = "2023-06-01"
)

// Config configures a Client. Zero values are documented per field.
type Config struct {
	// BaseURL is the API root without /v1; empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as x-api-key. It is required for DefaultBaseURL and
	// optional elsewhere (a proxy may add it).
	APIKey string
	// MaxTokens bounds each reply; zero means DefaultMaxTokens.
	MaxTokens int
	// Timeouts bound each request; all three are required.
	Timeouts providers.Timeouts
	// HTTPClient overrides the client built from Timeouts.Connect.
	HTTPClient *http.Client
}

// Client is the Anthropic provider.
type Client struct {
	url       string
	key       string
	maxTokens int
	timeouts  providers.Timeouts
	http      *http.Client
}

var _ providers.Provider = (*Client)(nil)

// New checks cfg and builds a Client. It does no I/O.
func New(cfg Config) (*Client, error) {
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("anthropic: %w", err)
	}
	endpoint, err := providers.Endpoint("anthropic", cfg.BaseURL, DefaultBaseURL, cfg.APIKey, "/v1/messages")
	if err != nil {
		return nil, err
	}
	c := &Client{
		url:       endpoint,
		key:       cfg.APIKey,
		maxTokens: cfg.MaxTokens,
		timeouts:  cfg.Timeouts,
		http:      cfg.HTTPClient,
	}
	if c.maxTokens <= 0 {
		c.maxTokens = DefaultMaxTokens
	}
	if c.http == nil {
		c.http = providers.NewHTTPClient(cfg.Timeouts)
	}
	return c, nil
}

type wireMessage struct {
	Role string `json:"role"`
	// Content is a string, or for a message with images or PDFs an
	// array of content blocks.
	Content any `json:"content"`
}

// wireBlock is a content block: text, or an image or a document (PDF)
// with a base64 source.
type wireBlock struct {
	Type   string      `json:"type"`
	Text   string      `json:"text,omitempty"`
	Source *wireSource `json:"source,omitempty"`
}

type wireSource struct {
	Type      string `json:"type"` // "base64"
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
}

// content is m's content: its text, or blocks when it carries images or
// PDFs, the files first, as Anthropic advises.
func content(m providers.Message) any {
	if len(m.Attachments) == 0 {
		return m.Text
	}
	blocks := make([]wireBlock, 0, len(m.Attachments)+1)
	for _, a := range m.Attachments {
		kind := "document"
		if strings.HasPrefix(a.Type, "image/") {
			kind = "image"
		}
		blocks = append(blocks, wireBlock{Type: kind, Source: &wireSource{Type: "base64", MediaType: a.Type,
			Data: base64.StdEncoding.EncodeToString(a.Data)}})
	}
	if m.Text != "" {
		blocks = append(blocks, wireBlock{Type: "text", Text: m.Text})
	}
	return blocks
}

type wireRequest struct {
	Model     string        `json:"model"`
	MaxTokens int           `json:"max_tokens"`
	System    string        `json:"system,omitempty"`
	Messages  []wireMessage `json:"messages"`
	Stream    bool          `json:"stream"`
}

// encodeRequest shapes the conversation the way the API insists on: no
// empty text, and a user turn first (leading assistant turns are dropped;
// the Catalog's Trim already avoids them).
func (c *Client) encodeRequest(req providers.Request) ([]byte, error) {
	w := wireRequest{Model: req.Model, MaxTokens: c.maxTokens, System: req.System, Stream: true}
	w.Messages = make([]wireMessage, 0, len(req.Messages))
	for _, m := range req.Messages {
		if (m.Text == "" && len(m.Attachments) == 0) || (len(w.Messages) == 0 && m.Role == providers.RoleAssistant) {
			continue
		}
		w.Messages = append(w.Messages, wireMessage{Role: string(m.Role), Content: content(m)})
	}
	if len(w.Messages) == 0 {
		return nil, errors.New("no user message to send")
	}
	return json.Marshal(w)
}

// Stream sends one streaming Messages request and yields its text as it
// arrives, then a final chunk with usage.
func (c *Client) Stream(ctx context.Context, req providers.Request) iter.Seq2[providers.Chunk, error] {
	return func(yield func(providers.Chunk, error) bool) {
		wd := providers.NewWatchdog(ctx, c.timeouts, req.Model)
		defer wd.Stop()
		body, err := c.encodeRequest(req)
		if err != nil {
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindBadRequest, Model: req.Model, Err: fmt.Errorf("encode request: %w", err)})
			return
		}
		header := http.Header{}
		header.Set("anthropic-version", APIVersion)
		if c.key != "" {
			header.Set("x-api-key", c.key)
		}
		resp, err := providers.PostStream(wd, c.http, c.url, body, header, req.Model, c.key, errorMessage)
		if err != nil {
			yield(providers.Chunk{}, err)
			return
		}
		defer resp.Body.Close()
		c.read(wd, req.Model, resp.Body, yield)
	}
}

// event is the union of the stream's event payloads that matter here.
type event struct {
	Type    string `json:"type"`
	Message struct {
		Usage wireUsage `json:"usage"`
	} `json:"message"`
	Delta struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"delta"`
	Usage wireUsage `json:"usage"`
	Error apiError  `json:"error"`
}

type wireUsage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

type apiError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (c *Client) read(wd *providers.Watchdog, model string, body io.Reader, yield func(providers.Chunk, error) bool) {
	r := sse.NewReader(body)
	var usage providers.Usage
	var ev event
	for {
		e, err := r.Next()
		if err == io.EOF {
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindUnavailable, Model: model, Err: providers.ErrIncomplete})
			return
		}
		if err != nil {
			yield(providers.Chunk{}, wd.Err(model, err))
			return
		}
		if e.Type == "ping" {
			continue // a keep-alive: not progress
		}
		ev = event{}
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			yield(providers.Chunk{}, providers.StreamError(providers.KindUnavailable, model, "malformed %s event: %v", e.Type, err))
			return
		}
		wd.Event()
		switch e.Type {
		case "message_start":
			usage.InputTokens = ev.Message.Usage.InputTokens
			usage.OutputTokens = ev.Message.Usage.OutputTokens
		case "content_block_delta":
			// Thinking, signature and tool-input deltas are not reply text.
			if ev.Delta.Type == "text_delta" && ev.Delta.Text != "" {
				wd.Text()
				if !yield(providers.Chunk{Text: ev.Delta.Text}, nil) {
					return
				}
			}
		case "message_delta":
			// Counts here are cumulative for the message.
			usage.OutputTokens = max(usage.OutputTokens, ev.Usage.OutputTokens)
			usage.InputTokens = max(usage.InputTokens, ev.Usage.InputTokens)
		case "message_stop":
			yield(providers.Chunk{Usage: &usage}, nil)
			return
		case "error":
			msg := providers.Redact(ev.Error.Type+": "+ev.Error.Message, c.key)
			yield(providers.Chunk{}, providers.StreamError(errorKind(ev.Error.Type), model, "stream error: %s", msg))
			return
		}
	}
}

// errorKind maps Anthropic's error types, which mid-stream arrive without
// an HTTP status.
func errorKind(typ string) providers.Kind {
	switch typ {
	case "rate_limit_error":
		return providers.KindRateLimited
	case "authentication_error", "permission_error":
		return providers.KindAuth
	case "invalid_request_error", "not_found_error", "request_too_large":
		return providers.KindBadRequest
	case "timeout_error":
		return providers.KindTimeout
	}
	return providers.KindUnavailable // api_error, overloaded_error, anything new
}

func errorMessage(body []byte) string {
	var w struct {
		Error apiError `json:"error"`
	}
	if json.Unmarshal(body, &w) != nil || w.Error.Message == "" {
		return ""
	}
	return w.Error.Type + ": " + w.Error.Message
}
