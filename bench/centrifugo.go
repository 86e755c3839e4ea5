// Centrifugo as a second peer beside the baseline (-centrifugo): built from
// the Go module proxy into the user's cache directory (never a dependency of
// this module), run as a child process on loopback with a generated config,
// driven by the same gobwas/ws clients speaking Centrifugo's JSON protocol,
// and fed by a publisher process that streams the fake provider's reply into
// the server HTTP API, one publication per token.

package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const (
	centrifugoModule  = "github.com/centrifugal/centrifugo/v6"
	centrifugoVersion = "v6.9.1"
	// centrifugoWSPath is Centrifugo's bidirectional WebSocket endpoint
	// (websocket.handler_prefix, default).
	centrifugoWSPath = "/connection/websocket"
)

// centrifugoFlag is -centrifugo: off (the default), "true" (bare
// -centrifugo: build the pinned version, cached), or the path of a prebuilt
// binary (-centrifugo=/path/to/centrifugo).
type centrifugoFlag struct{ v string }

func (f *centrifugoFlag) String() string   { return f.v }
func (f *centrifugoFlag) IsBoolFlag() bool { return true }
func (f *centrifugoFlag) Set(s string) error {
	switch s {
	case "", "false", "0":
		f.v = ""
	case "true", "1":
		f.v = "build"
	default:
		f.v = s
	}
	return nil
}

// centrifugoBinary returns the binary -centrifugo names: a prebuilt path as
// given, else the pinned version built once into the user's cache directory
// with `go install` (not added to go.mod).
func centrifugoBinary(ctx context.Context, v string, logf func(string, ...any)) (string, error) {
	if v != "build" {
		if st, err := os.Stat(v); err != nil || st.IsDir() {
			return "", fmt.Errorf("-centrifugo=%s: not a binary (%v)", v, err)
		}
		return v, nil
	}
	bin := centrifugoCachePath()
	if st, err := os.Stat(bin); err == nil && !st.IsDir() {
		return bin, nil
	}
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	logf("building %s@%s into %s (once; a few minutes)", centrifugoModule, centrifugoVersion, dir)
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "go", "install", centrifugoModule+"@"+centrifugoVersion)
	cmd.Dir = tmp // outside this module: pkg@version ignores go.mod anyway
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", centrifugoModule, centrifugoVersion, err, lastLines(out, 20))
	}
	if err := os.Rename(filepath.Join(tmp, "centrifugo"), bin); err != nil {
		return "", err
	}
	logf("built centrifugo in %s", time.Since(t0).Round(time.Second))
	return bin, nil
}

// centrifugoCachePath is where bare -centrifugo keeps the binary it builds:
// the user cache directory (os.UserCacheDir), chatbox-bench/centrifugo-VERSION.
func centrifugoCachePath() string {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	return filepath.Join(cache, "chatbox-bench", "centrifugo-"+centrifugoVersion, "centrifugo")
}

// centrifugoConfig is the generated JSON configuration (Centrifugo v6
// layout, checked by `centrifugo checkconfig --strict` in the tests when the
// binary is there). Every connection is subscribed server-side to its user's
// personal channel "#<user>" (client.subscribe_to_user_personal_channel), so
// the connect reply is the hello; the HTTP API, /metrics, /health and pprof
// share the one loopback port; pings every 2 minutes like Chatbox's
// ping_interval; no usage statistics are sent.
func centrifugoConfig(port int, secret, apiKey string) []byte {
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "warn"},
		"client": map[string]any{
			"token":                              map[string]any{"hmac_secret_key": secret},
			"subscribe_to_user_personal_channel": map[string]any{"enabled": true},
			"ping_interval":                      "2m",
			"pong_timeout":                       "1m",
		},
		"http_api":    map[string]any{"key": apiKey},
		"prometheus":  map[string]any{"enabled": true},
		"health":      map[string]any{"enabled": true},
		"debug":       map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
	}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return append(b, '\n')
}

// centrifugoChannel is the personal channel Centrifugo subscribes user to
// (no personal_channel_namespace: channel.user_boundary "#" and the ID).
func centrifugoChannel(user string) string { return "#" + user }

// centrifugoToken is a connection JWT for user: HS256, sub and exp.
func centrifugoToken(secret []byte, user string, now time.Time, ttl time.Duration) string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": user, "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
	msg := hdr + "." + base64.RawURLEncoding.EncodeToString(claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// appendCentrifugoConnect appends the connect command of the JSON protocol.
func appendCentrifugoConnect(dst []byte, id int, token string) []byte {
	return fmt.Appendf(dst, `{"id":%d,"connect":{"token":%s,"name":"bench"}}`, id, jsonQuote(token))
}

// eachCentrifugoMessage calls fn with every message of a frame: Centrifugo's
// JSON protocol puts several replies and pushes in one WebSocket frame,
// separated by newlines.
func eachCentrifugoMessage(frame []byte, fn func(msg []byte)) {
	for len(frame) > 0 {
		msg, rest, _ := bytes.Cut(frame, []byte{'\n'})
		if len(msg) > 0 {
			fn(msg)
		}
		frame = rest
	}
}

// centrifugoPubData returns the channel and the raw data of a publication
// push, {"push":{"channel":"…","pub":{"data":{…},…}}}. The data is returned
// from its opening brace to the end of the message; the harness's flat field
// readers stop at the first match, and data is the first field of a pub.
func centrifugoPubData(msg []byte) (channel, data []byte, ok bool) {
	if !bytes.HasPrefix(msg, []byte(`{"push":{`)) {
		return nil, nil, false
	}
	i := bytes.Index(msg, []byte(`"pub":{"data":`))
	if i < 0 {
		return nil, nil, false
	}
	return jsonField(msg[:i], "channel"), msg[i+len(`"pub":{"data":`):], true
}

// centrifugoDisconnect returns the code of a disconnect push, if msg is one.
func centrifugoDisconnect(msg []byte) (string, bool) {
	if !bytes.HasPrefix(msg, []byte(`{"push":{"disconnect":`)) {
		return "", false
	}
	return string(jsonField(msg, "code")), true
}

// checkCentrifugoConnect checks that frame holds the successful reply to
// connect command id with user's personal channel among its server-side
// subscriptions.
func checkCentrifugoConnect(frame []byte, id int, user string) error {
	want := fmt.Appendf(nil, `{"id":%d,`, id)
	var err error = fmt.Errorf("no reply to connect in %.200q", frame)
	eachCentrifugoMessage(frame, func(msg []byte) {
		if !bytes.HasPrefix(msg, want) {
			return
		}
		rest := msg[len(want):]
		switch {
		case bytes.HasPrefix(rest, []byte(`"error":`)):
			err = fmt.Errorf("connect refused: code %s, %s", jsonField(rest, "code"), jsonField(rest, "message"))
		case !bytes.HasPrefix(rest, []byte(`"connect":`)):
			err = fmt.Errorf("unexpected reply to connect: %.200q", msg)
		case !bytes.Contains(rest, []byte(`"subs":{`)) || !bytes.Contains(rest, []byte(jsonQuote(centrifugoChannel(user))+":")):
			err = fmt.Errorf("connected without the personal channel %s: %.200q", centrifugoChannel(user), msg)
		default:
			err = nil
		}
	})
	return err
}

// centrifugoHello connects and authenticates over an upgraded socket: the
// connect command with the user's token, then its reply.
func centrifugoHello(c *wsClient, token, user string, deadline time.Time) error {
	c.conn.SetReadDeadline(deadline)
	defer c.conn.SetReadDeadline(time.Time{})
	if err := c.WriteText(appendCentrifugoConnect(nil, 1, token)); err != nil {
		return fmt.Errorf("write connect: %w", err)
	}
	f, err := c.ReadMessage(make([]byte, 0, 512))
	if err != nil {
		return fmt.Errorf("read connect reply: %w", err)
	}
	return checkCentrifugoConnect(f, 1, user)
}

// appendCentrifugoPublish appends the body of POST /api/publish.
func appendCentrifugoPublish(dst []byte, channel string, data []byte) []byte {
	dst = append(dst, `{"channel":`...)
	dst = strconv.AppendQuote(dst, channel) // channel names here are ASCII
	dst = append(dst, `,"data":`...)
	dst = append(dst, data...)
	return append(dst, '}')
}

// publisherPID is the Centrifugo publisher's process, when there is one; its
// CPU is reported apart from the harness's and the server's.
var publisherPID int

// startCentrifugo runs the Centrifugo binary as a child with a generated
// config and then the publisher that feeds it, and returns the target.
func startCentrifugo(ctx context.Context, bin, fakeURL, publish string, verbose bool, logf func(string, ...any)) (*target, error) {
	tmp, err := os.MkdirTemp("", "centrifugo-bench-")
	if err != nil {
		return nil, err
	}
	onCleanup(func() { os.RemoveAll(tmp) })
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	secret, apiKey := randomSecret(48), randomSecret(32)
	cfgPath := filepath.Join(tmp, "config.json")
	if err := os.WriteFile(cfgPath, centrifugoConfig(port, secret, apiKey), 0o600); err != nil {
		return nil, err
	}
	logPath := filepath.Join(tmp, "centrifugo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	onCleanup(func() { logFile.Close() })
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Dir = tmp
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = childEnv("CENTRIFUGO_") // CENTRIFUGO_* would override the generated config
	ch, err := startChild(cmd)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitHTTP(ctx, base+"/health", 60*time.Second, ch); err != nil {
		tail, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("centrifugo did not become healthy: %w\n%s", err, lastLines(tail, 20))
	}
	pub, addr, err := startSelfEnv([]string{"BENCH_CENTRIFUGO_API_KEY=" + apiKey},
		"-internal-centrifugo-publisher", "-internal-fake-url", fakeURL, "-target", base+"/api", "-centrifugo-publish", publish)
	if err != nil {
		return nil, fmt.Errorf("centrifugo publisher: %w", err)
	}
	publisherPID = pub.cmd.Process.Pid
	t := &target{
		Name: "centrifugo", URL: "ws://127.0.0.1:" + strconv.Itoa(port) + centrifugoWSPath, Secret: []byte(secret),
		PID: cmd.Process.Pid, LogPath: logPath, proto: protoCentrifugo, PublisherURL: "http://" + addr,
	}
	t.findMetrics(base, "")
	if verbose {
		logf("centrifugo pid %d, log %s, publisher pid %d", t.PID, logPath, publisherPID)
	}
	return t, nil
}

// childEnv is this process's environment without the variables that start
// with any of the prefixes.
func childEnv(prefixes ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		keep := true
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				keep = false
			}
		}
		if keep {
			env = append(env, kv)
		}
	}
	return env
}

// publisher is the application backend in front of Centrifugo: on POST
// /send?channel=C it streams the fake provider's reply (the same HTTP+SSE
// call Chatbox and the baseline make) and publishes each chunk as one
// publication to C through the server HTTP API, in order; the publication's
// data is the baseline's delta JSON, then the final message, so the clients
// read Centrifugo's pushes exactly as Chatbox's frames. GET /stats counts
// publications and failures.
//
// Mode "each" (-centrifugo-publish each, the default) is one POST
// /api/publish per publication, the stream waiting for its answer before the
// next. Mode "batch" is a backend that batches: channels are spread over
// batchShards queues by a hash of their name; every publication queued while
// its queue's previous request was out goes in one POST /api/batch
// (sequential, so each channel's order holds), one request in flight per
// queue.
type publisher struct {
	fakeURL, apiURL, apiKey string
	fake, api               *http.Client
	shards                  []*batchShard // batch mode only

	mu        sync.Mutex
	streaming map[string]bool
	seq       map[string]int64

	published, failed atomic.Int64
	firstErr          atomic.Pointer[string]
}

// publishModes are the values of -centrifugo-publish.
var publishModes = []string{"each", "batch"}

// batchShards is how many batch requests may be out at once (mode batch).
const batchShards = 4

// batchShard is one queue of publish commands and its sender.
type batchShard struct {
	mu    sync.Mutex
	queue [][]byte      // publish commands waiting
	wake  chan struct{} // something was queued
}

func newPublisher(fakeURL, apiURL, apiKey, mode string) *publisher {
	p := &publisher{
		fakeURL: fakeURL, apiURL: strings.TrimSuffix(apiURL, "/"), apiKey: apiKey,
		fake:      &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096}},
		api:       &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096}, Timeout: 30 * time.Second},
		streaming: map[string]bool{}, seq: map[string]int64{},
	}
	if mode == "batch" {
		for range batchShards {
			sh := &batchShard{wake: make(chan struct{}, 1)}
			p.shards = append(p.shards, sh)
			go p.batchLoop(sh)
		}
	}
	return p
}

// shard is the queue of channel ch (FNV-1a of its name).
func (p *publisher) shard(ch string) *batchShard {
	h := uint32(2166136261)
	for i := 0; i < len(ch); i++ {
		h = (h ^ uint32(ch[i])) * 16777619
	}
	return p.shards[h%uint32(len(p.shards))]
}

func (p *publisher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/stats":
		st := publisherStats{Published: p.published.Load(), Failed: p.failed.Load()}
		if e := p.firstErr.Load(); e != nil {
			st.FirstError = *e
		}
		json.NewEncoder(w).Encode(st)
	case "/send":
		ch := r.URL.Query().Get("channel")
		if r.Method != http.MethodPost || ch == "" {
			http.Error(w, "POST /send?channel=C", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		if p.streaming[ch] {
			p.mu.Unlock()
			http.Error(w, "busy", http.StatusConflict)
			return
		}
		p.streaming[ch] = true
		p.seq[ch] += 2
		seq := p.seq[ch]
		p.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		go p.stream(ch, seq, r.URL.Query().Get("text"))
	default:
		http.NotFound(w, r)
	}
}

type publisherStats struct {
	Published  int64  `json:"published"`
	Failed     int64  `json:"failed"`
	FirstError string `json:"first_error,omitempty"`
}

func (p *publisher) stream(ch string, seq int64, text string) {
	sid, msgID := newHexID(), newHexID()
	var data, body, reply []byte
	err := streamFake(p.fake, p.fakeURL, text, func(piece string) {
		data = appendDeltaJSON(data[:0], sid, msgID, seq, len(reply), piece)
		reply = append(reply, piece...)
		body = p.publish(body[:0], ch, data)
	})
	status := "complete"
	if err != nil {
		status = "failed"
	}
	// Free the channel before the final message, as Chatbox and the
	// baseline do: the sender answers it with the next send at once.
	p.mu.Lock()
	p.streaming[ch] = false
	p.mu.Unlock()
	data = fmt.Appendf(data[:0], `{"type":"message","session_id":"%s","message":{"id":"%s","seq":%d,"role":"assistant","author":"Fake","text":%s,"status":"%s"}}`, sid, msgID, seq, jsonQuote(string(reply)), status)
	p.publish(body[:0], ch, data)
}

// publish posts one publication and waits for the API's answer (batch:
// queues it); body is a reusable buffer, returned.
func (p *publisher) publish(body []byte, ch string, data []byte) []byte {
	if p.shards != nil {
		cmd := appendCentrifugoPublish(append(make([]byte, 0, len(data)+64), `{"publish":`...), ch, data)
		sh := p.shard(ch)
		sh.mu.Lock()
		sh.queue = append(sh.queue, append(cmd, '}'))
		sh.mu.Unlock()
		select {
		case sh.wake <- struct{}{}:
		default:
		}
		return body
	}
	body = appendCentrifugoPublish(body, ch, data)
	b, err := p.post("/publish", body)
	if err == nil && !bytes.HasPrefix(b, []byte(`{"result"`)) {
		err = fmt.Errorf("publish: %.200q", b)
	}
	p.count(1, err)
	return body
}

// batchLoop sends what is queued in sh as one batch, then again, until the
// process ends.
func (p *publisher) batchLoop(sh *batchShard) {
	var body []byte
	for range sh.wake {
		sh.mu.Lock()
		cmds := sh.queue
		sh.queue = nil
		sh.mu.Unlock()
		if len(cmds) == 0 {
			continue
		}
		body = appendCentrifugoBatch(body[:0], cmds)
		b, err := p.post("/batch", body)
		if err != nil {
			p.count(len(cmds), err)
			continue
		}
		failed := bytes.Count(b, []byte(`"error":`))
		if failed > 0 {
			p.count(failed, fmt.Errorf("batch: %.200q", b))
		}
		p.count(len(cmds)-failed, nil)
	}
}

// appendCentrifugoBatch appends the body of POST /api/batch: the commands in
// order, run one after another (not "parallel").
func appendCentrifugoBatch(dst []byte, cmds [][]byte) []byte {
	dst = append(dst, `{"commands":[`...)
	for i, c := range cmds {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, c...)
	}
	return append(dst, "]}"...)
}

// post sends body to the API method and returns the start of the answer.
func (p *publisher) post(method string, body []byte) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodPost, p.apiURL+method, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", p.apiKey)
	resp, err := p.api.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s %.200q", method, resp.Status, b)
	}
	return b, nil
}

// count records n publications accepted (err nil) or failed.
func (p *publisher) count(n int, err error) {
	if err != nil {
		p.failed.Add(int64(n))
		msg := err.Error()
		p.firstErr.CompareAndSwap(nil, &msg)
		return
	}
	p.published.Add(int64(n))
}

// runPublisherChild is the hidden -internal-centrifugo-publisher mode.
func runPublisherChild(ctx context.Context, fakeURL, apiURL, mode string, out io.Writer) error {
	raiseNoFile()
	key := os.Getenv("BENCH_CENTRIFUGO_API_KEY")
	if key == "" {
		return errors.New("BENCH_CENTRIFUGO_API_KEY is not set")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newPublisher(fakeURL, apiURL, key, mode)}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Fprintf(out, "LISTEN %s\n", ln.Addr())
	<-ctx.Done()
	return nil
}

// publisherClient is how the fan-out asks the publisher for replies.
var publisherClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096}, Timeout: 10 * time.Second}

// centrifugoSend asks t's publisher to stream a reply to user's channel. It
// reports whether the publisher took it (false: busy or failed).
func (t *target) centrifugoSend(user, text string) error {
	u := t.PublisherURL + "/send?channel=" + url.QueryEscape(centrifugoChannel(user)) + "&text=" + url.QueryEscape(text)
	resp, err := publisherClient.Post(u, "text/plain", nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("publisher: %s", resp.Status)
	}
	return nil
}

// publisherStats reads the publisher's counters (zero when unreachable).
func (t *target) publisherStats() publisherStats {
	var st publisherStats
	resp, err := metricsClient.Get(t.PublisherURL + "/stats")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// publishLabel says in the report how publications reached the API.
func publishLabel(mode string) string {
	if mode == "batch" {
		return "batch: channels over 4 queues, what a queue holds goes in one POST /api/batch, one request in flight per queue"
	}
	return "each: one POST /api/publish per token, in order per stream"
}
