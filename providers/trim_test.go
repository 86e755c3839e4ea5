package providers_test

import (
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/chatbox/chatbox/providers"
)

func TestTrimExamples(t *testing.T) {
	u := func(s string) providers.Message { return providers.Message{Role: providers.RoleUser, Text: s} }
	a := func(s string) providers.Message { return providers.Message{Role: providers.RoleAssistant, Text: s} }
	tests := []struct {
		name   string
		in     []providers.Message
		budget int
		want   []providers.Message
	}{
		{"fits", []providers.Message{u("ab"), a("cd"), u("ef")}, 6, []providers.Message{u("ab"), a("cd"), u("ef")}},
		{"no limit", []providers.Message{u("ab"), a("cd"), u("ef")}, 0, []providers.Message{u("ab"), a("cd"), u("ef")}},
		{"drops oldest", []providers.Message{u("ab"), a("cd"), u("ef"), a("gh"), u("ij")}, 7, []providers.Message{u("ef"), a("gh"), u("ij")}},
		{"no leading assistant", []providers.Message{u("ab"), a("cd"), u("ef")}, 5, []providers.Message{u("ef")}},
		{"greeting dropped", []providers.Message{a("hello"), u("hi")}, 0, []providers.Message{u("hi")}},
		{"newest truncated", []providers.Message{u("old"), u("0123456789")}, 4, []providers.Message{u("6789")}},
		{"rune boundary", []providers.Message{u("xxé")}, 1, []providers.Message{u("")}},
		{"empty", nil, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := providers.Trim(tt.in, tt.budget)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if !reflect.DeepEqual(got[i], tt.want[i]) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func genConversation(t *rapid.T, endWithUser bool) []providers.Message {
	n := rapid.IntRange(0, 12).Draw(t, "n")
	msgs := make([]providers.Message, n)
	for i := range msgs {
		role := providers.RoleUser
		if rapid.Bool().Draw(t, "assistant") {
			role = providers.RoleAssistant
		}
		msgs[i] = providers.Message{Role: role, Text: rapid.StringMatching(`[a-zé😀 ]{0,30}`).Draw(t, "text")}
	}
	if endWithUser && n > 0 {
		msgs[n-1].Role = providers.RoleUser
	}
	return msgs
}

func size(msgs []providers.Message) int {
	n := 0
	for _, m := range msgs {
		n += len(m.Text)
	}
	return n
}

func TestTrimProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		msgs := genConversation(t, rapid.Bool().Draw(t, "endWithUser"))
		budget := rapid.IntRange(1, 120).Draw(t, "budget")
		got := providers.Trim(msgs, budget)
		if len(msgs) == 0 {
			if len(got) != 0 {
				t.Fatalf("invented messages: %v", got)
			}
			return
		}
		if size(got) > budget {
			t.Fatalf("size %d over budget %d", size(got), budget)
		}
		last := msgs[len(msgs)-1]
		if len(got) == 0 || got[len(got)-1].Role != last.Role || !strings.HasSuffix(last.Text, got[len(got)-1].Text) {
			t.Fatalf("newest message lost: %v from %v", got, msgs)
		}
		if len(last.Text) <= budget {
			// A true suffix of the input, and the newest message whole.
			k := len(msgs) - len(got)
			for i := range got {
				if !reflect.DeepEqual(got[i], msgs[k+i]) {
					t.Fatalf("not a suffix: %v of %v", got, msgs)
				}
			}
			// Nothing dropped that fitted, except leading assistant turns.
			if k > 0 && size(msgs[k-1:]) <= budget && msgs[k-1].Role != providers.RoleAssistant {
				t.Fatalf("dropped %v although it fitted (budget %d)", msgs[k-1], budget)
			}
		} else if len(got) != 1 || len(got[0].Text) < budget-3 {
			// Cut to the budget, moved forward by at most 3 bytes to a rune start.
			t.Fatalf("truncation of %q to %d: %v", last.Text, budget, got)
		}
		if len(got) > 1 && got[0].Role == providers.RoleAssistant {
			t.Fatalf("window starts with an assistant turn: %v", got)
		}
	})
}
