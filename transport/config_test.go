package transport

import (
	"strings"
	"testing"
)

func TestNewNamesTheInvalidField(t *testing.T) {
	for _, tt := range []struct {
		field string
		edit  func(*Config)
	}{
		{"Listen", func(c *Config) { c.Listen = "" }},
		{"MaxMessageBytes", func(c *Config) { c.MaxMessageBytes = 0 }},
		{"IdleTimeout", func(c *Config) { c.IdleTimeout = 0 }},
		{"PingInterval", func(c *Config) { c.PingInterval = 0 }},
		{"WriteTimeout", func(c *Config) { c.WriteTimeout = 0 }},
		{"ReadyTimeout", func(c *Config) { c.ReadyTimeout = 0 }},
	} {
		t.Run(tt.field, func(t *testing.T) {
			cfg := testConfig()
			tt.edit(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "transport.Config."+tt.field) {
				t.Fatalf("err %v, want one naming transport.Config.%s", err, tt.field)
			}
		})
	}
	if _, err := New(testConfig()); err != nil {
		t.Fatalf("the configured defaults: %v", err)
	}
}
