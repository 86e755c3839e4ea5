// Package providers defines how Chatbox talks to language models: the Provider
// interface every vendor implements, the streaming types, and the Catalog that
// maps the model ids clients select to configured providers.
//
// Each vendor lives in its own subpackage (demo, openai, anthropic, gemini) and
// imports only the standard library and that vendor's SDK. A Provider is safe
// for concurrent use; each Stream call is independent and ends when its context
// is cancelled.
package providers

import (
	"context"
	"iter"
)

// Role of a message in the conversation sent to a model.
type Role string

const (
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
)

// Message is one turn of the conversation as a model sees it. Admin messages
// are sent as assistant turns: to the model, a human agent's words are the
// assistant side of the conversation.
type Message struct {
	Role Role
	Text string
	// Attachments are the files of the message. What reaches a vendor is
	// only what its model takes (see Prepare): images and PDFs as the
	// vendor's own parts; the rest is folded into Text before.
	Attachments []Attachment
}

// Attachment is a file of a message, with its bytes.
type Attachment struct {
	// ID is the stored attachment's id, by which a caller loads Data.
	ID   string
	Name string
	Type string // the sniffed media type, e.g. "image/png"
	Data []byte
	// Transcript is the text of a voice note, when it was transcribed.
	Transcript string
}

// Request is one generation. Model and System are filled from the catalog's
// model configuration; Messages is the conversation so far, oldest first,
// ending with the user's newest message.
type Request struct {
	Model    string // the vendor's model name, e.g. "gpt-4o-mini"
	System   string
	Messages []Message
	// User is the id of the user the reply is for, and Conversation the
	// id a vendor that keeps its own history (Dify) gave this session
	// earlier, "" the first time; other vendors ignore both.
	User         string
	Conversation string
}

// Usage is the token accounting a vendor reports for one generation.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

// Chunk is one piece of a streamed reply. Text may be empty on the final
// chunk, which carries Usage when the vendor reports it.
type Chunk struct {
	Text  string
	Usage *Usage
	// Conversation is the vendor's id of the conversation, when it keeps
	// one (Dify): the caller stores it and sends it back as
	// Request.Conversation.
	Conversation string
}

// Provider streams a reply. The sequence yields chunks in order and stops at
// the end of the reply, at the first error (yielded with a zero Chunk), or
// when ctx is cancelled; a consumer may stop ranging early, which must abort
// the underlying request.
type Provider interface {
	Stream(ctx context.Context, req Request) iter.Seq2[Chunk, error]
}
