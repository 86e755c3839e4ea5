package anthropic

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

// FuzzRead feeds arbitrary bytes to the Messages API stream parser. It
// never panics, ends every stream with exactly one final item (the usage
// or an error), yields nothing after it, and no error shows the API key.
func FuzzRead(f *testing.F) {
	f.Add([]byte(startEvent + textEvent + stopEvents))
	f.Add([]byte(startEvent + "event: ping\ndata: {}\n\n" + textEvent))
	f.Add([]byte("event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"sk-ant-secret\"}}\n\n"))
	f.Add([]byte("event: content_block_delta\ndata: {not json\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := New(Config{BaseURL: "http://127.0.0.1:1", APIKey: "sk-ant-secret", Timeouts: providertest.Timeouts()})
		if err != nil {
			t.Fatal(err)
		}
		wd := providers.NewWatchdog(context.Background(), providertest.Timeouts(), "m")
		defer wd.Stop()
		finals := 0
		c.read(wd, "m", bytes.NewReader(in), func(ch providers.Chunk, err error) bool {
			if finals > 0 {
				t.Fatalf("yielded %+v, %v after the final item", ch, err)
			}
			if err != nil || ch.Usage != nil {
				finals++
			}
			if err != nil && strings.Contains(err.Error(), "sk-ant-secret") {
				t.Fatalf("error shows the key: %v", err)
			}
			return true
		})
		if finals != 1 {
			t.Fatalf("%d final items, want 1", finals)
		}
	})
}
