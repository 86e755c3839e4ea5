package providers_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chatbox/chatbox/providers"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"2", 2 * time.Second},
		{" 0.5 ", 500 * time.Millisecond},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"999999999", time.Hour},
	}
	for _, tt := range tests {
		if got := providers.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestClassification(t *testing.T) {
	tests := []struct {
		status    int
		kind      providers.Kind
		retryable bool
	}{
		{400, providers.KindBadRequest, false},
		{401, providers.KindAuth, false},
		{403, providers.KindAuth, false},
		{404, providers.KindBadRequest, false},
		{408, providers.KindTimeout, true},
		{413, providers.KindBadRequest, false},
		{429, providers.KindRateLimited, true},
		{500, providers.KindUnavailable, true},
		{503, providers.KindUnavailable, true},
		{529, providers.KindUnavailable, true},
	}
	for _, tt := range tests {
		e := &providers.Error{Kind: providers.StatusKind(tt.status), Status: tt.status}
		if e.Kind != tt.kind || e.Retryable() != tt.retryable {
			t.Errorf("status %d: kind %s retryable %v", tt.status, e.Kind, e.Retryable())
		}
	}
	for _, err := range []error{providers.ErrFirstTokenTimeout, providers.ErrIdleTimeout} {
		if (&providers.Error{Kind: providers.KindTimeout, Err: err}).Retryable() {
			t.Errorf("%v is retryable", err)
		}
	}
	if (&providers.Error{Kind: providers.KindUnavailable, Err: providers.ErrCircuitOpen}).Retryable() {
		t.Error("an open circuit is retryable")
	}
	wrapped := fmt.Errorf("generate: %w", &providers.Error{Kind: providers.KindAuth})
	if providers.KindOf(wrapped) != providers.KindAuth || providers.KindOf(context.Canceled) != providers.KindCanceled ||
		providers.KindOf(errors.New("x")) != providers.KindUnavailable || providers.KindOf(nil) != "" {
		t.Error("KindOf")
	}
	e := &providers.Error{Kind: providers.KindRateLimited, Status: 429, Model: "gpt", Err: errors.New("slow down")}
	if got := e.Error(); got != "provider model gpt: rate_limited (status 429): slow down" {
		t.Errorf("Error() = %q", got)
	}
}
