package mongo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodriver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/chatbox/chatbox/persistence"
)

// Attachments live in a GridFS bucket, "attachments": the files
// collection holds each attachment's metadata (its document's metadata
// field, attachmentMeta), the chunks collection its bytes. What GridFS
// stores is the sequence of sealed chunks (persistence.SealChunks), and
// its chunk size is one sealed chunk, so each GridFS chunk document holds
// exactly one ciphertext. The GridFS file name is the attachment id, never
// the user's file name. GridFS needs only finds, inserts, deletes and
// indexes, which FerretDB v1 serves (the conformance suite runs there).
const attachmentBucket = "attachments"

// sealedChunkSize is a full chunk sealed: nonce and tag added.
const sealedChunkSize = persistence.ChunkSize + persistence.SealOverhead

// attachmentMeta is the metadata field of an attachment's files document.
type attachmentMeta struct {
	UserID       string    `bson:"user_id"`
	SessionID    string    `bson:"session_id"`
	Name         string    `bson:"name"`
	Type         string    `bson:"type"`
	KeyID        string    `bson:"key_id"`
	CreatedAt    time.Time `bson:"created_at"`
	TranscriptKA string    `bson:"transcript_key_id"`
	TranscriptCT []byte    `bson:"transcript_ct"`
}

type attachmentFile struct {
	ID       string         `bson:"_id"`
	Length   int64          `bson:"length"` // sealed bytes
	Metadata attachmentMeta `bson:"metadata"`
}

// chunks and size are the number of sealed chunks and the plaintext size
// of a file of length sealed bytes.
func chunksOf(length int64) (chunks, size int64) {
	chunks = (length + sealedChunkSize - 1) / sealedChunkSize
	return chunks, length - chunks*persistence.SealOverhead
}

func (s *Store) bucket() *mongodriver.GridFSBucket {
	return s.db.GridFSBucket(options.GridFSBucket().SetName(attachmentBucket).SetChunkSizeBytes(sealedChunkSize))
}

func (s *Store) attachmentFiles() *mongodriver.Collection { return s.bucket().GetFilesCollection() }

// PutAttachment streams the sealed chunks into GridFS; the files document,
// with the metadata, is written when the stream closes, after every chunk,
// so a failed upload is never visible, and its chunks are removed.
func (s *Store) PutAttachment(ctx context.Context, a *persistence.Attachment, r io.Reader) error {
	what := "put attachment " + a.ID
	if a.ID == "" || a.UserID == "" {
		return fmt.Errorf("%s: need an id and a user id", what)
	}
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	a.CreatedAt = ms(a.CreatedAt)
	tKey, tCT := s.keys.Seal([]byte(a.Transcript), persistence.TranscriptAD(a.ID))
	// Seal always uses the current key, so the one key id of the file is
	// known before its first chunk.
	meta := attachmentMeta{UserID: a.UserID, SessionID: a.SessionID, Name: a.Name, Type: a.Type,
		KeyID: s.keys.CurrentKeyID(), CreatedAt: a.CreatedAt, TranscriptKA: tKey, TranscriptCT: tCT}

	up, err := s.bucket().OpenUploadStreamWithID(ctx, a.ID, a.ID, options.GridFSUpload().SetMetadata(meta))
	if err != nil {
		return wrap(err, "%s", what)
	}
	size, _, err := persistence.SealChunks(s.keys, a.ID, r, func(c persistence.SealedChunk) error {
		_, err := up.Write(c.CT)
		return err
	})
	if err != nil {
		_ = up.Abort() // removes the chunks written so far
		return wrap(err, "%s", what)
	}
	if err := up.Close(); err != nil {
		return wrap(err, "%s", what)
	}
	a.Size = size
	return nil
}

// GetAttachment reads the files document and opens the transcript.
func (s *Store) GetAttachment(ctx context.Context, id string) (*persistence.Attachment, error) {
	a, _, err := s.attachment(ctx, id)
	return a, err
}

func (s *Store) attachment(ctx context.Context, id string) (*persistence.Attachment, *attachmentFile, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	var f attachmentFile
	if err := s.attachmentFiles().FindOne(cctx, bson.M{"_id": id}).Decode(&f); err != nil {
		return nil, nil, wrap(err, "get attachment %s", id)
	}
	m := &f.Metadata
	text, err := s.keys.Open(m.TranscriptKA, m.TranscriptCT, persistence.TranscriptAD(id))
	if err != nil {
		s.unreadable(ctx, err, "attachment transcript unreadable", "attachment_id", id, "key_id", m.TranscriptKA)
	}
	_, size := chunksOf(f.Length)
	return &persistence.Attachment{ID: id, UserID: m.UserID, SessionID: m.SessionID, Name: m.Name, Type: m.Type,
		Size: size, CreatedAt: m.CreatedAt.UTC(), Transcript: string(text)}, &f, nil
}

// ReadAttachment reads one sealed chunk at a time from GridFS.
func (s *Store) ReadAttachment(ctx context.Context, id string, w io.Writer) error {
	_, f, err := s.attachment(ctx, id)
	if err != nil {
		return err
	}
	chunks, _ := chunksOf(f.Length)
	what := "read attachment " + id
	ds, err := s.bucket().OpenDownloadStream(ctx, id)
	if err != nil {
		return wrap(err, "%s", what)
	}
	defer ds.Close()
	buf := make([]byte, sealedChunkSize)
	for n := range chunks {
		got, rerr := io.ReadFull(ds, buf)
		if rerr != nil && !(errors.Is(rerr, io.ErrUnexpectedEOF) && n == chunks-1) {
			return fmt.Errorf("%s: chunk %d: %w", what, n, persistence.ErrCorrupt)
		}
		plain, err := persistence.OpenChunk(s.keys, id, n, persistence.SealedChunk{N: n, KeyID: f.Metadata.KeyID, CT: buf[:got]})
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if _, err := w.Write(plain); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// SetTranscript seals the transcript into the attachment's metadata.
func (s *Store) SetTranscript(ctx context.Context, id, transcript string) error {
	keyID, ct := s.keys.Seal([]byte(transcript), persistence.TranscriptAD(id))
	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.attachmentFiles().UpdateOne(ctx, bson.M{"_id": id},
		bson.M{"$set": bson.M{"metadata.transcript_key_id": keyID, "metadata.transcript_ct": ct}})
	if err != nil {
		return wrap(err, "set transcript of attachment %s", id)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set transcript of attachment %s: %w", id, persistence.ErrNotFound)
	}
	return nil
}

// assignAttachments gives m's attachments that are in no session yet to
// m's session.
func (s *Store) assignAttachments(ctx context.Context, m *persistence.Message) error {
	if len(m.Attachments) == 0 {
		return nil
	}
	ids := make([]string, len(m.Attachments))
	for i, a := range m.Attachments {
		ids[i] = a.ID
	}
	_, err := s.attachmentFiles().UpdateMany(ctx, bson.M{"_id": bson.M{"$in": ids}, "metadata.session_id": ""},
		bson.M{"$set": bson.M{"metadata.session_id": m.SessionID}})
	if err != nil {
		return wrap(err, "append message %d to session %s: assign its attachments", m.Seq, m.SessionID)
	}
	return nil
}

// deleteAttachments deletes every attachment whose files document matches
// filter, chunks and all, and counts them.
func (s *Store) deleteAttachments(ctx context.Context, filter bson.M) (int64, error) {
	var n int64
	b := s.bucket()
	for {
		var files []attachmentFile
		err := s.bounded(ctx, func(ctx context.Context) error {
			cur, err := b.GetFilesCollection().Find(ctx, filter,
				options.Find().SetProjection(bson.M{"_id": 1}).SetLimit(eraseBatch))
			if err != nil {
				return err
			}
			return cur.All(ctx, &files)
		})
		if err != nil || len(files) == 0 {
			return n, err
		}
		for _, f := range files {
			if err := s.bounded(ctx, func(ctx context.Context) error { return b.Delete(ctx, f.ID) }); err != nil &&
				!errors.Is(err, mongodriver.ErrFileNotFound) {
				return n, err
			}
			n++
		}
	}
}

// SessionConversation reads the conversation_id field of the session.
func (s *Store) SessionConversation(ctx context.Context, sessionID string) (string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	var d struct {
		ConversationID string `bson:"conversation_id"`
	}
	err := s.sessions.FindOne(ctx, bson.M{"_id": sessionID},
		options.FindOne().SetProjection(bson.M{"conversation_id": 1})).Decode(&d)
	if err != nil {
		return "", wrap(err, "get conversation of session %s", sessionID)
	}
	return d.ConversationID, nil
}

// SetSessionConversation sets it, outside the header's version fence: only
// the session's generation writes it.
func (s *Store) SetSessionConversation(ctx context.Context, sessionID, conversationID string) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	res, err := s.sessions.UpdateOne(ctx, bson.M{"_id": sessionID}, bson.M{"$set": bson.M{"conversation_id": conversationID}})
	if err != nil {
		return wrap(err, "set conversation of session %s", sessionID)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("set conversation of session %s: %w", sessionID, persistence.ErrNotFound)
	}
	return nil
}
