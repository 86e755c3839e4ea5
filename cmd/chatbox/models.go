package main

import (
	"fmt"
	"log/slog"

	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/demo"
)

// buildCatalog turns the [[llm.models]] configuration into a provider catalog.
// getenv reads API keys named by api_key_env.
func buildCatalog(cfg config.LLM, getenv func(string) string, log *slog.Logger) (*providers.Catalog, error) {
	entries := make([]providers.Entry, 0, len(cfg.Models))
	for _, m := range cfg.Models {
		e := providers.Entry{ID: m.ID, Name: m.Name, Model: m.Model, SystemPrompt: m.SystemPrompt, Fallback: m.Fallback}
		switch m.Provider {
		case "demo":
			e.Provider = &demo.Provider{Delay: cfg.DemoDelay.Duration}
		default:
			return nil, fmt.Errorf("llm.models %q: provider %q is not supported", m.ID, m.Provider)
		}
		entries = append(entries, e)
	}
	return providers.NewCatalog(entries, cfg.DefaultModel)
}
