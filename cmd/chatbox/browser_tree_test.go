package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatbox/chatbox/providers/openai/openaitest"
)

// markdownReply is what the fake model answers, numbered by call: bold,
// inline and fenced code, a table, a link, and two attempts at running
// script (an element with an event handler and a javascript: link).
func markdownReply(n int64) string {
	return fmt.Sprintf("Answer %d with **bold words** and `inline code`.\n\n"+
		"| Plan | Price |\n| --- | --- |\n| Basic | 5 |\n| Pro | 20 |\n\n"+
		"```go\nfmt.Println(\"hello\")\n```\n\n"+
		"See [the docs](https://example.com/docs) or [click me](javascript:window.__xss=2) "+
		"<img src=x onerror=\"window.__xss=3\"> done.", n)
}

// Expressions over the chat page's visible branch.
const (
	visible       = `[...document.querySelectorAll("#log .msg:not([hidden])")]`
	lastAssistant = visible + `.filter(m => m.classList.contains("msg--assistant")).pop()`
	lastUser      = visible + `.filter(m => m.classList.contains("msg--user")).pop()`
	// noScriptRan holds while nothing in the page ran script from a
	// message and nothing live came of its raw HTML.
	noScriptRan = `window.__xss === undefined && document.querySelectorAll("#log img, #log [onerror], #log a[href^='javascript']").length === 0`
)

func versionOf(msg string) string {
	return fmt.Sprintf(`((%s)?.querySelector(".version-count")?.textContent || "")`, msg)
}

func TestBrowserMarkdownVersionsAndPresence(t *testing.T) {
	var calls atomic.Int64
	fake := openaitest.NewServer(openaitest.Config{
		Reply:      func(openaitest.Request) string { return markdownReply(calls.Add(1)) },
		TokenDelay: 25 * time.Millisecond, // a reply streams for about a second
	})
	defer fake.Close()
	e := newBrowserEnv(t, "default_model = \"gpt\"\nmax_retries = 0\n"+openAIModel("gpt", fake.URL))
	alice := signToken(t, "alice", "Ada")
	p := e.open(t, e.users, "/#token="+url.QueryEscape(alice))
	var sid string

	t.Run("a reply is rendered as safe Markdown while it streams", func(t *testing.T) {
		p.t = t
		p.say("Show me **everything**")
		p.wait("bold text while the reply streams", `!!document.querySelector("#log .msg--assistant.msg--streaming .msg-text strong")`)
		p.wait("the reply to complete", lastReplyDone)
		sid = p.sessionID()
		checks := map[string]string{
			"the user's own Markdown":     `document.querySelector("#log .msg--user .msg-text strong")?.textContent === "everything"`,
			"bold":                        lastAssistant + `.querySelector("strong")?.textContent === "bold words"`,
			"inline code":                 lastAssistant + `.querySelector("p code")?.textContent === "inline code"`,
			"a table":                     lastAssistant + `.querySelectorAll("table tbody tr").length === 2 && ` + lastAssistant + `.querySelector("table th")?.textContent === "Plan"`,
			"highlighted code":            lastAssistant + `.querySelector("pre code.hljs")?.textContent.includes('fmt.Println("hello")')`,
			"a link to a new tab":         lastAssistant + `.querySelector("a[href='https://example.com/docs']")?.target === "_blank"`,
			"rel noopener noreferrer":     lastAssistant + `.querySelector("a[href='https://example.com/docs']")?.rel === "noopener noreferrer"`,
			"raw HTML shown as text":      lastAssistant + `.querySelector(".msg-text").textContent.includes('<img src=x onerror="window.__xss=3">')`,
			"the javascript: link inert":  lastAssistant + `.querySelector(".msg-text").textContent.includes("[click me](javascript:window.__xss=2)")`,
			"no script ran, nothing live": noScriptRan,
		}
		for what, expr := range checks {
			if !evalIn[bool](p, expr) {
				t.Errorf("%s: %s is false", what, expr)
			}
		}
		// Clicking every link that is there still runs nothing.
		p.do(chromedp.Evaluate[chromedp.Void](`document.querySelectorAll("#log a").forEach(a => a.addEventListener("click", ev => ev.preventDefault()))`))
		if !evalIn[bool](p, noScriptRan) {
			t.Error("script ran")
		}
	})

	t.Run("Copy puts a code block's code on the clipboard", func(t *testing.T) {
		p.t = t
		// The page is plain http, where browsers offer no clipboard API:
		// the page copies through a copy command, whose event carries what
		// goes on the clipboard. The listener reads it after the page's.
		p.do(chromedp.Evaluate[chromedp.Void](`window.addEventListener("copy", (e) => { window.__copied = e.clipboardData.getData("text/plain"); })`))
		p.do(chromedp.Click(chromedp.CSS(`#log .msg--assistant:not([hidden]) .code-block button[aria-label="Copy"]`)))
		p.wait("the code on the clipboard", `window.__copied === 'fmt.Println("hello")\n'`)
	})

	t.Run("Regenerate adds a version and the switcher moves between them", func(t *testing.T) {
		p.t = t
		if evalIn[string](p, versionOf(lastAssistant)) != "" {
			t.Fatal("a reply with no other version shows a switcher")
		}
		p.do(chromedp.Click(chromedp.CSS(`#log .msg--assistant:not([hidden]) .msg-actions button:not([aria-label])`)))
		p.wait("the new version", versionOf(lastAssistant)+` === "2 / 2" && `+lastAssistant+`.dataset.status === "complete" && `+lastAssistant+`.textContent.includes("Answer 2")`)
		p.do(chromedp.Click(chromedp.CSS(`#log .msg--assistant:not([hidden]) button[aria-label="Previous version"]`)))
		p.wait("the first version", versionOf(lastAssistant)+` === "1 / 2" && `+lastAssistant+`.textContent.includes("Answer 1")`)
		p.do(chromedp.Click(chromedp.CSS(`#log .msg--assistant:not([hidden]) button[aria-label="Next version"]`)))
		p.wait("the second version again", versionOf(lastAssistant)+` === "2 / 2" && `+lastAssistant+`.textContent.includes("Answer 2")`)
		p.screenshot("markdown.png")
		if got := evalIn[string](p, `[...document.querySelectorAll("#log .msg--assistant .msg-actions button")].filter(b => b.textContent === "Regenerate").length + ""`); got == "0" {
			t.Error("no button named Regenerate")
		}
	})

	t.Run("Edit makes a new version of a question with its own branch below it", func(t *testing.T) {
		p.t = t
		p.do(chromedp.Click(chromedp.CSS(`#log .msg--user:not([hidden]) .msg-actions button`)))
		p.wait("the inline editor", `!!document.querySelector("#log .msg-edit")`)
		p.do(chromedp.SetValue(chromedp.CSS("#log .msg-edit"), "Show me _less_"),
			chromedp.Click(chromedp.CSS(`#log .msg-editor button.primary`)))
		p.wait("the edited question and its reply", versionOf(lastUser)+` === "2 / 2" && `+lastUser+`.querySelector("em")?.textContent === "less" && `+
			lastAssistant+`?.dataset.status === "complete" && `+lastAssistant+`.textContent.includes("Answer 3")`)
		if evalIn[int](p, visible+`.length`) != 2 {
			t.Errorf("the edited branch shows %d messages, want its question and reply", evalIn[int](p, visible+`.length`))
		}
		// Back to the first question: its branch, with its two replies, shows below it.
		p.do(chromedp.Click(chromedp.CSS(`#log .msg--user:not([hidden]) button[aria-label="Previous version"]`)))
		p.wait("the first branch", versionOf(lastUser)+` === "1 / 2" && `+versionOf(lastAssistant)+` === "2 / 2" && `+lastAssistant+`.textContent.includes("Answer 2")`)

		// A message sent now continues the branch on screen.
		p.say("And then?")
		p.wait("the reply on that branch", lastReplyDone+` && `+lastAssistant+`.textContent.includes("Answer 4")`)
		stored := e.storedMessages(t, alice, sid)
		var answer2, next string
		for _, m := range stored {
			if strings.HasPrefix(m.str("text"), "Answer 2 ") {
				answer2 = m.str("id")
			}
			if m.str("text") == "And then?" {
				next = m.str("parent_id")
			}
		}
		if answer2 == "" || next != answer2 {
			t.Errorf("the new message follows %q, want the reply on screen, %q", next, answer2)
		}
	})

	t.Run("typing and thinking are shown to the other tab", func(t *testing.T) {
		p.t = t
		other := e.open(t, e.users, "/#token="+url.QueryEscape(alice))
		item := fmt.Sprintf(`.session-item[data-id=%s]`, jsString(sid))
		other.wait("the session in the list", fmt.Sprintf(`!!document.querySelector('%s')`, item))
		other.do(chromedp.Click(chromedp.CSS(item)))
		other.wait("the same conversation", `document.querySelectorAll("#log .msg:not([hidden])").length > 0`)
		other.wait("the socket", `!document.getElementById("send").disabled`)
		p.do(chromedp.SendKeys(chromedp.ID("text"), "typing a question"))
		other.wait("Ada is typing", `document.querySelector("[data-typing]:not([hidden])")?.textContent === "Ada is typing…"`)
		p.do(pressEnter())
		other.wait("GPT is thinking", `document.querySelector("[data-typing]:not([hidden])")?.textContent === "GPT is thinking…"`)
		other.wait("the indicator gone with the reply", lastReplyDone+` && document.querySelector("[data-typing]").hidden`)
	})

	t.Run("the dashboard and the share page render the same tree, read-only", func(t *testing.T) {
		p.t = t
		dash := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(signAdmin(t, "grace", "Grace")))
		row := fmt.Sprintf(`#rows tr[data-id=%s]`, jsString(sid))
		dash.wait("the session in the table", fmt.Sprintf(`!!document.querySelector('%s')`, row))
		dash.do(chromedp.Click(chromedp.CSS(row)))
		dash.wait("Markdown and versions", `!!document.querySelector("#d-log .msg:not([hidden]) .msg-text table") && !!document.querySelector('#d-log button[aria-label="Previous version"]')`)
		if evalIn[bool](dash, `[...document.querySelectorAll("#d-log button")].some(b => b.textContent === "Edit" || b.textContent === "Regenerate")`) {
			t.Error("the dashboard offers Edit or Regenerate")
		}
		if !evalIn[bool](dash, strings.ReplaceAll(noScriptRan, "#log", "#d-log")) {
			t.Error("the dashboard ran script from a message")
		}

		p.do(chromedp.Click(chromedp.ID("share")))
		p.wait("the link", `document.getElementById("share-url").value.includes("/share/#")`)
		link := evalIn[string](p, `document.getElementById("share-url").value`)
		viewer := e.open(t, e.admins, strings.TrimPrefix(link, e.origin))
		viewer.wait("Markdown in the shared view", `!!document.querySelector("#log .msg:not([hidden]) .msg-text strong") && !!document.querySelector("#log pre code.hljs")`)
		if !evalIn[bool](viewer, noScriptRan) {
			t.Error("the shared view ran script from a message")
		}
		p.do(chromedp.Click(chromedp.ID("revoke")))
		p.wait("the share panel to close", `document.getElementById("share-panel").hidden`)
	})

	t.Run("rename and delete a conversation", func(t *testing.T) {
		p.t = t
		p.do(chromedp.Click(chromedp.ID("rename")))
		p.wait("the title editor", `!document.getElementById("rename-form").hidden`)
		p.do(chromedp.SetValue(chromedp.ID("rename-input"), "Pricing table"), chromedp.Click(chromedp.CSS(`#rename-form button[type=submit]`)))
		item := fmt.Sprintf(`.session-item[data-id=%s]`, jsString(sid))
		p.wait("the new title", fmt.Sprintf(`document.querySelector('%s .session-title')?.textContent === "Pricing table" && document.getElementById("title").textContent === "Pricing table"`, item))

		p.do(chromedp.Click(chromedp.ID("delete")))
		p.wait("the confirmation", `!document.getElementById("delete-panel").hidden`)
		p.do(chromedp.Click(chromedp.ID("delete-confirm")))
		p.wait("the conversation gone", fmt.Sprintf(`!document.querySelector('%s') && document.querySelectorAll("#log .msg").length === 0`, item))
		if code := e.s.getJSON(t, alice, "/api/sessions/"+sid+"/messages", nil); code != http.StatusNotFound {
			t.Errorf("the deleted conversation's messages answer %d, want 404", code)
		}
	})
}
