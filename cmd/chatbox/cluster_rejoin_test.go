package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestClusterAfterARejoinOneActivationHoldsEveryDevice kills the node that
// hosts a user's actor, lets a survivor take it over, and starts the killed
// node again on the same ports, which makes it the user's owner again. Any
// copy of the user's actor left on a node that no longer owns the user is
// stopped (userGrain.checkOwner, or protoactor's placement actor), and its
// connections attach to the owner: in the end one node hosts the user's
// actor and a message from any device reaches every other device live.
func TestClusterAfterARejoinOneActivationHoldsEveryDevice(t *testing.T) {
	chatboxBinary(t)
	proxiedStore(t)
	members := clusterMembers(t, 3, false, "1ms", "[limits]\nmessages_per_minute = 0")
	nodes := make([]*process, 3)
	for i, m := range members {
		nodes[i] = m.start(t)
	}
	for i, n := range nodes {
		waitMember(t, n, i, 3)
	}
	tok := signToken(t, "hank", "Hank")
	devices := make([]*client, 3)
	for i, n := range nodes {
		devices[i] = n.dial(t, tok, false)
	}
	devices[0].send(map[string]any{"type": "send", "id": "1", "text": "hello"})
	sid := devices[0].next(isType("ack")).str("session_id")
	devices[0].next(isFinal)
	host := hostOf(t, nodes)

	if err := nodes[host].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	nodes[host].wait(t, waitFor)
	up := func(i int) bool { return i != host }
	// The survivors' devices attach to a survivor's copy.
	pollUntil(t, "a survivor hosts the user's actor", func() bool {
		for i, n := range nodes {
			if up(i) && metricValue(t, n, "chatbox_active_users") >= 1 {
				return true
			}
		}
		return false
	})
	nodes[host] = members[host].start(t)
	for i, n := range nodes {
		waitMember(t, n, i, 3)
	}
	devices[host] = nodes[host].dial(t, tok, false)

	// One activation in the end, holding every device.
	start := time.Now()
	pollUntil(t, "one node hosts the user's actor", func() bool {
		hosts := 0
		for _, n := range nodes {
			if metricValue(t, n, "chatbox_active_users") >= 1 {
				hosts++
			}
		}
		return hosts == 1
	})
	for attempt := 0; ; attempt++ {
		if time.Since(start) > waitFor {
			t.Fatal("no send reached every device live within 15 s of the rejoin")
		}
		from := attempt % 3
		text := fmt.Sprintf("after the rejoin %d", attempt)
		if err := devices[from].write(map[string]any{"type": "send", "id": fmt.Sprintf("r%d", attempt), "session_id": sid, "text": text}); err != nil {
			t.Fatalf("device on node %d: %v", from+1, err)
		}
		everywhere := true
		for i, d := range devices {
			_, err := d.within(3*time.Second, func(e event) bool { return e.str("type") == "message" && e.msg().str("text") == text })
			if err != nil {
				everywhere = false
				t.Logf("device on node %d did not see send %d live: %v", i+1, attempt, err)
			}
		}
		if everywhere {
			break
		}
	}
	strays := 0.0
	for _, n := range nodes {
		strays += metricValue(t, n, "chatbox_cluster_strays_stopped_total")
	}
	t.Logf("one activation holds every device %v after the rejoin; %v stray copies stopped by the owner check", time.Since(start).Round(time.Millisecond), strays)
}
