package openai

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/chatbox/chatbox/providers/providertest"
)

func TestTranscribeSendsTheAudioOnce(t *testing.T) {
	var (
		mu    sync.Mutex
		calls int
		got   struct {
			model, name, typ, auth, path string
			audio                        []byte
		}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		got.path, got.auth = r.URL.Path, r.Header.Get("Authorization")
		f, h, err := r.FormFile("file")
		if err != nil {
			t.Errorf("no file part: %v", err)
			return
		}
		got.audio, _ = io.ReadAll(f)
		got.name, got.typ, got.model = h.Filename, h.Header.Get("Content-Type"), r.FormValue("model")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"text":"call me back"}`)
	}))
	defer srv.Close()
	tr, err := NewTranscriber(Config{BaseURL: srv.URL + "/v1", APIKey: "sk-test", Timeouts: providertest.Timeouts()}, "whisper-1")
	if err != nil {
		t.Fatal(err)
	}
	audio := []byte("\x1aE\xdf\xa3 webm audio")
	text, err := tr.Transcribe(context.Background(), "voice.webm", "audio/webm", audio)
	if err != nil || text != "call me back" {
		t.Fatalf("got %q, %v", text, err)
	}
	if calls != 1 || got.path != "/v1/audio/transcriptions" || got.auth != "Bearer sk-test" || got.model != "whisper-1" ||
		got.name != "voice.webm" || got.typ != "audio/webm" || !bytes.Equal(got.audio, audio) {
		t.Errorf("the server saw %d calls, %+v", calls, got)
	}
}
