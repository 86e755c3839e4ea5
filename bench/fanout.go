package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type fanoutOptions struct {
	Users, Devices int
	Tokens         int // tokens per reply
	TokenDelay     time.Duration
	Warmup         time.Duration
	Duration       time.Duration
	Parallel       int
	ProfilePath    string // CPU profile of the server over the window
	// crossnode: user u's id, and the server of its device d (nil: the
	// run's own prefix, and the target's URL).
	UserID func(u int) string
	URL    func(u, d int) string
}

type fanoutResult struct {
	Target           string         `json:"target"`
	Users            int            `json:"users"`
	Devices          int            `json:"devices"`
	Streams          int            `json:"streams"`
	TokenDelayMS     float64        `json:"token_delay_ms"`
	TokensPerReply   int            `json:"tokens_per_reply"`
	Connected        int            `json:"connected"`
	ConnectFailures  int            `json:"connect_failures"`
	FirstErrors      []string       `json:"first_errors,omitempty"`
	WindowSeconds    float64        `json:"window_seconds"`
	OfferedFramesSec float64        `json:"offered_frames_per_sec"`
	Frames           int64          `json:"delta_frames"`
	FramesPerSec     float64        `json:"delta_frames_per_sec"`
	WSFramesPerSec   *float64       `json:"ws_frames_per_sec,omitempty"`     // centrifugo: WebSocket frames, each with one or more publications
	Published        *int64         `json:"publications_accepted,omitempty"` // centrifugo: by its HTTP API, whole run
	PublishFailures  *int64         `json:"publish_failures,omitempty"`
	Tokens           int64          `json:"tokens"`
	TokensPerSec     float64        `json:"tokens_per_sec"`
	Coalescing       float64        `json:"coalescing_tokens_per_frame"`
	Lag              Summary        `json:"lag"`
	Replies          int64          `json:"replies_completed"`
	Gaps             int64          `json:"offset_gaps"`
	ErrorEvents      map[string]int `json:"error_events,omitempty"`
	Disconnects      int64          `json:"unexpected_disconnects"`
	ServerCPUPercent *float64       `json:"server_cpu_percent,omitempty"`
	CPUPerFrameUS    *float64       `json:"server_cpu_us_per_frame,omitempty"`
	AllocsPerFrame   *float64       `json:"server_allocs_per_frame,omitempty"`
	AllocsPerToken   *float64       `json:"server_allocs_per_token_generated,omitempty"`
	CPU              cpuShare       `json:"cpu"`
	ServerAtEnd      figures        `json:"server_at_end"`
	CPUProfile       string         `json:"cpu_profile,omitempty"`
}

// device is one connection of the fan-out and what its reader saw.
type device struct {
	c      *wsClient
	user   int
	sender bool

	lag         Histogram
	frames      int64 // delta events (centrifugo: publications)
	wsFrames    int64 // centrifugo: WebSocket frames
	tokens      int64
	gaps        int64
	curMsg      []byte
	nextOffset  int64
	errs        map[string]int
	disconnects int64

	// sender state
	session []byte
	sends   int
	userID  string // centrifugo: whose channel the publisher streams to
}

func runFanout(ctx context.Context, e *env, t *target, o fanoutOptions) fanoutResult {
	r := fanoutResult{
		Target: t.Name, Users: o.Users, Devices: o.Devices, Streams: o.Users * o.Devices,
		TokenDelayMS: float64(o.TokenDelay) / 1e6, TokensPerReply: o.Tokens,
	}
	if o.TokenDelay > 0 {
		r.OfferedFramesSec = float64(r.Streams) / o.TokenDelay.Seconds()
	}
	e.fake.Set(stampedReply(o.Tokens), o.TokenDelay)

	// Connect every device of every user: device i is device i%Devices of
	// user i/Devices, and device 0 of each user sends.
	prefix := fmt.Sprintf("fan-%s-%s-", e.runID, t.Name)
	co := connectOptions{
		N: r.Streams, Parallel: o.Parallel, ReadBuf: 16 << 10,
		User: func(i int) string { return prefix + strconv.Itoa(i/o.Devices) },
	}
	if o.UserID != nil {
		co.User = func(i int) string { return o.UserID(i / o.Devices) }
	}
	if o.URL != nil {
		co.URL = func(i int) string { return o.URL(i/o.Devices, i%o.Devices) }
	}
	conns, errs := connectMany(ctx, t, co)
	devs := make([]*device, 0, r.Streams)
	for i, c := range conns {
		if c != nil {
			devs = append(devs, &device{c: c, user: i / o.Devices, sender: i%o.Devices == 0, errs: map[string]int{},
				userID: prefix + strconv.Itoa(i/o.Devices)})
		}
	}
	var pub0 publisherStats
	if t.proto == protoCentrifugo {
		pub0 = t.publisherStats()
	}
	r.Connected, r.ConnectFailures, r.FirstErrors = len(devs), errs.n, errs.first
	e.logf("%s fanout: %d/%d devices connected", t.Name, r.Connected, r.Streams)
	if ctx.Err() != nil {
		return r
	}

	winStart := time.Now().Add(o.Warmup)
	winEnd := winStart.Add(o.Duration)
	ws, we := winStart.UnixNano(), winEnd.UnixNano()
	var replies atomic.Int64
	var inflight sync.WaitGroup // replies started and not yet finished
	stopSending := make(chan struct{})
	var sendFailures atomic.Int64

	send := func(d *device) {
		d.sends++
		if t.proto == protoCentrifugo {
			// the application's backend, not the server, starts a reply
			inflight.Add(1)
			if err := t.centrifugoSend(d.userID, "go"); err != nil {
				sendFailures.Add(1)
				inflight.Done()
			}
			return
		}
		var b []byte
		if d.session == nil {
			b = fmt.Appendf(nil, `{"type":"send","id":"f%d-%d","text":"go"}`, d.user, d.sends)
		} else {
			b = fmt.Appendf(nil, `{"type":"send","id":"f%d-%d","session_id":%q,"text":"go"}`, d.user, d.sends, d.session)
		}
		inflight.Add(1)
		if d.c.WriteText(b) != nil {
			inflight.Done()
		}
	}
	var readers sync.WaitGroup
	for _, d := range devs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			read := d.read
			if t.proto == protoCentrifugo {
				read = d.readCentrifugo
			}
			read(ws, we, func(ok bool) {
				// the end of a reply (or a refused send), seen by its sender
				if ok {
					replies.Add(1)
				}
				select {
				case <-stopSending:
				default:
					if time.Now().Before(winEnd) {
						send(d)
					}
				}
				inflight.Done()
			})
		}()
	}

	// Start the users' first replies at random times within one reply's
	// length (at most the warm-up), so that in the window replies start and
	// end evenly rather than all at once, and the streams do not tick in
	// lockstep.
	spread := min(time.Duration(o.Tokens)*o.TokenDelay, o.Warmup)
	spread = max(spread, 10*time.Millisecond)
	start := time.Now()
	for _, d := range devs {
		if d.sender {
			at := start.Add(time.Duration(rand.Int64N(int64(spread))))
			time.Sleep(time.Until(at))
			send(d)
		}
	}

	// Measure the server over the window.
	sleepUntil(ctx, winStart)
	meter := startCPU(t.PID)
	s0 := t.Sample()
	if o.ProfilePath != "" {
		// the harness's own CPU profile (clients and fake provider)
		if f, err := os.Create(strings.Replace(o.ProfilePath, "-cpu-", "-cpu-harness-", 1)); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer f.Close()
				time.AfterFunc(o.Duration, pprof.StopCPUProfile)
			}
		}
	}
	var profDone chan error
	if o.ProfilePath != "" && t.PprofURL != "" {
		profDone = make(chan error, 2)
		secs := max(1, int(o.Duration.Seconds()))
		go func() { profDone <- t.cpuProfile(ctx, secs, o.ProfilePath) }()
		go func() {
			// allocations over the window, by call site
			profDone <- fetch(ctx, fmt.Sprintf("%s/allocs?seconds=%d", t.PprofURL, secs), strings.Replace(o.ProfilePath, "-cpu-", "-allocs-", 1))
		}()
	}
	sleepUntil(ctx, winEnd)
	s1 := t.Sample()
	r.CPU = meter.stop()
	if profDone != nil {
		if err := errors.Join(<-profDone, <-profDone); err == nil {
			r.CPUProfile = o.ProfilePath
		} else {
			e.logf("profiles: %v", err)
		}
	}
	close(stopSending)

	// Let replies in flight finish so the server is quiet for what follows.
	waited := make(chan struct{})
	go func() { inflight.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(time.Duration(o.Tokens)*o.TokenDelay + 10*time.Second):
		e.logf("%s fanout: replies still in flight after the window; closing anyway", t.Name)
	case <-ctx.Done():
	}
	r.ServerAtEnd = figuresOf(t.Sample())
	for _, d := range devs {
		d.c.conn.Close()
	}
	readers.Wait()

	// Aggregate.
	var lag Histogram
	var wsFrames int64
	r.ErrorEvents = map[string]int{}
	if n := sendFailures.Load(); n > 0 {
		r.ErrorEvents["send_failed"] = int(n)
	}
	for _, d := range devs {
		lag.Merge(&d.lag)
		r.Frames += d.frames
		wsFrames += d.wsFrames
		r.Tokens += d.tokens
		r.Gaps += d.gaps
		for k, v := range d.errs {
			r.ErrorEvents[k] += v
		}
		r.Disconnects += d.disconnects
	}
	if len(r.ErrorEvents) == 0 {
		r.ErrorEvents = nil
	}
	win := s1.At.Sub(s0.At).Seconds()
	r.WindowSeconds = round(win, 2)
	r.FramesPerSec = round(float64(r.Frames)/o.Duration.Seconds(), 0)
	r.TokensPerSec = round(float64(r.Tokens)/o.Duration.Seconds(), 0)
	if t.proto == protoCentrifugo {
		r.WSFramesPerSec = ptr(round(float64(wsFrames)/o.Duration.Seconds(), 0))
		pub1 := t.publisherStats()
		r.Published, r.PublishFailures = ptr(pub1.Published-pub0.Published), ptr(pub1.Failed-pub0.Failed)
		if pub1.FirstError != "" {
			e.note("centrifugo publisher: first failed publication: %s", pub1.FirstError)
		}
	}
	if r.Frames > 0 {
		r.Coalescing = round(float64(r.Tokens)/float64(r.Frames), 3)
	}
	r.Lag = SummarizeHist(&lag)
	r.Replies = replies.Load()
	if s0.CPU >= 0 && s1.CPU >= 0 && win > 0 {
		cpu := (s1.CPU - s0.CPU).Seconds()
		r.ServerCPUPercent = ptr(round(100*cpu/win, 1))
		if r.Frames > 0 {
			r.CPUPerFrameUS = ptr(round(cpu*1e6/float64(r.Frames), 2))
		}
	}
	if s0.Mallocs >= 0 && s1.Mallocs >= 0 && r.Frames > 0 {
		r.AllocsPerFrame = ptr(round((s1.Mallocs-s0.Mallocs)/float64(r.Frames), 2))
		// each token is generated once per user and delivered to Devices
		r.AllocsPerToken = ptr(round((s1.Mallocs-s0.Mallocs)/(float64(r.Tokens)/float64(o.Devices)), 2))
	}
	return r
}

// read consumes frames until the connection ends. Deltas received inside
// [ws, we) count, and every token they carry gives a lag sample. A sender
// device calls onReply at the final message of each reply, and with false
// when a send of its own is answered by an error instead.
func (d *device) read(ws, we int64, onReply func(ok bool)) {
	d.eachFrame(func(f []byte, now int64) { d.event(f, now, ws, we, onReply) })
}

// readCentrifugo is read for Centrifugo's JSON protocol: each frame holds
// one or more newline-separated messages; a publication's data is an event
// of Chatbox's shape (the publisher's), handled like a Chatbox frame; an
// empty message is the server's ping, answered with an empty message.
func (d *device) readCentrifugo(ws, we int64, onReply func(ok bool)) {
	d.eachFrame(func(f []byte, now int64) {
		if now >= ws && now < we {
			d.wsFrames++
		}
		eachCentrifugoMessage(f, func(msg []byte) {
			if _, data, ok := centrifugoPubData(msg); ok {
				d.event(data, now, ws, we, onReply)
			} else if string(msg) == "{}" {
				d.c.WriteText([]byte("{}"))
			} else if code, ok := centrifugoDisconnect(msg); ok {
				d.errs["centrifugo_disconnect_"+code]++
			}
		})
	})
}

// eachFrame hands every frame to handle with the time it was read, until the
// connection ends (counting a close by the peer as a disconnect).
func (d *device) eachFrame(handle func(f []byte, now int64)) {
	buf := make([]byte, 0, 16<<10)
	for {
		f, err := d.c.ReadMessage(buf)
		if err != nil {
			if err == errClosedByPeer {
				d.disconnects++
			}
			return
		}
		buf = f[:0]
		handle(f, time.Now().UnixNano())
	}
}

// event handles one server event f (Chatbox's JSON shape) received at now.
func (d *device) event(f []byte, now, ws, we int64, onReply func(ok bool)) {
	switch readType(f) {
	case "delta":
		text := jsonField(f, "text")
		off := atoi(jsonField(f, "offset"))
		msg := jsonField(f, "message_id")
		if !bytes.Equal(msg, d.curMsg) {
			d.curMsg = append(d.curMsg[:0], msg...)
			d.nextOffset = 0
		}
		if off != d.nextOffset {
			d.gaps++
		}
		d.nextOffset = off + int64(len(text))
		if now >= ws && now < we {
			d.frames++
			d.tokens += int64(eachStamp(text, func(ns int64) { d.lag.Record(now - ns) }))
		}
	case "ack":
		if d.sender {
			d.session = append(d.session[:0], jsonField(f, "session_id")...)
		}
	case "message":
		if d.sender && bytes.Equal(jsonField(f, "role"), []byte("assistant")) {
			onReply(true)
		}
	case "error":
		d.errs[string(jsonField(f, "code"))]++
		if d.sender && len(jsonField(f, "id")) > 0 {
			time.Sleep(500 * time.Millisecond) // back off: the server refused a send
			onReply(false)
		}
	}
}

func sleepUntil(ctx context.Context, t time.Time) { sleepCtx(ctx, time.Until(t)) }

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
