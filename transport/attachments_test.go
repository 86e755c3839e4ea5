package transport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/persistence/storetest"
)

var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00")

// upload posts body (size bytes) as the part "file" named name, streamed
// through a pipe so the client holds no copy of it.
func upload(t *testing.T, s *Server, tok, name string, body io.Reader) *http.Response {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, err := mw.CreateFormFile("file", name)
		if err == nil {
			_, err = io.Copy(fw, body)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr().String()+"/api/attachments", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := oneShot.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

type uploaded struct {
	ID, Name, Type, Transcript string
	Size                       int64
}

func mustUpload(t *testing.T, s *Server, tok, name string, body []byte) uploaded {
	t.Helper()
	resp := upload(t, s, tok, name, bytes.NewReader(body))
	defer resp.Body.Close()
	var out struct{ Attachment uploaded }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload %s: %d, %v", name, resp.StatusCode, err)
	}
	return out.Attachment
}

func get(t *testing.T, s *Server, tok, path string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.Addr().String()+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := oneShot.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func uploadTypes(c *Config) {
	c.UploadTypes = []string{"image/png", "application/pdf", "text/plain", "audio/webm"}
}

func TestUploadSniffsAndServesToOwnerAndAdminsOnly(t *testing.T) {
	s := startServer(t, uploadTypes)
	ann := token(t, "ann")
	png := append(append([]byte(nil), pngHeader...), "pixels"...)
	// The client's name says PDF; the bytes say PNG, and win.
	a := mustUpload(t, s, ann, "../../cat.pdf", png)
	if a.Type != "image/png" || a.Name != "cat.pdf" || a.Size != int64(len(png)) {
		t.Fatalf("stored %+v", a)
	}
	resp := get(t, s, ann, "/api/attachments/"+a.ID)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 200 || !bytes.Equal(body, png) || h.Get("Content-Type") != "image/png" ||
		h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Content-Disposition") != `inline; filename=cat.pdf` {
		t.Errorf("owner's read: %d %q %v", resp.StatusCode, body, h)
	}
	if resp := get(t, s, token(t, "bob"), "/api/attachments/"+a.ID); resp.StatusCode != 404 || errorBody(t, resp) != "not_found" {
		t.Errorf("another user's read: %d", resp.StatusCode)
	}
	admin, err := auth.Sign([]byte(secret), auth.Identity{UserID: "root", Roles: []string{auth.RoleAdmin}}, time.Hour, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if resp := get(t, s, admin, "/api/attachments/"+a.ID); resp.StatusCode != 200 {
		t.Errorf("admin's read: %d", resp.StatusCode)
	} else {
		resp.Body.Close()
	}
	txt := mustUpload(t, s, ann, "notes.txt", []byte("plain words\n"))
	resp = get(t, s, ann, "/api/attachments/"+txt.ID)
	resp.Body.Close()
	if txt.Type != "text/plain" || resp.Header.Get("Content-Disposition") != "attachment; filename=notes.txt" {
		t.Errorf("text file %+v served as %q", txt, resp.Header.Get("Content-Disposition"))
	}
}

func TestUploadLimits(t *testing.T) {
	s := startServer(t, uploadTypes, func(c *Config) { c.MaxUploadBytes = 64 << 10 })
	ann := token(t, "ann")
	tests := []struct {
		name   string
		body   []byte
		status int
		code   string
	}{
		{"over max_upload_bytes", append(append([]byte(nil), pngHeader...), make([]byte, 64<<10)...), 413, "too_large"},
		{"a type outside upload_types", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00>\x00"), 415, "unsupported"},
		{"a GIF when only PNG images are allowed", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), 415, "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := upload(t, s, ann, "f", bytes.NewReader(tt.body))
			if resp.StatusCode != tt.status || errorBody(t, resp) != tt.code {
				t.Errorf("status %d, want %d %s", resp.StatusCode, tt.status, tt.code)
			}
		})
	}
	if got := mustUpload(t, s, ann, "ok.png", append(append([]byte(nil), pngHeader...), make([]byte, 1000)...)); got.ID == "" {
		t.Error("a file under the limit was refused")
	}
}

// fakeTranscriber counts what it is sent.
type fakeTranscriber struct {
	mu    sync.Mutex
	calls [][]byte
}

func (f *fakeTranscriber) Transcribe(_ context.Context, _, _ string, audio []byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, audio)
	return "call me back", nil
}

func TestVoiceNoteIsTranscribedOnce(t *testing.T) {
	tr := &fakeTranscriber{}
	s := startServer(t, uploadTypes, func(c *Config) { c.Transcriber = tr })
	ann := token(t, "ann")
	webm := []byte("\x1aE\xdf\xa3\x9fB\x86\x81\x01B\xf7\x81\x01B\xf2\x81\x04B\xf3\x81\x08B\x82\x84webmB\x87\x81\x04B\x85\x81\x02")
	a := mustUpload(t, s, ann, "voice.webm", webm)
	if a.Type != "audio/webm" || a.Transcript != "call me back" {
		t.Fatalf("stored %+v", a)
	}
	resp := get(t, s, ann, "/api/attachments/"+a.ID+"/meta")
	var meta struct{ Attachment uploaded }
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	if meta.Attachment.Transcript != "call me back" {
		t.Errorf("meta %+v", meta)
	}
	if len(tr.calls) != 1 || !bytes.Equal(tr.calls[0], webm) {
		t.Errorf("the transcriber got %d calls", len(tr.calls))
	}
}

// TestUploadMemoryIsBounded streams a 10 MiB file through the server in
// process, on the embedded store (the shared test store is FerretDB in
// this process, whose own translation would be measured too; a real
// MongoDB runs elsewhere), and samples the heap meanwhile: what is in use
// stays a small fraction of the file, as the upload is sealed and stored a
// chunk at a time.
func TestUploadMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a 10 MiB upload")
	}
	s := startServerOn(t, storetest.SQLite(t), uploadTypes)
	defer debug.SetGCPercent(debug.SetGCPercent(20))
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)

	var peak uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
		}
	}()
	const size = 10 << 20
	body := io.MultiReader(bytes.NewReader(pngHeader), io.LimitReader(rand.NewChaCha8([32]byte{1}), size-int64(len(pngHeader))))
	resp := upload(t, s, token(t, "ann"), "big.png", body)
	close(stop)
	<-sampled
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	grew := int64(peak) - int64(base.HeapInuse)
	t.Logf("10 MiB upload: heap in use peaked %s above the %s before it", mib(grew), mib(int64(base.HeapInuse)))
	if grew > 4<<20 {
		t.Errorf("the heap grew by %s during a 10 MiB upload, want under 4 MiB", mib(grew))
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
