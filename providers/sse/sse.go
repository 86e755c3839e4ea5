// Package sse reads Server-Sent Events as the WHATWG HTML standard defines
// the text/event-stream format: "event:" and "data:" fields, multi-line data
// joined with "\n", "id:" kept across events, comment lines starting with ':',
// lines ended by CRLF, LF or CR, and an event dispatched at each blank line.
//
// It is the shared wire layer of the vendor clients. A Reader is used by one
// goroutine; the Data of an Event is only valid until the next call to Next,
// which is what keeps a long stream free of per-event allocations.
package sse

import (
	"bytes"
	"errors"
	"io"
)

// DefaultMaxEventSize bounds one line and one event's data when
// Reader.MaxEventSize is zero: a broken or hostile server must not make the
// reader buffer without limit.
const DefaultMaxEventSize = 4 << 20

// ErrTooLarge reports a line or an event's data over the size limit.
var ErrTooLarge = errors.New("sse: event too large")

// Event is one dispatched event.
type Event struct {
	// Type is the "event:" field, "message" when the event set none.
	Type string
	// Data is the "data:" lines joined with "\n". It aliases the Reader's
	// buffer: copy it to keep it past the next call to Next.
	Data []byte
	// ID is the last "id:" field seen in this or any earlier event.
	ID string
}

// Reader reads events from an event stream.
type Reader struct {
	// MaxEventSize overrides DefaultMaxEventSize when positive.
	MaxEventSize int

	rd  io.Reader
	err error // sticky error from rd

	buf     []byte // buffered input: buf[r:w] is unread
	r, w    int
	scanned int  // bytes of buf[r:w] already searched for a line end
	skipLF  bool // the last line ended with CR: a following LF belongs to it
	started bool // the optional leading BOM has been dealt with

	data      []byte // data buffer of the event being built
	hasData   bool   // a data field was seen (data may still be empty)
	eventType []byte // event type buffer of the event being built
	lastType  string // the last dispatched non-default type, reused to avoid allocating
	lastID    string
}

// NewReader returns a Reader reading from rd.
func NewReader(rd io.Reader) *Reader {
	return &Reader{rd: rd, buf: make([]byte, 4096)}
}

func (r *Reader) maxSize() int {
	if r.MaxEventSize > 0 {
		return r.MaxEventSize
	}
	return DefaultMaxEventSize
}

// Next returns the next event. At the end of the stream it returns io.EOF;
// as the standard says, an event not ended by a blank line is discarded.
// Other errors are those of the underlying reader, or ErrTooLarge.
func (r *Reader) Next() (Event, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return Event{}, err
		}
		if len(line) == 0 {
			if ev, ok := r.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if len(r.data)+len(value)+1 > r.maxSize() {
				return Event{}, ErrTooLarge
			}
			if r.hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			r.hasData = true
		case "event":
			r.eventType = append(r.eventType[:0], value...)
		case "id":
			if bytes.IndexByte(value, 0) < 0 && string(value) != r.lastID {
				r.lastID = string(value)
			}
		}
		// "retry" and unknown fields are ignored: these clients never reconnect.
	}
}

// dispatch ends the event being built. Per the standard, a block without
// any data field dispatches nothing but still resets the event type.
func (r *Reader) dispatch() (Event, bool) {
	defer func() {
		r.data = r.data[:0]
		r.hasData = false
		r.eventType = r.eventType[:0]
	}()
	if !r.hasData {
		return Event{}, false
	}
	typ := "message"
	if len(r.eventType) > 0 {
		// Streams repeat a few event names; reusing the last string keeps
		// them allocation-free.
		if string(r.eventType) != r.lastType {
			r.lastType = string(r.eventType)
		}
		typ = r.lastType
	}
	return Event{Type: typ, Data: r.data, ID: r.lastID}, true
}

// readLine returns the next line without its terminator. The slice aliases
// r.buf and is valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
	for {
		if r.skipLF && r.r < r.w {
			if r.buf[r.r] == '\n' {
				r.r++
			}
			r.skipLF = false
		}
		if !r.started && r.w-r.r >= 3 {
			r.started = true
			if r.buf[r.r] == 0xEF && r.buf[r.r+1] == 0xBB && r.buf[r.r+2] == 0xBF {
				r.r += 3
			}
		}
		if r.started || r.err != nil {
			if i := indexEOL(r.buf[r.r+r.scanned : r.w]); i >= 0 {
				end := r.r + r.scanned + i
				line := r.buf[r.r:end]
				r.skipLF = r.buf[end] == '\r'
				r.r = end + 1
				r.scanned = 0
				return line, nil
			}
			r.scanned = r.w - r.r
		}
		if r.err != nil {
			// An unterminated last line is not a line: the standard
			// discards it together with the event it belongs to.
			return nil, r.err
		}
		if err := r.fill(); err != nil {
			r.err = err
		}
	}
}

// fill reads more input, first making room by moving unread bytes to the
// front and growing the buffer when a single line fills it.
func (r *Reader) fill() error {
	if r.r > 0 {
		n := copy(r.buf, r.buf[r.r:r.w])
		r.w = n
		r.r = 0
	}
	if r.w == len(r.buf) {
		if len(r.buf) >= r.maxSize() {
			return ErrTooLarge
		}
		nb := make([]byte, min(2*len(r.buf), r.maxSize()))
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		r.w += n
		if err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
	}
	return io.ErrNoProgress
}

// indexEOL finds the first CR or LF. Two vectorised scans beat one byte
// loop because nearly every stream ends its lines with a bare LF.
func indexEOL(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	limit := b
	if i >= 0 {
		limit = b[:i]
	}
	if j := bytes.IndexByte(limit, '\r'); j >= 0 {
		return j
	}
	return i
}
