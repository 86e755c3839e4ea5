package transport

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// A conversation's whole life over HTTP (CONTRACT §6 and §8): ending a
// session, deleting one, exporting a user's data, erasing it, and the
// audit trail of those actions.

// auditBy is an audit entry of action by id on userID's data.
func auditBy(id auth.Identity, action, userID string) *persistence.AuditEntry {
	role := persistence.AuditByUser
	if id.IsAdmin() && id.UserID != userID {
		role = persistence.AuditByAdmin
	}
	now := time.Now().UTC()
	return &persistence.AuditEntry{ID: persistence.NewAuditID(now), At: now, AdminID: id.UserID, AdminName: id.Name,
		Role: role, Action: action, UserID: userID}
}

// handleEnd ends a session: its owner's or, for an admin, anyone's.
// Another user's session is answered exactly like a missing one.
func (s *Server) handleEnd(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authenticate(w, r, s.log.With(slog.String("request_id", requestID(r))))
	if !ok {
		return
	}
	sess, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
	if err == nil && sess.UserID != id.UserID && !id.IsAdmin() {
		err = persistence.ErrNotFound
	}
	if err != nil {
		s.storeFailure(w, r, "get session", err)
		return
	}
	if _, ok := s.call(w, r, id, sess, protocol.Command{Type: protocol.TypeEnd}); !ok {
		return
	}
	if sess, err = s.cfg.Store.GetSession(r.Context(), sess.ID); err != nil {
		s.storeFailure(w, r, "get session", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": protocol.SessionOf(*sess)})
}

// handleMyExport streams the caller's own data.
func (s *Server) handleMyExport(w http.ResponseWriter, r *http.Request) {
	id, ok := s.authenticate(w, r, s.log.With(slog.String("request_id", requestID(r))))
	if !ok {
		return
	}
	s.export(w, r, id, id.UserID)
}

// handleAdminExport streams any user's data, for an admin.
func (s *Server) handleAdminExport(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	s.export(w, r, id, r.PathValue("user_id"))
}

// export records the export in the audit trail, then streams it. Once the
// first byte is out, a failure can only abort the response, which the
// client sees as a broken transfer rather than a whole file.
func (s *Server) export(w http.ResponseWriter, r *http.Request, id auth.Identity, userID string) {
	if err := s.cfg.Store.AppendAudit(r.Context(), auditBy(id, persistence.AuditExport, userID)); err != nil {
		s.storeFailure(w, r, "record export", err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="chatbox-export.json"`)
	w.WriteHeader(http.StatusOK)
	if err := writeExport(r.Context(), w, s.cfg.Store, userID, time.Now()); err != nil {
		s.log.Warn("export", slog.String("request_id", requestID(r)), slog.Any("err", err))
		panic(http.ErrAbortHandler)
	}
}

// handleAdminErase erases a user: connections closed, actors stopped,
// every session and message deleted for real, the store compacted.
func (s *Server) handleAdminErase(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	userID := r.PathValue("user_id")
	res, err := s.cfg.Hub.EraseUser(r.Context(), userID, auditBy(id, persistence.AuditErase, userID))
	if err != nil {
		if e, ok := errors.AsType[*protocol.Error](err); ok {
			writeError(w, e)
			return
		}
		if errors.Is(err, actors.ErrShuttingDown) {
			writeErrorStatus(w, http.StatusServiceUnavailable, protocol.Err(protocol.CodeBusy))
			return
		}
		s.storeFailure(w, r, "erase user", err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"erased": map[string]int64{
		"sessions": res.Sessions, "messages": res.Messages, "attachments": res.Attachments,
	}})
}

// auditEntry is the wire shape of an audit entry.
type auditEntry struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	AdminID   string    `json:"admin_id"`
	AdminName string    `json:"admin_name"`
	Role      string    `json:"role"`
	Action    string    `json:"action"`
	SessionID string    `json:"session_id"`
	UserID    string    `json:"user_id"`
}

// handleAdminAudit lists the audit trail, newest first.
func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		badParam(w, "%v", err)
		return
	}
	entries, next, err := s.cfg.Store.ListAudit(r.Context(), persistence.Page{Limit: int(limit), Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		s.storeFailure(w, r, "list audit entries", err)
		return
	}
	out := make([]auditEntry, len(entries))
	for i, e := range entries {
		out[i] = auditEntry{ID: e.ID, At: e.At.UTC(), AdminID: e.AdminID, AdminName: e.AdminName, Role: e.Role,
			Action: e.Action, SessionID: e.SessionID, UserID: e.UserID}
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "next_cursor": next})
}
