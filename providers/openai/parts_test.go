package openai

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

// withFiles is a user message with an image and a PDF, as Prepare leaves
// it for a model whose input includes both.
var withFiles = providers.Request{
	Model: "gpt-4o",
	Messages: []providers.Message{{Role: providers.RoleUser, Text: "what is in these?", Attachments: []providers.Attachment{
		{Name: "cat.png", Type: "image/png", Data: []byte("PNGDATA")},
		{Name: "report.pdf", Type: "application/pdf", Data: []byte("%PDF-1.7")},
	}}},
}

func TestImageAndPDFParts(t *testing.T) {
	var body struct {
		Messages json.RawMessage `json:"messages"`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, realStream)
	}))
	defer srv.Close()
	r := providertest.Collect(newClient(t, srv.URL+"/v1", providertest.Timeouts()).Stream(context.Background(), withFiles))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := `[{"role":"user","content":[{"type":"text","text":"what is in these?"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,UE5HREFUQQ=="}},` +
		`{"type":"file","file":{"filename":"report.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjc="}}]}]`
	if string(body.Messages) != want {
		t.Errorf("messages\n got %s\nwant %s", body.Messages, want)
	}
}
