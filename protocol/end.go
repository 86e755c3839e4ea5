package protocol

// TypeEnd is the command that ends a session (CONTRACT §8), from its owner
// or an admin; TypeEnded the event every device and watcher then gets.
const (
	TypeEnd   = "end"
	TypeEnded = "ended"
)

// TypeDelete is not a wire command: it is what the HTTP API's
// DELETE /api/sessions/{id} runs on the session's actor. Decode refuses it.
const TypeDelete = "delete"

// NewEnded says the session has ended: it is read-only from now on.
func NewEnded(sessionID string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
	}{TypeEnded, sessionID})
}

// TypeDeleted is the event a user's devices get when one of them deleted
// the session: it and everything in it are gone.
const TypeDeleted = "deleted"

// NewDeleted says the session was deleted.
func NewDeleted(sessionID string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
	}{TypeDeleted, sessionID})
}
