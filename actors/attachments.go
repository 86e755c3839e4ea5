package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
	"github.com/chatbox/chatbox/providers"
)

// Attachments (CONTRACT §9): a send names files its sender uploaded; the
// user message stores their refs, the tree keeps them on the node, and
// every path through that message carries them to the model. The bytes
// are read from the store only on the generation's goroutine, just before
// the model is called, never in the actor.

// attachments resolves the ids a send or edit names: each must be an
// upload of the sender that is in no session yet or in this one. Anything
// else is bad_request, before anything is stored.
func (s *sessionActor) attachments(c *sessionCommand) ([]persistence.AttachmentRef, *protocol.Error) {
	ids := c.cmd.Attachments
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > protocol.MaxAttachments {
		return nil, protocol.Errf(protocol.CodeBadRequest, "a message carries at most %d attachments", protocol.MaxAttachments)
	}
	storeCtx, cancel := s.hub.storeContext()
	defer cancel()
	refs := make([]persistence.AttachmentRef, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		a, err := s.hub.cfg.Store.GetAttachment(storeCtx, id)
		switch {
		case errors.Is(err, persistence.ErrNotFound):
			return nil, protocol.Errf(protocol.CodeBadRequest, "no such attachment")
		case err != nil:
			s.log().Warn("look up attachment", slog.Any("err", err))
			return nil, storeError(err)
		case a.UserID != c.identity.UserID || (a.SessionID != "" && a.SessionID != s.spec.id):
			// Someone else's file, or one sent in another conversation: the
			// same answer as none, so ids cannot be probed.
			return nil, protocol.Errf(protocol.CodeBadRequest, "no such attachment")
		}
		refs = append(refs, a.Ref())
	}
	return refs, nil
}

// modelAttachments are refs as the model's message names them; the bytes
// are loaded later (loadAttachments).
func modelAttachments(refs []persistence.AttachmentRef) []providers.Attachment {
	if len(refs) == 0 {
		return nil
	}
	out := make([]providers.Attachment, len(refs))
	for i, r := range refs {
		out[i] = providers.Attachment{ID: r.ID, Name: r.Name, Type: r.Type}
	}
	return out
}

func refIDs(refs []persistence.AttachmentRef) []string {
	ids := make([]string, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	return ids
}

// turnModels is what a catalog offers beyond Models for vendors that keep
// their own history; *providers.Catalog has it, test fakes need not.
type turnModels interface {
	StreamFor(ctx context.Context, id string, msgs []providers.Message, t providers.Turn) iter.Seq2[providers.Chunk, error]
	KeepsConversation(id string) bool
}

// modelStream is how a generation of model streams, to be run on the
// generation's goroutine: it loads the attachments' bytes and, for a
// vendor that keeps the conversation (Dify), the session's conversation id,
// which it stores again when the vendor gives a new one.
func (s *sessionActor) modelStream(model string) func(ctx context.Context, msgs []providers.Message) iter.Seq2[providers.Chunk, error] {
	store, sessionID, owner, log := s.hub.cfg.Store, s.spec.id, s.spec.ownerID, s.log()
	storeContext := s.hub.storeContext
	tm, ok := s.hub.cfg.Models.(turnModels)
	keeps := ok && tm.KeepsConversation(model)
	return func(ctx context.Context, msgs []providers.Message) iter.Seq2[providers.Chunk, error] {
		loadAttachments(ctx, store, msgs, log)
		if !ok {
			return s.hub.cfg.Models.Stream(ctx, model, msgs)
		}
		turn := providers.Turn{User: owner}
		if keeps {
			sctx, cancel := storeContext()
			conv, err := store.SessionConversation(sctx, sessionID)
			cancel()
			if err != nil {
				log.Warn("read the vendor's conversation id; starting a new one", slog.Any("err", err))
			}
			turn.Conversation = conv
		}
		return func(yield func(providers.Chunk, error) bool) {
			for chunk, err := range tm.StreamFor(ctx, model, msgs, turn) {
				if chunk.Conversation != "" && chunk.Conversation != turn.Conversation {
					turn.Conversation = chunk.Conversation
					sctx, cancel := storeContext()
					if err := store.SetSessionConversation(sctx, sessionID, chunk.Conversation); err != nil {
						log.Warn("store the vendor's conversation id", slog.Any("err", err))
					}
					cancel()
				}
				if !yield(chunk, err) {
					return
				}
			}
		}
	}
}

// loadAttachments fills in the bytes and transcripts of msgs' attachments
// from the store. A file that cannot be read reaches the model as a note
// saying so, and the reply goes on.
func loadAttachments(ctx context.Context, store persistence.Store, msgs []providers.Message, log *slog.Logger) {
	for i := range msgs {
		m := &msgs[i]
		if len(m.Attachments) == 0 {
			continue
		}
		kept := m.Attachments[:0:0]
		for _, a := range m.Attachments {
			if err := loadAttachment(ctx, store, &a); err != nil {
				log.Warn("read attachment for the model", slog.String("attachment_id", a.ID), slog.Any("err", err))
				m.Text += fmt.Sprintf("\n\n[Attached file %q could not be read]", a.Name)
				continue
			}
			kept = append(kept, a)
		}
		m.Attachments = kept
	}
}

func loadAttachment(ctx context.Context, store persistence.Store, a *providers.Attachment) error {
	meta, err := store.GetAttachment(ctx, a.ID)
	if err != nil {
		return err
	}
	a.Transcript = meta.Transcript
	if providers.KindOfType(a.Type) == providers.InputAudio {
		return nil // models get a voice note's transcript, not its sound
	}
	var buf bytes.Buffer
	buf.Grow(int(meta.Size))
	if err := store.ReadAttachment(ctx, a.ID, &buf); err != nil {
		return err
	}
	a.Data = buf.Bytes()
	return nil
}
