package cluster

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/chatbox/chatbox/config"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type echoActor struct{}

func (echoActor) Receive(ctx actor.Context) {
	if s, ok := ctx.Message().(*actor.PID); ok { // any proto message: answer it back
		ctx.Respond(s)
	}
}

func TestNewRefusesADisabledCluster(t *testing.T) {
	if _, err := New(config.Cluster{}, nil); err == nil {
		t.Fatal("a disabled cluster config was accepted")
	}
}

func TestOneStaticNodeJoinsOnLoopbackAndPlacesAUser(t *testing.T) {
	disc := freeAddr(t)
	cfg := config.Cluster{Enabled: true, Name: "test", Listen: freeAddr(t), Provider: config.ClusterStatic,
		DiscoveryListen: disc, Peers: []string{disc}}
	n, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n.Ready() == nil {
		t.Fatal("ready before Start")
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	if err := n.Start(system, actor.PropsFromProducer(func() actor.Actor { return echoActor{} })); err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown()
	deadline := time.Now().Add(10 * time.Second)
	for n.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not a member of its own topology after 10 s: %v", n.Ready())
		}
		time.Sleep(20 * time.Millisecond) // polling, not ordering
	}
	if m := n.Members(); len(m) != 1 || m[0] != n.Address() {
		t.Fatalf("members %v, want only %s", m, n.Address())
	}
	pid := n.Get("alice")
	if pid == nil || pid.Address != n.Address() {
		t.Fatalf("alice placed at %v, want on %s", pid, n.Address())
	}
	if again := n.Get("alice"); !again.Equal(pid) {
		t.Fatalf("a second lookup found %v, want the same activation %v", again, pid)
	}

	// Leaving: the membership route answers 503 from then on, and a node
	// with no other member to hand its users to does not wait for one.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	n.Leave(ctx)
	if ctx.Err() != nil {
		t.Fatal("Leave of the only member waited until its context ended")
	}
	resp, err := http.Get("http://" + disc + "/_health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("membership route after Leave: %d, want 503", resp.StatusCode)
	}
	n.Shutdown()
	n.Shutdown() // idempotent
}
