// Package openai streams replies from the OpenAI Chat Completions API and
// from every server that speaks it: Ollama, vLLM, llama.cpp, LM Studio.
//
// It is a small hand-written client: one POST {base_url}/chat/completions
// with stream: true, read as Server-Sent Events, each chunk decoded by a
// parser that allocates only the text it yields. It makes exactly one HTTP
// request per Stream call; retries and failover belong to the Catalog.
//
// A Client is immutable after New and safe for concurrent use.
package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/sse"
)

// DefaultBaseURL is OpenAI's own endpoint.
const DefaultBaseURL = "https://api.openai.com/v1"

// Config configures a Client. Zero values are documented per field.
type Config struct {
	// BaseURL is the API root, e.g. "http://127.0.0.1:11434/v1" for Ollama;
	// empty means DefaultBaseURL.
	BaseURL string
	// APIKey is sent as a bearer token. It is required for DefaultBaseURL
	// and optional elsewhere, since local servers usually have none.
	APIKey string
	// Timeouts bound each request; all three are required.
	Timeouts providers.Timeouts
	// HTTPClient overrides the client built from Timeouts.Connect.
	HTTPClient *http.Client
}

// Client is an OpenAI-compatible provider.
type Client struct {
	url      string
	key      string
	auth     string // "Bearer <key>", built once
	timeouts providers.Timeouts
	http     *http.Client
}

var _ providers.Provider = (*Client)(nil)

// New checks cfg and builds a Client. It does no I/O.
func New(cfg Config) (*Client, error) {
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	endpoint, err := providers.Endpoint("openai", cfg.BaseURL, DefaultBaseURL, cfg.APIKey, "/chat/completions")
	if err != nil {
		return nil, err
	}
	c := &Client{
		url:      endpoint,
		key:      cfg.APIKey,
		timeouts: cfg.Timeouts,
		http:     cfg.HTTPClient,
	}
	if c.key != "" {
		c.auth = "Bearer " + c.key
	}
	if c.http == nil {
		c.http = providers.NewHTTPClient(cfg.Timeouts)
	}
	return c, nil
}

type wireMessage struct {
	Role string `json:"role"`
	// Content is a string, or for a message with images or PDFs an
	// array of content parts.
	Content any `json:"content"`
}

// wirePart is one content part: text, an image as a data: URL, or a file
// (a PDF) as a data: URL with its name.
type wirePart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *wireURL  `json:"image_url,omitempty"`
	File     *wireFile `json:"file,omitempty"`
}

type wireURL struct {
	URL string `json:"url"`
}

type wireFile struct {
	Filename string `json:"filename"`
	FileData string `json:"file_data"`
}

// content is m's content: its text alone, or parts when it carries
// attachments (Prepare left only the images and PDFs the model takes).
func content(m providers.Message) any {
	if len(m.Attachments) == 0 {
		return m.Text
	}
	parts := make([]wirePart, 0, len(m.Attachments)+1)
	if m.Text != "" {
		parts = append(parts, wirePart{Type: "text", Text: m.Text})
	}
	for _, a := range m.Attachments {
		url := providers.DataURL(a)
		if strings.HasPrefix(a.Type, "image/") {
			parts = append(parts, wirePart{Type: "image_url", ImageURL: &wireURL{URL: url}})
		} else {
			parts = append(parts, wirePart{Type: "file", File: &wireFile{Filename: a.Name, FileData: url}})
		}
	}
	return parts
}

type wireRequest struct {
	Model         string        `json:"model"`
	Messages      []wireMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func encodeRequest(req providers.Request) ([]byte, error) {
	w := wireRequest{Model: req.Model, Stream: true}
	w.StreamOptions.IncludeUsage = true
	w.Messages = make([]wireMessage, 0, len(req.Messages)+1)
	if req.System != "" {
		w.Messages = append(w.Messages, wireMessage{Role: "system", Content: req.System})
	}
	for _, m := range req.Messages {
		w.Messages = append(w.Messages, wireMessage{Role: string(m.Role), Content: content(m)})
	}
	return json.Marshal(w)
}

// Stream sends one streaming chat completion and yields its text as it
// arrives, then a final chunk with usage when the server reports it.
func (c *Client) Stream(ctx context.Context, req providers.Request) iter.Seq2[providers.Chunk, error] {
	return func(yield func(providers.Chunk, error) bool) {
		wd := providers.NewWatchdog(ctx, c.timeouts, req.Model)
		defer wd.Stop()
		body, err := encodeRequest(req)
		if err != nil {
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindBadRequest, Model: req.Model, Err: fmt.Errorf("encode request: %w", err)})
			return
		}
		header := http.Header{}
		if c.auth != "" {
			header.Set("Authorization", c.auth)
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

func (c *Client) read(wd *providers.Watchdog, model string, body io.Reader, yield func(providers.Chunk, error) bool) {
	r := sse.NewReader(body)
	var (
		ch       chunk
		scratch  []byte
		usage    *providers.Usage
		finished bool // a finish_reason arrived: the reply is whole even without [DONE]
	)
	for {
		ev, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			yield(providers.Chunk{}, wd.Err(model, err))
			return
		}
		if string(ev.Data) == "[DONE]" {
			finished = true
			break
		}
		if err := decodeChunk(ev.Data, &ch, &scratch); err != nil {
			yield(providers.Chunk{}, providers.StreamError(providers.KindUnavailable, model, "malformed chunk: %v", err))
			return
		}
		if ch.Error != nil {
			yield(providers.Chunk{}, streamError(model, ch.Error, c.key))
			return
		}
		wd.Event()
		if ch.HasUsage {
			usage = &providers.Usage{InputTokens: ch.PromptTokens, OutputTokens: ch.CompletionTokens}
		}
		finished = finished || ch.Finished
		if ch.Content != "" {
			wd.Text()
			if !yield(providers.Chunk{Text: ch.Content}, nil) {
				return
			}
		}
	}
	if !finished {
		yield(providers.Chunk{}, &providers.Error{Kind: providers.KindUnavailable, Model: model, Err: providers.ErrIncomplete})
		return
	}
	if usage != nil {
		yield(providers.Chunk{Usage: usage}, nil)
	}
}

// apiError is OpenAI's error object. Compatible servers vary: code may be a
// number or a string, and some send the error as a bare string.
type apiError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

func parseAPIError(raw []byte) apiError {
	var e apiError
	if err := json.Unmarshal(raw, &e); err != nil {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			e.Message = s
		} else {
			e.Message = string(raw)
		}
	}
	return e
}

// kind maps an error object to a Kind: a numeric HTTP-like code first
// (vLLM, llama.cpp), then OpenAI's type and code names.
func (e apiError) kind() providers.Kind {
	var n int
	if json.Unmarshal(e.Code, &n) == nil && n >= 400 && n < 600 {
		return providers.StatusKind(n)
	}
	var code string
	_ = json.Unmarshal(e.Code, &code)
	for _, s := range []string{e.Type, code} {
		switch {
		case strings.Contains(s, "rate_limit"):
			return providers.KindRateLimited
		case s == "invalid_request_error" || s == "BadRequestError" || s == "context_length_exceeded":
			return providers.KindBadRequest
		case s == "authentication_error" || s == "invalid_api_key" || s == "permission_error":
			return providers.KindAuth
		}
	}
	return providers.KindUnavailable
}

func streamError(model string, raw []byte, key string) *providers.Error {
	e := parseAPIError(raw)
	msg := e.Message
	if e.Type != "" {
		msg = e.Type + ": " + msg
	}
	return providers.StreamError(e.kind(), model, "stream error: %s", providers.Redact(msg, key))
}

// errorMessage extracts the message of an error response body.
func errorMessage(body []byte) string {
	var w struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &w) != nil || len(w.Error) == 0 {
		return ""
	}
	e := parseAPIError(w.Error)
	if e.Type != "" {
		return e.Type + ": " + e.Message
	}
	return e.Message
}
