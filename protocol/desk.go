package protocol

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatbox/chatbox/persistence"
)

// The help desk (CONTRACT §11): an admin's internal note, the owner's
// rating, and who is watching a session.
const (
	// TypeNote is an admin's internal note: a command, and the role of
	// the message it stores.
	TypeNote = "note"
	// TypeRate is the owner's satisfaction rating of a session.
	TypeRate = "rate"
	// TypeWatchers is the event that tells watching admins who watches.
	TypeWatchers = "watchers"
	// TypeRated tells the owner's devices and watchers that the session
	// was rated.
	TypeRated = "rated"
	// TypeQueue tells every online admin that a session left the queue
	// (taken over or ended); TypeHelp says one joined it.
	TypeQueue = "queue"
)

// NewQueueLeft says the session no longer waits for a human.
func NewQueueLeft(sessionID string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		Waiting   bool   `json:"waiting"`
	}{TypeQueue, sessionID, false})
}

// MaxCommentLen bounds a rating's comment, in bytes.
const MaxCommentLen = 2000

// checkDesk validates the help desk's commands for Decode.
func checkDesk(c *Command) error {
	switch c.Type {
	case TypeNote:
		if c.SessionID == "" {
			return errors.New("note needs a session_id")
		}
		if strings.TrimSpace(c.Text) == "" {
			return errors.New("note needs a text with a non-space character")
		}
		if !utf8.ValidString(c.Text) {
			return errors.New("text is not valid UTF-8")
		}
	case TypeRate:
		if c.SessionID == "" {
			return errors.New("rate needs a session_id")
		}
		return CheckRating(c.Score, c.Comment)
	}
	return nil
}

// CheckRating says what is wrong with a rating: a score from 1 to 5 and an
// optional comment of valid UTF-8, at most MaxCommentLen bytes.
func CheckRating(score int, comment string) error {
	switch {
	case score < persistence.MinRating || score > persistence.MaxRating:
		return fmt.Errorf("score must be from %d to %d", persistence.MinRating, persistence.MaxRating)
	case !utf8.ValidString(comment):
		return errors.New("comment is not valid UTF-8")
	case len(comment) > MaxCommentLen:
		return fmt.Errorf("comment is longer than %d bytes", MaxCommentLen)
	}
	return nil
}

// Watcher is one admin watching a session.
type Watcher struct {
	AdminID string `json:"admin_id"`
	Name    string `json:"name"`
}

// NewWatchers says who watches the session now (each admin once).
func NewWatchers(sessionID string, ws []Watcher) *Event {
	if ws == nil {
		ws = []Watcher{}
	}
	return other(sessionID, struct {
		Type      string    `json:"type"`
		SessionID string    `json:"session_id"`
		Watchers  []Watcher `json:"watchers"`
	}{TypeWatchers, sessionID, ws})
}

// Rating is the wire shape of a session's rating.
type Rating struct {
	Score   int    `json:"score"`
	Comment string `json:"comment,omitempty"`
}

// NewRated says the session was rated.
func NewRated(sessionID string, r Rating) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		Rating    Rating `json:"rating"`
	}{TypeRated, sessionID, r})
}

// deskOf fills the help desk's fields of the wire session w from s.
func deskOf(w *Session, s persistence.Session) {
	if s.HelpRequested && !s.HelpRequestedAt.IsZero() {
		at := s.HelpRequestedAt.UTC()
		w.HelpRequestedAt = &at
	}
	if s.Rating > 0 {
		w.Rating = &Rating{Score: s.Rating, Comment: s.RatingComment}
	}
}

// QueuedSession is a queue entry: a session with how long it has waited.
type QueuedSession struct {
	Session
	WaitingSeconds int64 `json:"waiting_seconds"`
}

// QueuedOf is the queue entry of s at now.
func QueuedOf(s persistence.Session, now time.Time) QueuedSession {
	return QueuedSession{Session: SessionOf(s), WaitingSeconds: int64(s.WaitingSince(now) / time.Second)}
}
