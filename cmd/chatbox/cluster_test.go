package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatbox/chatbox/config"
)

// clusterNodes starts n real processes of the binary as one cluster
// (provider static) on loopback, sharing one MongoDB store (FerretDB as the
// stand-in, behind the tests' serializing proxy), and waits until every one
// is ready and sees all n members.
func clusterNodes(t *testing.T, n int, demoDelay string, sections ...string) []*process {
	t.Helper()
	chatboxBinary(t) // skips with -short before the store starts
	proxiedStore(t)
	members := clusterMembers(t, n, false, demoDelay, sections...)
	nodes := make([]*process, n)
	for i, m := range members {
		nodes[i] = m.start(t)
	}
	for i, node := range nodes {
		waitMember(t, node, i, n)
	}
	return nodes
}

// clusterMember is one node's configuration: its directory and the config
// it starts with, so that it can be started again on the same ports.
type clusterMember struct {
	dir, extra string
}

func (m clusterMember) start(t *testing.T) *process {
	t.Helper()
	return startProcess(t, m.dir, m.extra)
}

// clusterMembers configures n members on loopback. Each is told of every
// member, or, alone, only of itself: then each node is a cluster of one
// over the shared store, and every node activates every user's actor.
func clusterMembers(t *testing.T, n int, alone bool, demoDelay string, sections ...string) []clusterMember {
	t.Helper()
	// One key for every node (cluster mode generates none per node).
	key, err := config.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHATBOX_STORAGE_ENCRYPTION_KEY", key)
	actorPorts, discovery := freePorts(t, n), freePorts(t, n)
	var all []string
	for _, p := range discovery {
		all = append(all, fmt.Sprintf("%q", p))
	}
	members := make([]clusterMember, n)
	for i := range n {
		peers := all
		if alone {
			peers = all[i : i+1]
		}
		members[i] = clusterMember{dir: t.TempDir(), extra: fmt.Sprintf(`demo_delay = %q
[cluster]
enabled = true
listen = %q
discovery_listen = %q
peers = [%s]
%s
`, demoDelay, actorPorts[i], discovery[i], strings.Join(peers, ", "), strings.Join(sections, "\n"))}
	}
	return members
}

// waitMember waits until node (the i-th) is ready and sees n members.
func waitMember(t *testing.T, node *process, i, n int) {
	t.Helper()
	admin := signAdmin(t, "ops", "Ops")
	pollUntil(t, fmt.Sprintf("node %d ready and seeing %d members", i+1, n), func() bool {
		if node.status(t, "/readyz") != 200 {
			return false
		}
		var stats struct {
			Nodes []string `json:"nodes"`
		}
		node.getJSON(t, admin, "/api/admin/stats", &stats)
		return len(stats.Nodes) == n
	})
}

// freePorts returns n loopback addresses that were free a moment ago (the
// cluster's listeners take a fixed port: every member's must be known).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// broadcastView is what every device of a user must see identically: the
// events sent to all of them, in order, with the deltas of each reply
// joined (a slow device may get them merged into fewer frames).
func broadcastView(t *testing.T, events []event) []string {
	t.Helper()
	var view []string
	text := map[string]string{} // reply id → text streamed so far
	for _, e := range events {
		switch e.str("type") {
		case "delta":
			id := e.str("message_id")
			if int(e.num("offset")) != len(text[id]) {
				t.Fatalf("delta of %s at offset %d, have %d bytes: a gap", id, e.num("offset"), len(text[id]))
			}
			text[id] += e.str("text")
		case "message":
			m := e.msg()
			if m.str("role") == "assistant" && text[m.str("id")] != m.str("text") {
				t.Fatalf("reply %s: deltas %q, final %q", m.str("id"), text[m.str("id")], m.str("text"))
			}
			view = append(view, fmt.Sprintf("message %s %d %s %s", m.str("id"), m.num("seq"), m.str("role"), m.str("status")))
		case "typing", "takeover", "release":
			view = append(view, fmt.Sprintf("%s %s %s", e.str("type"), e.str("session_id"), e.str("role")))
		}
	}
	return view
}

func TestClusterOneUserOnThreeNodesSeesOneOrder(t *testing.T) {
	nodes := clusterNodes(t, 3, "1ms", "[limits]\nmessages_per_minute = 0")
	tok := signToken(t, "alice", "Alice")
	devices := make([]*client, len(nodes))
	for i, n := range nodes {
		devices[i] = n.dial(t, tok, false)
	}
	// Every device sends in turn, into one session, so commands enter the
	// user's actor from all three nodes.
	const sends = 45
	var sid string
	var events [3][]event
	start := time.Now()
	for i := range sends {
		d := devices[i%3]
		cmd := map[string]any{"type": "send", "id": fmt.Sprint(i), "text": fmt.Sprintf("message %d", i)}
		if sid != "" {
			cmd["session_id"] = sid
		}
		d.send(cmd)
		for j, other := range devices {
			got := other.collect(isFinal)
			if sid == "" && j == i%3 {
				for _, e := range got {
					if e.str("type") == "ack" {
						sid = e.str("session_id")
					}
				}
			}
			events[j] = append(events[j], got...)
		}
	}
	elapsed := time.Since(start)
	total := 0
	for j := range devices {
		events[j] = append(events[j], devices[j].barrier()...)
		total += len(events[j])
	}
	if total < 1000 {
		t.Fatalf("only %d events in all; the test means to cover at least 1,000", total)
	}
	want := broadcastView(t, events[0])
	if len(want) < 3*sends {
		t.Fatalf("node 1's device saw %d broadcast events for %d sends", len(want), sends)
	}
	for j := 1; j < 3; j++ {
		if got := broadcastView(t, events[j]); !slices.Equal(got, want) {
			t.Fatalf("device on node %d saw another order:\n%v\nwant\n%v", j+1, got, want)
		}
	}
	t.Logf("%d events on 3 devices on 3 nodes, %d sends in %v (%.1f ms per send and reply)", total, sends, elapsed,
		float64(elapsed.Microseconds())/1000/sends)
}

func TestClusterAdminOnNode3TakesOverASessionOfAUserOnNode1(t *testing.T) {
	nodes := clusterNodes(t, 3, "1ms")
	user := nodes[0].dial(t, signToken(t, "bob", "Bob"), false)
	user.send(map[string]any{"type": "send", "id": "1", "text": "I need a person"})
	sid := user.next(isType("ack")).str("session_id")
	user.next(isFinal)

	admin := nodes[2].dial(t, signAdmin(t, "ada", "Ada"), false)
	admin.send(map[string]any{"type": "watch", "session_id": sid})
	admin.send(map[string]any{"type": "takeover", "session_id": sid})
	if e := user.next(isType("takeover")); e.str("admin_name") != "Ada" {
		t.Fatalf("takeover seen by the user: %v", e)
	}
	admin.next(isType("takeover"))
	// The session view on a third node names who watches, asked of the
	// user's actor wherever it is.
	var view struct {
		Watchers []map[string]string `json:"watchers"`
	}
	if code := nodes[1].getJSON(t, signAdmin(t, "cy", "Cy"), "/api/admin/sessions/"+sid, &view); code != 200 ||
		len(view.Watchers) != 1 || view.Watchers[0]["admin_id"] != "ada" || view.Watchers[0]["name"] != "Ada" {
		t.Fatalf("session view on node 2: %d, watchers %v; want Ada", code, view.Watchers)
	}
	admin.send(map[string]any{"type": "send", "id": "a1", "session_id": sid, "text": "Hello, Ada here"})
	if m := user.next(isType("message")).msg(); m.str("role") != "admin" || m.str("text") != "Hello, Ada here" {
		t.Fatalf("the admin's message reached the user as %v", m)
	}
	// While held, the user's message gets no bot reply, and the admin sees it.
	user.send(map[string]any{"type": "send", "id": "2", "session_id": sid, "text": "thanks"})
	user.next(isType("ack"))
	if m := admin.next(func(e event) bool { return e.str("type") == "message" && e.msg().str("role") == "user" }).msg(); m.str("text") != "thanks" {
		t.Fatalf("admin saw %v", m)
	}
	for _, e := range user.barrier() {
		if e.str("type") == "delta" || isFinal(e) {
			t.Fatalf("the bot spoke in a session held by a human: %v", e)
		}
	}
	admin.send(map[string]any{"type": "release", "session_id": sid})
	user.next(isType("release"))
	user.send(map[string]any{"type": "send", "id": "3", "session_id": sid, "text": "bot again?"})
	user.next(isFinal)
}

// hostOf finds the node whose actors hold user actors, by its metrics:
// with one user connected, it is that user's node.
func hostOf(t *testing.T, nodes []*process) int {
	t.Helper()
	host := -1
	pollUntil(t, "one node hosts the user's actor", func() bool {
		host = -1
		for i, n := range nodes {
			if metricValue(t, n, "chatbox_active_users") >= 1 {
				if host >= 0 {
					return false
				}
				host = i
			}
		}
		return host >= 0
	})
	return host
}

func TestClusterKill9OfTheUsersNodeMidReplyLosesNothingAcked(t *testing.T) {
	nodes := clusterNodes(t, 3, "300ms") // a reply of several seconds
	tok := signToken(t, "carol", "Carol")
	devices := make([]*client, len(nodes))
	for i, n := range nodes {
		devices[i] = n.dial(t, tok, false)
	}
	devices[0].send(map[string]any{"type": "send", "id": "1", "text": "tell me a long story"})
	sid := devices[0].next(isType("ack")).str("session_id")
	host := hostOf(t, nodes)
	survivor := (host + 1) % 3
	// Past the first checkpoint (every 3 s), so a partial reply is stored.
	d := devices[survivor]
	d.next(isType("delta")) // the reply streams to a device on another node
	pollUntil(t, "a checkpoint of the reply", func() bool { return metricValue(t, nodes[host], "chatbox_reply_checkpoints_total") >= 1 })
	killed := time.Now()
	if err := nodes[host].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nodes[host].wait(t, waitFor)

	// The surviving device attaches again; its next message is acked where
	// the cluster now places the user's actor.
	var acked time.Duration
	for attempt := 0; acked == 0; attempt++ {
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("no ack within 10 s of the kill")
		}
		// A command that reached an activation which then stopped (the
		// topology still settling after the re-attach) gets no answer: the
		// client resends after 3 s, as docs/scaling.md tells clients to.
		id := fmt.Sprintf("after-%d", attempt)
		d.send(map[string]any{"type": "send", "id": id, "session_id": sid, "text": "are you still there?"})
		e, err := d.within(3*time.Second, func(e event) bool {
			return (e.str("type") == "ack" || e.str("type") == "error") && e.str("id") == id
		})
		if errors.Is(err, errClosed) {
			t.Fatal("the surviving device's socket closed")
		}
		if err == nil && e.str("type") == "ack" {
			acked = time.Since(killed)
		}
	}
	d.next(isFinal)
	t.Logf("failover: the session took a new message %v after kill -9 of the node hosting the user's actor", acked)

	// A device that reconnects to another survivor and syncs finds every
	// acked message and the stored partial reply.
	other := (host + 2) % 3
	c := nodes[other].dial(t, tok, false)
	c.send(map[string]any{"type": "sync", "session_id": sid, "after_seq": 0})
	var roles, statuses []string
	for _, e := range c.barrier() {
		if e.str("type") == "message" {
			roles = append(roles, e.msg().str("role"))
			statuses = append(statuses, e.msg().str("status"))
		}
	}
	if len(roles) != 4 || roles[0] != "user" || roles[1] != "assistant" || statuses[1] != "interrupted" ||
		roles[2] != "user" || roles[3] != "assistant" || statuses[3] != "complete" {
		t.Fatalf("after failover the session holds %v %v; want user, assistant (interrupted), user, assistant (complete)", roles, statuses)
	}
}

// metricValue reads one unlabelled series of node's /metrics.
func metricValue(t *testing.T, node *process, name string) float64 {
	t.Helper()
	body := node.body(t, "/metrics")
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}

// body GETs path and returns the body ("" on an error).
func (s *testServer) body(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
