package demo

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

func TestStreamsTheDeterministicReplyWordByWord(t *testing.T) {
	req := providers.Request{Messages: []providers.Message{{Role: providers.RoleUser, Text: "hello there"}}}
	var b strings.Builder
	var chunks int
	var usage *providers.Usage
	for c, err := range (&Provider{}).Stream(context.Background(), req) {
		if err != nil {
			t.Fatal(err)
		}
		if c.Usage != nil {
			usage = c.Usage
			continue
		}
		if strings.Count(strings.TrimSpace(c.Text), " ") != 0 {
			t.Fatalf("chunk %q is more than one word", c.Text)
		}
		b.WriteString(c.Text)
		chunks++
	}
	if b.String() != Reply("hello there") || !strings.Contains(b.String(), "demo") {
		t.Fatalf("streamed %q, want Reply(...) = %q", b.String(), Reply("hello there"))
	}
	if usage == nil || usage.OutputTokens != int64(chunks) || usage.InputTokens != 2 {
		t.Fatalf("usage %+v for %d chunks", usage, chunks)
	}
}

func TestStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for c, err := range (&Provider{}).Stream(ctx, providers.Request{}) {
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want context.Canceled", err)
			}
			return
		}
		if c.Text != "" {
			n++
			cancel()
		}
	}
	t.Fatalf("stream ended without the cancellation error after %d chunks", n)
}

func TestUsageComesLast(t *testing.T) {
	req := providers.Request{Messages: []providers.Message{{Role: providers.RoleUser, Text: "one two three"}}}
	r := providertest.Collect((&Provider{}).Stream(context.Background(), req))
	if r.Err != nil || r.Text() != Reply("one two three") {
		t.Fatalf("text %q err %v", r.Text(), r.Err)
	}
	if r.Usage == nil || !r.UsageLast || r.Usage.InputTokens != 3 || r.Usage.OutputTokens != int64(len(r.Texts)) {
		t.Fatalf("usage %+v (last: %v) for %d chunks", r.Usage, r.UsageLast, len(r.Texts))
	}
}
