package gemini

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

func TestImageAndPDFInlineData(t *testing.T) {
	rec := providertest.RecordBodies(t, realStream)
	req := providers.Request{Model: "gemini-2.5-flash", Messages: providertest.ImageAndPDF()}
	r := providertest.Collect(newClient(t, rec.URL, providertest.Timeouts()).Stream(context.Background(), req))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := `[{"parts":[{"inlineData":{"data":"UE5HREFUQQ==","mimeType":"image/png"}},` +
		`{"inlineData":{"data":"JVBERi0xLjc=","mimeType":"application/pdf"}},{"text":"what is in these?"}],"role":"user"}]`
	if got := rec.Field("contents"); got != want {
		t.Errorf("contents\n got %s\nwant %s", got, want)
	}
}
