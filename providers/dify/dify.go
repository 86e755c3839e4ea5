// Package dify streams replies from a Dify app's chat API (CONTRACT §10):
// POST {base_url}/chat-messages in streaming mode, read as Server-Sent
// Events whose "event" field says what each carries.
//
// Dify keeps the conversation's history itself: a request carries only the
// user's newest message and the conversation id Dify gave earlier
// (providers.Request.Conversation, "" the first time); the id Dify answers
// is yielded in a Chunk for the caller to keep. A reply that is cancelled
// or abandoned before its end is stopped on Dify's side too, through
// POST {base_url}/chat-messages/{task_id}/stop. One Stream call makes one
// chat request (and at most one stop request); retries and failover belong
// to the Catalog.
//
// A Client is immutable after New and safe for concurrent use.
package dify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"strings"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/sse"
)

// Config configures a Client.
type Config struct {
	// BaseURL is the Dify API root, e.g. "https://api.dify.ai/v1" or a
	// self-hosted "http://dify.internal/v1". Required.
	BaseURL string
	// APIKey is the app's API key, sent as a bearer token. Required.
	APIKey string
	// Timeouts bound each request; all three are required.
	Timeouts providers.Timeouts
	// HTTPClient overrides the client built from Timeouts.Connect.
	HTTPClient *http.Client
}

// Client is a Dify app as a provider.
type Client struct {
	base     string
	key      string
	auth     string
	timeouts providers.Timeouts
	http     *http.Client
}

var (
	_ providers.Provider           = (*Client)(nil)
	_ providers.ConversationKeeper = (*Client)(nil)
)

// New checks cfg and builds a Client. It does no I/O.
func New(cfg Config) (*Client, error) {
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("dify: %w", err)
	}
	if cfg.APIKey == "" {
		return nil, errors.New("dify: an API key is required")
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dify: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	c := &Client{base: strings.TrimSuffix(cfg.BaseURL, "/"), key: cfg.APIKey, auth: "Bearer " + cfg.APIKey,
		timeouts: cfg.Timeouts, http: cfg.HTTPClient}
	if c.http == nil {
		c.http = providers.NewHTTPClient(cfg.Timeouts)
	}
	return c, nil
}

// KeepsConversation is true: Dify holds the history.
func (c *Client) KeepsConversation() bool { return true }

type wireRequest struct {
	Inputs         struct{} `json:"inputs"`
	Query          string   `json:"query"`
	ResponseMode   string   `json:"response_mode"`
	User           string   `json:"user"`
	ConversationID string   `json:"conversation_id"`
}

// query is what Dify is asked: the newest user message, with a note for
// each file still attached (Dify's own file upload is not used).
func query(req providers.Request) (string, error) {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role != providers.RoleUser {
			continue
		}
		q := m.Text
		for _, a := range m.Attachments {
			q += "\n\n" + providers.Placeholder(a)
		}
		if strings.TrimSpace(q) == "" {
			break
		}
		return q, nil
	}
	return "", errors.New("no user message to send")
}

// event is one SSE data object of Dify's stream; which fields are set
// depends on Event.
type event struct {
	Event          string `json:"event"`
	TaskID         string `json:"task_id"`
	ConversationID string `json:"conversation_id"`
	Answer         string `json:"answer"`
	// message_end: Dify's docs sample it with id, the API sends
	// message_id; neither is needed, both are accepted.
	Metadata *struct {
		Usage *struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	} `json:"metadata"`
	// error
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Stream sends one streaming chat message and yields the answer as it
// arrives: the first chunk also carries Dify's conversation id; the last
// the usage of message_end.
func (c *Client) Stream(ctx context.Context, req providers.Request) iter.Seq2[providers.Chunk, error] {
	return func(yield func(providers.Chunk, error) bool) {
		model := req.Model
		if model == "" {
			model = "dify"
		}
		q, err := query(req)
		if err != nil {
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindBadRequest, Model: model, Err: err})
			return
		}
		w := wireRequest{Query: q, ResponseMode: "streaming", User: req.User, ConversationID: req.Conversation}
		body, err := json.Marshal(w)
		if err != nil {
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindBadRequest, Model: model, Err: err})
			return
		}
		wd := providers.NewWatchdog(ctx, c.timeouts, model)
		defer wd.Stop()
		header := http.Header{}
		header.Set("Authorization", c.auth)
		resp, err := providers.PostStream(wd, c.http, c.base+"/chat-messages", body, header, model, c.key, errorMessage)
		if err != nil {
			yield(providers.Chunk{}, err)
			return
		}
		task, finished := c.read(wd, model, resp.Body, yield)
		resp.Body.Close()
		if !finished && task != "" {
			c.stop(task, req.User)
		}
	}
}

// read yields the stream's text. It returns the task id, and whether the
// reply ended (message_end or error) rather than being abandoned.
func (c *Client) read(wd *providers.Watchdog, model string, body io.Reader, yield func(providers.Chunk, error) bool) (task string, finished bool) {
	r := sse.NewReader(body)
	conversation := ""
	for {
		ev, err := r.Next()
		if err == io.EOF {
			yield(providers.Chunk{}, &providers.Error{Kind: providers.KindUnavailable, Model: model, Err: providers.ErrIncomplete})
			return task, true
		}
		if err != nil {
			yield(providers.Chunk{}, wd.Err(model, err))
			return task, false
		}
		var e event
		if err := json.Unmarshal(ev.Data, &e); err != nil {
			yield(providers.Chunk{}, providers.StreamError(providers.KindUnavailable, model, "malformed event: %v", err))
			return task, false
		}
		if e.Event != "ping" {
			wd.Event() // a ping keeps the connection open, it is no progress
		}
		if e.TaskID != "" {
			task = e.TaskID
		}
		chunk := providers.Chunk{}
		if e.ConversationID != "" && e.ConversationID != conversation {
			conversation = e.ConversationID
			chunk.Conversation = conversation
		}
		switch e.Event {
		case "message", "agent_message":
			if e.Answer == "" && chunk.Conversation == "" {
				continue
			}
			if e.Answer != "" {
				wd.Text()
			}
			chunk.Text = e.Answer
			if !yield(chunk, nil) {
				return task, false
			}
		case "message_end":
			if e.Metadata != nil && e.Metadata.Usage != nil {
				chunk.Usage = &providers.Usage{InputTokens: e.Metadata.Usage.PromptTokens, OutputTokens: e.Metadata.Usage.CompletionTokens}
			}
			if chunk.Usage != nil || chunk.Conversation != "" {
				yield(chunk, nil)
			}
			return task, true
		case "error":
			kind := providers.KindUnavailable
			if e.Status >= 400 {
				kind = providers.StatusKind(e.Status)
			}
			yield(providers.Chunk{}, providers.StreamError(kind, model, "stream error %s: %s", e.Code, providers.Redact(e.Message, c.key)))
			return task, true
		}
		// ping, workflow and node events, message_file, tts: progress
		// without text.
	}
}

// stop asks Dify to stop generating task, bounded by the connect timeout;
// its own context, since the request's is what ended. A failure is not
// reported: the reply has ended here either way.
func (c *Client) stop(task, user string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeouts.Connect)
	defer cancel()
	body, _ := json.Marshal(map[string]string{"user": user})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/chat-messages/"+url.PathEscape(task)+"/stop", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := c.http.Do(req); err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
	}
}

// errorMessage is the message of a Dify error answer
// ({"code","message","status"}).
func errorMessage(body []byte) string {
	var e struct{ Code, Message string }
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	if e.Code != "" {
		return e.Code + ": " + e.Message
	}
	return e.Message
}
