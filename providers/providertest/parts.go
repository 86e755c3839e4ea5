package providertest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/chatbox/chatbox/providers"
)

// ImageAndPDF is a user message with an image and a PDF, as the catalog's
// Prepare leaves it for a model whose input takes both: what every
// vendor's parts test sends.
func ImageAndPDF() []providers.Message {
	return []providers.Message{{Role: providers.RoleUser, Text: "what is in these?", Attachments: []providers.Attachment{
		{Name: "cat.png", Type: "image/png", Data: []byte("PNGDATA")},
		{Name: "report.pdf", Type: "application/pdf", Data: []byte("%PDF-1.7")},
	}}}
}

// BodyRecorder is a fake vendor that answers every request with one
// stream and keeps the JSON body of the last request it got.
type BodyRecorder struct {
	URL string

	mu   sync.Mutex // guards body
	body map[string]json.RawMessage
}

// RecordBodies starts a BodyRecorder answering stream (the vendor's SSE);
// it is closed when the test ends.
func RecordBodies(t *testing.T, stream string) *BodyRecorder {
	t.Helper()
	rec := &BodyRecorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("request body: %v", err)
		}
		rec.mu.Lock()
		rec.body = body
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, stream)
	}))
	t.Cleanup(srv.Close)
	rec.URL = srv.URL
	return rec
}

// Field is the named top-level field of the last request's body, as sent.
func (r *BodyRecorder) Field(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return string(r.body[name])
}
