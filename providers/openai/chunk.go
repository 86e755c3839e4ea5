package openai

import (
	"bytes"
	"encoding/json"
	"unicode/utf16"
	"unicode/utf8"
)

// chunk is what Chatbox needs from one streamed chat.completion.chunk.
type chunk struct {
	Content          string // choices[0].delta.content
	Finished         bool   // choices[0].finish_reason is set
	HasUsage         bool
	PromptTokens     int64
	CompletionTokens int64
	Error            json.RawMessage // the "error" value when present and not null
}

// wireChunk is the encoding/json view of a chunk, used when the fast parser
// declines.
type wireChunk struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// decodeChunk decodes one data payload. The fast path allocates only the
// content string; anything it is unsure of (escaped keys, duplicates, odd
// types) goes to encoding/json, which is the reference and gives the error.
func decodeChunk(data []byte, c *chunk, scratch *[]byte) error {
	if parseChunk(data, c, scratch) {
		return nil
	}
	var w wireChunk
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*c = chunk{}
	if len(w.Choices) > 0 {
		c.Content = w.Choices[0].Delta.Content
		c.Finished = w.Choices[0].FinishReason != nil
	}
	if w.Usage != nil {
		c.HasUsage = true
		c.PromptTokens, c.CompletionTokens = w.Usage.PromptTokens, w.Usage.CompletionTokens
	}
	if len(w.Error) > 0 && string(w.Error) != "null" {
		c.Error = w.Error
	}
	return nil
}

// parseChunk is the fast path. It reports false whenever its answer might
// differ from encoding/json's, never a wrong result.
func parseChunk(data []byte, c *chunk, scratch *[]byte) bool {
	*c = chunk{}
	s := scanner{b: data, scratch: scratch}
	ok := s.object([]string{"choices", "usage", "error"}, func(i int) bool {
		switch i {
		case 0:
			return s.choices(c)
		case 1:
			return s.usage(c)
		default:
			start := s.i
			if !s.skip() {
				return false
			}
			if string(data[start:s.i]) != "null" {
				c.Error = data[start:s.i]
			}
			return true
		}
	})
	s.ws()
	return ok && s.i == len(s.b)
}

// object reads a JSON object, calling member with the index in names of
// each known key, its value next to be read. Unknown keys are skipped, but
// a key that encoding/json would match to a known one case-insensitively,
// or a known key given twice, makes the fast path give up (false).
func (s *scanner) object(names []string, member func(i int) bool) bool {
	if !s.open('{') {
		return false
	}
	var seen uint32
	for first := true; ; first = false {
		key, end, ok := s.key(first)
		if !ok {
			return false
		}
		if end {
			return true
		}
		i := -1
		for j, n := range names {
			if string(key) == n {
				i = j
				break
			}
		}
		if i < 0 {
			if foldsTo(key, names...) || !s.skip() {
				return false
			}
			continue
		}
		if seen&(1<<i) != 0 || !member(i) {
			return false
		}
		seen |= 1 << i
	}
}

// null reads a JSON null if one is next.
func (s *scanner) null() bool {
	s.ws()
	return s.literal("null")
}

func (s *scanner) choices(c *chunk) bool {
	if s.null() {
		return true
	}
	if !s.open('[') {
		return false
	}
	for n := 0; ; n++ {
		s.ws()
		if s.peek() == ']' {
			s.i++
			return true
		}
		if n > 0 && !s.open(',') {
			return false
		}
		var ok bool
		if n == 0 {
			ok = s.choice(c)
		} else {
			ok = s.skip()
		}
		if !ok {
			return false
		}
	}
}

func (s *scanner) choice(c *chunk) bool {
	if s.null() {
		return true
	}
	return s.object([]string{"delta", "finish_reason"}, func(i int) bool {
		if i == 0 {
			return s.delta(c)
		}
		if s.null() {
			return true
		}
		c.Finished = true
		_, ok := s.str()
		return ok
	})
}

func (s *scanner) delta(c *chunk) bool {
	if s.null() {
		return true
	}
	return s.object([]string{"content"}, func(int) bool {
		if s.null() {
			return true
		}
		v, ok := s.str()
		c.Content = v
		return ok
	})
}

func (s *scanner) usage(c *chunk) bool {
	if s.null() {
		return true
	}
	c.HasUsage = true
	return s.object([]string{"prompt_tokens", "completion_tokens"}, func(i int) bool {
		var ok bool
		if i == 0 {
			c.PromptTokens, ok = s.int()
		} else {
			c.CompletionTokens, ok = s.int()
		}
		return ok
	})
}

// foldsTo reports whether key would match one of names under
// encoding/json's case-insensitive field matching.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

// scanner walks JSON text. It accepts only what it fully understands.
type scanner struct {
	b       []byte
	i       int
	scratch *[]byte // reused buffer for unescaping strings
	depth   int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) open(c byte) bool {
	s.ws()
	if s.peek() != c {
		return false
	}
	s.i++
	return true
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// key reads the next object key and its colon, or the closing brace (end).
// Keys with escapes are declined: they could match a field in disguise.
func (s *scanner) key(first bool) (key []byte, end, ok bool) {
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil, true, true
	}
	if !first && !s.open(',') {
		return nil, false, false
	}
	s.ws()
	raw, escaped, ok := s.rawStr()
	if !ok || escaped || !s.open(':') {
		return nil, false, false
	}
	return raw, false, true
}

// rawStr reads a string and returns its bytes between the quotes.
func (s *scanner) rawStr() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		switch c := s.b[i]; {
		case c == '"':
			s.i = i + 1
			return s.b[start:i], escaped, true
		case c == '\\':
			escaped = true
			i++
		case c < 0x20:
			return nil, false, false
		}
	}
	return nil, false, false
}

// str reads a string value and returns it unescaped.
func (s *scanner) str() (string, bool) {
	raw, escaped, ok := s.rawStr()
	if !ok || !utf8.Valid(raw) {
		return "", false
	}
	if !escaped {
		return string(raw), true
	}
	out, ok := unescape((*s.scratch)[:0], raw)
	*s.scratch = out
	if !ok {
		return "", false
	}
	return string(out), true
}

func unescape(out, raw []byte) ([]byte, bool) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			return out, false
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(raw[i+1:])
			if !ok {
				return out, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				// Only a well-formed pair is accepted; encoding/json turns
				// lone halves into U+FFFD, which is its business.
				if len(raw) < i+7 || raw[i+1] != '\\' || raw[i+2] != 'u' {
					return out, false
				}
				r2, ok := hex4(raw[i+3:])
				if !ok {
					return out, false
				}
				r = utf16.DecodeRune(r, r2)
				if r == utf8.RuneError {
					return out, false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
		default:
			return out, false
		}
	}
	return out, true
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// int reads an integer that fits in int64; fractions and exponents are
// declined (encoding/json rejects them for an int64 field).
func (s *scanner) int() (int64, bool) {
	s.ws()
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	start := s.i
	var n int64
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		if n > (1<<63-1)/10-1 {
			return 0, false
		}
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || (digits > 1 && s.b[start] == '0') {
		return 0, false
	}
	if c := s.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

// skip passes over any value, checking its syntax.
func (s *scanner) skip() bool {
	s.ws()
	switch c := s.peek(); {
	case c == '"':
		raw, escaped, ok := s.rawStr()
		if !ok || !utf8.Valid(raw) {
			return false
		}
		if escaped {
			out, ok := unescape((*s.scratch)[:0], raw)
			*s.scratch = out
			return ok
		}
		return true
	case c == '{' || c == '[':
		if s.depth++; s.depth > 64 {
			return false
		}
		defer func() { s.depth-- }()
		s.i++
		closing := byte('}')
		if c == '[' {
			closing = ']'
		}
		for n := 0; ; n++ {
			s.ws()
			if s.peek() == closing {
				s.i++
				return true
			}
			if n > 0 && !s.open(',') {
				return false
			}
			if c == '{' {
				s.ws()
				if _, _, ok := s.rawStr(); !ok || !s.open(':') {
					return false
				}
			}
			if !s.skip() {
				return false
			}
		}
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	}
	return false
}

func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	digits := func() int {
		start := s.i
		for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
			s.i++
		}
		return s.i - start
	}
	start := s.i
	n := digits()
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return false
	}
	if s.peek() == '.' {
		s.i++
		if digits() == 0 {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}
