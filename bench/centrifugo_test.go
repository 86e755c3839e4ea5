package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary stand in for the harness when a test
// starts one of its hidden child modes (the Centrifugo publisher).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && strings.HasPrefix(os.Args[1], "-internal-") {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// centrifugoForTest is a Centrifugo binary to run, or the test is skipped:
// BENCH_CENTRIFUGO_BIN, else the one bare -centrifugo builds into the cache.
func centrifugoForTest(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("BENCH_CENTRIFUGO_BIN")
	if bin == "" {
		bin = centrifugoCachePath()
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		t.Skipf("no Centrifugo binary at %s: build it once with `go run ./bench -scenario idle -conns 10 -only centrifugo -centrifugo`, or set BENCH_CENTRIFUGO_BIN", bin)
	}
	return bin
}

func TestCentrifugoConfig(t *testing.T) {
	b := centrifugoConfig(18000, "s3cret", "k3y")
	var cfg map[string]map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b)
	}
	for _, c := range []struct {
		section, key string
		want         any
	}{
		{"http_server", "address", "127.0.0.1"}, // loopback only
		{"http_server", "port", 18000.0},
		{"http_api", "key", "k3y"},
		{"usage_stats", "disabled", true}, // nothing leaves the machine
		{"prometheus", "enabled", true},
		{"health", "enabled", true},
		{"client", "ping_interval", "2m"},
	} {
		if got := cfg[c.section][c.key]; got != c.want {
			t.Errorf("%s.%s = %v, want %v", c.section, c.key, got, c.want)
		}
	}
	client := cfg["client"]
	if tok, _ := client["token"].(map[string]any); tok["hmac_secret_key"] != "s3cret" {
		t.Errorf("client.token = %v, want hmac_secret_key s3cret", client["token"])
	}
	if p, _ := client["subscribe_to_user_personal_channel"].(map[string]any); p["enabled"] != true {
		t.Errorf("client.subscribe_to_user_personal_channel = %v, want enabled", p)
	}
}

// The generated config passes Centrifugo's own strict check (unknown keys
// fail it): the v6 layout, verified by the binary it is for.
func TestCentrifugoConfigStrictCheck(t *testing.T) {
	bin := centrifugoForTest(t)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, centrifugoConfig(18000, "s3cret", "k3y"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "checkconfig", "--strict", "--config", path).CombinedOutput()
	if err != nil {
		t.Fatalf("centrifugo checkconfig --strict: %v\n%s", err, out)
	}
}

func TestCentrifugoToken(t *testing.T) {
	secret := []byte("0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	tok := centrifugoToken(secret, "u42", now, time.Hour)
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q: want three parts", tok)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); parts[2] != want {
		t.Errorf("signature %q, want HS256 %q", parts[2], want)
	}
	var hdr, claims map[string]any
	for i, v := range []*map[string]any{&hdr, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, v) != nil {
			t.Fatalf("part %d not base64url JSON: %q", i, parts[i])
		}
	}
	if hdr["alg"] != "HS256" {
		t.Errorf("header %v", hdr)
	}
	if claims["sub"] != "u42" || claims["exp"] != float64(now.Add(time.Hour).Unix()) {
		t.Errorf("claims %v", claims)
	}
}

func TestCentrifugoFrames(t *testing.T) {
	var cmd struct {
		ID      int
		Connect struct{ Token string }
	}
	b := appendCentrifugoConnect(nil, 1, `a"b`)
	if err := json.Unmarshal(b, &cmd); err != nil || cmd.ID != 1 || cmd.Connect.Token != `a"b` || !bytes.HasPrefix(b, []byte(`{"id":1,`)) {
		t.Errorf("connect command %s: %v", b, err)
	}

	var body struct {
		Channel string
		Data    map[string]any
	}
	b = appendCentrifugoPublish(nil, centrifugoChannel("u1"), appendDeltaJSON(nil, "s", "m", 2, 40, "t1 "))
	if err := json.Unmarshal(b, &body); err != nil || body.Channel != "#u1" || body.Data["offset"] != 40.0 || body.Data["text"] != "t1 " {
		t.Errorf("publish body %s: %v", b, err)
	}

	// Several messages in one frame, newline-separated; the ping is {}.
	frame := []byte(`{"push":{"channel":"#u1","pub":{"data":{"type":"delta","session_id":"s","message_id":"m","seq":2,"offset":0,"text":"t1732530000000000001 "},"offset":7}}}` + "\n" +
		`{}` + "\n" +
		`{"push":{"channel":"#u1","pub":{"data":{"type":"message","message":{"role":"assistant"}}}}}` + "\n" +
		`{"push":{"disconnect":{"code":3012,"reason":"slow"}}}`)
	var kinds []string
	eachCentrifugoMessage(frame, func(msg []byte) {
		if ch, data, ok := centrifugoPubData(msg); ok {
			if string(ch) != "#u1" {
				t.Errorf("channel %q", ch)
			}
			kinds = append(kinds, readType(data))
			if readType(data) == "delta" {
				// the flat readers find the data's fields, not the pub's
				if off := atoi(jsonField(data, "offset")); off != 0 {
					t.Errorf("offset %d, want the data's 0", off)
				}
				if n := eachStamp(jsonField(data, "text"), func(int64) {}); n != 1 {
					t.Errorf("%d stamps", n)
				}
			}
		} else if code, ok := centrifugoDisconnect(msg); ok {
			kinds = append(kinds, "disconnect "+code)
		} else {
			kinds = append(kinds, string(msg))
		}
	})
	if got := strings.Join(kinds, ","); got != "delta,{},message,disconnect 3012" {
		t.Errorf("messages %s", got)
	}

	for _, c := range []struct {
		frame string
		ok    bool
	}{
		{`{"id":1,"connect":{"client":"c","version":"0.0.0","subs":{"#u1":{}},"ping":120,"pong":true}}`, true},
		{`{}` + "\n" + `{"id":1,"connect":{"client":"c","subs":{"#u1":{"recoverable":false}}}}`, true},
		{`{"id":1,"connect":{"client":"c"}}`, false},                   // no personal channel
		{`{"id":1,"connect":{"client":"c","subs":{"#u2":{}}}}`, false}, // someone else's
		{`{"id":1,"error":{"code":109,"message":"token expired"}}`, false},
		{`{"id":2,"connect":{"subs":{"#u1":{}}}}`, false},
	} {
		if err := checkCentrifugoConnect([]byte(c.frame), 1, "u1"); (err == nil) != c.ok {
			t.Errorf("connect reply %s: error %v, want ok=%v", c.frame, err, c.ok)
		}
	}
}

func TestCentrifugoFlags(t *testing.T) {
	var sb strings.Builder
	c, _, err := parseFlags([]string{"-scenario", "idle", "-centrifugo"}, &sb)
	if err != nil || c.Centrifugo.v != "build" {
		t.Errorf("bare -centrifugo: %v %q", err, c.Centrifugo.v)
	}
	c, _, err = parseFlags([]string{"-scenario", "fanout", "-centrifugo=/opt/centrifugo"}, &sb)
	if err != nil || c.Centrifugo.v != "/opt/centrifugo" {
		t.Errorf("-centrifugo=PATH: %v %q", err, c.Centrifugo.v)
	}
	c, _, err = parseFlags([]string{"-scenario", "idle", "-devices", "4"}, &sb)
	if err != nil || c.Centrifugo.v != "" || !c.given("devices") {
		t.Errorf("default: %v %+v", err, c)
	}
	for _, args := range [][]string{
		{"-scenario", "churn", "-centrifugo"},
		{"-scenario", "idle", "-only", "centrifugo"},
		{"-scenario", "fanout", "-centrifugo", "-centrifugo-publish", "grpc"},
	} {
		if _, _, err := parseFlags(args, &sb); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// The publisher streams the fake provider's reply into the HTTP API, one
// publication per token and in order, then the final message; a second send
// to a channel while its reply streams is refused. Against a stand-in for
// Centrifugo's API in this process, in both modes.
func TestPublisher(t *testing.T) {
	for _, mode := range publishModes {
		t.Run(mode, func(t *testing.T) { testPublisher(t, mode) })
	}
}

func testPublisher(t *testing.T, mode string) {
	fake, err := startFake(stampedReply(5), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	var (
		mu     sync.Mutex
		bodies []string
	)
	release := make(chan struct{})
	var once sync.Once
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := map[string]string{"each": "/api/publish", "batch": "/api/batch"}[mode]
		if r.URL.Path != want || r.Header.Get("X-API-Key") != "k3y" {
			http.Error(w, `{"error":{"code":101}}`, http.StatusUnauthorized)
			return
		}
		<-release // hold the first publication until the test lets it go
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if mode == "each" {
			bodies = append(bodies, string(b))
			io.WriteString(w, `{"result":{}}`)
			return
		}
		var batch struct {
			Commands []struct{ Publish json.RawMessage }
			Parallel bool
		}
		if err := json.Unmarshal(b, &batch); err != nil || batch.Parallel {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"replies":[`)
		for i, c := range batch.Commands {
			bodies = append(bodies, string(c.Publish))
			if i > 0 {
				io.WriteString(w, ",")
			}
			io.WriteString(w, `{"publish":{}}`)
		}
		io.WriteString(w, `]}`)
	}))
	defer api.Close()
	defer once.Do(func() { close(release) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newPublisher(fake.URL, api.URL+"/api", "k3y", mode)
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	defer srv.Close()
	tg := &target{PublisherURL: "http://" + ln.Addr().String()}

	if err := tg.centrifugoSend("u1", "go"); err != nil {
		t.Fatal(err)
	}
	if mode == "each" {
		// The first publication is held, so the reply is still streaming.
		if err := tg.centrifugoSend("u1", "go"); err == nil || !strings.Contains(err.Error(), "409") {
			t.Errorf("second send while streaming: %v, want 409 busy", err)
		}
	}
	once.Do(func() { close(release) })

	// Poll (with a deadline) for the final message, the last publication.
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		done := len(bodies) > 0 && strings.Contains(bodies[len(bodies)-1], `"type":"message"`)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final message published; publisher stats %+v", tg.publisherStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if st := tg.publisherStats(); st.Published != int64(len(bodies)) || st.Failed != 0 {
		t.Errorf("publisher stats %+v, the API saw %d", st, len(bodies))
	}
	offset, stamps, last := 0, 0, len(bodies)-1
	for i, b := range bodies {
		var pb struct {
			Channel string
			Data    json.RawMessage
		}
		if err := json.Unmarshal([]byte(b), &pb); err != nil || pb.Channel != "#u1" {
			t.Fatalf("publication %d: %s (%v)", i, b, err)
		}
		switch typ := readType(pb.Data); {
		case i < last && typ == "delta":
			if got := int(atoi(jsonField(pb.Data, "offset"))); got != offset {
				t.Errorf("delta %d at offset %d, want %d", i, got, offset)
			}
			offset += len(jsonField(pb.Data, "text"))
			stamps += eachStamp(jsonField(pb.Data, "text"), func(int64) {})
		case i == last && typ == "message":
			if !bytes.Equal(jsonField(pb.Data, "role"), []byte("assistant")) {
				t.Errorf("final publication %s", pb.Data)
			}
		default:
			t.Errorf("publication %d is %q: %s", i, typ, pb.Data)
		}
	}
	if stamps != 5 {
		t.Errorf("%d stamped tokens published, want 5", stamps)
	}
}

// idle -devices: connections are grouped into users, devices each. The
// baseline groups connections by their token, so it counts the users.
func TestIdleDevices(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bs := newBaselineServer("http://127.0.0.1:1/v1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go bs.Serve(ln)
	tg := baselineTarget(ln.Addr().String(), "127.0.0.1:1", 0)
	e := &env{runID: "test", logf: t.Logf}
	r := runIdle(ctx, e, tg, idleOptions{Conns: 14, Devices: 4, Parallel: 4, Hold: 10 * time.Millisecond, PerProcess: 1000})
	if r.Connected != 14 || r.Users != 4 || r.Devices != 4 {
		t.Errorf("connected %d, users %d, devices %d: want 14 connections of 4 users (the last with 2 devices)", r.Connected, r.Users, r.Devices)
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if len(bs.groups) != 4 {
		t.Errorf("the server saw %d users, want 4", len(bs.groups))
	}
	rep := &Report{Scenario: "idle", Idle: []idleResult{r}}
	rep.finish(e, time.Second)
	if md := markdown(rep); !strings.Contains(md, "14 connections (4 users × 4 devices)") {
		t.Errorf("markdown title:\n%s", md)
	}
}

// Against the real binary, when it is there: idle with two devices a user,
// and a short fan-out through the publisher, with the same clients.
func TestCentrifugoAgainstBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	bin := centrifugoForTest(t)
	defer runCleanups()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fake, err := startFake(stampedReply(5), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer fake.Close()
	cent, err := startCentrifugo(ctx, bin, fake.URL, "each", false, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cent.MetricsSource, "server GET /metrics") {
		t.Errorf("metrics: %s", cent.MetricsSource)
	}
	e := &env{runID: "test", fake: fake, logf: t.Logf}

	idle := runIdle(ctx, e, cent, idleOptions{Conns: 20, Devices: 2, Parallel: 4, Hold: 100 * time.Millisecond, PerProcess: 1000})
	if idle.Connected != 20 || idle.Failed != 0 {
		t.Errorf("idle: %d connected, %d failed: %v", idle.Connected, idle.Failed, idle.FirstErrors)
	}
	if idle.RSSPerConnKiB == nil || idle.GoroutinesPerConn == nil {
		t.Errorf("idle: no RSS or goroutine figures: %+v", idle)
	}

	fan := runFanout(ctx, e, cent, fanoutOptions{Users: 3, Devices: 2, Tokens: 5, TokenDelay: time.Millisecond,
		Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond, Parallel: 4})
	if fan.Connected != 6 {
		t.Fatalf("fanout: %d devices connected: %v", fan.Connected, fan.FirstErrors)
	}
	if fan.Frames == 0 || fan.Lag.Count != int(fan.Tokens) || fan.Gaps != 0 || fan.Replies == 0 || fan.Disconnects != 0 {
		t.Errorf("fanout: publications %d, tokens %d, lag samples %d, gaps %d, replies %d, disconnects %d",
			fan.Frames, fan.Tokens, fan.Lag.Count, fan.Gaps, fan.Replies, fan.Disconnects)
	}
	if fan.PublishFailures == nil || *fan.PublishFailures != 0 || fan.ErrorEvents != nil {
		t.Errorf("fanout: publish failures %v, errors %v", fan.PublishFailures, fan.ErrorEvents)
	}
}
