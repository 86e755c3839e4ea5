package mongo

import (
	"context"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// sessionDoc is the stored shape of a session.
type sessionDoc struct {
	ID            string    `bson:"_id"`
	UserID        string    `bson:"user_id"`
	TitleKeyID    string    `bson:"title_key_id"`
	TitleCT       []byte    `bson:"title_ct"`
	Model         string    `bson:"model"`
	Status        string    `bson:"status"`
	Mode          string    `bson:"mode"`
	AdminID       string    `bson:"admin_id"`
	AdminName     string    `bson:"admin_name"`
	HelpRequested bool      `bson:"help_requested"`
	MessageCount  int64     `bson:"message_count"`
	LastSeq       int64     `bson:"last_seq"`
	TokensIn      int64     `bson:"tokens_in"`
	TokensOut     int64     `bson:"tokens_out"`
	ShareID       string    `bson:"share_id,omitempty"`
	CreatedAt     time.Time `bson:"created_at"`
	UpdatedAt     time.Time `bson:"updated_at"`
	// Version fences header updates. Documents written by v1.0 have none,
	// which reads as 0 here and means version 1 (see storedVersion).
	Version int64 `bson:"version"`
	// HeadID is set by every append (advance); absent before v1.1.
	HeadID string `bson:"head_id,omitempty"`
	// The help desk's fields (v1.1): absent in older documents, which
	// read as no request and no rating.
	HelpRequestedAt time.Time `bson:"help_requested_at,omitempty"`
	Rating          int       `bson:"rating,omitempty"`
	RatingKeyID     string    `bson:"rating_key_id,omitempty"`
	RatingCT        []byte    `bson:"rating_ct,omitempty"`
}

// storedVersion is the version a document read back stands for: one
// written before versions existed is at version 1.
func storedVersion(v int64) int64 { return max(v, 1) }

// messageDoc is the stored shape of a message.
type messageDoc struct {
	ID        string    `bson:"_id"`
	SessionID string    `bson:"session_id"`
	Seq       int64     `bson:"seq"`
	Role      string    `bson:"role"`
	Author    string    `bson:"author"`
	AuthorID  string    `bson:"author_id,omitempty"`
	KeyID     string    `bson:"key_id"`
	CT        []byte    `bson:"ct"`
	Status    string    `bson:"status"`
	CreatedAt time.Time `bson:"created_at"`
	TokensIn  int64     `bson:"tokens_in"`
	TokensOut int64     `bson:"tokens_out"`
	// ParentID is nil in a document written before v1.1, when every
	// message followed the one before it (see parentsOfLegacy); "" is a
	// first message.
	ParentID *string `bson:"parent_id,omitempty"`
	// Attachments names the files the message carries (v1.1).
	Attachments []persistence.AttachmentRef `bson:"attachments,omitempty"`
}

// ms truncates t to what a BSON datetime holds, in UTC.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

func (s *Store) sessionToDoc(x *persistence.Session) sessionDoc {
	keyID, ct := s.keys.Seal([]byte(x.Title), persistence.TitleAD(x.ID))
	d := sessionDoc{
		ID:            x.ID,
		UserID:        x.UserID,
		TitleKeyID:    keyID,
		TitleCT:       ct,
		Model:         x.Model,
		Status:        x.Status,
		Mode:          x.Mode,
		AdminID:       x.AdminID,
		AdminName:     x.AdminName,
		HelpRequested: x.HelpRequested,
		MessageCount:  x.MessageCount,
		LastSeq:       x.LastSeq,
		TokensIn:      x.TokensIn,
		TokensOut:     x.TokensOut,
		ShareID:       x.ShareID,
		CreatedAt:     ms(x.CreatedAt),
		UpdatedAt:     ms(x.UpdatedAt),
		Version:       x.Version,
		HeadID:        x.HeadID,
	}
	s.setDesk(&d, x)
	return d
}

// setDesk fills the help desk's fields of d from x: the request's time,
// the rating and its comment, sealed only when there is one.
func (s *Store) setDesk(d *sessionDoc, x *persistence.Session) {
	d.HelpRequestedAt = time.Time{}
	if !x.HelpRequestedAt.IsZero() {
		d.HelpRequestedAt = ms(x.HelpRequestedAt)
	}
	d.Rating, d.RatingKeyID, d.RatingCT = x.Rating, "", nil
	if x.RatingComment != "" {
		d.RatingKeyID, d.RatingCT = s.keys.Seal([]byte(x.RatingComment), persistence.RatingAD(x.ID))
	}
}

func (s *Store) sessionFromDoc(ctx context.Context, d *sessionDoc) persistence.Session {
	title, err := s.keys.Open(d.TitleKeyID, d.TitleCT, persistence.TitleAD(d.ID))
	if err != nil {
		s.unreadable(ctx, err, "session title unreadable", "session_id", d.ID, "key_id", d.TitleKeyID)
	}
	x := persistence.Session{
		ID:            d.ID,
		UserID:        d.UserID,
		Title:         string(title),
		Model:         d.Model,
		Status:        d.Status,
		Mode:          d.Mode,
		AdminID:       d.AdminID,
		AdminName:     d.AdminName,
		HelpRequested: d.HelpRequested,
		MessageCount:  d.MessageCount,
		LastSeq:       d.LastSeq,
		TokensIn:      d.TokensIn,
		TokensOut:     d.TokensOut,
		ShareID:       d.ShareID,
		CreatedAt:     d.CreatedAt.UTC(),
		UpdatedAt:     d.UpdatedAt.UTC(),
		Version:       storedVersion(d.Version),
		HeadID:        d.HeadID,
		Rating:        d.Rating,
	}
	if !d.HelpRequestedAt.IsZero() {
		x.HelpRequestedAt = d.HelpRequestedAt.UTC()
	}
	if d.RatingKeyID != "" {
		comment, err := s.keys.Open(d.RatingKeyID, d.RatingCT, persistence.RatingAD(d.ID))
		if err != nil {
			s.unreadable(ctx, err, "rating comment unreadable", "session_id", d.ID, "key_id", d.RatingKeyID)
		}
		x.RatingComment = string(comment)
	}
	return x
}

func (s *Store) messageToDoc(m *persistence.Message) messageDoc {
	keyID, ct := s.keys.Seal([]byte(m.Text), persistence.MessageAD(m.SessionID, m.Seq))
	return messageDoc{
		ID:        m.ID,
		SessionID: m.SessionID,
		Seq:       m.Seq,
		Role:      string(m.Role),
		Author:    m.Author,
		AuthorID:  m.AuthorID,
		KeyID:     keyID,
		CT:        ct,
		Status:    string(m.Status),
		CreatedAt: ms(m.CreatedAt),
		TokensIn:  m.TokensIn,
		TokensOut: m.TokensOut,
		ParentID:  &m.ParentID,

		Attachments: m.Attachments,
	}
}

func (s *Store) messageFromDoc(ctx context.Context, d *messageDoc) persistence.Message {
	text, err := s.keys.Open(d.KeyID, d.CT, persistence.MessageAD(d.SessionID, d.Seq))
	if err != nil {
		s.unreadable(ctx, err, "message text unreadable", "session_id", d.SessionID, "seq", d.Seq, "key_id", d.KeyID)
	}
	return persistence.Message{
		ID:         d.ID,
		SessionID:  d.SessionID,
		Seq:        d.Seq,
		Role:       persistence.Role(d.Role),
		Author:     d.Author,
		AuthorID:   d.AuthorID,
		Text:       string(text),
		Status:     persistence.Status(d.Status),
		CreatedAt:  d.CreatedAt.UTC(),
		TokensIn:   d.TokensIn,
		TokensOut:  d.TokensOut,
		Unreadable: err != nil,
		ParentID:   parentOf(d),

		Attachments: d.Attachments,
	}
}

// parentOf is d's parent id; a document from before v1.1 has none stored,
// and its parent is found by parentsOfLegacy.
func parentOf(d *messageDoc) string {
	if d.ParentID == nil {
		return ""
	}
	return *d.ParentID
}
