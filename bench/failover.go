// The failover scenario: three Chatbox nodes as one cluster (provider
// static, on loopback) over the MongoDB stand-in; one user with a probeDevice on
// every node; kill -9 of the node that hosts the user's actor, and the time
// until a probeDevice on a surviving node has its next send acked in the same
// session. The killed node is started again on the same ports before the
// next kill.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chatbox/chatbox/auth"
	chatboxconfig "github.com/chatbox/chatbox/config"
)

type failoverOptions struct {
	Kills int
}

type failoverResult struct {
	Nodes int `json:"nodes"`
	Kills int `json:"kills"`
	// KillToAck: kill -9 of the node hosting the user's actor → the next
	// send of a probeDevice on a surviving node acked, same session.
	KillToAck Summary   `json:"kill_to_ack"`
	SamplesMS []float64 `json:"samples_ms"`
	Attempts  int       `json:"sends_tried"` // sends until each ack, all kills together
	Missed    int       `json:"missed"`      // kills after which no ack came within the bound
	// Split: probes before a kill after which the devices' messages were
	// stored on different nodes (activations on two nodes at once, each with
	// devices attached); the devices connect again and probe again.
	Split int `json:"split"`
}

// failoverBound is how long one kill may take to recover before it is
// counted missed (the contract's bound is 10 s).
const failoverBound = 30 * time.Second

// clusterProcs is a cluster of Chatbox nodes the harness runs.
type clusterProcs struct {
	bin, dir, secret, key, mongoURI, fakeURL string
	actor, discovery                         []int
	http                                     []int
	procs                                    []*child
	logf                                     func(string, ...any)
}

// startClusterProcs builds Chatbox, starts the stand-in store and n nodes.
func startClusterProcs(ctx context.Context, e *env, n int) (*clusterProcs, error) {
	dir, err := os.MkdirTemp("", "chatbox-bench-cluster-")
	if err != nil {
		return nil, err
	}
	onCleanup(func() { os.RemoveAll(dir) })
	root := e.cfg.ChatboxSrc
	if root == "" {
		if root, err = moduleRoot(); err != nil {
			return nil, err
		}
	}
	bin, _, err := buildChatbox(ctx, root, dir, false, e.logf)
	if err != nil {
		return nil, err
	}
	uri, pid, err := startStandIn(filepath.Join(dir, "standin"))
	if err != nil {
		return nil, err
	}
	storePID = pid
	key, err := chatboxconfig.GenerateKey()
	if err != nil {
		return nil, err
	}
	c := &clusterProcs{bin: bin, dir: dir, secret: randomSecret(48), key: key, mongoURI: uri, fakeURL: e.fake.URL, logf: e.logf,
		procs: make([]*child, n), http: make([]int, n)}
	for range n {
		a, err1 := freePort()
		d, err2 := freePort()
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		c.actor, c.discovery = append(c.actor, a), append(c.discovery, d)
	}
	for i := range n {
		if err := c.start(ctx, i); err != nil {
			return nil, err
		}
	}
	for i := range n {
		if err := c.waitMember(ctx, i, n); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// start runs node i (again), on its cluster ports and a fresh HTTP port.
func (c *clusterProcs) start(ctx context.Context, i int) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	var peers []string
	for _, d := range c.discovery {
		peers = append(peers, strconv.Quote(fmt.Sprintf("127.0.0.1:%d", d)))
	}
	optional := []optionalKey{{"server", "max_connections", "0"}, {"limits", "messages_per_minute", "0"},
		{"limits", "message_burst", "0"}, {"limits", "connections_per_user", "0"}, {"limits", "replies_in_flight", "0"}}
	cfg := chatboxConfig(port, c.secret, filepath.Join(c.dir, fmt.Sprintf("data%d", i)), c.mongoURI, c.fakeURL, optional) +
		fmt.Sprintf("\n[cluster]\nenabled = true\nlisten = \"127.0.0.1:%d\"\ndiscovery_listen = \"127.0.0.1:%d\"\npeers = [%s]\n",
			c.actor[i], c.discovery[i], strings.Join(peers, ", "))
	path := filepath.Join(c.dir, fmt.Sprintf("node%d.toml", i))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("node%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	onCleanup(func() { logFile.Close() })
	cmd := exec.Command(c.bin, "serve", "-config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	env := []string{"CHATBOX_STORAGE_ENCRYPTION_KEY=" + c.key}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CHATBOX_") && !strings.HasPrefix(kv, "BENCH_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	ch, err := startChild(cmd)
	if err != nil {
		return err
	}
	c.procs[i], c.http[i] = ch, port
	if err := waitHTTP(ctx, c.base(i)+"/healthz", 90*time.Second, ch); err != nil {
		tail, _ := os.ReadFile(logFile.Name())
		return fmt.Errorf("node %d: %w\n%s", i+1, err, lastLines(tail, 10))
	}
	return nil
}

func (c *clusterProcs) base(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", c.http[i]) }
func (c *clusterProcs) wsURL(i int) string {
	return fmt.Sprintf("ws://127.0.0.1:%d/ws", c.http[i])
}

func (c *clusterProcs) token(userID string, admin bool) string {
	id := auth.Identity{UserID: userID, Name: userID}
	if admin {
		id.Roles = []string{"admin"}
	}
	tok, _ := auth.Sign([]byte(c.secret), id, 2*time.Hour, "", "")
	return tok
}

// waitMember waits until node i is ready and sees n members.
func (c *clusterProcs) waitMember(ctx context.Context, i, n int) error {
	admin := c.token("bench-ops", true)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		var stats struct {
			Nodes []string `json:"nodes"`
		}
		if httpJSON(ctx, c.base(i)+"/readyz", "", nil) == nil && httpJSON(ctx, c.base(i)+"/api/admin/stats", admin, &stats) == nil && len(stats.Nodes) == n {
			return nil
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	return fmt.Errorf("node %d: not ready with %d members in time", i+1, n)
}

// userMessages is the series that counts user messages stored by the
// session actors of a node: the node that stores a probe's message hosts
// the activation the devices are attached to. (An earlier activation may
// still live on another node after a rejoin; protoactor does not always
// stop it, and it stops only when idle: chatbox_active_users cannot tell
// the two apart.)
const userMessages = `chatbox_messages_total{role="user"}`

func (c *clusterProcs) counts(ctx context.Context) []float64 {
	v := make([]float64, len(c.procs))
	for i := range c.procs {
		if !c.procs[i].Exited() {
			v[i], _ = metricOf(ctx, c.base(i), userMessages)
		}
	}
	return v
}

// httpJSON GETs url (with a bearer token when tok is set) and decodes a 200
// answer into into; any other status is an error.
func httpJSON(ctx context.Context, url, tok string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	if into != nil {
		return json.NewDecoder(resp.Body).Decode(into)
	}
	return nil
}

// metricOf reads one unlabelled series from base's /metrics.
func metricOf(ctx context.Context, base, name string) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, line := range strings.Split(sb.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// probeDevice is one WebSocket of the scenario with its decoded events.
type probeDevice struct {
	c      *wsClient
	events chan map[string]any
	done   chan struct{}
	once   sync.Once
}

func dialProbe(ctx context.Context, url, tok string) (*probeDevice, error) {
	c, err := dialWS(ctx, dialOptions{URL: url}, tok)
	if err != nil {
		return nil, err
	}
	d := &probeDevice{c: c, events: make(chan map[string]any, 4096), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		var buf []byte
		for {
			b, err := c.ReadMessage(buf)
			if err != nil {
				return
			}
			buf = b
			var ev map[string]any
			if json.Unmarshal(b, &ev) == nil {
				select {
				case d.events <- ev:
				default: // nobody reads this many; the scenario waits for few
				}
			}
		}
	}()
	if _, err := d.await(10*time.Second, func(ev map[string]any) bool { return ev["type"] == "hello" }); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *probeDevice) send(v any) error {
	b, _ := json.Marshal(v)
	return d.c.WriteText(b)
}

var errDeviceClosed = errors.New("socket closed")

// await returns the first event matching ok within limit.
func (d *probeDevice) await(limit time.Duration, ok func(map[string]any) bool) (map[string]any, error) {
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		select {
		case ev := <-d.events:
			if ok(ev) {
				return ev, nil
			}
		case <-d.done:
			select {
			case ev := <-d.events:
				if ok(ev) {
					return ev, nil
				}
				continue
			default:
			}
			return nil, errDeviceClosed
		case <-t.C:
			return nil, fmt.Errorf("nothing in %v", limit)
		}
	}
}

func (d *probeDevice) Close() { d.once.Do(d.c.Close) }

func answers(id string) func(map[string]any) bool {
	return func(ev map[string]any) bool {
		return (ev["type"] == "ack" || ev["type"] == "error") && ev["id"] == id
	}
}

func isReplyEnd(ev map[string]any) bool {
	m, _ := ev["message"].(map[string]any)
	return ev["type"] == "message" && m["role"] == "assistant"
}

func runFailover(ctx context.Context, e *env, o failoverOptions) (res failoverResult, err error) {
	const n = 3
	res = failoverResult{Nodes: n, Kills: o.Kills}
	e.fake.Set(stampedReply(5), 0)
	cl, err := startClusterProcs(ctx, e, n)
	if err != nil {
		return res, err
	}
	tok := cl.token("bench-failover", false)
	devices := make([]*probeDevice, n)
	defer func() {
		for _, d := range devices {
			if d != nil {
				d.Close()
			}
		}
	}()
	for i := range n {
		if devices[i], err = dialProbe(ctx, cl.wsURL(i), tok); err != nil {
			return res, err
		}
	}
	seq := 0
	// chat sends one message on d and waits for its ack and the reply's end.
	chat := func(d *probeDevice, sid string, limit time.Duration) (string, error) {
		seq++
		id := fmt.Sprintf("f%d", seq)
		cmd := map[string]any{"type": "send", "id": id, "text": "failover probe " + id}
		if sid != "" {
			cmd["session_id"] = sid
		}
		if err := d.send(cmd); err != nil {
			return "", err
		}
		ev, err := d.await(limit, answers(id))
		if err != nil {
			return "", err
		}
		if ev["type"] != "ack" {
			return "", fmt.Errorf("error %v", ev["code"])
		}
		d.await(5*time.Second, isReplyEnd)
		return ev["session_id"].(string), nil
	}
	sid, err := chat(devices[0], "", 10*time.Second)
	if err != nil {
		return res, fmt.Errorf("first send: %w", err)
	}
	var samples []time.Duration
	defer func() { res.KillToAck = SummarizeDurations(samples) }()
	for k := 0; k < o.Kills && ctx.Err() == nil; k++ {
		// Every device probes; the node that stores a device's message hosts
		// the activation it is attached to. They must all agree.
		host := -1
		for try := 0; host < 0 && try < 5; try++ {
			if try > 0 {
				res.Split++
				for i, d := range devices {
					d.Close()
					if devices[i], err = dialProbe(ctx, cl.wsURL(i), tok); err != nil {
						return res, err
					}
				}
			}
			agree := true
			for j, d := range devices {
				before := cl.counts(ctx)
				if _, err := chat(d, sid, 10*time.Second); err != nil {
					return res, fmt.Errorf("kill %d: probe: %w", k+1, err)
				}
				h, grew := -1, 0
				for i, v := range cl.counts(ctx) {
					if v > before[i] {
						h, grew = i, grew+1
					}
				}
				if grew != 1 || (j > 0 && h != host) {
					agree = false
				}
				host = h
			}
			if !agree {
				host = -1
			}
		}
		if host < 0 {
			return res, fmt.Errorf("kill %d: the devices are attached to activations on different nodes", k+1)
		}
		survivor := (host + 1) % n
		killed := time.Now()
		syscall.Kill(cl.procs[host].cmd.Process.Pid, syscall.SIGKILL)
		<-cl.procs[host].done
		var took time.Duration
		for time.Since(killed) < failoverBound && ctx.Err() == nil {
			res.Attempts++
			if _, err := chat(devices[survivor], sid, 3*time.Second); err == nil {
				took = time.Since(killed)
				break
			} else if errors.Is(err, errDeviceClosed) {
				return res, fmt.Errorf("kill %d: the survivor's socket closed", k+1)
			}
		}
		if took == 0 {
			res.Missed++
		} else {
			samples = append(samples, took)
			res.SamplesMS = append(res.SamplesMS, round(float64(took.Microseconds())/1000, 1))
		}
		e.logf("kill %d of node %d: acked after %v", k+1, host+1, took.Round(time.Millisecond))
		devices[host].Close()
		if err := cl.start(ctx, host); err != nil {
			return res, err
		}
		for i := range n {
			if err := cl.waitMember(ctx, i, n); err != nil {
				return res, err
			}
		}
		if devices[host], err = dialProbe(ctx, cl.wsURL(host), tok); err != nil {
			return res, err
		}
	}
	return res, nil
}

// crossnodeResult compares delivery to devices on other nodes than their
// user's actor with the same load on the actor's own node.
type crossnodeResult struct {
	Nodes int          `json:"nodes"`
	Cross fanoutResult `json:"cross"` // every device on another node than its user's actor
	Local fanoutResult `json:"local"` // every device on its user's actor's node
}

// runCrossnode is the crossnode scenario: o's users, each found on its
// node by a probe, then o's fan-out twice over the same cluster.
func runCrossnode(ctx context.Context, e *env, o fanoutOptions) (res crossnodeResult, err error) {
	const n = 3
	res.Nodes = n
	cl, err := startClusterProcs(ctx, e, n)
	if err != nil {
		return res, err
	}
	e.fake.Set(stampedReply(3), 0)
	host := make([]int, o.Users)
	user := func(u int) string { return fmt.Sprintf("cross-%s-%d", e.runID, u) }
	for u := range o.Users {
		d, err := dialProbe(ctx, cl.wsURL(0), cl.token(user(u), false))
		if err != nil {
			return res, err
		}
		before := cl.counts(ctx)
		d.send(map[string]any{"type": "send", "id": "probe", "text": "where am I"})
		_, err = d.await(10*time.Second, answers("probe"))
		d.await(5*time.Second, isReplyEnd)
		d.Close()
		if err != nil {
			return res, fmt.Errorf("probe user %d: %w", u, err)
		}
		host[u] = -1
		for i, v := range cl.counts(ctx) {
			if v > before[i] {
				host[u] = i
			}
		}
		if host[u] < 0 {
			return res, fmt.Errorf("probe user %d: no node stored its message", u)
		}
	}
	t := &target{Name: "cluster", URL: cl.wsURL(0), Secret: []byte(cl.secret)}
	o.UserID = user
	o.URL = func(u, d int) string { return cl.wsURL((host[u] + 1 + d%(n-1)) % n) }
	res.Cross = runFanout(ctx, e, t, o)
	res.Cross.Target = "cross"
	o.URL = func(u, _ int) string { return cl.wsURL(host[u]) }
	res.Local = runFanout(ctx, e, t, o)
	res.Local.Target = "local"
	return res, nil
}
