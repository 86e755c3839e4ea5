package main

import (
	"fmt"
	"slices"
	"testing"
)

// TestClusterDoubleActivationLosesNothingAckedAndDuplicatesNothing drives
// two nodes' topology views apart for good: each is a cluster of one over
// the shared store (its static peers name only itself), so one user's actor
// is active on both at once, each with its own session actor for the same
// session. Devices on both sides send into that session, in turns and at
// the same moment. The store is the arbiter: each side's stale write loses
// the fence, that side reloads (chatbox_session_reloads_total) and stores
// at the next free seq, or answers busy and stores nothing. Every acked
// message is stored exactly once, no seq is taken twice, nothing refused is
// stored, and each device sees the other side's writes only as a seq gap,
// which sync repairs.
func TestClusterDoubleActivationLosesNothingAckedAndDuplicatesNothing(t *testing.T) {
	chatboxBinary(t)
	proxiedStore(t)
	members := clusterMembers(t, 2, true, "1ms", "[limits]\nmessages_per_minute = 0\nreplies_in_flight = 0")
	nodes := make([]*process, 2)
	for i, m := range members {
		nodes[i] = m.start(t)
		waitMember(t, nodes[i], i, 1)
	}
	tok := signToken(t, "erin", "Erin")
	devices := []*client{nodes[0].dial(t, tok, false), nodes[1].dial(t, tok, false)}
	var seen [2][]event // message events each device received
	acked := map[string]string{}
	var refused []string // texts of sends answered with an error
	var sid string

	// await waits for the answer to the send id on device d: an ack, or an
	// error (busy: its session lost the fence twice in a row). After an ack
	// the reply's final message follows, complete or failed.
	await := func(d int, id, text string) {
		t.Helper()
		e := devices[d].next(func(e event) bool {
			if e.str("type") == "message" {
				seen[d] = append(seen[d], e)
			}
			return (e.str("type") == "ack" || e.str("type") == "error") && e.str("id") == id
		})
		if e.str("type") == "error" {
			if e.str("code") != "busy" {
				t.Fatalf("send %s on node %d: error %v, want ack or busy", id, d+1, e)
			}
			refused = append(refused, text)
			return
		}
		sid = e.str("session_id")
		acked[e.str("message_id")] = text
		devices[d].next(func(e event) bool {
			if e.str("type") == "message" {
				seen[d] = append(seen[d], e)
			}
			return isFinal(e)
		})
	}
	send := func(d int, id string) string {
		t.Helper()
		text := fmt.Sprintf("from node %d, %s", d+1, id)
		cmd := map[string]any{"type": "send", "id": id, "text": text}
		if sid != "" {
			cmd["session_id"] = sid
		}
		devices[d].send(cmd)
		return text
	}

	// In turns: each side's memory is stale at every turn but its first.
	for i := range 6 {
		d := i % 2
		id := fmt.Sprintf("turn-%d", i)
		await(d, id, send(d, id))
	}
	// At the same moment: the two activations race for the same seq.
	for i := range 6 {
		id := fmt.Sprintf("race-%d", i)
		texts := [2]string{send(0, id), send(1, id)}
		await(0, id, texts[0])
		await(1, id, texts[1])
	}
	for d := range devices {
		for _, e := range devices[d].barrier() {
			if e.str("type") == "message" {
				seen[d] = append(seen[d], e)
			}
		}
	}

	for i, n := range nodes {
		if r := metricValue(t, n, "chatbox_session_reloads_total"); r < 1 {
			t.Errorf("node %d: %v session reloads; its activation's stale writes should have lost the fence", i+1, r)
		}
		if u := metricValue(t, n, "chatbox_active_users"); u != 1 {
			t.Errorf("node %d hosts %v user actors; the test means one activation on each node", i+1, u)
		}
	}

	// What the store holds, read by a third device: seq 1..N, each once.
	stored := syncAll(t, nodes[0].dial(t, tok, false), sid, 0)
	bySeq := map[int64]event{}
	count := map[string]int{}
	for i, m := range stored {
		seq := m.num("seq")
		if seq != int64(i+1) {
			t.Fatalf("stored message %d has seq %d: seqs are not 1..N, each once", i+1, seq)
		}
		bySeq[seq] = m
		count[m.str("id")]++
		if m.str("role") == "user" && slices.Contains(refused, m.str("text")) {
			t.Fatalf("a send answered busy was stored: %v", m)
		}
	}
	for id, text := range acked {
		if count[id] != 1 {
			t.Fatalf("acked message %s stored %d times, want once", id, count[id])
		}
		for _, m := range stored {
			if m.str("id") == id && m.str("text") != text {
				t.Fatalf("acked message %s stored as %v, sent as %q", id, m, text)
			}
		}
	}
	if len(acked) < 6 {
		t.Fatalf("only %d sends acked; the test means both sides to write", len(acked))
	}

	// Each device saw the other side's writes only as a gap in seq; a sync
	// from the last seq before its first gap fills it.
	for d, dev := range devices {
		have := map[int64]bool{}
		for _, e := range seen[d] {
			m := e.msg()
			if m.str("status") == "failed" {
				continue // a reply whose final write lost its seq: shown failed, not stored
			}
			if prev, ok := bySeq[m.num("seq")]; !ok || prev.str("id") != m.str("id") {
				t.Fatalf("device on node %d saw message %s at seq %d, which the store does not hold there", d+1, m.str("id"), m.num("seq"))
			}
			have[m.num("seq")] = true
		}
		gap := int64(0)
		for seq := int64(1); seq <= int64(len(stored)); seq++ {
			if !have[seq] {
				gap = seq
				break
			}
		}
		if gap == 0 {
			t.Fatalf("device on node %d saw every seq live; the test means it to miss the other activation's writes", d+1)
		}
		for _, m := range syncAll(t, dev, sid, gap-1) {
			have[m.num("seq")] = true
		}
		for seq := int64(1); seq <= int64(len(stored)); seq++ {
			if !have[seq] {
				t.Fatalf("device on node %d: seq %d still missing after sync", d+1, seq)
			}
		}
	}
	t.Logf("%d messages stored, %d sends acked, %d answered busy; reloads: node 1 %v, node 2 %v", len(stored), len(acked), len(refused),
		metricValue(t, nodes[0], "chatbox_session_reloads_total"), metricValue(t, nodes[1], "chatbox_session_reloads_total"))
}

// syncAll asks for the session's stored messages after seq and returns
// them, in the order sent.
func syncAll(t *testing.T, c *client, sid string, after int64) []event {
	t.Helper()
	c.send(map[string]any{"type": "sync", "session_id": sid, "after_seq": after})
	var msgs []event
	for _, e := range c.barrier() {
		if e.str("type") == "message" && e.str("session_id") == sid {
			msgs = append(msgs, e.msg())
		}
	}
	return msgs
}
