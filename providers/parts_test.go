package providers_test

import (
	"reflect"
	"testing"

	"github.com/chatbox/chatbox/providers"
)

func TestPrepare(t *testing.T) {
	img := providers.Attachment{Name: "cat.png", Type: "image/png", Data: []byte("PNG")}
	pdf := providers.Attachment{Name: "r.pdf", Type: "application/pdf", Data: []byte("%PDF")}
	txt := providers.Attachment{Name: "notes.txt", Type: "text/plain", Data: []byte("line one")}
	voice := providers.Attachment{Name: "voice.webm", Type: "audio/webm", Data: []byte("OGG"), Transcript: "call me back"}
	mute := providers.Attachment{Name: "song.mp3", Type: "audio/mpeg", Data: []byte("ID3")}
	msg := providers.Message{Role: providers.RoleUser, Text: "look", Attachments: []providers.Attachment{img, pdf, txt, voice, mute}}
	tests := []struct {
		name   string
		inputs []string
		want   providers.Message
	}{
		{"text only", []string{"text"}, providers.Message{Role: providers.RoleUser, Text: "look\n\n" +
			`[Attached file "cat.png" (image/png) — not readable by this model]` + "\n\n" +
			`[Attached file "r.pdf" (application/pdf) — not readable by this model]` + "\n\n" +
			"[File \"notes.txt\":]\nline one\n\n" +
			"[Voice note \"voice.webm\", transcribed:]\ncall me back\n\n" +
			`[Attached file "song.mp3" (audio/mpeg) — not readable by this model]`}},
		{"images and PDFs", []string{"text", "image", "pdf"}, providers.Message{Role: providers.RoleUser, Text: "look\n\n" +
			"[File \"notes.txt\":]\nline one\n\n" +
			"[Voice note \"voice.webm\", transcribed:]\ncall me back\n\n" +
			`[Attached file "song.mp3" (audio/mpeg) — not readable by this model]`,
			Attachments: []providers.Attachment{img, pdf}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []providers.Message{{Role: providers.RoleAssistant, Text: "hi"}, msg}
			got := providers.Prepare(in, tt.inputs)
			if !reflect.DeepEqual(got[1], tt.want) {
				t.Errorf("got  %#v\nwant %#v", got[1], tt.want)
			}
			if !reflect.DeepEqual(in[1], msg) {
				t.Error("Prepare changed its input")
			}
		})
	}
}
