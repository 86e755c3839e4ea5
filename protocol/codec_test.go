package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/gobwas/ws"
	"pgregory.net/rapid"
)

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, frame, code string
	}{
		{"broken json", `{"type":"send",`, CodeBadRequest},
		{"not an object", `[1,2]`, CodeBadRequest},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, CodeBadRequest},
		{"two objects by newline", "{\"type\":\"ping\"}\n{\"type\":\"ping\"}", CodeBadRequest},
		{"no type", `{"id":"x"}`, CodeBadRequest},
		{"unknown type", `{"type":"launch"}`, CodeBadRequest},
		{"send without text", `{"type":"send","id":"1"}`, CodeBadRequest},
		// CONTRACT §14: accepted and sent to the model before (verified on the parent commit).
		{"send with only spaces", `{"type":"send","id":"1","text":"   "}`, CodeBadRequest},
		{"send with only whitespace", `{"type":"send","id":"1","text":" \t\r\n\u00a0\u3000"}`, CodeBadRequest},
		{"stop without session", `{"type":"stop"}`, CodeBadRequest},
		{"end without session", `{"type":"end"}`, CodeBadRequest},
		{"sync negative", `{"type":"sync","session_id":"s","after_seq":-1}`, CodeBadRequest},
		{"id too long", `{"type":"ping","id":"` + strings.Repeat("x", 65) + `"}`, CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.frame))
			de, ok := errors.AsType[*Error](err)
			if !ok || de.Code != tt.code || de.Message == "" {
				t.Fatalf("Decode(%q) = %v, want code %s", tt.frame, err, tt.code)
			}
		})
	}
}

func TestDecodeKeepsTheIDOfABadCommand(t *testing.T) {
	cmd, err := Decode([]byte(`{"type":"send","id":"c1"}`))
	if _, ok := errors.AsType[*Error](err); !ok || cmd.ID != "c1" {
		t.Fatalf("got %+v, %v; want a *Error and the command's id c1", cmd, err)
	}
}

func genCommand(t *rapid.T) Command {
	typ := rapid.SampledFrom([]string{TypeSend, TypeStop, TypeSync, TypeHelp, TypePing, TypeWatch, TypeUnwatch, TypeTakeover, TypeRelease, TypeEnd}).Draw(t, "type")
	c := Command{Type: typ, ID: rapid.StringN(0, MaxClientIDLen, MaxClientIDLen).Draw(t, "id")}
	if typ != TypePing {
		c.SessionID = rapid.StringMatching(`[a-z0-9]{1,32}`).Draw(t, "session")
	}
	if typ == TypeSend {
		// Any text with a non-space character: whitespace alone is refused
		// (CONTRACT §14), which TestDecodeRejects covers.
		c.Text = rapid.StringN(0, 100, -1).Draw(t, "text before") + rapid.StringMatching(`\PZ`).Filter(func(s string) bool {
			return strings.TrimSpace(s) != ""
		}).Draw(t, "visible") + rapid.StringN(0, 100, -1).Draw(t, "text after")
		c.Model = rapid.StringMatching(`[a-z]{0,8}`).Draw(t, "model")
	}
	if typ == TypeSync {
		c.AfterSeq = rapid.Int64Range(0, 1<<40).Draw(t, "after")
	}
	return c
}

func TestCommandRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := genCommand(t)
		if len(c.ID) > MaxClientIDLen {
			t.Skip("id over the limit in bytes")
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", b, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	})
}

func TestDecodeNeverPanics(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		_, _ = Decode(rapid.SliceOf(rapid.Byte()).Draw(t, "frame"))
	})
}

// The hand-written delta encoder must produce JSON that decodes to exactly
// the fields given, for any text, including invalid UTF-8 (which becomes
// U+FFFD as with encoding/json).
func TestAppendDeltaMatchesEncodingJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		specials := rapid.StringOf(rapid.SampledFrom([]rune{'"', '\\', '<', '>', '&', '\n', '\r', '\t', 0, 0x1f, 0x7f, '\u2028', '\u2029', 'é', '😀'}))
		rawBytes := rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) })
		text := rapid.OneOf(rapid.String(), specials, rawBytes).Draw(t, "text")
		sid := rapid.String().Draw(t, "sid")
		seq := rapid.Int64Range(0, 1<<50).Draw(t, "seq")
		off := rapid.IntRange(0, 1<<30).Draw(t, "offset")
		frame := AppendDelta(nil, sid, "m1", seq, off, text)
		want, _ := json.Marshal(map[string]any{"type": "delta", "session_id": sid, "message_id": "m1", "seq": seq, "offset": off, "text": text})
		var g, w map[string]any
		if err := json.Unmarshal(frame, &g); err != nil {
			t.Fatalf("invalid JSON %q: %v", frame, err)
		}
		_ = json.Unmarshal(want, &w)
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if string(gb) != string(wb) {
			t.Fatalf("got %s, want %s", gb, wb)
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"type":"send","id":"1","text":"hi"}`, `{"type":"sync","session_id":"s","after_seq":3}`, `{`, `[]`, `{"type":"ping"}{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err == nil && c.Type == "" {
			t.Fatalf("accepted a frame without type: %q", b)
		}
	})
}

func BenchmarkAppendDelta(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendDelta(buf[:0], "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210", 42, 1234, " token")
	}
}

// Every event's Wire is a valid unmasked final text frame whose payload is
// exactly Frame, for payloads on both sides of each header size.
func TestWireIsOneCompleteFrame(t *testing.T) {
	for _, n := range []int{0, 1, 100, 125, 126, 127, 65535, 65536, 70000} {
		text := strings.Repeat("x", n)
		for name, ev := range map[string]*Event{
			"delta": NewDelta("s", "m", 1, 0, text),
			"error": NewError("", "s", Errf(CodeBadRequest, "%s", text)),
		} {
			hdr, err := ws.ReadHeader(bytes.NewReader(ev.Wire))
			if err != nil {
				t.Fatalf("%s %d: %v", name, n, err)
			}
			if !hdr.Fin || hdr.OpCode != ws.OpText || hdr.Masked || int(hdr.Length) != len(ev.Frame) {
				t.Fatalf("%s %d: header %+v for a payload of %d", name, n, hdr, len(ev.Frame))
			}
			if !bytes.Equal(ev.Wire[len(ev.Wire)-len(ev.Frame):], ev.Frame) || !json.Valid(ev.Frame) {
				t.Fatalf("%s %d: payload is not the JSON frame", name, n)
			}
		}
	}
}

// A merged delta's frame, built in a reused buffer from the merged texts,
// is byte for byte the frame of one delta carrying their concatenation.
func TestAppendDeltaFrameIsTheFrameOfTheConcatenation(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		parts := rapid.SliceOfN(rapid.OneOf(rapid.String(), rapid.StringN(100, 200, -1)), 1, 40).Draw(t, "parts")
		prefix := rapid.SliceOf(rapid.Byte()).Draw(t, "prefix")
		off := rapid.IntRange(0, 1<<30).Draw(t, "offset")
		buf, frame := AppendDeltaFrame(prefix, "s<1>", "m1", 7, off, parts)
		want := NewDelta("s<1>", "m1", 7, off, strings.Join(parts, "")).Wire
		if !bytes.Equal(frame, want) {
			t.Fatalf("frame %q, want %q", frame, want)
		}
		if !bytes.Equal(buf[:len(prefix)], prefix) || !bytes.HasSuffix(buf, frame) {
			t.Fatalf("the buffer lost its prefix or does not end with the frame")
		}
	})
}

// A hello from the template is byte for byte NewHello's (encoding/json's).
func TestHelloTemplateEncodesAsNewHello(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		models := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) ModelInfo {
			return ModelInfo{ID: rapid.String().Draw(t, "id"), Name: rapid.String().Draw(t, "name")}
		}), 0, 3).Draw(t, "models")
		rawBytes := rapid.Map(rapid.SliceOf(rapid.Byte()), func(b []byte) string { return string(b) })
		h := Hello{
			UserID: rapid.OneOf(rapid.String(), rawBytes).Draw(t, "user"), Name: rapid.OneOf(rapid.String(), rawBytes).Draw(t, "name"),
			ConnectionID: rapid.String().Draw(t, "conn"), Admin: rapid.Bool().Draw(t, "admin"),
			Models: models, DefaultModel: rapid.String().Draw(t, "default"),
		}
		got := NewHelloTemplate(h.Models, h.DefaultModel).Event(h)
		want := NewHello(h)
		if !bytes.Equal(got.Wire, want.Wire) || got.Kind != want.Kind {
			t.Fatalf("template %q, NewHello %q", got.Wire, want.Wire)
		}
	})
}
