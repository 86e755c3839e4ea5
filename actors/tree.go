package actors

import (
	"github.com/chatbox/chatbox/persistence"
	"github.com/chatbox/chatbox/providers"
)

// A conversation is a tree (CONTRACT §6): every message names its parent,
// an edit is a sibling of the message it edits, and a regenerated reply a
// sibling of the reply it replaces. The session's head is the newest
// message of the branch it last moved on (every append moves it there).
// seq stays the storage order of every message of every branch.
//
// The session actor holds part of the tree in memory, convTree, and sends
// the model only the path from the message it answers up to the root.

// convNode is one message as the tree holds it.
type convNode struct {
	id, parent string
	seq        int64
	role       persistence.Role
	text       string
	// attachments are the message's files, sent to the model again with
	// every path through it (edits and regenerated replies included).
	attachments []persistence.AttachmentRef
}

// convTree holds the messages of one session with seq >= lowest, by id. It
// starts with the newest HistoryWindow messages; when a path or a command
// needs an older one, the session loads everything before lowest (older)
// and the tree is complete. When it grows past pruneAt, it forgets all but
// the newest keep messages, so memory tracks the active part of a long
// conversation. Only the session actor touches it.
type convTree struct {
	nodes  map[string]*convNode
	lowest int64 // the lowest seq held; <= 1 when the tree holds every message
	newest int64 // the highest seq held
	keep   int   // messages kept by a prune
}

func newConvTree(keep int) *convTree {
	return &convTree{nodes: map[string]*convNode{}, keep: max(keep, 1)}
}

// complete reports whether the tree holds every message of the session.
func (t *convTree) complete() bool { return t.lowest <= 1 }

// add takes in a stored message (again, for a reply whose text grew).
func (t *convTree) add(m persistence.Message) {
	if m.Role == persistence.RoleNote {
		return // a note is not part of the conversation
	}
	if n, ok := t.nodes[m.ID]; ok {
		n.text = m.Text
		return
	}
	t.nodes[m.ID] = &convNode{id: m.ID, parent: m.ParentID, seq: m.Seq, role: m.Role, text: m.Text, attachments: m.Attachments}
	if len(t.nodes) == 1 || m.Seq < t.lowest {
		t.lowest = m.Seq
	}
	t.newest = max(t.newest, m.Seq)
	if len(t.nodes) > 4*t.keep {
		t.prune()
	}
}

// prune forgets every message but the newest keep, by seq.
func (t *convTree) prune() {
	floor := t.newest - int64(t.keep) + 1
	for id, n := range t.nodes {
		if n.seq < floor {
			delete(t.nodes, id)
		}
	}
	t.lowest = floor
}

// addOlder takes in messages older than lowest, loaded from the store,
// without pruning: the caller wants them now.
func (t *convTree) addOlder(msgs []persistence.Message) {
	for _, m := range msgs {
		if _, ok := t.nodes[m.ID]; !ok && m.Role != persistence.RoleNote {
			t.nodes[m.ID] = &convNode{id: m.ID, parent: m.ParentID, seq: m.Seq, role: m.Role, text: m.Text, attachments: m.Attachments}
		}
	}
	t.lowest = 1
}

// get is the message id, or nil when the tree does not hold it.
func (t *convTree) get(id string) *convNode { return t.nodes[id] }

// path is the branch from id up to the root, oldest first, cut to the
// newest limit messages. missing reports that it stopped at a parent the
// tree does not hold while older messages exist in the store: the caller
// loads them and asks again.
func (t *convTree) path(id string, limit int) (path []*convNode, missing bool) {
	for id != "" && len(path) < limit {
		n := t.nodes[id]
		if n == nil {
			missing = !t.complete()
			break
		}
		path = append(path, n)
		id = n.parent
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path, missing
}

// lastOf is the newest message with seq <= seq: the head of a session
// stored before v1.1, which has no head_id.
func (t *convTree) lastOf(seq int64) string {
	var best *convNode
	for _, n := range t.nodes {
		if n.seq <= seq && (best == nil || n.seq > best.seq) {
			best = n
		}
	}
	if best == nil {
		return ""
	}
	return best.id
}

// modelContext is what the model is told of a path: the user's words as
// the user side, the model's and an admin's as the assistant side, other
// roles and empty texts (a reply that failed before its first token) left
// out.
func modelContext(path []*convNode) []providers.Message {
	out := make([]providers.Message, 0, len(path)+1)
	for _, n := range path {
		if n.text == "" && len(n.attachments) == 0 {
			continue
		}
		switch n.role {
		case persistence.RoleUser:
			out = append(out, providers.Message{Role: providers.RoleUser, Text: n.text, Attachments: modelAttachments(n.attachments)})
		case persistence.RoleAssistant, persistence.RoleAdmin:
			out = append(out, providers.Message{Role: providers.RoleAssistant, Text: n.text})
		}
	}
	return out
}
