package actors

import (
	"strings"
	"testing"
)

func TestNewNamesTheInvalidField(t *testing.T) {
	for _, tt := range []struct {
		field string
		edit  func(*Config)
	}{
		{"Models", func(c *Config) { c.Models = nil }},
		{"SessionIdle", func(c *Config) { c.SessionIdle = 0 }},
		{"UserIdle", func(c *Config) { c.UserIdle = 0 }},
		{"OutboxLimit", func(c *Config) { c.OutboxLimit = 0 }},
		{"CheckpointEvery", func(c *Config) { c.CheckpointEvery = 0 }},
		{"HistoryWindow", func(c *Config) { c.HistoryWindow = 0 }},
		{"StoreTimeout", func(c *Config) { c.StoreTimeout = 0 }},
		{"ContextBudget", func(c *Config) { c.ContextBudget = -1 }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			cfg := testConfig()
			cfg.Models = &stepModel{}
			tt.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "actors.Config."+tt.field) {
				t.Fatalf("err %v, want one naming actors.Config.%s", err, tt.field)
			}
		})
	}
	cfg := testConfig()
	cfg.Models, cfg.ContextBudget = &stepModel{}, 0 // zero: no trimming
	if _, err := New(cfg); err != nil {
		t.Fatalf("the configured defaults: %v", err)
	}
}
