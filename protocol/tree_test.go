package protocol

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestDecodeTreeAndPresenceCommands(t *testing.T) {
	tests := []struct {
		name, frame string
		ok          bool
		want        Command
	}{
		{"send continuing a branch", `{"type":"send","id":"1","session_id":"s","text":"hi","parent_id":"m1"}`, true,
			Command{Type: TypeSend, ID: "1", SessionID: "s", Text: "hi", ParentID: "m1"}},
		{"regenerate the head's reply", `{"type":"regenerate","id":"2","session_id":"s"}`, true,
			Command{Type: TypeRegenerate, ID: "2", SessionID: "s"}},
		{"regenerate a reply", `{"type":"regenerate","id":"2","session_id":"s","message_id":"m2"}`, true,
			Command{Type: TypeRegenerate, ID: "2", SessionID: "s", MessageID: "m2"}},
		{"regenerate without session", `{"type":"regenerate","id":"2"}`, false, Command{}},
		{"edit", `{"type":"edit","id":"3","session_id":"s","message_id":"m1","text":"better"}`, true,
			Command{Type: TypeEdit, ID: "3", SessionID: "s", MessageID: "m1", Text: "better"}},
		{"edit without message", `{"type":"edit","id":"3","session_id":"s","text":"x"}`, false, Command{}},
		{"edit with blank text", `{"type":"edit","id":"3","session_id":"s","message_id":"m1","text":" \n"}`, false, Command{}},
		{"typing", `{"type":"typing","session_id":"s"}`, true, Command{Type: TypeTyping, SessionID: "s"}},
		{"typing without session", `{"type":"typing"}`, false, Command{}},
		{"rename", `{"type":"rename","session_id":"s","title":"Trip"}`, true, Command{Type: TypeRename, SessionID: "s", Title: "Trip"}},
		{"rename to blank", `{"type":"rename","session_id":"s","title":"  "}`, false, Command{}},
		{"rename with a control character", `{"type":"rename","session_id":"s","title":"a\u0007b"}`, false, Command{}},
		{"rename too long", `{"type":"rename","session_id":"s","title":"` + strings.Repeat("x", MaxTitleLen+1) + `"}`, false, Command{}},
		{"delete", `{"type":"delete","session_id":"s"}`, true, Command{Type: TypeDelete, SessionID: "s"}},
		{"delete without session", `{"type":"delete"}`, false, Command{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.frame))
			if !tt.ok {
				if e, ok := errors.AsType[*Error](err); !ok || e.Code != CodeBadRequest {
					t.Fatalf("Decode(%s) = %+v, %v; want bad_request", tt.frame, got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Decode(%s) = %+v, %v; want %+v", tt.frame, got, err, tt.want)
			}
		})
	}
}

func TestMessagesAndSessionsCarryTheTree(t *testing.T) {
	ev := NewMessage("s", Message{ID: "m2", Seq: 2, ParentID: "m1"})
	if !strings.Contains(string(ev.Frame), `"parent_id":"m1"`) {
		t.Errorf("message event %s has no parent_id", ev.Frame)
	}
	first := NewMessage("s", Message{ID: "m1", Seq: 1})
	if !strings.Contains(string(first.Frame), `"parent_id":""`) {
		t.Errorf("a first message's event %s does not say its parent is none", first.Frame)
	}
	typing := NewTyping("s", TypingAssistant, "GPT", "m3", "m2")
	want := `{"type":"typing","session_id":"s","role":"assistant","author":"GPT","message_id":"m3","parent_id":"m2"}`
	if string(typing.Frame) != want {
		t.Errorf("typing event = %s, want %s", typing.Frame, want)
	}
}
