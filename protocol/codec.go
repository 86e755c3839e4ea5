package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Decode parses and validates one client frame: exactly one JSON object with
// a known type and the fields that type requires. A frame it refuses answers
// a *Error (bad_request, with a message safe to show), and a Command that
// holds only the frame's id, when that could be read, so the error event can
// name the command it answers.
func Decode(frame []byte) (Command, error) {
	var c Command
	dec := json.NewDecoder(bytes.NewReader(frame))
	if err := dec.Decode(&c); err != nil {
		return Command{}, Errf(CodeBadRequest, "the frame is not a JSON object")
	}
	if dec.More() {
		return Command{}, Errf(CodeBadRequest, "more than one JSON value in the frame")
	}
	bad := func(msg string) (Command, error) {
		return Command{ID: c.ID}, Errf(CodeBadRequest, "%s", msg)
	}
	if len(c.ID) > MaxClientIDLen {
		c.ID = ""
		return bad(fmt.Sprintf("id is longer than %d characters", MaxClientIDLen))
	}
	if len(c.Attachments) > MaxAttachments {
		return bad(fmt.Sprintf("a message carries at most %d attachments", MaxAttachments))
	}
	for _, id := range c.Attachments {
		if id == "" || len(id) > MaxClientIDLen {
			return bad("an attachment id is empty or too long")
		}
	}
	switch c.Type {
	case TypeSend:
		// A message of attachments alone (a voice note) needs no text.
		if strings.TrimSpace(c.Text) == "" && len(c.Attachments) == 0 {
			return bad("send needs a text with a non-space character")
		}
		if !utf8.ValidString(c.Text) {
			return bad("text is not valid UTF-8")
		}
	case TypeStop, TypeHelp, TypeWatch, TypeUnwatch, TypeTakeover, TypeRelease, TypeEnd:
		if c.SessionID == "" {
			return bad(c.Type + " needs a session_id")
		}
	case TypeSync:
		if c.SessionID == "" {
			return bad("sync needs a session_id")
		}
		if c.AfterSeq < 0 {
			return bad("after_seq must not be negative")
		}
	case TypePing:
	case TypeRegenerate, TypeTyping, TypeDelete:
		if c.SessionID == "" {
			return bad(c.Type + " needs a session_id")
		}
	case TypeEdit:
		if c.SessionID == "" || c.MessageID == "" {
			return bad("edit needs a session_id and a message_id")
		}
		if strings.TrimSpace(c.Text) == "" {
			return bad("edit needs a non-empty text")
		}
		if !utf8.ValidString(c.Text) {
			return bad("text is not valid UTF-8")
		}
	case TypeRename:
		if c.SessionID == "" {
			return bad("rename needs a session_id")
		}
		if err := CheckTitle(c.Title); err != nil {
			return bad(err.Error())
		}
	case TypeNote, TypeRate:
		if err := checkDesk(&c); err != nil {
			return bad(err.Error())
		}
	case "":
		return bad("the frame has no type")
	default:
		return bad("unknown type " + strconv.Quote(truncate(c.Type, 32)))
	}
	return c, nil
}

// MaxTitleLen bounds a session title set by rename, in bytes.
const MaxTitleLen = 200

// CheckTitle says what is wrong with a title a user gives a session: it must
// be valid UTF-8 with a non-space character, at most MaxTitleLen bytes, and
// hold no control characters.
func CheckTitle(t string) error {
	switch {
	case !utf8.ValidString(t):
		return errors.New("title is not valid UTF-8")
	case strings.TrimSpace(t) == "":
		return errors.New("title must not be empty")
	case len(t) > MaxTitleLen:
		return fmt.Errorf("title is longer than %d bytes", MaxTitleLen)
	case strings.IndexFunc(t, unicode.IsControl) >= 0:
		return errors.New("title holds control characters")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// AppendDelta appends the JSON of a delta event to dst. It is the hot path of
// streaming, so it is written by hand and does not allocate beyond dst.
func AppendDelta(dst []byte, sessionID, messageID string, seq int64, offset int, text string) []byte {
	dst = appendDeltaHead(dst, sessionID, messageID, seq, offset)
	dst = appendString(dst, text)
	return append(dst, '}')
}

// appendDeltaHead appends a delta's JSON up to its text's value.
func appendDeltaHead(dst []byte, sessionID, messageID string, seq int64, offset int) []byte {
	dst = append(dst, `{"type":"delta","session_id":`...)
	dst = appendString(dst, sessionID)
	dst = append(dst, `,"message_id":`...)
	dst = appendString(dst, messageID)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, int64(offset), 10)
	return append(dst, `,"text":`...)
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string, escaping as encoding/json does
// (including <, > and & for safe embedding in HTML, and U+2028/U+2029).
// Invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// appendEscaped appends s escaped as the inside of a JSON string.
func appendEscaped(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}
