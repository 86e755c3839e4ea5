package transport

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/chatbox/chatbox/protocol"
)

// The help desk's routes (CONTRACT §11): the queue of sessions waiting for
// a human and the canned replies. Presence (watchers) is part of the admin's
// session view, satisfaction of the stats (admin.go).

// CannedReply is one of the help desk's prepared replies.
type CannedReply struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

func (s *Server) deskRoutes(api *http.ServeMux, p string) {
	api.HandleFunc("GET "+p+"/api/admin/queue", s.handleAdminQueue)
	api.HandleFunc("GET "+p+"/api/admin/replies", s.handleAdminReplies)
}

// handleAdminQueue lists the sessions waiting for a human, oldest request
// first, each with how long it has waited.
func (s *Server) handleAdminQueue(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		badParam(w, "%v", err)
		return
	}
	sessions, err := s.cfg.Store.ListQueue(r.Context(), int(limit))
	if err != nil {
		s.storeFailure(w, r, "list the queue", err)
		return
	}
	now := time.Now()
	out := make([]protocol.QueuedSession, len(sessions))
	for i, ss := range sessions {
		out[i] = protocol.QueuedOf(ss, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (s *Server) handleAdminReplies(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	replies := s.cfg.Replies
	if replies == nil {
		replies = []CannedReply{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"replies": replies})
}

// watchers is who watches the session, for the admin's session view; if
// the actors do not answer, the view goes out without them (empty) rather
// than not at all.
func (s *Server) watchers(r *http.Request, ownerID, sessionID string) []protocol.Watcher {
	ws, err := s.cfg.Hub.Watchers(r.Context(), ownerID, sessionID)
	if err != nil {
		s.log.Warn("watchers", slog.String("request_id", requestID(r)), slog.Any("err", err))
		return []protocol.Watcher{}
	}
	return ws
}

// csat is the satisfaction figure of the stats: how many sessions are
// rated and their average score (0 when none is).
func csat(count, sum int64) map[string]any {
	avg := 0.0
	if count > 0 {
		avg = float64(sum) / float64(count)
	}
	return map[string]any{"count": count, "average": avg}
}
