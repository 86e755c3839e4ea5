package persistence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"
)

// Session statuses (CONTRACT §8): a session takes messages while active;
// once ended it is read-only.
const (
	SessionActive = "active"
	SessionEnded  = "ended"
)

// Audit actions: what an admin did, or a user did to their own data.
const (
	AuditTakeover = "takeover"
	AuditRelease  = "release"
	AuditEnd      = "end"
	AuditExport   = "export"
	AuditErase    = "erase"
	AuditDelete   = "delete"
)

// Roles of who acted, in AuditEntry.Role.
const (
	AuditByAdmin = "admin"
	AuditByUser  = "user"
)

// AuditEntry is one record of the audit trail. AdminID and AdminName are
// who acted (an admin, or for a user's own action that user: Role says
// which); UserID is whose data it was about and SessionID the session,
// emptied when that session is erased.
type AuditEntry struct {
	ID        string // set by the caller, unique: NewAuditID
	At        time.Time
	AdminID   string
	AdminName string
	Role      string // AuditByAdmin or AuditByUser
	Action    string
	SessionID string
	UserID    string
}

// EraseResult counts what EraseUser deleted.
type EraseResult struct {
	Sessions    int64
	Messages    int64
	Attachments int64
}

// Auditor keeps the audit trail.
type Auditor interface {
	// AppendAudit stores e; e.ID must be set and unique. At is stored in
	// milliseconds; a zero At is now (also in e).
	AppendAudit(ctx context.Context, e *AuditEntry) error
	// ListAudit returns entries newest first (At, then ID, both
	// descending), one page at a time; a cursor it did not make is
	// ErrBadCursor.
	ListAudit(ctx context.Context, p Page) (entries []AuditEntry, nextCursor string, err error)
}

// Eraser deletes a user's data for real.
type Eraser interface {
	// EraseUser deletes every session of userID, every message of those
	// sessions and every attachment the user uploaded (whatever key their text is under, readable or not), which
	// takes their share links with them, and stores record in the audit
	// trail. Audit entries about the erased sessions stay, their SessionID
	// emptied. Nothing of another user is touched. When it returns
	// without error, the store keeps none of the erased records' bytes
	// where it can help it (the embedded store compacts its files; see
	// each implementation for what the database itself keeps). Erasing a
	// user with no data deletes nothing and still stores record.
	EraseUser(ctx context.Context, userID string, record *AuditEntry) (EraseResult, error)
}

// NewAuditID is a unique id for an entry made at at: the time in
// nanoseconds, in fixed-width hex, then random bytes. Entries of the same
// millisecond therefore list (by id, after at) in the order they were
// made, as far as one clock tells.
func NewAuditID(at time.Time) string {
	var b [8]byte
	rand.Read(b[:])
	ns := strconv.FormatUint(uint64(at.UnixNano()), 16)
	for len(ns) < 16 {
		ns = "0" + ns
	}
	return ns + hex.EncodeToString(b[:])
}
