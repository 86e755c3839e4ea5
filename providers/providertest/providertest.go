// Package providertest is the shared scaffolding of the provider tests: the
// configured defaults as providers values, fake vendor servers that speak
// each vendor's real streaming format, and one conformance suite that every
// vendor runs.
package providertest

import (
	"github.com/chatbox/chatbox/config"
	"github.com/chatbox/chatbox/providers"
)

// Timeouts are the configured defaults (config.Default) as
// providers.Timeouts.
func Timeouts() providers.Timeouts {
	l := config.Default().LLM
	return providers.Timeouts{Connect: l.ConnectTimeout.Duration, FirstToken: l.FirstTokenTimeout.Duration, Idle: l.IdleTimeout.Duration}
}

// Options are the configured defaults (config.Default) as providers.Options.
func Options() providers.Options {
	d := config.Default()
	return providers.Options{
		MaxRetries: d.LLM.MaxRetries, Backoff: d.Tuning.RetryBackoff, MaxBackoff: d.Tuning.MaxRetryBackoff,
		BreakerThreshold: d.Tuning.BreakerThreshold, BreakerCooldown: d.Tuning.BreakerCooldown,
	}
}
