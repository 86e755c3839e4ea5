package protocol

// TypeEnd is the command that ends a session (CONTRACT §8), from its owner
// or an admin; TypeEnded the event every device and watcher then gets.
const (
	TypeEnd   = "end"
	TypeEnded = "ended"
)

// NewEnded says the session has ended: it is read-only from now on.
func NewEnded(sessionID string) *Event {
	return other(sessionID, struct {
		Type      string `json:"type"`
		SessionID string `json:"session_id"`
	}{TypeEnded, sessionID})
}
