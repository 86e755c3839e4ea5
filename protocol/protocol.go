// Package protocol is the WebSocket wire format of CONTRACT §4: the commands
// clients send, the events the server sends, and their JSON codec.
//
// Every outbound event is encoded exactly once, when it is created, into an
// immutable *Event whose Frame is shared by every connection that receives
// it; no per-device encoding happens on the hot path. Events and their frames
// must not be modified after creation; they are safe to share between
// goroutines.
package protocol

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/chatbox/chatbox/persistence"
)

// Command types sent by clients.
const (
	TypeSend     = "send"
	TypeStop     = "stop"
	TypeSync     = "sync"
	TypeHelp     = "help"
	TypePing     = "ping"
	TypeWatch    = "watch"
	TypeUnwatch  = "unwatch"
	TypeTakeover = "takeover"
	TypeRelease  = "release"
	// v1.1: a conversation as a tree, presence, rename and delete.
	TypeRegenerate = "regenerate"
	TypeEdit       = "edit"
	TypeTyping     = "typing"
	TypeRename     = "rename"
	TypeDelete     = "delete"
)

// Event types sent by the server.
const (
	TypeHello   = "hello"
	TypeAck     = "ack"
	TypeMessage = "message"
	TypeDelta   = "delta"
	TypeError   = "error"
	TypePong    = "pong"
	// TypeRenamed and TypeDeleted tell every device of the owner, and
	// watching admins, that a session was renamed or deleted.
	TypeRenamed = "renamed"
	TypeDeleted = "deleted"
	// TypeTakeover, TypeRelease and TypeTyping are also event types.
)

// MaxClientIDLen bounds the client's id of a send or ping.
const MaxClientIDLen = 64

// Command is one decoded client frame. Fields a type does not use are zero.
type Command struct {
	Type      string `json:"type"`
	ID        string `json:"id,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Text      string `json:"text,omitempty"`
	Model     string `json:"model,omitempty"`
	AfterSeq  int64  `json:"after_seq,omitempty"`
	// ParentID (send) is the message to continue from; empty: the
	// session's head.
	ParentID string `json:"parent_id,omitempty"`
	// MessageID names the message a regenerate or edit acts on.
	MessageID string `json:"message_id,omitempty"`
	// Title is a rename's new title.
	Title string `json:"title,omitempty"`
	// Score and Comment are a rate's (1 to 5, and optional words).
	Score   int    `json:"score,omitempty"`
	Comment string `json:"comment,omitempty"`
	// Attachments (send, edit) are ids of files the sender uploaded, at
	// most MaxAttachments.
	Attachments []string `json:"attachments,omitempty"`
}

// MaxAttachments is how many files one message may carry.
const MaxAttachments = 10

// Attachment is the wire shape of a message's file.
type Attachment struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Size int64  `json:"size"`
}

// Message is the wire shape of a stored message (the `message` of a message
// event, and the items of the HTTP message lists).
type Message struct {
	ID        string    `json:"id"`
	Seq       int64     `json:"seq"`
	Role      string    `json:"role"`
	Author    string    `json:"author"`
	Text      string    `json:"text"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	// Unreadable marks a stored message whose text cannot be decrypted (its
	// key is no longer configured); Text is then empty.
	Unreadable bool `json:"unreadable,omitempty"`
	// ParentID is the message this one follows in its branch; "" for a
	// first message.
	ParentID string `json:"parent_id"`
	// Attachments are the message's files; absent when it has none.
	Attachments []Attachment `json:"attachments,omitempty"`
}

// ModelInfo is one entry of hello's model list.
type ModelInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Hello is the first frame on every connection.
type Hello struct {
	UserID       string      `json:"user_id"`
	Name         string      `json:"name"`
	ConnectionID string      `json:"connection_id"`
	Admin        bool        `json:"admin"`
	Models       []ModelInfo `json:"models"`
	DefaultModel string      `json:"default_model"`
}

// Kind tells the connection's outbound queue how it may treat an event.
type Kind uint8

const (
	// KindOther events are delivered one by one, in order.
	KindOther Kind = iota
	// KindDelta events of the same reply may be merged when they pile up.
	KindDelta
)

// Event is an encoded server event. Wire is the complete WebSocket frame,
// header and payload, as every connection sends it (server frames are not
// masked, so the bytes are the same for all); Frame is its JSON payload.
// For deltas the decoded fields are kept so that a slow connection's queue
// can merge consecutive deltas of one reply.
type Event struct {
	Kind      Kind
	Wire      []byte
	Frame     []byte // Wire without its header
	SessionID string
	MessageID string // deltas only
	Seq       int64  // deltas only
	Offset    int    // deltas only
	Text      string // deltas only
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Every value passed here is a fixed struct of strings, numbers and
		// times; failing to encode one is a programming error.
		panic("protocol: encode event: " + err.Error())
	}
	return b
}

func other(sessionID string, v any) *Event {
	payload := marshal(v)
	wire := AppendFrameHeader(make([]byte, 0, maxHeader+len(payload)), len(payload))
	wire = append(wire, payload...)
	return &Event{Kind: KindOther, SessionID: sessionID, Wire: wire, Frame: wire[len(wire)-len(payload):]}
}

// maxHeader is the largest header of an unmasked WebSocket frame.
const maxHeader = 10

// AppendFrameHeader appends the header of an unmasked, final text frame
// carrying n bytes (RFC 6455 §5.2).
func AppendFrameHeader(dst []byte, n int) []byte {
	const finText = 0x81
	switch {
	case n < 126:
		return append(dst, finText, byte(n))
	case n <= 0xFFFF:
		return append(dst, finText, 126, byte(n>>8), byte(n))
	default:
		return append(dst, finText, 127, byte(uint64(n)>>56), byte(uint64(n)>>48), byte(uint64(n)>>40),
			byte(uint64(n)>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// NewHello encodes the hello event.
func NewHello(h Hello) *Event {
	return other("", struct {
		Type string `json:"type"`
		Hello
	}{TypeHello, h})
}

// HelloTemplate encodes hello events without reflection: what is the same
// on every connection of a server (its models and default model) is
// encoded once, and each hello appends only who connected. Its output is
// byte for byte NewHello's.
type HelloTemplate struct {
	tail []byte // `,"models":...,"default_model":...}`
}

// NewHelloTemplate encodes the constant part of every hello.
func NewHelloTemplate(models []ModelInfo, defaultModel string) *HelloTemplate {
	full := marshal(struct {
		Models       []ModelInfo `json:"models"`
		DefaultModel string      `json:"default_model"`
	}{models, defaultModel})
	return &HelloTemplate{tail: append([]byte{','}, full[1:]...)} // drop the '{'
}

// Event is the hello of one connection; h.Models and h.DefaultModel are
// the template's.
func (t *HelloTemplate) Event(h Hello) *Event {
	buf := make([]byte, maxHeader, maxHeader+64+len(h.UserID)+len(h.Name)+len(h.ConnectionID)+len(t.tail))
	buf = append(buf, `{"type":"hello","user_id":`...)
	buf = appendString(buf, h.UserID)
	buf = append(buf, `,"name":`...)
	buf = appendString(buf, h.Name)
	buf = append(buf, `,"connection_id":`...)
	buf = appendString(buf, h.ConnectionID)
	buf = append(buf, `,"admin":`...)
	buf = strconv.AppendBool(buf, h.Admin)
	buf = append(buf, t.tail...)
	var hdr [maxHeader]byte
	head := AppendFrameHeader(hdr[:0], len(buf)-maxHeader)
	start := maxHeader - len(head)
	copy(buf[start:], head)
	return &Event{Kind: KindOther, Wire: buf[start:], Frame: buf[maxHeader:]}
}

// NewAck encodes the ack of the send whose client id is id.
func NewAck(id, sessionID, messageID string, seq int64) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		ID        string `json:"id"`
		SessionID string `json:"session_id"`
		MessageID string `json:"message_id"`
		Seq       int64  `json:"seq"`
	}{TypeAck, id, sessionID, messageID, seq})
}

// NewMessage encodes a whole-message event.
func NewMessage(sessionID string, m Message) *Event {
	return other(sessionID, struct {
		Type      string  `json:"type"`
		SessionID string  `json:"session_id"`
		Message   Message `json:"message"`
	}{TypeMessage, sessionID, m})
}

// NewError encodes the error event of e; id (the command it answers) and
// sessionID may be empty. retry_after_ms is there when e.RetryAfter is set.
func NewError(id, sessionID string, e *Error) *Event {
	type errorEvent struct {
		Type      string `json:"type"`
		ID        string `json:"id,omitempty"`
		SessionID string `json:"session_id,omitempty"`
		Code      string `json:"code"`
		Message   string `json:"message"`
	}
	ev := errorEvent{TypeError, id, sessionID, e.Code, e.Message}
	if e.RetryAfter <= 0 {
		return other(sessionID, ev)
	}
	return other(sessionID, struct {
		errorEvent
		RetryAfterMS int64 `json:"retry_after_ms"`
	}{ev, e.RetryAfter.Milliseconds()})
}

// NewPong answers a ping.
func NewPong(id string) *Event {
	return other("", struct {
		Type string `json:"type"`
		ID   string `json:"id,omitempty"`
	}{TypePong, id})
}

// NewTakeover says a human, adminName, now answers in the session.
func NewTakeover(sessionID, adminName string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		AdminName string `json:"admin_name"`
	}{TypeTakeover, sessionID, adminName})
}

// TypeHelp is also the event admins receive when a user asks for a human.

// NewHelp alerts admins that a user asked for a human in a session.
func NewHelp(sessionID, userID, title string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		UserID    string `json:"user_id"`
		Title     string `json:"title"`
	}{TypeHelp, sessionID, userID, title})
}

// NewRelease says the bot answers again.
func NewRelease(sessionID string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
	}{TypeRelease, sessionID})
}

// NewDelta encodes a piece of a reply in progress. The payload is encoded
// after room for the largest header, and the header is then written right
// before it, so the frame is built in one buffer with no copy.
func NewDelta(sessionID, messageID string, seq int64, offset int, text string) *Event {
	buf := make([]byte, maxHeader, maxHeader+96+len(sessionID)+len(messageID)+len(text))
	buf = AppendDelta(buf, sessionID, messageID, seq, offset, text)
	n := len(buf) - maxHeader
	var hdr [maxHeader]byte
	h := AppendFrameHeader(hdr[:0], n)
	start := maxHeader - len(h)
	copy(buf[start:], h)
	return &Event{
		Kind: KindDelta, SessionID: sessionID, MessageID: messageID, Seq: seq, Offset: offset, Text: text,
		Wire: buf[start:], Frame: buf[maxHeader:],
	}
}

// AppendDeltaFrame appends to buf the complete frame (header and payload)
// of a delta whose text is the concatenation of parts, and returns the
// grown buffer and the frame within it. It is how a connection's outbox
// writes deltas it merged: one frame in a buffer it reuses, with no string
// built for the merged text. Each part is escaped on its own, exactly as
// the frames of the separate deltas would have carried it.
func AppendDeltaFrame(buf []byte, sessionID, messageID string, seq int64, offset int, parts []string) (grown, frame []byte) {
	start := len(buf)
	buf = append(buf, make([]byte, maxHeader)...)
	buf = appendDeltaHead(buf, sessionID, messageID, seq, offset)
	buf = append(buf, '"')
	for _, p := range parts {
		buf = appendEscaped(buf, p)
	}
	buf = append(buf, '"', '}')
	var hdr [maxHeader]byte
	h := AppendFrameHeader(hdr[:0], len(buf)-start-maxHeader)
	at := start + maxHeader - len(h)
	copy(buf[at:], h)
	return buf, buf[at:]
}

// Session is the wire shape of a session (CONTRACT §5).
type Session struct {
	ID            string    `json:"id"`
	UserID        string    `json:"user_id"`
	Title         string    `json:"title"`
	Model         string    `json:"model"`
	Status        string    `json:"status"`
	Mode          string    `json:"mode"`
	AdminName     string    `json:"admin_name"`
	HelpRequested bool      `json:"help_requested"`
	MessageCount  int64     `json:"message_count"`
	TokensIn      int64     `json:"tokens_in"`
	TokensOut     int64     `json:"tokens_out"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	HeadID        string    `json:"head_id"`
	// HelpRequestedAt is when the pending help request was made; absent
	// while none is. Rating is the owner's, absent until they rate.
	HelpRequestedAt *time.Time `json:"help_requested_at,omitempty"`
	Rating          *Rating    `json:"rating,omitempty"`
}

// MessageOf is the wire shape of a stored message.
func MessageOf(m persistence.Message) Message {
	return Message{
		ID: m.ID, Seq: m.Seq, Role: string(m.Role), Author: m.Author, Text: m.Text,
		Status: string(m.Status), CreatedAt: m.CreatedAt.UTC(), Unreadable: m.Unreadable,
		ParentID: m.ParentID, Attachments: attachmentsOf(m.Attachments),
	}
}

func attachmentsOf(refs []persistence.AttachmentRef) []Attachment {
	if len(refs) == 0 {
		return nil
	}
	out := make([]Attachment, len(refs))
	for i, r := range refs {
		out[i] = Attachment{ID: r.ID, Name: r.Name, Type: r.Type, Size: r.Size}
	}
	return out
}

// SessionOf is the wire shape of a stored session.
func SessionOf(s persistence.Session) Session {
	w := Session{
		ID: s.ID, UserID: s.UserID, Title: s.Title, Model: s.Model, Status: s.Status, Mode: s.Mode,
		AdminName: s.AdminName, HelpRequested: s.HelpRequested, MessageCount: s.MessageCount,
		TokensIn: s.TokensIn, TokensOut: s.TokensOut, CreatedAt: s.CreatedAt.UTC(), UpdatedAt: s.UpdatedAt.UTC(),
		HeadID: s.HeadID,
	}
	deskOf(&w, s)
	return w
}

// Typing roles: who is typing, or (assistant) that the model works on a reply.
const (
	TypingUser      = "user"
	TypingAdmin     = "admin"
	TypingAssistant = "assistant"
)

// NewTyping says that author (role TypingUser or TypingAdmin) is typing in
// the session, or, with role TypingAssistant, that the model author has
// started the reply messageID, which answers parentID, and its first text is
// on the way. It is never stored.
func NewTyping(sessionID, role, author, messageID, parentID string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		Role      string `json:"role"`
		Author    string `json:"author"`
		MessageID string `json:"message_id,omitempty"`
		ParentID  string `json:"parent_id,omitempty"`
	}{TypeTyping, sessionID, role, author, messageID, parentID})
}

// NewRenamed says the session's title is now title.
func NewRenamed(sessionID, title string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
		Title     string `json:"title"`
	}{TypeRenamed, sessionID, title})
}

// NewDeleted says the session and everything in it are gone.
func NewDeleted(sessionID string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
	}{TypeDeleted, sessionID})
}
