package anthropic

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

func TestImageAndPDFBlocks(t *testing.T) {
	var body struct {
		Messages json.RawMessage `json:"messages"`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, realStream)
	}))
	defer srv.Close()
	req := providers.Request{Model: "claude-sonnet-4-5", Messages: []providers.Message{{Role: providers.RoleUser, Text: "what is in these?",
		Attachments: []providers.Attachment{
			{Name: "cat.png", Type: "image/png", Data: []byte("PNGDATA")},
			{Name: "report.pdf", Type: "application/pdf", Data: []byte("%PDF-1.7")},
		}}}}
	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), req))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := `[{"role":"user","content":[` +
		`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"UE5HREFUQQ=="}},` +
		`{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjc="}},` +
		`{"type":"text","text":"what is in these?"}]}]`
	if string(body.Messages) != want {
		t.Errorf("messages\n got %s\nwant %s", body.Messages, want)
	}
}
