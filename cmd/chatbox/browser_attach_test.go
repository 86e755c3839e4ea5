package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserAttachments: a user attaches an image with the file input,
// sees it upload, sends it, and sees it in the conversation as an img
// named by the file; a file of a type that is not allowed is refused in
// words.
func TestBrowserAttachments(t *testing.T) {
	e := newBrowserEnv(t)
	dir := t.TempDir()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	img.Set(3, 3, color.RGBA{R: 200, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	catPath := filepath.Join(dir, "cat.png")
	exePath := filepath.Join(dir, "tool.exe")
	if err := os.WriteFile(catPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exePath, []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00PE\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := e.open(t, e.users, "/#token="+url.QueryEscape(signToken(t, "iris", "Iris")))
	p.wait("the hello", `document.getElementById("me").textContent === "Iris"`)

	p.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{exePath}))
	p.wait("the refusal in words", `document.getElementById("pending").textContent.includes("“tool.exe” is a kind of file that cannot be sent here")`)
	p.do(chromedp.Click(chromedp.CSS(`#pending button[aria-label="Remove tool.exe"]`)))

	p.do(chromedp.SetUploadFiles(chromedp.ID("file"), []string{catPath}))
	p.wait("the upload to finish", `document.getElementById("pending").textContent.includes("cat.png") && document.getElementById("pending").textContent.includes("uploaded")`)
	p.say("What is in this picture?")
	p.wait("the image in the conversation", `(() => { const i = document.querySelector('#log .msg--user .msg-files img[alt="cat.png"]');
		return !!i && i.complete && i.naturalWidth === 8; })()`)
	p.wait("the reply to complete", lastReplyDone)
	if !evalIn[bool](p, `document.getElementById("pending").hidden`) {
		t.Error("the sent file is still listed as pending")
	}
	p.screenshot("attachment.png")

	// A reload shows it again, from the stored message.
	p.do(chromedp.Reload())
	p.wait("the image after a reload", `(() => { const i = document.querySelector('#log .msg--user .msg-files img[alt="cat.png"]');
		return !!i && i.complete && i.naturalWidth === 8; })()`)
}
