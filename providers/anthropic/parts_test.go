package anthropic

import (
	"context"
	"testing"

	"github.com/chatbox/chatbox/providers"
	"github.com/chatbox/chatbox/providers/providertest"
)

func TestImageAndPDFBlocks(t *testing.T) {
	rec := providertest.RecordBodies(t, realStream)
	req := providers.Request{Model: "claude-sonnet-4-5", Messages: providertest.ImageAndPDF()}
	r := providertest.Collect(newClient(t, rec.URL, providertest.Timeouts()).Stream(context.Background(), req))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	want := `[{"role":"user","content":[` +
		`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"UE5HREFUQQ=="}},` +
		`{"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0xLjc="}},` +
		`{"type":"text","text":"what is in these?"}]}]`
	if got := rec.Field("messages"); got != want {
		t.Errorf("messages\n got %s\nwant %s", got, want)
	}
}
