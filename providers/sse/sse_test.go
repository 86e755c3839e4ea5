package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"pgregory.net/rapid"
)

type ev struct{ Type, Data, ID string }

// readAll collects every event of a stream, copying Data out of the
// reader's buffer.
func readAll(r io.Reader) ([]ev, error) {
	sr := NewReader(r)
	var out []ev
	for {
		e, err := sr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev{e.Type, string(e.Data), e.ID})
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []ev
	}{
		{"one event", "data: hello\n\n", []ev{{"message", "hello", ""}}},
		{"multi-line data", "data: a\ndata: b\ndata:\n\n", []ev{{"message", "a\nb\n", ""}}},
		{"event type", "event: ping\ndata: {}\n\nevent: x\ndata: 1\n\ndata: 2\n\n",
			[]ev{{"ping", "{}", ""}, {"x", "1", ""}, {"message", "2", ""}}},
		{"comments", ": keep-alive\n\n:\ndata: x\n: more\n\n", []ev{{"message", "x", ""}}},
		{"CRLF", "event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n", []ev{{"a", "1", ""}, {"message", "2", ""}}},
		{"CR", "data: 1\r\rdata: 2\r\r", []ev{{"message", "1", ""}, {"message", "2", ""}}},
		{"mixed", "data: 1\r\ndata: 2\rdata: 3\n\r\n", []ev{{"message", "1\n2\n3", ""}}},
		{"no space after colon", "data:x\n\n", []ev{{"message", "x", ""}}},
		{"only one space stripped", "data:  x\n\n", []ev{{"message", " x", ""}}},
		{"field without colon", "data\n\ndata\ndata\n\n", []ev{{"message", "", ""}, {"message", "\n", ""}}},
		{"type without data is reset", "event: a\n\ndata: 1\n\n", []ev{{"message", "1", ""}}},
		{"unknown fields", "foo: bar\nretry: 10\ndata: 1\n\n", []ev{{"message", "1", ""}}},
		{"id persists", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n",
			[]ev{{"message", "a", "7"}, {"message", "b", "7"}, {"message", "c", ""}}},
		{"id with NUL ignored", "id: 1\x002\ndata: a\n\n", []ev{{"message", "a", ""}}},
		{"BOM", "\xEF\xBB\xBFdata: a\n\n", []ev{{"message", "a", ""}}},
		{"unterminated event discarded", "data: a\n\ndata: b\n", []ev{{"message", "a", ""}}},
		{"unterminated line discarded", "data: a\n\ndata: b", []ev{{"message", "a", ""}}},
		{"empty", "", nil},
		{"colon in value", "data: {\"a\":1}\n\n", []ev{{"message", `{"a":1}`, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readAll(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			// One byte at a time must not change anything.
			got, err = readAll(iotest.OneByteReader(strings.NewReader(tt.in)))
			if err != nil {
				t.Fatal(err)
			}
			if !equal(got, tt.want) {
				t.Fatalf("one byte at a time: got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReaderLongLine(t *testing.T) {
	long := strings.Repeat("x", 20000)
	got, err := readAll(strings.NewReader("data: " + long + "\n\n"))
	if err != nil || len(got) != 1 || got[0].Data != long {
		t.Fatalf("long line: %d events, err %v", len(got), err)
	}
}

func TestReaderTooLarge(t *testing.T) {
	r := NewReader(strings.NewReader("data: " + strings.Repeat("x", 100) + "\n\n"))
	r.MaxEventSize = 64
	if _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("long line: err %v, want ErrTooLarge", err)
	}
	r = NewReader(strings.NewReader(strings.Repeat("data: 0123456789\n", 10) + "\n"))
	r.MaxEventSize = 64
	if _, err := r.Next(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("many lines: err %v, want ErrTooLarge", err)
	}
}

func TestReaderPropagatesError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom)))
	if e, err := r.Next(); err != nil || string(e.Data) != "a" {
		t.Fatalf("first event: %q %v", e.Data, err)
	}
	if _, err := r.Next(); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
}

// A CR at the end of one read must dispatch without waiting for the next
// read: a stream that pauses after "\r\r" must not hold back its event.
func TestReaderCRDoesNotWait(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r := NewReader(pr)
	go pw.Write([]byte("data: a\r\r"))
	e, err := r.Next()
	if err != nil || string(e.Data) != "a" {
		t.Fatalf("got %q %v", e.Data, err)
	}
	go pw.Write([]byte("\ndata: b\n\n"))
	e, err = r.Next()
	if err != nil || string(e.Data) != "b" {
		t.Fatalf("got %q %v", e.Data, err)
	}
}

func equal(a, b []ev) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// chunkedReader returns the stream in the given chunk sizes.
type chunkedReader struct {
	data  []byte
	sizes []int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.sizes) > 0 {
		n = min(n, c.sizes[0])
		c.sizes = c.sizes[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// genStream draws a valid event stream: events of a few types whose data
// has several lines, with comments, ids and every kind of line end.
func genStream(t *rapid.T) string {
	eol := rapid.SampledFrom([]string{"\n", "\r\n", "\r"})
	text := rapid.StringMatching(`[a-z0-9 {}":,\[\]\x{e9}\x{1F600}]{0,12}`)
	var b strings.Builder
	if rapid.Bool().Draw(t, "bom") {
		b.WriteString("\uFEFF")
	}
	for range rapid.IntRange(0, 8).Draw(t, "events") {
		if rapid.Bool().Draw(t, "comment") {
			b.WriteString(": keep-alive" + eol.Draw(t, "eol"))
		}
		if typ := rapid.SampledFrom([]string{"", "ping", "content_block_delta"}).Draw(t, "type"); typ != "" {
			b.WriteString("event: " + typ + eol.Draw(t, "eol"))
		}
		if rapid.Bool().Draw(t, "id") {
			b.WriteString("id: " + text.Draw(t, "idv") + eol.Draw(t, "eol"))
		}
		for range rapid.IntRange(1, 3).Draw(t, "lines") {
			b.WriteString("data: " + text.Draw(t, "data") + eol.Draw(t, "eol"))
		}
		b.WriteString(eol.Draw(t, "blank"))
	}
	return b.String()
}

// Splitting a stream into arbitrary reads never changes its events.
func TestReaderChunkingProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		stream := genStream(t)
		want, err := readAll(strings.NewReader(stream))
		if err != nil {
			t.Fatal(err)
		}
		sizes := rapid.SliceOfN(rapid.IntRange(1, 7), 0, 64).Draw(t, "sizes")
		got, err := readAll(&chunkedReader{data: []byte(stream), sizes: sizes})
		if err != nil {
			t.Fatal(err)
		}
		if !equal(got, want) {
			t.Fatalf("chunked %v: got %q, want %q", sizes, got, want)
		}
	})
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("event: a\r\ndata: 1\r\n\r\n: c\n\ndata: x\rdata: y\r\r"), uint8(3))
	f.Add([]byte("\xEF\xBB\xBFid: 1\ndata\n\nretry: 5\ndata: {\"a\":1}\n\n"), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		want, errWhole := readAll(bytes.NewReader(in))
		size := int(chunk%16) + 1
		sizes := make([]int, len(in)/size+1)
		for i := range sizes {
			sizes[i] = size
		}
		got, errChunked := readAll(&chunkedReader{data: in, sizes: sizes})
		if (errWhole == nil) != (errChunked == nil) || !equal(got, want) {
			t.Fatalf("whole %q (%v), chunked by %d %q (%v)", want, errWhole, size, got, errChunked)
		}
		for _, e := range got {
			if strings.ContainsAny(e.Type, "\r\n") || strings.ContainsRune(e.Data, '\r') {
				t.Fatalf("line end leaked into %q", e)
			}
		}
	})
}

func BenchmarkSSEParse(b *testing.B) {
	var stream bytes.Buffer
	for range 100 {
		stream.WriteString(`data: {"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"token"},"finish_reason":null}]}` + "\n\n")
		stream.WriteString("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n")
	}
	in := stream.Bytes()
	rd := bytes.NewReader(in)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		rd.Reset(in)
		r := NewReader(rd)
		for {
			if _, err := r.Next(); err != nil {
				break
			}
		}
	}
}
