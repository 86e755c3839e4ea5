package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gabriel-vasile/mimetype"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// Attachments (CONTRACT §9). An upload is streamed: the multipart body is
// read part by part (never parsed into memory or a temporary file), the
// type is sniffed from its first bytes, and the store seals and writes it
// one chunk at a time, so memory stays at a few chunks whatever the size.

// Transcriber turns a voice note into text (an OpenAI-compatible
// /audio/transcriptions endpoint). It is called once per audio upload.
type Transcriber interface {
	Transcribe(ctx context.Context, name, mediaType string, audio []byte) (string, error)
}

// sniffBytes is how much of an upload the type is sniffed from: what
// mimetype reads by default.
const sniffBytes = 3072

// multipartSlack is what a multipart body may hold besides the file: the
// boundaries and the part's headers.
const multipartSlack = 16 << 10

// maxNameBytes bounds a stored file name.
const maxNameBytes = 255

// errTooLarge ends an upload past the limit.
var errTooLarge = errors.New("upload is larger than storage.max_upload_bytes")

// attachmentJSON is an attachment as the API answers it.
func attachmentJSON(a *persistence.Attachment) map[string]any {
	m := map[string]any{"id": a.ID, "name": a.Name, "type": a.Type, "size": a.Size, "created_at": a.CreatedAt.UTC()}
	if a.Transcript != "" {
		m["transcript"] = a.Transcript
	}
	return m
}

// handleUpload serves POST /api/attachments, multipart/form-data with one
// part "file": 201 with the stored attachment.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	id, ok := s.authenticate(w, r, log)
	if !ok {
		return
	}
	limit := s.cfg.MaxUploadBytes
	tooLarge := protocol.Errf(protocol.CodeTooLarge, "the file is larger than %s", humanBytes(limit))
	if r.ContentLength > limit+multipartSlack {
		writeError(w, tooLarge)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		badParam(w, "the body must be multipart/form-data with a part named file")
		return
	}
	var part io.Reader
	var name string
	for {
		p, err := mr.NextPart()
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeError(w, tooLarge)
			} else {
				badParam(w, "the body must be multipart/form-data with a part named file")
			}
			return
		}
		if p.FormName() == "file" {
			part, name = p, fileName(p.FileName())
			break
		}
	}
	br := bufio.NewReaderSize(&limitedReader{r: part, left: limit}, sniffBytes)
	head, err := br.Peek(sniffBytes)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, errTooLarge) {
			writeError(w, tooLarge)
			return
		}
		badParam(w, "the file could not be read")
		return
	}
	typ, allowed := s.sniff(head)
	if !allowed {
		writeError(w, protocol.Errf(protocol.CodeUnsupported, "files of type %s are not allowed", typ))
		return
	}
	a := &persistence.Attachment{ID: rand.Text(), UserID: id.UserID, Name: name, Type: typ}
	if err := s.cfg.Store.PutAttachment(r.Context(), a, br); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, errTooLarge), errors.As(err, &mbe):
			writeError(w, tooLarge)
		default:
			s.storeFailure(w, r, "store attachment", err)
		}
		return
	}
	if strings.HasPrefix(typ, "audio/") && s.cfg.Transcriber != nil {
		s.transcribe(r.Context(), log, a)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"attachment": attachmentJSON(a)})
}

// transcribe reads a voice note back and has it transcribed, once; a
// failure leaves it without a transcript (models then get a placeholder).
func (s *Server) transcribe(ctx context.Context, log *slog.Logger, a *persistence.Attachment) {
	var buf bytes.Buffer
	if err := s.cfg.Store.ReadAttachment(ctx, a.ID, &buf); err != nil {
		log.Warn("read voice note to transcribe", slog.String("attachment_id", a.ID), slog.Any("err", err))
		return
	}
	text, err := s.cfg.Transcriber.Transcribe(ctx, a.Name, a.Type, buf.Bytes())
	if err != nil {
		log.Warn("transcribe voice note", slog.String("attachment_id", a.ID), slog.Any("err", err))
		return
	}
	if err := s.cfg.Store.SetTranscript(ctx, a.ID, text); err != nil {
		log.Warn("store transcript", slog.String("attachment_id", a.ID), slog.Any("err", err))
		return
	}
	a.Transcript = text
}

// sniff is the type of a file that starts with head, named as
// storage.upload_types names it when it is allowed (mimetype knows
// aliases: a WebM recording is video/webm to it, audio/webm here).
func (s *Server) sniff(head []byte) (string, bool) {
	m := mimetype.Detect(head)
	for t := m; t != nil; t = t.Parent() {
		for _, allowed := range s.cfg.UploadTypes {
			if t.Is(allowed) {
				return allowed, true
			}
		}
	}
	typ, _, err := mime.ParseMediaType(m.String())
	if err != nil {
		typ = "application/octet-stream"
	}
	return typ, false
}

// handleAttachment serves GET /api/attachments/{id}: the bytes, to the
// uploader and to admins; anyone else gets the 404 of a missing one.
func (s *Server) handleAttachment(w http.ResponseWriter, r *http.Request) {
	a, ok := s.readableAttachment(w, r)
	if !ok {
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.Type)
	h.Set("Content-Length", strconv.FormatInt(a.Size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "private, no-store")
	// Nothing in a file may run as a page of this origin.
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	disposition := "attachment"
	if strings.HasPrefix(a.Type, "image/") {
		disposition = "inline"
	}
	h.Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": a.Name}))
	if err := s.cfg.Store.ReadAttachment(r.Context(), a.ID, w); err != nil {
		// The status is sent; the short body tells the client.
		s.log.Warn("send attachment", slog.String("request_id", requestID(r)), slog.String("attachment_id", a.ID), slog.Any("err", err))
	}
}

// handleAttachmentMeta serves GET /api/attachments/{id}/meta: the
// metadata, with a voice note's transcript.
func (s *Server) handleAttachmentMeta(w http.ResponseWriter, r *http.Request) {
	a, ok := s.readableAttachment(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"attachment": attachmentJSON(a)})
}

func (s *Server) readableAttachment(w http.ResponseWriter, r *http.Request) (*persistence.Attachment, bool) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	id, ok := s.authenticate(w, r, log)
	if !ok {
		return nil, false
	}
	a, err := s.cfg.Store.GetAttachment(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeFailure(w, r, "get attachment", err)
		return nil, false
	}
	if a.UserID != id.UserID && !id.IsAdmin() {
		writeError(w, protocol.Err(protocol.CodeNotFound))
		return nil, false
	}
	return a, true
}

// limitedReader fails with errTooLarge once more than left bytes are read.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, errTooLarge
	}
	return n, err
}

// fileName is the client's file name made safe to store and show: its
// base name, valid UTF-8 without control characters, at most maxNameBytes.
func fileName(raw string) string {
	name := path.Base(strings.ReplaceAll(raw, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	for len(name) > maxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == "/" {
		return "file"
	}
	return name
}

// humanBytes says n in MiB or KiB, as people read a limit.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
