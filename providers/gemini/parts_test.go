package gemini

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

func TestImageAndPDFInlineData(t *testing.T) {
	var body struct {
		Contents json.RawMessage `json:"contents"`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, realStream)
	}))
	defer srv.Close()
	req := providers.Request{Model: "gemini-2.5-flash", Messages: []providers.Message{{Role: providers.RoleUser, Text: "what is in these?",
		Attachments: []providers.Attachment{
			{Name: "cat.png", Type: "image/png", Data: []byte("PNGDATA")},
			{Name: "report.pdf", Type: "application/pdf", Data: []byte("%PDF-1.7")},
		}}}}
	r := providertest.Collect(newClient(t, srv.URL, providertest.Timeouts()).Stream(context.Background(), req))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := `[{"parts":[{"inlineData":{"data":"UE5HREFUQQ==","mimeType":"image/png"}},` +
		`{"inlineData":{"data":"JVBERi0xLjc=","mimeType":"application/pdf"}},{"text":"what is in these?"}],"role":"user"}]`
	if string(body.Contents) != want {
		t.Errorf("contents\n got %s\nwant %s", body.Contents, want)
	}
}
