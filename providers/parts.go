package providers

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// Model inputs, as [[llm.models]] input lists them.
const (
	InputText  = "text"
	InputImage = "image"
	InputPDF   = "pdf"
	InputAudio = "audio"
)

// MaxInlineText is how much of a text file is inlined into a message; the
// rest is cut, and the cut said.
const MaxInlineText = 32 << 10

// Prepare is msgs as a model that takes inputs sees them: an image or a
// PDF the model takes stays an Attachment, for the vendor to send as its
// own part; a text file is inlined into Text; a voice note with a
// transcript becomes that text; anything else becomes a short placeholder
// naming the file. msgs is not modified; messages without attachments are
// shared.
func Prepare(msgs []Message, inputs []string) []Message {
	if !slices.ContainsFunc(msgs, func(m Message) bool { return len(m.Attachments) > 0 }) {
		return msgs
	}
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = m
		if len(m.Attachments) == 0 {
			continue
		}
		var kept []Attachment
		var text strings.Builder
		text.WriteString(m.Text)
		note := func(s string) {
			if text.Len() > 0 {
				text.WriteString("\n\n")
			}
			text.WriteString(s)
		}
		for _, a := range m.Attachments {
			switch kind := KindOfType(a.Type); {
			case (kind == InputImage || kind == InputPDF) && slices.Contains(inputs, kind):
				kept = append(kept, a)
			case a.Type == "text/plain":
				note(inlineText(a))
			case kind == InputAudio && a.Transcript != "":
				note(fmt.Sprintf("[Voice note %q, transcribed:]\n%s", a.Name, a.Transcript))
			default:
				note(Placeholder(a))
			}
		}
		out[i].Text, out[i].Attachments = text.String(), kept
	}
	return out
}

// KindOfType is the model input a media type needs: image, pdf, audio, or
// text for anything else.
func KindOfType(t string) string {
	switch {
	case strings.HasPrefix(t, "image/"):
		return InputImage
	case t == "application/pdf":
		return InputPDF
	case strings.HasPrefix(t, "audio/"):
		return InputAudio
	}
	return InputText
}

// Placeholder is what a model is told of a file it cannot take.
func Placeholder(a Attachment) string {
	return fmt.Sprintf("[Attached file %q (%s) — not readable by this model]", a.Name, a.Type)
}

func inlineText(a Attachment) string {
	body := a.Data
	cut := false
	if len(body) > MaxInlineText {
		body, cut = body[:MaxInlineText], true
		for len(body) > 0 && !utf8.RuneStart(body[len(body)-1]) {
			body = body[:len(body)-1] // a rune cut in two
		}
		if len(body) > 0 && !utf8.FullRune(body[len(body)-1:]) {
			body = body[:len(body)-1]
		}
	}
	s := fmt.Sprintf("[File %q:]\n%s", a.Name, strings.ToValidUTF8(string(body), "\uFFFD"))
	if cut {
		s += "\n[… the rest of the file is cut]"
	}
	return s
}

// DataURL is a's bytes as a data: URL, as OpenAI takes images and files.
func DataURL(a Attachment) string {
	return "data:" + a.Type + ";base64," + base64.StdEncoding.EncodeToString(a.Data)
}
