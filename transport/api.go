package transport

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// writeError answers e as CONTRACT §5's JSON error, with e's HTTP status.
func writeError(w http.ResponseWriter, e *protocol.Error) { writeErrorStatus(w, e.HTTPStatus(), e) }

// writeErrorStatus answers e with another status than its own: busy as 503
// when the server as a whole, not one session, cannot take the request, so
// that clients and balancers try again or elsewhere.
func writeErrorStatus(w http.ResponseWriter, status int, e *protocol.Error) {
	writeJSON(w, status, errorJSON(e))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// authenticate reads and verifies the bearer token, answering 401 itself
// when it is missing or invalid. The token is never logged.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, log *slog.Logger) (auth.Identity, bool) {
	token, _ := auth.BearerToken(r)
	if token == "" {
		writeError(w, protocol.Err(protocol.CodeUnauthorized))
		return auth.Identity{}, false
	}
	id, err := s.cfg.Verifier.Verify(token)
	if err != nil {
		log.Info("token refused", slog.Any("err", err))
		writeError(w, protocol.Err(protocol.CodeUnauthorized))
		return auth.Identity{}, false
	}
	return id, true
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// handleReady reports 503 naming what is down: the store (pinged with a
// timeout) or the server itself while it shuts down.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	checks := map[string]string{"storage": "ok", "server": "ok"}
	ready := true
	if s.closing.Load() {
		checks["server"] = "shutting down"
		ready = false
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		s.log.Warn("readiness: storage ping", slog.String("request_id", requestID(r)), slog.Any("err", err))
		checks["storage"] = "unavailable"
		ready = false
	}
	if s.cfg.Cluster != nil {
		checks["cluster"] = "ok"
		if err := s.cfg.Cluster.Ready(); err != nil {
			s.log.Warn("readiness: cluster", slog.String("request_id", requestID(r)), slog.Any("err", err))
			checks["cluster"] = "not a member"
			ready = false
		}
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
}

// intParam reads an optional non-negative integer query parameter.
func intParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New(name + " must be a non-negative integer")
	}
	return n, nil
}

// storeFailure answers a store error: 404 for a missing record, 400 for a
// bad cursor, 503 otherwise.
func (s *Server) storeFailure(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, persistence.ErrNotFound):
		writeError(w, protocol.Err(protocol.CodeNotFound))
	case errors.Is(err, persistence.ErrBadCursor):
		writeError(w, protocol.Errf(protocol.CodeBadRequest, "cursor is not valid"))
	default:
		s.log.Warn(what, slog.String("request_id", requestID(r)), slog.Any("err", err))
		writeError(w, protocol.Err(protocol.CodeStorageUnavailable))
	}
}

// handleSessions lists the token's user's sessions, newest first.
func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	id, ok := s.authenticate(w, r, log)
	if !ok {
		return
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		writeError(w, protocol.Errf(protocol.CodeBadRequest, "%v", err))
		return
	}
	sessions, next, err := s.cfg.Store.ListSessions(r.Context(), id.UserID, persistence.Page{Limit: int(limit), Cursor: r.URL.Query().Get("cursor")})
	if err != nil {
		s.storeFailure(w, r, "list sessions", err)
		return
	}
	out := make([]protocol.Session, len(sessions))
	for i, ss := range sessions {
		out[i] = protocol.SessionOf(ss)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out, "next_cursor": next})
}

// Message pages over HTTP: default and largest limit.
const (
	defaultMessagePage = 100
	maxMessagePage     = 1000
)

// handleMessages lists one of the user's own sessions' messages in seq
// order. Another user's session is answered exactly like a missing one.
// next_cursor is the seq to pass as after_seq (or cursor) for the next page.
func (s *Server) handleMessages(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	id, ok := s.authenticate(w, r, log)
	if !ok {
		return
	}
	after, err := intParam(r, "after_seq")
	if err == nil && r.URL.Query().Get("cursor") != "" {
		after, err = intParam(r, "cursor")
	}
	limit, lerr := intParam(r, "limit")
	if err = errors.Join(err, lerr); err != nil {
		writeError(w, protocol.Errf(protocol.CodeBadRequest, "%v", err))
		return
	}
	if limit == 0 {
		limit = defaultMessagePage
	}
	limit = min(limit, maxMessagePage)

	sess, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
	if err == nil && sess.UserID != id.UserID {
		err = persistence.ErrNotFound
	}
	if err != nil {
		s.storeFailure(w, r, "get session", err)
		return
	}
	msgs, err := s.cfg.Store.ListMessages(r.Context(), sess.ID, after, int(limit)+1)
	if err != nil {
		s.storeFailure(w, r, "list messages", err)
		return
	}
	next := ""
	if len(msgs) > int(limit) {
		msgs = msgs[:limit]
		next = strconv.FormatInt(msgs[len(msgs)-1].Seq, 10)
	}
	// The page is cut by seq before the notes leave it, so the cursor
	// stays right; the owner never sees an internal note.
	msgs = persistence.WithoutNotes(msgs)
	out := make([]protocol.Message, len(msgs))
	for i, m := range msgs {
		out[i] = protocol.MessageOf(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "next_cursor": next})
}
