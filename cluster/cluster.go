package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"github.com/labstack/echo"

	"github.com/chatbox/chatbox/config"
)

// UserKind is the cluster kind of the user actor; its identity is the user id.
const UserKind = "user"

// Static membership: how often the peers are asked for their health, which
// bounds how long a dead member stays in the topology (plus one failed
// request, immediate on a refused connection).
const staticRefresh = 500 * time.Millisecond

// lookupWait bounds how long Get waits for the identity lookup.
// protoactor's disthash lookup asks the identity's owner with a fixed 5 s
// timeout (identitylookup/disthash/manager.go; cluster.WithRequestTimeout
// does not reach it), so a lookup made after a member died but before the
// provider dropped it from the topology waited 5 s for a dead node. Get
// gives up after lookupWait and answers nil instead; its callers ask again
// (a connection every 200 ms), and once the topology has changed (a static
// peer's death is seen within staticRefresh) the lookup goes to the new
// owner. A live owner answers an activation request in milliseconds; the
// abandoned lookup ends by itself within its 5 s.
const lookupWait = time.Second

// Node is this process as a member of the cluster.
type Node struct {
	cfg config.Cluster
	log *slog.Logger

	lookups sync.WaitGroup // Get's lookups still running, abandoned or not

	mu        sync.Mutex // guards the fields below
	c         *pcluster.Cluster
	discovery net.Listener         // static: the membership endpoint
	members   []string             // addresses of the latest topology, sorted
	owners    *pcluster.Rendezvous // disthash's placement over the latest topology
	leaving   bool                 // Leave has begun: the static health route answers 503
	stopped   bool
}

// New checks cfg (enabled) and builds a node; it starts nothing.
func New(cfg config.Cluster, log *slog.Logger) (*Node, error) {
	if !cfg.Enabled {
		return nil, errors.New("cluster: not enabled")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Node{cfg: cfg, log: log.With(slog.String("component", "cluster"))}, nil
}

// Start joins the cluster with system, whose actors of kind UserKind are
// made by userProps. It returns once this node is a member.
func (n *Node) Start(system *actor.ActorSystem, userProps *actor.Props) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped || n.c != nil {
		return errors.New("cluster: already started or stopped")
	}
	host, portText, err := net.SplitHostPort(n.cfg.Listen)
	if err != nil {
		return fmt.Errorf("cluster.listen: %w", err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("cluster.listen: %w", err)
	}
	var opts []remote.ConfigOption
	if n.cfg.Advertise != "" {
		opts = append(opts, remote.WithAdvertisedHost(n.cfg.Advertise))
	}
	provider, err := n.provider()
	if err != nil {
		return err
	}
	kind := pcluster.NewKind(UserKind, userProps)
	cfg := pcluster.Configure(n.cfg.Name, provider, disthash.New(), remote.Configure(host, port, opts...),
		pcluster.WithKinds(kind), pcluster.WithRequestTimeout(5*time.Second))
	// The topology as published on the event stream: protoactor's own
	// MemberList.Members reads its set without a lock.
	system.EventStream.Subscribe(func(ev any) {
		t, ok := ev.(*pcluster.ClusterTopology)
		if !ok {
			return
		}
		addrs := make([]string, 0, len(t.Members))
		for _, m := range t.Members {
			addrs = append(addrs, m.Address())
		}
		slices.Sort(addrs)
		owners := pcluster.NewRendezvous()
		owners.UpdateMembers(t.Members)
		n.mu.Lock()
		n.members, n.owners = addrs, owners
		n.mu.Unlock()
	})
	n.c = pcluster.New(system, cfg)
	n.mu.Unlock() // the provider's health route reads n.c while the member starts
	n.c.StartMember()
	n.mu.Lock() // panics on a provider that cannot start; it returns once gossip runs
	n.log.Info("joined the cluster", slog.String("name", n.cfg.Name), slog.String("address", system.Address()),
		slog.String("provider", n.cfg.Provider))
	return nil
}

func (n *Node) provider() (pcluster.ClusterProvider, error) {
	switch n.cfg.Provider {
	case config.ClusterKubernetes:
		p, err := k8s.New()
		if err != nil {
			return nil, fmt.Errorf("cluster.provider kubernetes: %w", err)
		}
		return p, nil
	case config.ClusterStatic:
		return n.staticProvider()
	}
	return nil, fmt.Errorf("cluster.provider: unknown %q", n.cfg.Provider)
}

// staticProvider is protoactor's automanaged provider on our own listener:
// the provider itself binds 0.0.0.0, so we give it an echo server that
// already listens on discovery_listen and answers its health route.
func (n *Node) staticProvider() (pcluster.ClusterProvider, error) {
	ln, err := net.Listen("tcp", n.cfg.DiscoveryListen)
	if err != nil {
		return nil, fmt.Errorf("cluster.discovery_listen: %w", err)
	}
	n.discovery = ln
	port := ln.Addr().(*net.TCPAddr).Port
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Listener = ln
	e.GET("/_health", func(c echo.Context) error {
		n.mu.Lock()
		cl, leaving := n.c, n.leaving
		n.mu.Unlock()
		if cl == nil || cl.Remote == nil || leaving {
			return c.NoContent(http.StatusServiceUnavailable)
		}
		host, memberPort, err := cl.ActorSystem.GetHostPort()
		if err != nil {
			return c.NoContent(http.StatusServiceUnavailable)
		}
		return c.JSON(http.StatusOK, automanaged.NewNode(n.cfg.Name, cl.ActorSystem.ID, host, memberPort, port, []string{UserKind}))
	})
	return automanaged.NewWithTesting(staticRefresh, port, e, n.cfg.Peers...), nil
}

// Get returns the pid of userID's actor, activating it on the member the
// identity lookup places it on; nil when no member answers within
// lookupWait, or once the node is shutting down.
func (n *Node) Get(userID string) *actor.PID {
	n.mu.Lock()
	c := n.c
	if n.stopped || c == nil {
		n.mu.Unlock()
		return nil
	}
	n.lookups.Add(1)
	n.mu.Unlock()
	found := make(chan *actor.PID, 1)
	go func() {
		defer n.lookups.Done()
		found <- c.Get(userID, UserKind)
	}()
	t := time.NewTimer(lookupWait)
	defer t.Stop()
	select {
	case pid := <-found:
		return pid
	case <-t.C:
		return nil
	}
}

// Forget drops a cached pid of userID's actor that turned out dead, so the
// next Get asks the identity lookup again.
func (n *Node) Forget(userID string) {
	n.cluster().PidCache.Remove(userID, UserKind)
}

// Owner is the address of the member that disthash places userID's actor
// on, per the latest topology this node has seen (disthash's own rule:
// rendezvous hashing over the members' addresses); "" before the first.
func (n *Node) Owner(userID string) string {
	n.mu.Lock()
	owners := n.owners
	n.mu.Unlock()
	if owners == nil {
		return ""
	}
	return owners.GetByClusterIdentity(&pcluster.ClusterIdentity{Kind: UserKind, Identity: userID})
}

// Members lists the addresses of the members this node sees, itself included.
func (n *Node) Members() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.members)
}

// Ready reports whether this node is a member of the topology it sees.
func (n *Node) Ready() error {
	c := n.cluster()
	if c == nil {
		return errors.New("not started")
	}
	self := c.ActorSystem.Address()
	if !slices.Contains(n.Members(), self) {
		return errors.New("this node is not a member of the topology it sees")
	}
	return nil
}

// Address is this node's actor address, as other members dial it.
func (n *Node) Address() string {
	c := n.cluster()
	if c == nil {
		return ""
	}
	return c.ActorSystem.Address()
}

func (n *Node) cluster() *pcluster.Cluster {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.c
}

// Leave takes this node out of the other members' topology before its
// user actors stop, so that the connections attached to them from other
// nodes find their users' new owners at once rather than this node again.
// With the static provider the health route answers 503 from now on: every
// member, this one included, drops the node at its next poll. Leave returns
// once this node's own topology no longer has it and the peers have had two
// polls to see the same, or when ctx ends; at once when it is the only
// member. With the Kubernetes provider membership follows the pod, which
// leaves at Shutdown; Leave returns at once.
func (n *Node) Leave(ctx context.Context) {
	n.mu.Lock()
	first := n.discovery != nil && n.c != nil && !n.stopped && !n.leaving // static, running, not yet leaving
	n.leaving = true
	n.mu.Unlock()
	self := n.Address()
	if !first || !slices.ContainsFunc(n.Members(), func(m string) bool { return m != self }) {
		return // no other member to hand the users to
	}
	settled := time.NewTimer(2 * staticRefresh)
	defer settled.Stop()
	tick := time.NewTicker(staticRefresh / 10)
	defer tick.Stop()
	for waiting := true; waiting || slices.Contains(n.Members(), self); {
		select {
		case <-ctx.Done():
			return
		case <-settled.C:
			waiting = false
		case <-tick.C:
		}
	}
}

// Shutdown leaves the cluster and stops the actor system (call it after the
// actors are stopped). Idempotent.
func (n *Node) Shutdown() {
	n.mu.Lock()
	c, ln := n.c, n.discovery
	already := n.stopped
	n.stopped = true
	n.mu.Unlock()
	if already {
		return
	}
	if c != nil {
		c.Shutdown(true)
	} else if ln != nil {
		ln.Close()
	}
	n.lookups.Wait() // each within protoactor's 5 s
}
