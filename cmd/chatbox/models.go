package main

import (
	"fmt"
	"log/slog"

	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/anthropic"
	"github.com/chatbox/chatbox/providers/demo"
	"github.com/chatbox/chatbox/providers/dify"
	"github.com/chatbox/chatbox/providers/gemini"
	"github.com/chatbox/chatbox/providers/openai"
)

// buildCatalog turns the [[llm.models]] configuration into a provider catalog.
// getenv reads API keys named by api_key_env. It does no network I/O: a
// vendor is first contacted by the first generation that uses it.
func buildCatalog(cfg config.LLM, tune config.Tuning, getenv func(string) string, log *slog.Logger) (*providers.Catalog, error) {
	timeouts := providers.Timeouts{
		Connect:    cfg.ConnectTimeout.Duration,
		FirstToken: cfg.FirstTokenTimeout.Duration,
		Idle:       cfg.IdleTimeout.Duration,
	}
	if err := timeouts.Validate(); err != nil {
		return nil, fmt.Errorf("llm: %w", err)
	}
	entries := make([]providers.Entry, 0, len(cfg.Models))
	for i, m := range cfg.Models {
		key := fmt.Sprintf("llm.models[%d]", i)
		if m.ID == cfg.TranscribeModel && m.ID != cfg.DefaultModel {
			continue // it transcribes voice notes (buildTranscriber); it does not chat
		}
		e := providers.Entry{ID: m.ID, Name: m.Name, Model: m.Model, SystemPrompt: m.SystemPrompt, Fallback: m.Fallback, Input: m.Input}
		apiKey := ""
		if m.APIKeyEnv != "" && getenv != nil {
			apiKey = getenv(m.APIKeyEnv)
		}
		switch m.Provider {
		case config.ProviderDemo:
		case config.ProviderOpenAI, config.ProviderAnthropic, config.ProviderGemini:
			if m.Model == "" {
				return nil, fmt.Errorf("%s.model: must name the vendor's model for provider %q", key, m.Provider)
			}
			// Local OpenAI-compatible servers need no key; the vendors' own
			// endpoints (and Gemini always) do.
			if apiKey == "" && (m.BaseURL == "" || m.Provider == config.ProviderGemini) {
				return nil, fmt.Errorf("%s.api_key_env: environment variable %q is empty; model %q needs an API key", key, m.APIKeyEnv, m.ID)
			}
		case config.ProviderDify:
			if apiKey == "" {
				return nil, fmt.Errorf("%s.api_key_env: environment variable %q is empty; model %q needs the Dify app's API key", key, m.APIKeyEnv, m.ID)
			}
		default:
			return nil, fmt.Errorf("%s.provider: %q is not supported (demo, openai, anthropic, gemini or dify)", key, m.Provider)
		}
		var err error
		switch m.Provider {
		case config.ProviderDemo:
			e.Provider = &demo.Provider{Delay: cfg.DemoDelay.Duration}
		case config.ProviderOpenAI:
			e.Provider, err = openai.New(openai.Config{BaseURL: m.BaseURL, APIKey: apiKey, Timeouts: timeouts})
		case config.ProviderAnthropic:
			e.Provider, err = anthropic.New(anthropic.Config{BaseURL: m.BaseURL, APIKey: apiKey, Timeouts: timeouts})
		case config.ProviderGemini:
			e.Provider, err = gemini.New(gemini.Config{BaseURL: m.BaseURL, APIKey: apiKey, Timeouts: timeouts})
		case config.ProviderDify:
			e.Provider, err = dify.New(dify.Config{BaseURL: m.BaseURL, APIKey: apiKey, Timeouts: timeouts})
		}
		if err != nil {
			// With the key checked above, what is left is the base URL. The
			// vendor packages never put the key in an error.
			return nil, fmt.Errorf("%s.base_url: %w", key, err)
		}
		entries = append(entries, e)
	}
	return providers.NewCatalogWithOptions(entries, cfg.DefaultModel, providers.Options{
		MaxRetries:       cfg.MaxRetries,
		Backoff:          tune.RetryBackoff,
		MaxBackoff:       tune.MaxRetryBackoff,
		BreakerThreshold: tune.BreakerThreshold,
		BreakerCooldown:  tune.BreakerCooldown,
		Logger:           log,
	})
}

// buildTranscriber is the transcriber of llm.transcribe_model, nil when
// none is configured.
func buildTranscriber(cfg config.LLM, getenv func(string) string) (*openai.Transcriber, error) {
	if cfg.TranscribeModel == "" {
		return nil, nil
	}
	for _, m := range cfg.Models {
		if m.ID != cfg.TranscribeModel {
			continue
		}
		apiKey := ""
		if m.APIKeyEnv != "" && getenv != nil {
			apiKey = getenv(m.APIKeyEnv)
		}
		t, err := openai.NewTranscriber(openai.Config{BaseURL: m.BaseURL, APIKey: apiKey, Timeouts: providers.Timeouts{
			Connect: cfg.ConnectTimeout.Duration, FirstToken: cfg.FirstTokenTimeout.Duration, Idle: cfg.IdleTimeout.Duration,
		}}, m.Model)
		if err != nil {
			return nil, fmt.Errorf("llm.transcribe_model: %w", err)
		}
		return t, nil
	}
	return nil, fmt.Errorf("llm.transcribe_model: %q is not one of the configured models", cfg.TranscribeModel)
}
