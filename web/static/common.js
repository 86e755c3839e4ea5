// Shared by the chat page, the admin dashboard and the shared view.
//
// Every piece of user text reaches the page through textContent (el()),
// except message text, which MessageLog.paint renders as Markdown through
// markdown.js and its sanitizer; nothing else is ever parsed as HTML.
// Tokens live only in
// sessionStorage (per tab, gone when the tab closes): never localStorage,
// never cookies, never the URL once the page has read them.

// appBase is the path every request is relative to, so the pages work when
// the server is mounted under a prefix. sub is the page's own directory
// ("admin", "share") under the base, or "" for the chat page.
export function appBase(sub) {
  let dir = location.pathname.replace(/[^/]*$/, "");
  if (sub && dir.endsWith(`/${sub}/`)) dir = dir.slice(0, -(sub.length + 1));
  return dir;
}

// takeToken moves a dev-link token (#token=…) into sessionStorage under key,
// strips it from the address bar and history, and returns the token to use.
export function takeToken(key) {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) {
    sessionStorage.setItem(key, fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(key) || "";
}

// el builds an element. props sets properties (className, type, disabled…),
// "dataset" and "attrs" objects, and on* handlers; children are nodes or
// strings (strings become text nodes, never markup).
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "attrs") for (const [a, av] of Object.entries(v)) node.setAttribute(a, av);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node[k] = v;
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// newId is a client message id. crypto.randomUUID needs a secure context,
// which a plain-http deployment is not; getRandomValues works everywhere.
export function newId() {
  const b = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

// TOKEN_REFUSED is shown when the server refuses the token, over HTTP or
// the WebSocket, whichever notices first.
// switchToSignIn swaps a page back to its sign-in form, forgetting the token;
// switchToApp shows the signed-in view. Both pages use the same element ids.
export function switchToSignIn(tokenKey, error) {
  sessionStorage.removeItem(tokenKey);
  document.getElementById("app-view").hidden = true;
  document.getElementById("signin-view").hidden = false;
  document.getElementById("signin-error").textContent = error;
  const input = document.getElementById("token");
  input.value = "";
  input.focus();
}

export function switchToApp() {
  document.getElementById("signin-view").hidden = true;
  document.getElementById("app-view").hidden = false;
}

export const TOKEN_REFUSED = "That token was not accepted. It may have expired.";

export class HttpError extends Error {
  constructor(status, code, message) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.code = code;
  }
}

// api calls the HTTP API under base with the bearer token and decodes JSON.
// Failures throw HttpError carrying the server's generic message.
export async function api(base, token, method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch {
    throw new HttpError(0, "network", "the server cannot be reached");
  }
  let data = null;
  if (resp.status !== 204) {
    try { data = await resp.json(); } catch { data = null; }
  }
  if (!resp.ok) {
    const e = (data && data.error) || {};
    throw new HttpError(resp.status, e.code || "", e.message || "");
  }
  return data;
}

// Connection is one WebSocket to the server that reconnects with
// exponential backoff and jitter. onEvent gets every decoded event; onState
// gets "connecting" | "open" | "offline"; onRejected is called when the
// server refuses the token (checked over HTTP, as a browser cannot see the
// 401 of a refused upgrade).
export class Connection {
  constructor({ base, token, onEvent, onState, onRejected }) {
    Object.assign(this, { base, token, onEvent, onState, onRejected });
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.pingTimer = 0;
    this.pongDeadline = 0;
    this.stopped = false;
    this.online = () => { if (!this.ws) this.reconnectNow(); };
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", this.online);
    this.open();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.online);
    clearTimeout(this.timer);
    this.drop();
  }

  get isOpen() { return !!this.ws && this.ws.readyState === WebSocket.OPEN && this.ready; }

  // send writes one command; false when the socket is not open.
  send(obj) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(obj));
    return true;
  }

  open() {
    if (this.stopped) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}${this.base}ws`, ["chatbox.v1", `bearer.${this.token}`]);
    this.ws = ws;
    this.ready = false;
    this.onState("connecting");
    ws.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (ev.type === "hello") { this.ready = true; this.attempt = 0; this.onState("open"); this.keepalive(); }
      if (ev.type === "pong") this.pongDeadline = 0;
      this.onEvent(ev);
    };
    ws.onclose = () => { if (this.ws === ws) this.closed(); };
  }

  // keepalive notices a dead network sooner than TCP would: a ping every
  // 25 s must be answered within 10 s, or the socket is dropped and reopened.
  keepalive() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.pongDeadline && Date.now() > this.pongDeadline) { this.reconnectNow(); return; }
      if (this.send({ type: "ping", id: "keepalive" }) && !this.pongDeadline) this.pongDeadline = Date.now() + 10000;
    }, 25000);
  }

  drop() {
    clearInterval(this.pingTimer);
    this.pongDeadline = 0;
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      ws.onmessage = ws.onclose = null;
      try { ws.close(); } catch { /* already closing */ }
    }
  }

  reconnectNow() {
    this.drop();
    clearTimeout(this.timer);
    this.attempt = 0;
    this.open();
  }

  async closed() {
    const wasReady = this.ready;
    this.drop();
    if (this.stopped) return;
    this.onState("offline");
    if (!wasReady) {
      // The upgrade itself failed: a bad token, or the server is down.
      try {
        await api(this.base, this.token, "GET", "api/sessions?limit=1");
      } catch (e) {
        if (e.status === 401) { this.stop(); this.onRejected(); return; }
      }
    }
    const delay = Math.min(500 * 2 ** this.attempt, 15000) * (0.75 + Math.random() / 2);
    this.attempt = Math.min(this.attempt + 1, 10);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay);
  }
}

// autoGrow makes a textarea grow with its text, up to max pixels.
export function autoGrow(area, max = 200) {
  const fit = () => {
    area.style.height = "auto";
    area.style.height = `${Math.min(area.scrollHeight + 2, max)}px`;
  };
  area.addEventListener("input", fit);
  return fit;
}

import { renderMarkdown } from "./markdown.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const utf8Len = (s) => encoder.encode(s).length;

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

// shortTime is a timestamp as "14:05" today, "Mar 3, 14:05" otherwise.
export function shortTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  return d.toDateString() === new Date().toDateString() ? timeFormat.format(d) : dateTimeFormat.format(d);
}

const STATUS_LABELS = { stopped: "stopped", failed: "failed", interrupted: "interrupted" };

// MessageLog renders one conversation into container: bubbles kept in seq
// order, whole messages upserted by id, and streamed replies built from
// deltas by UTF-8 byte offset so repeated or replayed deltas change nothing.
//
// A conversation is a tree (every message names its parent_id): the log
// shows one branch, from the root down, and hides the others. At each
// message with siblings (other versions: an edit, a regenerated reply) a
// "‹ N / M ›" switcher moves between them and shows that version's branch
// below it. Without a choice the branch that holds the newest message is
// shown, and any new message moves the view onto its branch. With onEdit
// and onRegenerate set, the user's messages get an Edit button (an inline
// editor) and the assistant's a Regenerate button.
export class MessageLog {
  constructor(container, { authorFor, emptyText, onEdit, onRegenerate, canRegenerate, renderFiles } = {}) {
    this.container = container;
    // renderFiles(div, attachments) shows a message's files; without it
    // they are listed by name.
    this.renderFiles = renderFiles || ((div, files) => div.append(...files.map((f) => el("span", { className: "file" }, f.name))));
    this.authorFor = authorFor || (() => "Assistant");
    this.emptyText = emptyText || "";
    this.onEdit = onEdit || null;
    this.onRegenerate = onRegenerate || null;
    this.canRegenerate = canRegenerate || (() => true); // false while a person answers
    this.clear();
  }

  clear() {
    this.entries = new Map(); // message id → {id, seq, role, author, text, bytes, status, parent, el}
    this.choice = new Map(); // parent id → the child shown
    this.expected = new Map(); // reply id → its parent, announced before its first delta
    this.lastSeq = 0; // highest seq of a whole message seen
    this.streamingId = "";
    this.container.replaceChildren();
    this.empty();
  }

  empty() {
    if (this.emptyText && this.container.children.length === 0) {
      this.container.append(el("p", { className: "log-empty" }, this.emptyText));
    }
  }

  get streaming() { return this.streamingId !== ""; }

  // expect notes the parent of a reply that is about to stream (the typing
  // event of the assistant says it), for its deltas, which do not.
  expect(messageId, parentId) {
    if (messageId) this.expected.set(messageId, parentId || "");
  }

  // upsert applies a whole message (a message event, a sync replay, or a
  // stored message from the HTTP API).
  upsert(m) {
    // The server never sends the checkpoint of a reply still in flight, so
    // any whole message, "interrupted" included, is the reply's last word.
    let e = this.entries.get(m.id);
    const parent = m.parent_id ?? this.leafId();
    if (!e) e = this.create(m.id, m.seq, m.role, m.author, parent);
    Object.assign(e, { seq: m.seq, role: m.role, author: m.author || e.author, text: m.text || "", status: m.status || "complete", unreadable: !!m.unreadable, attachments: m.attachments || [] });
    e.bytes = utf8Len(e.text);
    if (e.parent !== parent) {
      e.parent = parent;
      this.follow(e);
    }
    if (this.streamingId === m.id) this.streamingId = "";
    this.lastSeq = Math.max(this.lastSeq, m.seq);
    this.paint(e, m.created_at);
    this.layout();
    return e;
  }

  // delta applies one streamed piece; it answers false when the piece
  // starts past what is known (a gap the caller repairs with a sync).
  delta(ev) {
    let e = this.entries.get(ev.message_id);
    if (e && e.status !== "streaming" && e.status !== "interrupted") return true; // already final
    if (!e) {
      const parent = this.expected.has(ev.message_id) ? this.expected.get(ev.message_id) : this.leafId();
      e = this.create(ev.message_id, ev.seq, "assistant", this.authorFor(ev), parent);
      this.layout();
    }
    if (ev.offset > e.bytes) return false;
    if (ev.offset === e.bytes) {
      e.text += ev.text;
    } else {
      e.text = decoder.decode(encoder.encode(e.text).subarray(0, ev.offset)) + ev.text;
    }
    e.bytes = ev.offset + utf8Len(ev.text);
    e.status = "streaming";
    this.streamingId = e.id;
    this.paint(e);
    return true;
  }

  create(id, seq, role, author, parent) {
    this.container.querySelector(".log-empty")?.remove();
    const node = el("article", { className: "msg", dataset: { id, seq: String(seq) } },
      el("header", { className: "msg-meta" },
        el("span", { className: "msg-author" }),
        el("span", { className: "msg-status" }),
        el("time", { className: "msg-time" })),
      el("div", { className: "msg-text" }),
      el("div", { className: "msg-files" }),
      el("footer", { className: "msg-actions" }));
    const e = { id, seq, role, author: author || "", text: "", bytes: 0, status: "streaming", parent: parent || "", el: node };
    this.entries.set(id, e);
    const atBottom = this.atBottom();
    const after = [...this.container.children].find((c) => Number(c.dataset.seq) > seq);
    this.container.insertBefore(node, after || null);
    this.follow(e);
    if (atBottom) this.scrollDown();
    return e;
  }

  // follow moves the view onto e's branch: every ancestor of e is the
  // version shown at its level.
  follow(e) {
    if (e.role === "note") return; // a note is beside the conversation, not a version of it
    for (let n = e, hops = 0; n && hops < 10000; n = this.entries.get(n.parent), hops++) {
      this.choice.set(n.parent, n.id);
      if (!n.parent) break;
    }
  }

  // tree indexes the messages once: the versions under each parent,
  // oldest first, and the newest seq in each message's branch (a message
  // is always stored after its parent, so one pass from the newest down
  // adds every branch up).
  tree() {
    const kids = new Map();
    const newest = new Map();
    const bySeq = [...this.entries.values()].sort((a, b) => a.seq - b.seq);
    for (const e of bySeq) {
      if (e.role === "note") continue; // an admin's internal note: shown beside its parent (layout)
      if (!kids.has(e.parent)) kids.set(e.parent, []);
      kids.get(e.parent).push(e);
    }
    for (let i = bySeq.length - 1; i >= 0; i--) {
      const e = bySeq[i];
      if (e.role === "note") continue;
      const n = Math.max(newest.get(e.id) || 0, e.seq);
      newest.set(e.id, n);
      newest.set(e.parent, Math.max(newest.get(e.parent) || 0, n));
    }
    return { kids, newest };
  }

  // path is the branch shown: from the root down, at each level the chosen
  // version, or the one whose branch holds the newest message.
  path(t = this.tree()) {
    const out = [];
    const seen = new Set();
    for (let parent = ""; ;) {
      const kids = t.kids.get(parent) || [];
      if (kids.length === 0) break;
      let next = this.entries.get(this.choice.get(parent));
      if (!next || next.parent !== parent) next = kids.reduce((a, b) => (t.newest.get(b.id) > t.newest.get(a.id) ? b : a));
      if (seen.has(next.id)) break;
      seen.add(next.id);
      out.push(next);
      parent = next.id;
    }
    return out;
  }

  // leafId is the last message of the branch shown: where a new message
  // continues the conversation.
  leafId() {
    const p = this.path();
    return p.length ? p[p.length - 1].id : "";
  }

  // layout shows the messages of the branch shown and hides the others,
  // and gives each shown message its version switcher and buttons.
  layout() {
    const atBottom = this.atBottom();
    const t = this.tree();
    const shown = new Set(this.path(t).map((e) => e.id));
    for (const e of this.entries.values()) {
      if (e.role === "note") {
        e.el.hidden = e.parent !== "" && !shown.has(e.parent);
        continue;
      }
      e.el.hidden = !shown.has(e.id);
      if (!e.el.hidden) this.actions(e, t.kids.get(e.parent) || [e]);
    }
    if (atBottom) this.scrollDown();
  }

  // actions gives e its switcher among versions (its siblings, e included)
  // and its buttons.
  actions(e, versions) {
    const bar = e.el.querySelector(".msg-actions");
    if (bar.querySelector(".msg-editor")) return; // an edit in progress keeps its editor
    const items = [];
    if (versions.length > 1) {
      const i = versions.findIndex((v) => v.id === e.id);
      const go = (d) => () => {
        const v = versions[i + d];
        if (!v) return;
        this.choice.set(e.parent, v.id);
        this.layout();
        this.entries.get(v.id)?.el.querySelector(".versions button:not([disabled])")?.focus();
      };
      items.push(el("span", { className: "versions" },
        el("button", { type: "button", className: "ghost small", disabled: i === 0, attrs: { "aria-label": "Previous version" }, onclick: go(-1) }, "‹"),
        el("span", { className: "version-count" }, `${i + 1} / ${versions.length}`),
        el("button", { type: "button", className: "ghost small", disabled: i === versions.length - 1, attrs: { "aria-label": "Next version" }, onclick: go(1) }, "›")));
    }
    const busy = this.streaming;
    if (this.onEdit && e.role === "user") {
      items.push(el("button", { type: "button", className: "ghost small", disabled: busy, onclick: () => this.edit(e) }, "Edit"));
    }
    if (this.onRegenerate && e.role === "assistant" && e.status !== "streaming" && this.canRegenerate()) {
      items.push(el("button", { type: "button", className: "ghost small", disabled: busy, onclick: () => this.onRegenerate(e) }, "Regenerate"));
    }
    bar.replaceChildren(...items);
  }

  // edit opens an inline editor on the user's message e; Save (or Enter)
  // hands the new text to onEdit, Cancel (or Escape) closes it.
  edit(e) {
    const bar = e.el.querySelector(".msg-actions");
    const area = el("textarea", { className: "msg-edit", rows: 3, value: e.text, attrs: { "aria-label": "Edit message" } });
    const close = () => { e.el.classList.remove("msg--editing"); bar.replaceChildren(); this.layout(); };
    const save = () => {
      const text = area.value;
      if (!text.trim()) return;
      if (this.onEdit(e, text) !== false) close();
    };
    area.addEventListener("keydown", (k) => {
      if (k.key === "Enter" && !k.shiftKey && !k.isComposing) { k.preventDefault(); save(); }
      if (k.key === "Escape") { k.preventDefault(); close(); }
    });
    e.el.classList.add("msg--editing");
    bar.replaceChildren(el("div", { className: "msg-editor" }, area,
      el("div", { className: "msg-editor-actions" },
        el("button", { type: "button", className: "ghost small", onclick: close }, "Cancel"),
        el("button", { type: "button", className: "primary small", onclick: save }, "Save"))));
    area.focus();
  }

  paint(e, createdAt) {
    const atBottom = this.atBottom();
    const n = e.el;
    n.className = `msg msg--${e.role}${e.status === "streaming" ? " msg--streaming" : ""}${STATUS_LABELS[e.status] ? ` msg--${e.status}` : ""}`;
    n.dataset.status = e.status;
    n.dataset.seq = String(e.seq);
    n.querySelector(".msg-author").textContent = e.role === "note" ? `Internal note · ${e.author}` : (e.author || roleName(e.role));
    n.querySelector(".msg-status").textContent = STATUS_LABELS[e.status] || "";
    if (createdAt) {
      const t = n.querySelector(".msg-time");
      t.dateTime = createdAt;
      t.textContent = shortTime(createdAt);
    }
    const body = n.querySelector(".msg-text");
    if (e.unreadable) {
      body.textContent = "[this message cannot be read: its encryption key is no longer configured]";
      delete body.dataset.source;
    } else {
      renderMarkdown(body, e.text);
    }
    // A message's files never change: they are drawn once.
    if (e.attachments?.length && !e.filesDrawn) {
      e.filesDrawn = true;
      this.renderFiles(n.querySelector(".msg-files"), e.attachments);
    }
    if (atBottom) this.scrollDown();
  }

  atBottom() {
    const c = this.container;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }

  scrollDown() { this.container.scrollTop = this.container.scrollHeight; }
}

// TypingIndicator shows who is typing, or that the model is thinking, in
// its element (which carries data-typing), until the next message of the
// session or 6 s after the last notice (CONTRACT §7).
export class TypingIndicator {
  constructor(node) {
    this.node = node;
    this.timer = 0;
    this.hide();
  }

  show(ev) {
    const who = ev.author || (ev.role === "assistant" ? "The assistant" : "Someone");
    this.node.textContent = ev.role === "assistant" ? `${who} is thinking…` : `${who} is typing…`;
    this.node.hidden = false;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.hide(), 6000);
  }

  hide() {
    clearTimeout(this.timer);
    this.node.hidden = true;
    this.node.textContent = "";
  }
}

// Typing throttles the typing notices a composer sends: at most one a
// second, as the server relays no more.
export function typingNotifier(send) {
  let last = 0;
  return () => {
    const now = Date.now();
    if (now - last < 1000) return;
    last = now;
    send();
  };
}

function roleName(role) {
  return { user: "You", assistant: "Assistant", admin: "Support", system: "System" }[role] || role;
}
