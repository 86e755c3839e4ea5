package actors

import (
	"context"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/protocol"
)

// Share creates (on) or revokes the read-only share link of a session of
// userID, acting as its owner, and returns the link's id ("" once
// revoked). A refusal is a *protocol.Error (not_found for a session that is
// not the user's); any other error means the actors did not answer.
func (h *Hub) Share(ctx context.Context, userID, sessionID string, on bool) (string, error) {
	res, err := h.request(ctx, userID, &setShare{sessionID: sessionID, on: on})
	if err != nil {
		return "", fmt.Errorf("share session %s: %w", sessionID, err)
	}
	a, ok := res.(*shareAnswer)
	switch {
	case !ok:
		return "", protocol.Err(protocol.CodeInternal)
	case a.err != nil:
		return "", a.err
	}
	return a.shareID, nil
}

// share sets or clears the session's share id, a header write like any
// other (fenced), and answers m.replyTo. The session actor belongs to
// its owner, and the directory (or, in cluster mode, the identity lookup)
// routed m to the owner's actor, so the caller is the owner.
func (s *sessionActor) share(ctx actor.Context, m *setShare) {
	defer onPanic(func() { s.hub.send(ctx, m.replyTo, &shareAnswer{err: protocol.Err(protocol.CodeInternal)}) })
	a := &shareAnswer{}
	if s.loadErr != nil {
		a.err = storeError(s.loadErr)
		s.askToStop(ctx)
	} else {
		a.err = s.fenced(func() *protocol.Error { return s.setShareID(m.on) })
	}
	if a.err == nil {
		a.shareID = s.session.ShareID
	}
	s.hub.send(ctx, m.replyTo, a) // an envelope to a future on another node
}

func (s *sessionActor) setShareID(on bool) *protocol.Error {
	prev := *s.session
	switch {
	case on && s.session.ShareID == "":
		s.session.ShareID = newID()
	case !on:
		s.session.ShareID = ""
	}
	if s.session.ShareID == prev.ShareID {
		return nil
	}
	return s.saveSession(prev)
}
