package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"time"

	"github.com/chatbox/chatbox/providers"
)

// Transcriber turns voice notes into text through an OpenAI-compatible
// POST {base_url}/audio/transcriptions (OpenAI's Whisper and
// gpt-4o-transcribe, whisper.cpp's and vLLM's servers): one multipart
// request with the file and the model, answered {"text": ...}. It makes
// exactly one request per call and never retries: a voice note is
// transcribed once.
type Transcriber struct {
	url, auth, model, key string
	http                  *http.Client
}

// NewTranscriber builds a Transcriber for model on cfg's server. The
// whole call is bounded by twice cfg.Timeouts.FirstToken: transcription
// answers only once it has the whole text. It does no I/O.
func NewTranscriber(cfg Config, model string) (*Transcriber, error) {
	if err := cfg.Timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	endpoint, err := providers.Endpoint("openai", cfg.BaseURL, DefaultBaseURL, cfg.APIKey, "/audio/transcriptions")
	if err != nil {
		return nil, err
	}
	t := &Transcriber{url: endpoint, model: model, key: cfg.APIKey, http: cfg.HTTPClient}
	if cfg.APIKey != "" {
		t.auth = "Bearer " + cfg.APIKey
	}
	if t.http == nil {
		t.http = &http.Client{Timeout: cfg.Timeouts.Connect + 2*cfg.Timeouts.FirstToken}
	}
	return t, nil
}

// Transcribe sends audio (a file named name of mediaType) and returns its text.
func (t *Transcriber) Transcribe(ctx context.Context, name, mediaType string, audio []byte) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, name))
	h.Set("Content-Type", mediaType)
	fw, err := mw.CreatePart(h)
	if err != nil {
		return "", err
	}
	fw.Write(audio)
	mw.WriteField("model", t.model)
	mw.WriteField("response_format", "json")
	if err := mw.Close(); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, &body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if t.auth != "" {
		req.Header.Set("Authorization", t.auth)
	}
	start := time.Now()
	resp, err := t.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("transcribe with %s: %s", t.model, providers.Redact(err.Error(), t.key))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("transcribe with %s: read answer: %w", t.model, err)
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("transcribe with %s: HTTP %d after %s: %s", t.model, resp.StatusCode,
			time.Since(start).Round(time.Millisecond), providers.Redact(errorMessage(raw), t.key))
	}
	var out struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("transcribe with %s: the answer is not JSON with a text", t.model)
	}
	return out.Text, nil
}
