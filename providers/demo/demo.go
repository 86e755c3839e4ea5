// Package demo is the offline provider: it streams a deterministic reply word
// by word at a human-visible pace, so Chatbox runs and demos with no API key
// and no network. Its replies say plainly that they come from a demo.
package demo

import (
	"context"
	"fmt"
	"hash/fnv"
	"iter"
	"strings"
	"time"

	"github.com/chatbox/chatbox/providers"
)

// Provider is the demo model. The zero value streams instantly (tests,
// benchmarks); the configured pace comes from llm.demo_delay.
type Provider struct {
	// Delay is the pause before each word; zero or less means none.
	Delay time.Duration
}

var _ providers.Provider = (*Provider)(nil)

var closings = []string{
	"Ask me anything else and I will answer in the same spirit.",
	"Configure a real model in chatbox.toml to get real answers.",
	"Every device you are signed in on sees this reply as it streams.",
}

// Reply is the full text the demo answers to a conversation whose last
// message is last. It is a pure function of its input.
func Reply(last string) string {
	h := fnv.New32a()
	h.Write([]byte(last))
	words := len(strings.Fields(last))
	return fmt.Sprintf("This is the offline demo model. You wrote %d words and %d bytes. %s",
		words, len(last), closings[h.Sum32()%uint32(len(closings))])
}

// Stream yields Reply word by word, each word with its following space, then
// a final chunk with usage estimated at one token per word.
func (p *Provider) Stream(ctx context.Context, req providers.Request) iter.Seq2[providers.Chunk, error] {
	return func(yield func(providers.Chunk, error) bool) {
		var last string
		if n := len(req.Messages); n > 0 {
			last = req.Messages[n-1].Text
		}
		delay := p.Delay
		var timer *time.Timer
		if delay > 0 {
			timer = time.NewTimer(delay)
			defer timer.Stop()
		}
		reply := Reply(last)
		var out int64
		for i := 0; i < len(reply); {
			j := strings.IndexByte(reply[i:], ' ')
			if j < 0 {
				j = len(reply)
			} else {
				j += i + 1
			}
			if timer != nil {
				timer.Reset(delay)
				select {
				case <-ctx.Done():
					yield(providers.Chunk{}, ctx.Err())
					return
				case <-timer.C:
				}
			} else if err := ctx.Err(); err != nil {
				yield(providers.Chunk{}, err)
				return
			}
			out++
			if !yield(providers.Chunk{Text: reply[i:j]}, nil) {
				return
			}
			i = j
		}
		in := int64(0)
		for _, m := range req.Messages {
			in += int64(len(strings.Fields(m.Text)))
		}
		yield(providers.Chunk{Usage: &providers.Usage{InputTokens: in, OutputTokens: out}}, nil)
	}
}
