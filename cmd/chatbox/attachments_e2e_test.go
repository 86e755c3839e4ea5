package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// rawOpenAI is an OpenAI-compatible fake that keeps each request body as
// sent and answers "ok".
type rawOpenAI struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (f *rawOpenAI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, b)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n")
}

func (f *rawOpenAI) requests() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.bodies...)
}

// uploadFile posts data as the part "file" of a multipart body.
func (s *testServer) uploadFile(t *testing.T, tok, name string, data []byte) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", name)
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, s.base+"/api/attachments", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Attachment map[string]any `json:"attachment"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Attachment
}

func TestAttachmentsReachTheModelAndStayPrivateAndEncrypted(t *testing.T) {
	fake := &rawOpenAI{}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	s := startServer(t, dir, `default_model = "vision"
max_retries = 0`+openAIModel("vision", srv.URL)+`input = ["text", "image"]
`)
	marker := "SECRET-PIXELS-0123456789"
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"),
		strings.Repeat(marker, 100)...)
	status, att := s.uploadFile(t, signToken(t, "alice", "Alice"), "cat.png", png)
	if status != http.StatusCreated || att["type"] != "image/png" {
		t.Fatalf("upload: %d %v", status, att)
	}
	attID := att["id"].(string)

	// Another user naming alice's file is refused, and nothing is stored.
	bobTok := signToken(t, "bob", "Bob")
	bob := s.dial(t, bobTok, false)
	bob.send(map[string]any{"type": "send", "id": "b1", "text": "mine now", "attachments": []string{attID}})
	if e := bob.next(isType("error")); e.str("code") != "bad_request" || e.str("id") != "b1" {
		t.Fatalf("bob's send: %v", e)
	}
	var bobs struct{ Sessions []any }
	if s.getJSON(t, bobTok, "/api/sessions", &bobs); len(bobs.Sessions) != 0 {
		t.Errorf("bob's refused send stored %d sessions", len(bobs.Sessions))
	}
	if n := len(fake.requests()); n != 0 {
		t.Errorf("the model was called %d times for a refused send", n)
	}

	aliceTok := signToken(t, "alice", "Alice")
	alice := s.dial(t, aliceTok, false)
	alice.send(map[string]any{"type": "send", "id": "a1", "text": "what is this?", "attachments": []string{attID}})
	ack := alice.next(isType("ack"))
	user := alice.next(func(e event) bool { return e.str("type") == "message" && e.msg().str("role") == "user" }).msg()
	if atts, _ := user["attachments"].([]any); len(atts) != 1 || atts[0].(map[string]any)["name"] != "cat.png" {
		t.Errorf("the user message carries %v", user["attachments"])
	}
	if reply := alice.next(isFinal).msg(); reply.str("status") != "complete" {
		t.Fatalf("reply %v", reply)
	}
	reqs := fake.requests()
	if len(reqs) != 1 || !bytes.Contains(reqs[0], []byte(`{"type":"image_url","image_url":{"url":"data:image/png;base64,`)) {
		t.Fatalf("the model got %q", reqs)
	}
	// Regenerate: the path carries the image again.
	alice.send(map[string]any{"type": "regenerate", "id": "a2", "session_id": ack.str("session_id")})
	alice.next(isFinal)
	if reqs := fake.requests(); len(reqs) != 2 || !bytes.Contains(reqs[1], []byte(`"image_url"`)) {
		t.Errorf("the regenerated reply's request lacks the image")
	}

	// The bytes are in no file under data_dir in plain text.
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			t.Errorf("%s holds the attachment's bytes in plain text", path)
		}
		return nil
	})

	// Deleting the session deletes its attachment.
	if st := s.doJSON(t, "DELETE", aliceTok, "/api/sessions/"+ack.str("session_id"), "", nil); st != http.StatusNoContent {
		t.Fatalf("delete: %d", st)
	}
	if st := s.doJSON(t, "GET", aliceTok, "/api/attachments/"+attID, "", nil); st != http.StatusNotFound {
		t.Errorf("the deleted session's attachment answers %d", st)
	}
}
