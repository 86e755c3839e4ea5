package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chatbox/chatbox/providers/openai/openaitest"
)

// openAIModel is a [[llm.models]] block for an OpenAI-compatible fake.
func openAIModel(id, baseURL string, fallback ...string) string {
	fb := ""
	if len(fallback) > 0 {
		fb = fmt.Sprintf("fallback = [%q]", strings.Join(fallback, `","`))
	}
	return fmt.Sprintf(`
[[llm.models]]
id = %q
name = %q
provider = "openai"
model = "fake-%s"
base_url = %q
system_prompt = "You are a test."
%s
`, id, strings.ToUpper(id), id, baseURL, fb)
}

func TestSecondRequestCarriesTheFirstExchangeAsHistory(t *testing.T) {
	fake := openaitest.NewServer(openaitest.Config{Reply: func(r openaitest.Request) string {
		return fmt.Sprintf("reply number %d", len(r.Messages))
	}})
	defer fake.Close()
	s := startServer(t, t.TempDir(), `default_model = "gpt"
max_retries = 0`+openAIModel("gpt", fake.URL))
	c := s.dial(t, signToken(t, "alice", "Alice"), false)

	c.send(map[string]any{"type": "send", "id": "1", "text": "first question"})
	sessionID := c.next(isType("ack")).str("session_id")
	first := c.next(isFinal).msg()
	c.send(map[string]any{"type": "send", "id": "2", "session_id": sessionID, "text": "second question"})
	second := c.next(isFinal).msg()
	if first.str("status") != "complete" || second.str("status") != "complete" {
		t.Fatalf("replies %v / %v", first, second)
	}

	reqs := fake.Requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests to the model, want 2", len(reqs))
	}
	var got []string
	for _, m := range reqs[1].Messages {
		got = append(got, m.Role+": "+m.Content)
	}
	want := []string{"system: You are a test.", "user: first question", "assistant: " + first.str("text"), "user: second question"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("second request carried\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if reqs[1].Model != "fake-gpt" {
		t.Errorf("vendor model %q, want fake-gpt", reqs[1].Model)
	}
}

func TestFailoverGivesOneCleanReply(t *testing.T) {
	down := openaitest.NewServer(openaitest.Config{})
	defer down.Close()
	down.FailNext(1000, 503, "")
	backup := openaitest.NewServer(openaitest.Config{Reply: func(openaitest.Request) string { return "answer from the backup" }})
	defer backup.Close()

	s := startServer(t, t.TempDir(), `default_model = "primary"
max_retries = 1`+openAIModel("primary", down.URL, "backup")+openAIModel("backup", backup.URL))
	c := s.dial(t, signToken(t, "alice", "Alice"), false)
	c.send(map[string]any{"type": "send", "id": "1", "text": "anyone there?"})
	events := c.collect(isFinal)
	final := events[len(events)-1].msg()
	if final.str("status") != "complete" || final.str("text") != "answer from the backup " && final.str("text") != "answer from the backup" {
		t.Fatalf("final %v", final)
	}
	if got := replyText(t, events, final.str("id")); got != final.str("text") {
		t.Fatalf("deltas %q differ from the reply %q: text was duplicated or lost", got, final.str("text"))
	}
	for _, e := range events {
		if e.str("type") == "error" {
			t.Fatalf("the user saw an error during failover: %v", e)
		}
	}
	if down.Count() != 2 || backup.Count() != 1 {
		t.Errorf("requests: primary %d (want 2: one retry), backup %d (want 1)", down.Count(), backup.Count())
	}
}

func TestProviderDownEndsTheReplyAsFailedWithAnError(t *testing.T) {
	down := openaitest.NewServer(openaitest.Config{})
	defer down.Close()
	down.FailNext(1000, 500, "")
	s := startServer(t, t.TempDir(), `default_model = "gpt"
max_retries = 0`+openAIModel("gpt", down.URL))
	c := s.dial(t, signToken(t, "alice", "Alice"), false)
	c.send(map[string]any{"type": "send", "id": "1", "text": "hello?"})
	events := c.collect(isType("error"))
	e := events[len(events)-1]
	if e.str("code") != "provider_unavailable" || strings.Contains(e.str("message"), "500") {
		t.Fatalf("error %v, want provider_unavailable with a generic message", e)
	}
	var final event
	for _, ev := range events {
		if isFinal(ev) {
			final = ev.msg()
		}
	}
	if final == nil || final.str("status") != "failed" {
		t.Fatalf("no failed reply before the error: %v", events)
	}
}
