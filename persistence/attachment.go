package persistence

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Attachment is the metadata of an uploaded file (CONTRACT §9). Its bytes
// are stored apart, encrypted in chunks of ChunkSize (AttachmentChunkAD
// binds each chunk to its attachment and place), and read back with
// ReadAttachment. Name, Type and Size are stored as plain metadata, like a
// message's author; the bytes and the transcript are encrypted.
type Attachment struct {
	ID     string
	UserID string // who uploaded it; only they (and admins) may read it
	// SessionID is the session of the first message that carries it,
	// empty until then; the attachment is deleted with that session.
	SessionID string
	Name      string
	Type      string // sniffed from the bytes
	Size      int64
	CreatedAt time.Time
	// Transcript is the text of a voice note, once transcribed.
	Transcript string
}

// Ref is what a message holds of an attachment.
func (a *Attachment) Ref() AttachmentRef {
	return AttachmentRef{ID: a.ID, Name: a.Name, Type: a.Type, Size: a.Size}
}

// AttachmentRef is an attachment as a message names it.
type AttachmentRef struct {
	ID   string `json:"id" bson:"id"`
	Name string `json:"name" bson:"name"`
	Type string `json:"type" bson:"type"`
	Size int64  `json:"size" bson:"size"`
}

// SealOverhead is what Seal adds to a plaintext: a 12-byte nonce and a
// 16-byte tag.
const SealOverhead = 12 + 16

// ChunkSize is the plaintext size of one stored chunk of an attachment:
// an upload holds one chunk in memory at a time.
const ChunkSize = 256 << 10

// Attachments stores uploaded files. A Store implements it.
type Attachments interface {
	// PutAttachment stores a (ID, UserID, Name, Type set by the caller)
	// and the bytes read from r to its end, one ChunkSize chunk at a
	// time, each sealed; it sets a.Size and, when zero, a.CreatedAt. The
	// attachment is visible only once every chunk is stored; on an error
	// what was written is removed. The caller bounds r.
	PutAttachment(ctx context.Context, a *Attachment, r io.Reader) error
	// GetAttachment returns the metadata, transcript opened; ErrNotFound
	// when there is none.
	GetAttachment(ctx context.Context, id string) (*Attachment, error)
	// ReadAttachment writes the attachment's bytes to w, chunk by chunk.
	ReadAttachment(ctx context.Context, id string, w io.Writer) error
	// SetTranscript stores the transcript of a voice note, sealed.
	SetTranscript(ctx context.Context, id, transcript string) error
	// SessionConversation is the conversation id a vendor that keeps its
	// own history (Dify) gave the session; "" when none yet.
	SessionConversation(ctx context.Context, sessionID string) (string, error)
	// SetSessionConversation stores it; it is deleted with the session.
	SetSessionConversation(ctx context.Context, sessionID, conversationID string) error
}

// AttachmentChunkAD is the associated data of chunk n of attachment id.
func AttachmentChunkAD(id string, n int64) []byte {
	b := make([]byte, 0, len("att\x00")+len(id)+1+20)
	b = append(b, "att\x00"...)
	b = append(b, id...)
	b = append(b, 0)
	return strconv.AppendInt(b, n, 10)
}

// TranscriptAD is the associated data of an attachment's transcript.
func TranscriptAD(id string) []byte {
	return append([]byte("transcript\x00"), id...)
}

// SealedChunk is one encrypted chunk of an attachment, as the stores keep it.
type SealedChunk struct {
	N     int64
	KeyID string
	CT    []byte
}

// SealChunks reads r to its end in ChunkSize pieces and hands each, sealed
// for attachment id, to put, in order; it returns the plaintext size and
// the number of chunks. It reuses one buffer, so memory stays at one chunk
// however large r is.
func SealChunks(keys *Keyring, id string, r io.Reader, put func(SealedChunk) error) (size, chunks int64, err error) {
	buf := make([]byte, ChunkSize)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			keyID, ct := keys.Seal(buf[:n], AttachmentChunkAD(id, chunks))
			if err := put(SealedChunk{N: chunks, KeyID: keyID, CT: ct}); err != nil {
				return size, chunks, err
			}
			size += int64(n)
			chunks++
		}
		switch {
		case rerr == io.EOF || errors.Is(rerr, io.ErrUnexpectedEOF):
			return size, chunks, nil
		case rerr != nil:
			return size, chunks, fmt.Errorf("read attachment %s: %w", id, rerr)
		}
	}
}

// OpenChunk decrypts chunk c of attachment id, which must be chunk want.
func OpenChunk(keys *Keyring, id string, want int64, c SealedChunk) ([]byte, error) {
	if c.N != want {
		return nil, fmt.Errorf("attachment %s: chunk %d where %d belongs: %w", id, c.N, want, ErrCorrupt)
	}
	return keys.Open(c.KeyID, c.CT, AttachmentChunkAD(id, c.N))
}
