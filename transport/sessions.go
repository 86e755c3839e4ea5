package transport

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/protocol"
)

// The owner's routes on one session as a whole (CONTRACT §6): rename and
// delete. Both run in the session's actor, like the WebSocket commands of
// the same names, so they are ordered with everything else written there;
// another user's session is answered exactly like a missing one.

// handleRenameSession serves PATCH /api/sessions/{id} {"title": ...} and
// answers the renamed session.
func (s *Server) handleRenameSession(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	id, ok := s.authenticate(w, r, log)
	if !ok {
		return
	}
	var body struct {
		Title *string `json:"title"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes)).Decode(&body); err != nil || body.Title == nil {
		badParam(w, "the body must be a JSON object with a title field")
		return
	}
	if err := protocol.CheckTitle(*body.Title); err != nil {
		badParam(w, "%v", err)
		return
	}
	sid := r.PathValue("id")
	if !s.ownerCall(w, r, id.UserID, id.Name, protocol.Command{Type: protocol.TypeRename, SessionID: sid, Title: *body.Title}) {
		return
	}
	sess, err := s.cfg.Store.GetSession(r.Context(), sid)
	if err != nil {
		s.storeFailure(w, r, "get session", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": protocol.SessionOf(*sess)})
}

// handleDeleteSession serves DELETE /api/sessions/{id}: the session and
// everything in it are deleted for real; 204.
func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	id, ok := s.authenticate(w, r, log)
	if !ok {
		return
	}
	if !s.ownerCall(w, r, id.UserID, id.Name, protocol.Command{Type: protocol.TypeDelete, SessionID: r.PathValue("id")}) {
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ownerCall runs cmd in the session actor as the session's owner, userID,
// answering the failure itself.
func (s *Server) ownerCall(w http.ResponseWriter, r *http.Request, userID, name string, cmd protocol.Command) bool {
	// Not as an admin, even for one: these are the owner's commands.
	if _, err := s.cfg.Hub.Call(r.Context(), actors.Identity{UserID: userID, Name: name}, userID, cmd); err != nil {
		s.actorFailure(w, r, cmd.Type, err)
		return false
	}
	return true
}
