package transport

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/protocol"
)

// Page sizes of an export's reads: memory is bounded by one page of
// sessions and one page of messages, however much the user has.
const (
	exportSessionPage = 200
	exportMessagePage = 500
)

// exportBuffer is how much of the export is buffered before a write.
const exportBuffer = 32 << 10

// writeExport streams every session of userID, each with all its messages
// (text decrypted), to w as the export of CONTRACT §8:
//
//	{"user_id":…,"exported_at":…,"sessions":[{…session,"messages":[…]},…]}
//
// Sessions come oldest first by created_at, which no write changes, so a
// session updated while the export runs is neither missed nor repeated.
// An error after the first byte leaves the JSON unterminated, which no
// reader takes for a whole export.
func writeExport(ctx context.Context, w io.Writer, st persistence.Store, userID string, now time.Time) error {
	bw := bufio.NewWriterSize(w, exportBuffer)
	head, err := json.Marshal(struct {
		UserID     string    `json:"user_id"`
		ExportedAt time.Time `json:"exported_at"`
	}{userID, now.UTC()})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	bw.Write(head[:len(head)-1])
	bw.WriteString(`,"sessions":[`)
	filter := persistence.AdminFilter{UserID: userID, Sort: "created_at", Order: "asc"}
	page := persistence.Page{Limit: exportSessionPage}
	first := true
	for {
		sessions, next, err := st.ListAllSessions(ctx, filter, page)
		if err != nil {
			return fmt.Errorf("export: list sessions: %w", err)
		}
		for i := range sessions {
			if !first {
				bw.WriteByte(',')
			}
			first = false
			if err := exportSession(ctx, bw, st, &sessions[i]); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
		page.Cursor = next
	}
	bw.WriteString("]}\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}

// exportSession writes one session object with its messages, page by page.
func exportSession(ctx context.Context, bw *bufio.Writer, st persistence.Store, s *persistence.Session) error {
	b, err := json.Marshal(protocol.SessionOf(*s))
	if err != nil {
		return fmt.Errorf("export session %s: %w", s.ID, err)
	}
	bw.Write(b[:len(b)-1])
	bw.WriteString(`,"messages":[`)
	enc := json.NewEncoder(bw)
	after := int64(0)
	for n := 0; ; {
		msgs, err := st.ListMessages(ctx, s.ID, after, exportMessagePage)
		if err != nil {
			return fmt.Errorf("export session %s: list messages: %w", s.ID, err)
		}
		for _, m := range msgs {
			after = m.Seq
			if m.Role == persistence.RoleNote {
				continue // internal notes are the desk's, not the user's data
			}
			if n > 0 {
				bw.WriteByte(',')
			}
			n++
			// Encode ends each value with a newline, which JSON allows
			// between array elements.
			if err := enc.Encode(protocol.MessageOf(m)); err != nil {
				return fmt.Errorf("export session %s: %w", s.ID, err)
			}
		}
		if len(msgs) < exportMessagePage {
			break
		}
	}
	_, err = bw.WriteString("]}")
	if err != nil {
		return fmt.Errorf("export: write: %w", err)
	}
	return nil
}
