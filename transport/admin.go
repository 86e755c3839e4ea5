package transport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatbox/chatbox/actors"
	"github.com/chatbox/chatbox/auth"
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// requireAdmin authenticates and checks the admin role: 401 without a
// valid token, 403 without the role.
func (s *Server) requireAdmin(w http.ResponseWriter, r *http.Request) (auth.Identity, bool) {
	id, ok := s.authenticate(w, r, s.log.With(slog.String("request_id", requestID(r))))
	if !ok {
		return id, false
	}
	if !id.IsAdmin() {
		writeError(w, protocol.Err(protocol.CodeForbidden))
		return id, false
	}
	return id, true
}

func badParam(w http.ResponseWriter, format string, args ...any) {
	writeError(w, protocol.Errf(protocol.CodeBadRequest, format, args...))
}

// adminFilter reads the admin list's query parameters, naming the first bad one.
func adminFilter(r *http.Request) (persistence.AdminFilter, persistence.Page, error) {
	q := r.URL.Query()
	f := persistence.AdminFilter{UserID: q.Get("user_id"), Status: q.Get("status"), Sort: q.Get("sort"), Order: q.Get("order")}
	var p persistence.Page
	boolParam := func(name string) (*bool, error) {
		v := q.Get(name)
		if v == "" {
			return nil, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("%s must be true or false", name)
		}
		return &b, nil
	}
	timeParam := func(name string) (time.Time, error) {
		v := q.Get(name)
		if v == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return t, fmt.Errorf("%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z", name)
		}
		return t, nil
	}
	var err error
	if f.HelpRequested, err = boolParam("help"); err != nil {
		return f, p, err
	}
	if f.TakenOver, err = boolParam("taken_over"); err != nil {
		return f, p, err
	}
	if f.From, err = timeParam("from"); err != nil {
		return f, p, err
	}
	if f.To, err = timeParam("to"); err != nil {
		return f, p, err
	}
	switch f.Status {
	case "", persistence.SessionActive, persistence.SessionEnded:
	default:
		return f, p, errors.New("status must be active or ended")
	}
	switch f.Sort {
	case "", "updated_at", "created_at", "message_count":
	default:
		return f, p, errors.New("sort must be updated_at, created_at or message_count")
	}
	switch f.Order {
	case "", "asc", "desc":
	default:
		return f, p, errors.New("order must be asc or desc")
	}
	limit, err := intParam(r, "limit")
	if err != nil {
		return f, p, err
	}
	p.Limit, p.Cursor = int(limit), q.Get("cursor")
	return f, p, nil
}

func (s *Server) handleAdminSessions(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	f, p, err := adminFilter(r)
	if err != nil {
		badParam(w, "%v", err)
		return
	}
	sessions, next, err := s.cfg.Store.ListAllSessions(r.Context(), f, p)
	if err != nil {
		s.storeFailure(w, r, "list all sessions", err)
		return
	}
	out := make([]protocol.Session, len(sessions))
	for i, ss := range sessions {
		out[i] = protocol.SessionOf(ss)
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out, "next_cursor": next})
}

// maxDetailMessages bounds the messages of one admin session view; older
// ones are paged with /api/sessions-style after_seq on the detail route.
const maxDetailMessages = 1000

func (s *Server) handleAdminSession(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	sess, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeFailure(w, r, "get session", err)
		return
	}
	after, err := intParam(r, "after_seq")
	if err != nil {
		badParam(w, "%v", err)
		return
	}
	s.writeSessionWithMessages(w, r, sess, after)
}

// writeSessionWithMessages answers {"session", "messages", "next_cursor"}.
func (s *Server) writeSessionWithMessages(w http.ResponseWriter, r *http.Request, sess *persistence.Session, after int64) {
	msgs, err := s.cfg.Store.ListMessages(r.Context(), sess.ID, after, maxDetailMessages+1)
	if err != nil {
		s.storeFailure(w, r, "list messages", err)
		return
	}
	next := ""
	if len(msgs) > maxDetailMessages {
		msgs = msgs[:maxDetailMessages]
		next = strconv.FormatInt(msgs[len(msgs)-1].Seq, 10)
	}
	out := make([]protocol.Message, len(msgs))
	for i, m := range msgs {
		out[i] = protocol.MessageOf(m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"session": protocol.SessionOf(*sess), "messages": out, "next_cursor": next,
		"watchers": s.watchers(r, sess.UserID, sess.ID)})
}

// call runs a session command through the actors on behalf of id and
// writes the failure if there is one; it reports success.
func (s *Server) call(w http.ResponseWriter, r *http.Request, id auth.Identity, sess *persistence.Session, cmd protocol.Command) (actors.CallResult, bool) {
	cmd.SessionID = sess.ID
	res, err := s.cfg.Hub.Call(r.Context(), actors.Identity{UserID: id.UserID, Name: id.Name, Admin: id.IsAdmin()}, sess.UserID, cmd)
	if err != nil {
		s.actorFailure(w, r, cmd.Type, err)
		return res, false
	}
	return res, true
}

// actorFailure answers an error from the actors: their refusal as it is,
// no answer in time as busy with a 503.
func (s *Server) actorFailure(w http.ResponseWriter, r *http.Request, what string, err error) {
	if e, ok := errors.AsType[*protocol.Error](err); ok {
		writeError(w, e)
		return
	}
	s.log.Warn(what, slog.String("request_id", requestID(r)), slog.Any("err", err))
	writeErrorStatus(w, http.StatusServiceUnavailable, protocol.Err(protocol.CodeBusy))
}

// handleAdminAction serves POST …/takeover and …/release.
func (s *Server) handleAdminAction(typ string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.requireAdmin(w, r)
		if !ok {
			return
		}
		sess, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
		if err != nil {
			s.storeFailure(w, r, "get session", err)
			return
		}
		if _, ok := s.call(w, r, id, sess, protocol.Command{Type: typ}); !ok {
			return
		}
		if sess, err = s.cfg.Store.GetSession(r.Context(), sess.ID); err != nil {
			s.storeFailure(w, r, "get session", err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"session": protocol.SessionOf(*sess)})
	}
}

// maxBodyBytes bounds JSON request bodies.
const maxBodyBytes = 1 << 20

func (s *Server) handleAdminMessage(w http.ResponseWriter, r *http.Request) {
	id, ok := s.requireAdmin(w, r)
	if !ok {
		return
	}
	var body struct {
		Text string `json:"text"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBodyBytes))
	if err := dec.Decode(&body); err != nil {
		badParam(w, "the body must be a JSON object with a text field")
		return
	}
	if strings.TrimSpace(body.Text) == "" || !utf8.ValidString(body.Text) || int64(len(body.Text)) > s.cfg.MaxMessageBytes {
		badParam(w, "text must be non-empty UTF-8 of at most %d bytes", s.cfg.MaxMessageBytes)
		return
	}
	sess, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeFailure(w, r, "get session", err)
		return
	}
	res, ok := s.call(w, r, id, sess, protocol.Command{Type: protocol.TypeSend, Text: body.Text})
	if !ok {
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"session_id": sess.ID, "message_id": res.MessageID, "seq": res.Seq})
}

func (s *Server) handleAdminStats(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.requireAdmin(w, r); !ok {
		return
	}
	stored, err := s.cfg.Store.Stats(r.Context())
	if err != nil {
		s.storeFailure(w, r, "stored stats", err)
		return
	}
	live := s.cfg.Hub.Stats()
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	nodes := []string{} // a single node: none listed
	if s.cfg.Cluster != nil {
		nodes = s.cfg.Cluster.Members()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"nodes": nodes,
		"live":  live,
		"stored": map[string]int64{
			"sessions": stored.Sessions, "messages": stored.Messages, "tokens_in": stored.TokensIn,
			"tokens_out": stored.TokensOut, "help_requested": stored.HelpRequested, "taken_over": stored.TakenOver,
		},
		"csat": csat(stored.Ratings, stored.RatingSum),
		"response_times": map[string]float64{
			"ttft_p50_ms": ms(live.TTFTP50), "ttft_p99_ms": ms(live.TTFTP99),
			"reply_p50_ms": ms(live.ReplyP50), "reply_p99_ms": ms(live.ReplyP99),
		},
	})
}

// handleShare creates (POST) or revokes (DELETE) the read-only link of one
// of the caller's own sessions.
func (s *Server) handleShare(w http.ResponseWriter, r *http.Request) {
	log := s.log.With(slog.String("request_id", requestID(r)))
	id, ok := s.authenticate(w, r, log)
	if !ok {
		return
	}
	sess, err := s.cfg.Store.GetSession(r.Context(), r.PathValue("id"))
	if err == nil && sess.UserID != id.UserID {
		err = persistence.ErrNotFound
	}
	if err != nil {
		s.storeFailure(w, r, "get session", err)
		return
	}
	on := r.Method != http.MethodDelete
	shareID, err := s.cfg.Hub.Share(r.Context(), id.UserID, sess.ID, on)
	if err != nil {
		s.actorFailure(w, r, "share", err)
		return
	}
	if !on {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"share_id": shareID, "url": s.cfg.PathPrefix + "/share/#" + shareID})
}

// sharedSession is the session as a share link shows it (CONTRACT §14):
// what a reader needs, nothing about who owns or answers it (no user id,
// token counts or admin).
type sharedSession struct {
	Title     string    `json:"title"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// handleShared serves a shared session read-only, to anyone with the link:
// {"session", "messages", "next_cursor"}, messages as everywhere else
// (role, author, text, times; no author ids).
func (s *Server) handleShared(w http.ResponseWriter, r *http.Request) {
	sess, err := s.cfg.Store.GetSessionByShareID(r.Context(), r.PathValue("share_id"))
	if err != nil {
		s.storeFailure(w, r, "get shared session", err)
		return
	}
	msgs, err := s.cfg.Store.ListMessages(r.Context(), sess.ID, 0, maxDetailMessages+1)
	if err != nil {
		s.storeFailure(w, r, "list shared messages", err)
		return
	}
	next := ""
	if len(msgs) > maxDetailMessages {
		msgs = msgs[:maxDetailMessages]
		next = strconv.FormatInt(msgs[len(msgs)-1].Seq, 10)
	}
	msgs = persistence.WithoutNotes(msgs) // internal notes are the desk's, never shared
	out := make([]protocol.Message, len(msgs))
	for i, m := range msgs {
		out[i] = protocol.MessageOf(m)
	}
	view := sharedSession{Title: sess.Title, CreatedAt: sess.CreatedAt.UTC(), UpdatedAt: sess.UpdatedAt.UTC()}
	writeJSON(w, http.StatusOK, map[string]any{"session": view, "messages": out, "next_cursor": next})
}
