package openai

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

func TestImageAndPDFParts(t *testing.T) {
	rec := providertest.RecordBodies(t, realStream)
	r := providertest.Collect(newClient(t, rec.URL+"/v1", providertest.Timeouts()).Stream(context.Background(), providers.Request{Model: "gpt-4o", Messages: providertest.ImageAndPDF()}))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := `[{"role":"user","content":[{"type":"text","text":"what is in these?"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,UE5HREFUQQ=="}},` +
		`{"type":"file","file":{"filename":"report.pdf","file_data":"data:application/pdf;base64,JVBERi0xLjc="}}]}]`
	if got := rec.Field("messages"); got != want {
		t.Errorf("messages\n got %s\nwant %s", got, want)
	}
}
