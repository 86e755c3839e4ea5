package dify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

// realStream is a reply as Dify streams it (docs.dify.ai, chat-messages in
// streaming mode), its message_end with id as the docs sample it.
const realStream = `data: {"event": "message", "task_id": "task-1", "id": "m-1", "message_id": "m-1", "conversation_id": "conv-9", "answer": "Hello", "created_at": 1705395332}

data: {"event": "ping"}

data: {"event": "agent_message", "task_id": "task-1", "id": "m-1", "message_id": "m-1", "conversation_id": "conv-9", "answer": ", wörld", "created_at": 1705395332}

data: {"event": "message_end", "task_id": "task-1", "id": "m-1", "conversation_id": "conv-9", "metadata": {"usage": {"prompt_tokens": 1033, "completion_tokens": 128, "total_tokens": 1161}}}

`

func newClient(t *testing.T, url string, to providers.Timeouts) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: url, APIKey: "app-secret", Timeouts: to})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var convo = providers.Request{
	Model: "dify", User: "alice", Conversation: "",
	Messages: []providers.Message{{Role: providers.RoleUser, Text: "hi"}, {Role: providers.RoleAssistant, Text: "hello"}, {Role: providers.RoleUser, Text: "how are you?"}},
}

// fake is a Dify server: it records chat and stop requests.
type fake struct {
	mu    sync.Mutex
	chats []map[string]any
	auths []string
	stops []string // "task user"
	reply string
	hold  chan struct{} // when set, the reply waits on it after its first event
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	if task, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/chat-messages/"), "/stop"); ok && r.Method == http.MethodPost {
		f.stops = append(f.stops, fmt.Sprint(task, " ", body["user"]))
		f.mu.Unlock()
		io.WriteString(w, `{"result":"success"}`)
		return
	}
	f.chats = append(f.chats, body)
	f.auths = append(f.auths, r.Header.Get("Authorization"))
	reply, hold := f.reply, f.hold
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	if hold != nil {
		io.WriteString(w, `data: {"event": "message", "task_id": "task-7", "conversation_id": "conv-9", "answer": "Hel"}`+"\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-hold:
		case <-r.Context().Done():
		}
		return
	}
	io.WriteString(w, reply)
}

func startFake(t *testing.T, reply string) (*fake, string) {
	f := &fake{reply: reply}
	s := httptest.NewServer(f)
	t.Cleanup(s.Close)
	return f, s.URL + "/v1"
}

func TestStreamConversationAndUsage(t *testing.T) {
	f, base := startFake(t, realStream)
	c := newClient(t, base, providertest.Timeouts())
	var conv []string
	r := providertest.Collect(func(yield func(providers.Chunk, error) bool) {
		for ch, err := range c.Stream(context.Background(), convo) {
			if ch.Conversation != "" {
				conv = append(conv, ch.Conversation)
			}
			if !yield(ch, err) {
				return
			}
		}
	})
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.Text() != "Hello, wörld" || r.Usage == nil || *r.Usage != (providers.Usage{InputTokens: 1033, OutputTokens: 128}) {
		t.Errorf("text %q usage %+v", r.Text(), r.Usage)
	}
	if len(conv) != 1 || conv[0] != "conv-9" {
		t.Errorf("conversation ids yielded %q, want conv-9 once", conv)
	}
	got, _ := json.Marshal(f.chats[0])
	if want := `{"conversation_id":"","inputs":{},"query":"how are you?","response_mode":"streaming","user":"alice"}`; string(got) != want {
		t.Errorf("request %s", got)
	}
	if f.auths[0] != "Bearer app-secret" {
		t.Errorf("auth %q", f.auths[0])
	}

	// The next message of the session sends the id back.
	next := convo
	next.Conversation = "conv-9"
	if r := providertest.Collect(c.Stream(context.Background(), next)); r.Err != nil {
		t.Fatal(r.Err)
	}
	if f.chats[1]["conversation_id"] != "conv-9" {
		t.Errorf("second request %v", f.chats[1])
	}
}

func TestStopCallsDifysStopEndpoint(t *testing.T) {
	f, base := startFake(t, "")
	f.hold = make(chan struct{})
	defer close(f.hold)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var err error
	for ch, e := range newClient(t, base, providertest.Timeouts()).Stream(ctx, convo) {
		if e != nil {
			err = e
			break
		}
		if ch.Text != "" {
			cancel() // the user pressed stop
		}
	}
	if pe := providertest.AsError(t, err); pe.Kind != providers.KindCanceled {
		t.Fatalf("err %v, want canceled", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.stops) != 1 || f.stops[0] != "task-7 alice" {
		t.Errorf("stop requests %q, want one for task-7 by alice", f.stops)
	}
}

func TestErrorEventFailsTheReply(t *testing.T) {
	_, base := startFake(t, `data: {"event": "message", "task_id": "t", "conversation_id": "c", "answer": "par"}`+"\n\n"+
		`data: {"event": "error", "task_id": "t", "status": 400, "code": "invalid_param", "message": "model quota exceeded"}`+"\n\n")
	r := providertest.Collect(newClient(t, base, providertest.Timeouts()).Stream(context.Background(), convo))
	pe := providertest.AsError(t, r.Err)
	if r.Text() != "par" || pe.Kind != providers.KindBadRequest || !strings.Contains(pe.Error(), "model quota exceeded") {
		t.Errorf("text %q err %v", r.Text(), r.Err)
	}
}

// wire is Dify's stream for the conformance suite's fake.
var wire = providertest.Wire{
	Text: func(text string) string {
		b, _ := json.Marshal(map[string]string{"event": "message", "task_id": "t1", "conversation_id": "c1", "answer": text})
		return "data: " + string(b) + "\n\n"
	},
	End: func(in, out int64) string {
		return fmt.Sprintf(`data: {"event": "message_end", "task_id": "t1", "message_id": "m1", "conversation_id": "c1", "metadata": {"usage": {"prompt_tokens": %d, "completion_tokens": %d}}}`+"\n\n", in, out)
	},
	KeepAlive: `data: {"event": "ping"}` + "\n\n",
	Error: func(status int) string {
		return fmt.Sprintf(`{"code": "err_%d", "message": "failed", "status": %d}`, status, status)
	},
}

// TestConformance runs the shared suite against the fake speaking Dify's
// SSE. The suite's server answers every path; a proxy in front sends it
// the chat requests and answers stop requests itself, so the suite counts
// only what it sent.
func TestConformance(t *testing.T) {
	providertest.Run(t, providertest.Vendor{
		Wire: wire,
		New: func(t *testing.T, base string, to providers.Timeouts) providers.Provider {
			target, _ := url.Parse(base)
			proxy := httputil.NewSingleHostReverseProxy(target)
			proxy.FlushInterval = -1
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/stop") {
					io.WriteString(w, `{"result":"success"}`)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(front.Close)
			return newClient(t, front.URL, to)
		},
		Request: convo,
	})
}
