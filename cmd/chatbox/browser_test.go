package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The browser tests drive the real pages in headless Chromium against the
// real program. They are skipped where no Chromium is installed, unless
// CHATBOX_BROWSER_TESTS=1 (CI) makes that a failure.

// browserHost is the name the pages are loaded from. Chromium's host
// resolver maps it to the test server's loopback port, so the pages get a
// fixed Origin that the server's allowlist can name before the port is known.
const browserHost = "chatbox.test"

// browserPrefix mounts the server under a path, proving every request the
// pages make is relative to where they are served.
const browserPrefix = "/chatbox"

// browserDemoDelay paces the demo model so a reply streams for about two
// seconds: long enough to watch it, reload during it, and stop it.
const browserDemoDelay = "80ms"

// chromiumPath finds the browser or skips (fails under CHATBOX_BROWSER_TESTS=1).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHATBOX_CHROMIUM"), "/usr/bin/chromium"} {
		if fi, err := os.Stat(p); p != "" && err == nil && !fi.IsDir() {
			return p
		}
	}
	const msg = "chromium not found: install Debian's chromium package (apt-get install chromium) to run the browser tests"
	if os.Getenv("CHATBOX_BROWSER_TESTS") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browserEnv is one server and two browsers: users share one profile (tabs
// of it are a user's devices), the admin has a profile of their own.
type browserEnv struct {
	s      *testServer
	origin string // http://chatbox.test/chatbox
	users  context.Context
	admins context.Context
}

// newBrowserEnv starts the server, with extra appended to its [llm]
// section, and the browsers.
func newBrowserEnv(t *testing.T, extra ...string) *browserEnv {
	t.Helper()
	chromium := chromiumPath(t)
	t.Setenv("CHATBOX_SERVER_PATH_PREFIX", browserPrefix)
	t.Setenv("CHATBOX_SERVER_ALLOWED_ORIGINS", "http://"+browserHost)
	s := startServer(t, t.TempDir(), fmt.Sprintf("demo_delay = %q\n", browserDemoDelay)+strings.Join(extra, ""))
	u, err := url.Parse(s.base)
	if err != nil {
		t.Fatal(err)
	}
	return &browserEnv{
		s:      s,
		origin: "http://" + browserHost + browserPrefix,
		users:  newBrowser(t, chromium, u.Host),
		admins: newBrowser(t, chromium, u.Host),
	}
}

// newBrowser starts a headless Chromium with a fresh profile that reaches
// nothing but the test server.
func newBrowser(t *testing.T, chromium, serverHost string) context.Context {
	t.Helper()
	profile := t.TempDir() // created first so it is removed after the browser exits
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests may run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", fmt.Sprintf("MAP %s %s", browserHost, serverHost)),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser and binds it to the context it
	// gets, so it must get ctx itself, not one with a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one page in a browser.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// open loads path (under the prefix) in a new tab of browser, closed when
// t ends. An uncaught exception or a Content-Security-Policy violation in
// the tab fails t.
func (e *browserEnv) open(t *testing.T, browser context.Context, path string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	var problems chan []string
	t.Cleanup(func() {
		cancel()
		if problems != nil {
			for _, p := range <-problems {
				t.Errorf("page %s: %s", strings.SplitN(path, "#", 2)[0], p)
			}
		}
	})
	p := &tab{t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // opens the tab, bound to ctx
		t.Fatalf("open a tab: %v", err)
	}
	console := chromedp.Console(ctx)
	problems = make(chan []string, 1)
	go func() {
		var found []string
		for m, err := range console {
			if err != nil {
				break
			}
			if m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") {
				found = append(found, m.Text)
			}
		}
		problems <- found
	}()
	p.do(chromedp.EmulateViewport(1366, 768), chromedp.Navigate(e.origin+path))
	return p
}

func (p *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v (status line: %q)", err, p.status())
	}
}

// wait polls the JavaScript expression until it is truthy.
func (p *tab) wait(what, expr string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor+time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(waitFor))); err != nil {
		p.t.Fatalf("waiting for %s: %v (status line: %q)", what, err, p.status())
	}
}

func evalIn[T any](p *tab, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (p *tab) status() string {
	ctx, cancel := context.WithTimeout(p.ctx, time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("status") || {}).textContent || ""`))
	return s
}

// say types text into the composer and presses Enter.
func (p *tab) say(text string) {
	p.t.Helper()
	p.wait("the composer to be ready", `!document.getElementById("send").disabled`)
	p.do(chromedp.SendKeys(chromedp.ID("text"), text), pressEnter())
}

// pressEnter presses Enter in the focused element as a keyboard does. It
// sends no separate character event, as SendKeys would: a browser types no
// newline when the page's keydown handler cancels the key.
func pressEnter() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{kb.KeyRawDown, kb.KeyUp} {
			if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

// sessionID is the session the chat page has open.
func (p *tab) sessionID() string {
	p.t.Helper()
	p.wait("a session to be open", `!!sessionStorage.getItem("chatbox.session")`)
	return evalIn[string](p, `sessionStorage.getItem("chatbox.session")`)
}

// screenshot writes the viewport to docs/screenshots/name when
// CHATBOX_SCREENSHOTS=1, so ordinary runs never rewrite the files.
func (p *tab) screenshot(name string) {
	p.t.Helper()
	if os.Getenv("CHATBOX_SCREENSHOTS") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Expressions over the chat page.
const (
	replyStreaming = `!!document.querySelector("#log .msg--assistant.msg--streaming .msg-text")?.textContent`
	lastReplyDone  = `(() => { const m = [...document.querySelectorAll("#log .msg")].pop();
		return !!m && m.classList.contains("msg--assistant") && m.dataset.status === "complete"; })()`
	logTexts = `[...document.querySelectorAll("#log .msg")].map(m =>
		m.querySelector(".msg-author").textContent + ": " + m.querySelector(".msg-text").textContent)`
)

// bannerSays is true while the chat page's banner shows text.
func bannerSays(text string) string {
	return fmt.Sprintf(`!document.getElementById("banner").hidden && document.getElementById("banner").textContent === %s`, jsString(text))
}

// storedMessages are a session's messages as the HTTP API has them.
func (e *browserEnv) storedMessages(t *testing.T, tok, sessionID string) []event {
	t.Helper()
	var out struct{ Messages []event }
	if code := e.s.getJSON(t, tok, "/api/sessions/"+sessionID+"/messages", &out); code != http.StatusOK {
		t.Fatalf("GET messages: %d", code)
	}
	return out.Messages
}

func TestBrowser(t *testing.T) {
	e := newBrowserEnv(t)
	admin := signAdmin(t, "ada", "Ada")

	// Alice's first tab serves the first two subtests.
	alice := signToken(t, "alice", "Alice")
	aliceTab := e.open(t, e.users, "/#token="+url.QueryEscape(alice))
	var aliceSession string

	t.Run("a user signs in by dev link and sees a reply stream", func(t *testing.T) {
		p := aliceTab
		p.t = t
		p.wait("the hello", `document.getElementById("me").textContent === "Alice"`)
		if href := evalIn[string](p, `location.href`); strings.Contains(href, "token") {
			t.Errorf("the token stays in the address bar: %s", href)
		}
		if !evalIn[bool](p, `sessionStorage.getItem("chatbox.token") !== null && localStorage.length === 0 && document.cookie === ""`) {
			t.Error("the token must be in sessionStorage only: not localStorage, not cookies")
		}

		p.say("Hello there, how are you today?")
		p.wait("the reply to stream with Stop enabled", replyStreaming+` && !document.getElementById("stop").disabled`)
		p.wait("the reply to complete", lastReplyDone)
		p.wait("Stop to be disabled again", `document.getElementById("stop").disabled`)

		aliceSession = p.sessionID()
		stored := e.storedMessages(t, alice, aliceSession)
		got := evalIn[[]string](p, logTexts)
		want := []string{"Alice: Hello there, how are you today?", "Demo (offline): " + stored[len(stored)-1].str("text")}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("the page shows\n%q\nwant\n%q", got, want)
		}
		p.wait("the session listed by title", fmt.Sprintf(`document.querySelector('.session-item[data-id=%s] .session-title')?.textContent === "Hello there, how are you today?"`, jsString(aliceSession)))
	})

	t.Run("a pasted token signs in and a bad one is refused", func(t *testing.T) {
		p := e.open(t, e.users, "/")
		p.wait("the sign-in form", `!document.getElementById("signin-view").hidden`)
		p.do(chromedp.SendKeys(chromedp.ID("token"), "not-a-token"), chromedp.Click(chromedp.CSS("#signin button")))
		p.wait("the refusal", `!document.getElementById("signin-view").hidden && document.getElementById("signin-error").textContent.includes("not accepted")`)
		if evalIn[bool](p, `sessionStorage.getItem("chatbox.token") !== null`) {
			t.Error("a refused token stays in sessionStorage")
		}
		p.do(chromedp.SendKeys(chromedp.ID("token"), signToken(t, "gina", "Gina")), chromedp.Click(chromedp.CSS("#signin button")))
		p.wait("the hello", `document.getElementById("me").textContent === "Gina" && document.getElementById("signin-view").hidden`)

		admin := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(signToken(t, "gina", "Gina")))
		admin.wait("the dashboard to refuse a user token", `!document.getElementById("signin-view").hidden && document.getElementById("signin-error").textContent.includes("admin")`)
	})

	t.Run("Stop keeps the partial reply as stopped", func(t *testing.T) {
		p := e.open(t, e.users, "/#token="+url.QueryEscape(signToken(t, "hana", "Hana")))
		p.say("Please write a long answer.")
		p.wait("the reply to stream", replyStreaming)
		p.do(chromedp.Click(chromedp.ID("stop")))
		p.wait("the stopped reply", `(() => { const m = [...document.querySelectorAll("#log .msg")].pop();
			return m.dataset.status === "stopped" && m.querySelector(".msg-status").textContent === "stopped"; })()`)
		sid := p.sessionID()
		stored := e.storedMessages(t, signToken(t, "hana", "Hana"), sid)
		shown := evalIn[string](p, `[...document.querySelectorAll("#log .msg-text")].pop().textContent`)
		// Rendered as Markdown, the text loses the space it was cut after.
		if last := stored[len(stored)-1]; last.str("status") != "stopped" || strings.TrimSpace(last.str("text")) != shown {
			t.Errorf("stored %q (%s), page shows %q", last.str("text"), last.str("status"), shown)
		}
	})

	t.Run("a second tab of the same user follows live", func(t *testing.T) {
		if aliceSession == "" {
			t.Skip("needs the first subtest's conversation")
		}
		aliceTab.t = t
		second := e.open(t, e.users, "/#token="+url.QueryEscape(alice))
		item := fmt.Sprintf(`.session-item[data-id=%s]`, jsString(aliceSession))
		second.wait("the session in the list", fmt.Sprintf(`!!document.querySelector('%s')`, item))
		second.do(chromedp.Click(chromedp.CSS(item)))
		second.wait("the history", `document.querySelectorAll("#log .msg").length === 2`)

		aliceTab.say("And what can you do?")
		second.wait("the other tab's message", `[...document.querySelectorAll("#log .msg--user .msg-text")].some(m => m.textContent === "And what can you do?")`)
		second.wait("the reply streaming live", replyStreaming)
		second.wait("the reply to complete", lastReplyDone)
		aliceTab.wait("the reply to complete in the first tab", lastReplyDone)
		first, other := evalIn[[]string](aliceTab, logTexts), evalIn[[]string](second, logTexts)
		if len(first) != 4 || strings.Join(first, "\n") != strings.Join(other, "\n") {
			t.Errorf("tabs differ:\nfirst:  %q\nsecond: %q", first, other)
		}
	})

	t.Run("an admin takes over, replies and releases", func(t *testing.T) {
		bob := signToken(t, "bob", "Bob")
		if os.Getenv("CHATBOX_SCREENSHOTS") == "1" {
			// Earlier conversations, so the screenshot's sidebar is not empty.
			c := e.s.dial(t, bob, false)
			for i, text := range []string{"Which plan includes priority support?", "How do I export my invoices?"} {
				c.send(map[string]any{"type": "send", "id": fmt.Sprintf("old%d", i), "text": text})
				c.next(isFinal)
			}
		}
		user := e.open(t, e.users, "/#token="+url.QueryEscape(bob))
		user.say("My order #1234 has not arrived yet. Can someone check where it is?")
		user.wait("the bot's reply", lastReplyDone)
		sid := user.sessionID()

		dash := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(admin))
		dash.wait("the admin's hello", `document.getElementById("me").textContent === "Ada"`)
		row := fmt.Sprintf(`#rows tr[data-id=%s]`, jsString(sid))
		dash.wait("the session in the table", fmt.Sprintf(`!!document.querySelector('%s')`, row))
		dash.do(chromedp.Click(chromedp.CSS(row)))
		dash.wait("the conversation", `document.querySelectorAll("#d-log .msg").length === 2`)
		dash.wait("Take over to be enabled", `!document.getElementById("takeover").disabled`)
		dash.do(chromedp.Click(chromedp.ID("takeover")))

		user.wait("the takeover banner with the admin's name", bannerSays("Ada has joined the conversation"))
		dash.wait("the reply box to open", `!document.getElementById("reply-text").disabled`)
		const answer = "Hi Bob, I'm Ada from support. Your order left our warehouse yesterday; I'll send you the tracking link."
		dash.do(chromedp.SendKeys(chromedp.ID("reply-text"), answer), pressEnter())
		user.wait("the admin's message under her name", fmt.Sprintf(`[...document.querySelectorAll("#log .msg--admin")].some(m =>
			m.querySelector(".msg-author").textContent === "Ada" && m.querySelector(".msg-text").textContent === %s)`, jsString(answer)))
		dash.wait("the admin's message in the dashboard", fmt.Sprintf(`[...document.querySelectorAll("#d-log .msg--admin .msg-text")].some(m => m.textContent === %s)`, jsString(answer)))
		user.wait("the bot to stay silent", `[...document.querySelectorAll("#log .msg")].pop().classList.contains("msg--admin")`)
		user.wait("no Regenerate while a person answers", `![...document.querySelectorAll("#log button")].some(b => b.textContent === "Regenerate")`)

		user.screenshot("chat.png")
		dash.screenshot("admin.png")

		// A second admin cannot take the session from Ada.
		other := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(signAdmin(t, "grace", "Grace")))
		other.wait("the session in the table", fmt.Sprintf(`!!document.querySelector('%s')`, row))
		other.do(chromedp.Click(chromedp.CSS(row)))
		other.wait("the holder shown", `document.getElementById("d-state").textContent === "Ada is answering this conversation."`)
		other.do(chromedp.Click(chromedp.ID("takeover")))
		other.wait("the busy answer", `document.getElementById("d-state").textContent === "Another admin is already handling this conversation."`)
		if !evalIn[bool](other, `document.getElementById("reply-text").disabled`) {
			t.Error("the second admin may reply in a session Ada holds")
		}

		dash.do(chromedp.Click(chromedp.ID("release")))
		user.wait("the release banner", bannerSays("the assistant is back"))
		user.wait("Regenerate back with the bot", `[...document.querySelectorAll("#log button")].some(b => b.textContent === "Regenerate")`)
		dash.wait("Take over to be enabled again", `!document.getElementById("takeover").disabled && document.getElementById("reply-text").disabled`)
	})

	t.Run("user text is shown as text, never as markup", func(t *testing.T) {
		const payload = `<img src=x onerror="window.__xss=1">`
		carol := signToken(t, "carol", "Carol")
		user := e.open(t, e.users, "/#token="+url.QueryEscape(carol))
		user.say(payload)
		user.wait("the message", fmt.Sprintf(`[...document.querySelectorAll("#log .msg--user .msg-text")].some(m => m.innerText === %s)`, jsString(payload)))
		user.wait("the title in the list", fmt.Sprintf(`[...document.querySelectorAll(".session-title")].some(m => m.textContent === %s)`, jsString(payload)))
		shown, err := chromedp.Run(user.ctx, chromedp.Text(chromedp.CSS("#log .msg--user .msg-text")))
		if err != nil || shown != payload {
			t.Errorf("visible text %q (%v), want the payload literally", shown, err)
		}
		if !evalIn[bool](user, `window.__xss === undefined && document.querySelectorAll("img").length === 0`) {
			t.Error("the chat page turned the message into an element")
		}

		dash := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(admin))
		sid := user.sessionID()
		row := fmt.Sprintf(`#rows tr[data-id=%s]`, jsString(sid))
		dash.wait("the session in the table", fmt.Sprintf(`document.querySelector('%s .row-title')?.textContent === %s`, row, jsString(payload)))
		dash.do(chromedp.Click(chromedp.CSS(row)))
		dash.wait("the conversation", fmt.Sprintf(`[...document.querySelectorAll("#d-log .msg--user .msg-text")].some(m => m.textContent === %s)`, jsString(payload)))
		if !evalIn[bool](dash, `window.__xss === undefined && document.querySelectorAll("img").length === 0`) {
			t.Error("the dashboard turned the message into an element")
		}
	})

	t.Run("a help request reaches the dashboard live", func(t *testing.T) {
		dave := signToken(t, "dave", "Dave")
		user := e.open(t, e.users, "/#token="+url.QueryEscape(dave))
		user.say("I was charged twice this month.")
		user.wait("the bot's reply", lastReplyDone)
		sid := user.sessionID()

		dash := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(admin))
		row := fmt.Sprintf(`#rows tr[data-id=%s]`, jsString(sid))
		dash.wait("the session, not yet flagged", fmt.Sprintf(`!!document.querySelector('%s:not(.row--help)')`, row))
		dash.wait("the dashboard's socket", `document.getElementById("conn").textContent === "Live"`)

		user.wait("Help to be enabled", `!document.getElementById("help").disabled`)
		user.do(chromedp.Click(chromedp.ID("help")))
		user.wait("the help banner", bannerSays("a human has been asked to join"))
		// The notice card comes only from the live help event, not from
		// the table's periodic refresh.
		dash.wait("the live notice", `[...document.querySelectorAll("#notices .notice-card")].some(n => n.textContent.includes("dave"))`)
		dash.wait("the row highlighted", fmt.Sprintf(`!!document.querySelector('%s.row--help')`, row))

		// Keyboard: focus the row and press Enter to open it.
		dash.do(chromedp.Focus(chromedp.CSS(row)), pressEnter())
		dash.wait("the opened conversation", `document.getElementById("d-title").textContent === "I was charged twice this month."`)
	})

	t.Run("a reload during a reply loses nothing", func(t *testing.T) {
		erin := signToken(t, "erin", "Erin")
		user := e.open(t, e.users, "/#token="+url.QueryEscape(erin))
		user.say("Tell me about your plans.")
		user.wait("the reply to start streaming", replyStreaming)
		sid := user.sessionID()
		user.do(chromedp.Reload())
		user.wait("the session to reopen", fmt.Sprintf(`sessionStorage.getItem("chatbox.session") === %s && document.querySelectorAll("#log .msg--user").length === 1`, jsString(sid)))
		user.wait("the reply to complete", lastReplyDone)

		stored := e.storedMessages(t, erin, sid)
		if len(stored) != 2 {
			t.Fatalf("stored %d messages, want 2", len(stored))
		}
		got := evalIn[[]string](user, logTexts)
		want := []string{"Erin: Tell me about your plans.", "Demo (offline): " + stored[1].str("text")}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("after the reload the page shows\n%q\nwant the stored\n%q", got, want)
		}
	})

	t.Run("a share link opens read-only until revoked", func(t *testing.T) {
		frank := signToken(t, "frank", "Frank")
		user := e.open(t, e.users, "/#token="+url.QueryEscape(frank))
		user.say("Please share this.")
		user.wait("the reply", lastReplyDone)
		user.do(chromedp.Click(chromedp.ID("share")))
		user.wait("the link", `document.getElementById("share-url").value.includes("/share/#")`)
		link := evalIn[string](user, `document.getElementById("share-url").value`)

		viewer := e.open(t, e.admins, strings.TrimPrefix(link, e.origin))
		viewer.wait("the shared conversation", `[...document.querySelectorAll("#log .msg--user .msg-text")].some(m => m.textContent === "Please share this.") && document.querySelectorAll("#log .msg").length === 2`)
		if evalIn[bool](viewer, `!!document.querySelector("textarea, #composer")`) {
			t.Error("the shared view offers a composer")
		}

		user.do(chromedp.Click(chromedp.ID("revoke")))
		user.wait("the panel to close", `document.getElementById("share-panel").hidden`)
		viewer.do(chromedp.Reload())
		viewer.wait("the revoked notice", `document.getElementById("status").textContent === "this link was revoked"`)
	})

	t.Run("an ended conversation shows a notice and a disabled composer", func(t *testing.T) {
		tok := signToken(t, "ines", "Ines")
		p := e.open(t, e.users, "/#token="+url.QueryEscape(tok))
		p.say("Tell me something long, please.")
		p.wait("the reply to stream", replyStreaming)
		evalIn[bool](p, `(window.confirm = () => true, true)`)
		p.do(chromedp.Click(chromedp.ID("end")))
		const ended = "This conversation has ended. It stays readable; start a new chat to go on."
		readOnly := bannerSays(ended) + ` && document.getElementById("text").disabled && document.getElementById("send").disabled && document.getElementById("end").disabled`
		p.wait("the ended notice and a disabled composer", readOnly)
		p.wait("the reply stopped, not streaming", `[...document.querySelectorAll("#log .msg")].pop().dataset.status === "stopped"`)
		sid := p.sessionID()
		if last := e.storedMessages(t, tok, sid); last[len(last)-1].str("status") != "stopped" {
			t.Errorf("stored reply %v, want stopped", last[len(last)-1])
		}
		p.screenshot("chat-ended.png")
		p.do(chromedp.Reload())
		p.wait("the notice again after a reload", readOnly)
	})
}
