package main

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserHelpDesk walks the help desk as people use it: a user asks for
// a person, the request appears in the dashboard's queue live and is taken
// over from there; the admin writes an internal note the user's page never
// shows, sees a second admin watching (who is warned that Ada answers),
// inserts a canned reply from the picker, releases, and the user rates the
// conversation.
func TestBrowserHelpDesk(t *testing.T) {
	e := newBrowserEnv(t, `
[[desk.replies]]
id = "hi"
title = "Greeting"
text = "Hello, I'm a person on the support team."

[[desk.replies]]
id = "refund"
title = "Refund policy"
text = "Refunds are possible within 30 days."
`)
	userTok := signToken(t, "una", "Una")
	adaTok := signAdmin(t, "ada", "Ada")

	dash := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(adaTok))
	dash.wait("the admin's hello", `document.getElementById("me").textContent === "Ada"`)
	dash.wait("an empty queue", `!document.getElementById("queue-empty").hidden && document.title === "Chatbox admin"`)

	user := e.open(t, e.users, "/#token="+url.QueryEscape(userTok))
	user.say("I was charged twice for my order.")
	user.wait("the bot's reply", lastReplyDone)
	sid := user.sessionID()
	user.wait("Help to be enabled", `!document.getElementById("help").disabled`)
	user.do(chromedp.Click(chromedp.ID("help")))

	item := fmt.Sprintf(`#queue-list li[data-id=%s]`, jsString(sid))
	t.Run("the queue shows the request live with a title badge and takes it over", func(t *testing.T) {
		dash.wait("the request in the queue", fmt.Sprintf(`(() => { const li = document.querySelector('%s');
			return !!li && li.textContent.includes("I was charged twice") && li.textContent.includes("waiting"); })()`, item))
		dash.wait("the title badge", `document.title === "(1) Chatbox admin" && document.getElementById("queue-count").textContent === "1"`)
		dash.do(chromedp.Click(chromedp.CSS(item + ` button[aria-label^="Take over"]`)))
		user.wait("the takeover banner", bannerSays("Ada has joined the conversation"))
		dash.wait("the reply box to open", `!document.getElementById("reply-text").disabled`)
		dash.wait("the queue to empty", `!document.querySelector('`+item+`') && document.title === "Chatbox admin"`)
	})

	const note = "Checked the payment log: duplicate charge confirmed."
	t.Run("an internal note shows to admins in its own style and never on the user's page", func(t *testing.T) {
		dash.do(chromedp.Click(chromedp.ID("reply-note")))
		dash.wait("the composer in note mode", `document.getElementById("reply-send").textContent === "Add note"`)
		dash.do(chromedp.SendKeys(chromedp.ID("reply-text"), note), pressEnter())
		dash.wait("the note in the dashboard", fmt.Sprintf(`[...document.querySelectorAll("#d-log .msg--note")].some(m =>
			m.querySelector(".msg-text").textContent === %s && m.querySelector(".msg-author").textContent === "Internal note · Ada")`, jsString(note)))
		style := evalIn[string](dash, `(() => {
			const n = getComputedStyle(document.querySelector("#d-log .msg--note .msg-text"));
			const u = getComputedStyle(document.querySelector("#d-log .msg--user .msg-text"));
			return n.backgroundColor !== u.backgroundColor && n.borderStyle.includes("dashed") ? "distinct" : n.backgroundColor + " " + n.borderStyle; })()`)
		if style != "distinct" {
			t.Errorf("the note is not styled apart from messages: %s", style)
		}
		// A reply after the note reaches the user, and while Ada types it
		// the user sees so; the note before it never reaches the user.
		dash.do(chromedp.Click(chromedp.ID("reply-note")))
		const answer = "I see the double charge and am refunding it now."
		dash.do(chromedp.SendKeys(chromedp.ID("reply-text"), answer))
		user.wait("Ada typing", `(() => { const t = document.querySelector("#typing[data-typing]");
			return !!t && !t.hidden && t.textContent === "Ada is typing…"; })()`)
		dash.do(pressEnter())
		user.wait("the admin's reply", fmt.Sprintf(`[...document.querySelectorAll("#log .msg--admin .msg-text")].some(m => m.textContent === %s)`, jsString(answer)))
		if got := evalIn[bool](user, fmt.Sprintf(`document.body.textContent.includes(%s) || !!document.querySelector("#log .msg--note")`, jsString(note))); got {
			t.Error("the user's page shows the note")
		}
		user.do(chromedp.Reload())
		user.wait("the history after a reload", fmt.Sprintf(`[...document.querySelectorAll("#log .msg--admin .msg-text")].some(m => m.textContent === %s)`, jsString(answer)))
		if got := evalIn[bool](user, fmt.Sprintf(`document.body.textContent.includes(%s)`, jsString(note))); got {
			t.Error("the user's page shows the note after a reload")
		}
	})

	t.Run("a second admin is warned that Ada answers, and Ada sees who else watches", func(t *testing.T) {
		bea := e.open(t, e.admins, "/admin/#token="+url.QueryEscape(signAdmin(t, "bea", "Bea")))
		row := fmt.Sprintf(`#rows tr[data-id=%s]`, jsString(sid))
		bea.wait("the session in the table", fmt.Sprintf(`!!document.querySelector('%s')`, row))
		bea.do(chromedp.Click(chromedp.CSS(row)))
		bea.wait("the warning", `(() => { const w = document.getElementById("d-warning");
			return !w.hidden && w.getAttribute("role") === "alert" && w.textContent === "Ada is already answering this conversation."; })()`)
		dash.wait("Ada to see Bea watching", `document.getElementById("d-watchers").textContent === "Also watching: Bea"`)
		bea.wait("Bea to see Ada watching", `document.getElementById("d-watchers").textContent === "Also watching: Ada"`)
	})

	t.Run("the reply picker searches and inserts a canned reply", func(t *testing.T) {
		// A click by script, not by mouse: the session view above it may
		// still be laying itself out (watchers, typing), and a mouse click
		// lands where the button was.
		dash.wait("the picker's button", `document.getElementById("replies-open").offsetParent !== null`)
		dash.wait("the click on it", `(document.getElementById("replies-open").click(), true)`)
		dash.wait("the picker", `!document.getElementById("replies-panel").hidden && document.querySelectorAll("#replies-list button").length === 2`)
		dash.do(chromedp.SendKeys(chromedp.ID("replies-search"), "refund"))
		dash.wait("one match", `(() => { const b = [...document.querySelectorAll("#replies-list button")];
			return b.length === 1 && b[0].textContent === "Refund policy"; })()`)
		dash.do(chromedp.Click(chromedp.CSS("#replies-list button")))
		dash.wait("the text in the composer", `document.getElementById("reply-text").value === "Refunds are possible within 30 days." && document.getElementById("replies-panel").hidden`)
		dash.do(pressEnter())
		user.wait("the canned reply on the user's page", `[...document.querySelectorAll("#log .msg--admin .msg-text")].some(m => m.textContent === "Refunds are possible within 30 days.")`)
	})

	t.Run("after a release the user is asked for a rating", func(t *testing.T) {
		if got := evalIn[bool](user, `document.getElementById("rate-panel").hidden`); !got {
			t.Fatal("the rating prompt shows before the release")
		}
		dash.do(chromedp.Click(chromedp.ID("release")))
		user.wait("the rating prompt", `!document.getElementById("rate-panel").hidden && document.getElementById("rate-send").disabled`)
		user.do(chromedp.Click(chromedp.CSS(`#rate-panel button[aria-label="4 out of 5"]`)))
		user.wait("the score chosen", `document.querySelector('#rate-panel button[aria-label="4 out of 5"]').getAttribute("aria-pressed") === "true" && !document.getElementById("rate-send").disabled`)
		user.do(chromedp.SendKeys(chromedp.ID("rate-comment"), "Fast and friendly"), chromedp.Click(chromedp.ID("rate-send")))
		user.wait("the thanks", `!document.getElementById("rate-thanks").hidden && document.getElementById("rate-panel").hidden`)
		var got struct {
			Session struct {
				Rating *rating `json:"rating"`
			} `json:"session"`
		}
		e.s.getJSON(t, adaTok, "/api/admin/sessions/"+sid, &got)
		if r := got.Session.Rating; r == nil || *r != (rating{4, "Fast and friendly"}) {
			t.Errorf("stored rating %+v", r)
		}
		dash.wait("the rating in the session view", `document.getElementById("d-meta").textContent.includes("rated 4 / 5 “Fast and friendly”")`)
	})
}
