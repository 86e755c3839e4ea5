// The admin dashboard: live figures, every session with filters and
// cursor paging, live help alerts, and one open session followed over the
// WebSocket (watch) that an admin can take over, answer and release.
import { appBase, takeToken, el, api, newId, shortTime, autoGrow, Connection, MessageLog, TypingIndicator, typingNotifier, TOKEN_REFUSED, switchToSignIn, switchToApp } from "../common.js";

const TOKEN_KEY = "chatbox.admin.token";
const PAGE_SIZE = 25;
const REFRESH_MS = 5000;

const base = appBase("admin");
const $ = (id) => document.getElementById(id);

let token = takeToken(TOKEN_KEY);
let conn = null;
let me = null; // the hello event
let refreshTimer = 0;

// The sessions table: rows of the current page, and the cursors that led
// to each page so far ("" for the first) so Previous can step back.
const rows = new Map(); // session id → session
let cursors = [""];
let nextCursor = "";

// The open session: its id, the session record, who holds it.
let open = null; // {id, session, holder, mine}
let pendingTakeover = ""; // session id of a takeover sent and not yet answered

// The conversation as a tree, read-only: versions can be browsed, not
// edited or regenerated.
const log = new MessageLog($("d-log"), {
  authorFor: () => modelName(open?.session?.model),
  emptyText: "No messages yet.",
});
const typing = new TypingIndicator($("d-typing"));
const notifyTyping = typingNotifier(() => { if (open) conn?.send({ type: "typing", session_id: open.id }); });
// Writing an internal note is not typing to the user: no notice then.
$("reply-text").addEventListener("input", () => { if ($("reply-text").value.trim() && !$("reply-note").checked) notifyTyping(); });

function modelName(id) {
  const m = me?.models?.find((x) => x.id === id);
  return m ? m.name : "Assistant";
}

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = `statusline admin-status${kind ? ` statusline--${kind}` : ""}`;
}

// Sign-in

function showSignIn(error = "") {
  conn?.stop();
  conn = null;
  me = null;
  clearInterval(refreshTimer);
  token = "";
  // Nothing seen with the previous token stays on screen.
  open = null;
  log.clear();
  typing.hide();
  rows.clear();
  cursors = [""];
  nextCursor = "";
  renderRows();
  $("detail-body").hidden = true;
  $("detail-empty").hidden = false;
  $("stats").replaceChildren();
  $("notices").replaceChildren();
  setStatus("");
  switchToSignIn(TOKEN_KEY, error);
}

function start() {
  switchToApp();
  conn = new Connection({
    base, token,
    onEvent,
    onState: (s) => {
      $("conn").textContent = { connecting: "Connecting…", open: "Live", offline: "Offline, reconnecting…" }[s];
      $("conn").className = `conn conn--${s}`;
      renderDetailState();
    },
    onRejected: () => showSignIn(TOKEN_REFUSED),
  });
  conn.start();
  refresh();
  clearInterval(refreshTimer);
  refreshTimer = setInterval(refresh, REFRESH_MS);
}

function refresh() {
  loadStats();
  loadQueue();
  if (!auditCursor) loadAudit(true); // the first page follows new entries
  if (cursors.length === 1) loadRows(); // the first page follows new activity
}

function failed(e, what) {
  if (e.status === 401) return showSignIn(TOKEN_REFUSED);
  if (e.status === 403) return showSignIn("This token does not grant admin rights.");
  setStatus(`${what}: ${e.message}`, "error");
}

$("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

$("signout").addEventListener("click", () => showSignIn());

// Stats

let statsBusy = false;
async function loadStats() {
  if (statsBusy) return;
  statsBusy = true;
  try {
    renderStats(await api(base, token, "GET", "api/admin/stats"));
  } catch (e) {
    failed(e, "Could not load statistics");
  } finally {
    statsBusy = false;
  }
}

const numberFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const GROUPS = [["live", "Live"], ["stored", "Stored"], ["response_times", "Response times"], ["csat", "Satisfaction"]];

// numericFields flattens an object's numbers into [label, value] pairs.
function numericFields(obj, prefix = "") {
  const out = [];
  for (const [k, v] of Object.entries(obj || {})) {
    const label = prefix + k.replace(/_(ms|s|seconds)$/, "").replace(/^ttft/, "first token").replace(/_/g, " ");
    if (typeof v === "number" && Number.isFinite(v)) out.push([label, v, k]);
    else if (v && typeof v === "object" && !Array.isArray(v)) out.push(...numericFields(v, `${label} `));
  }
  return out;
}

const secondsFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

function formatStat(key, v) {
  let ms = null;
  if (/(^|_)ms(_|$)/.test(key)) ms = v;
  else if (/(^|_)(s|seconds)(_|$)/.test(key)) ms = v * 1000;
  if (ms === null) return numberFormat.format(v);
  return ms >= 1000 ? `${secondsFormat.format(ms / 1000)} s` : `${numberFormat.format(ms)} ms`;
}

function renderStats(data) {
  const groups = GROUPS.map(([key, name]) => {
    const fields = numericFields(data?.[key]);
    if (!fields.length) return null;
    const group = el("div", { className: "stat-group" },
      el("h3", { className: "stat-group-name" }, name),
      el("dl", { className: "stat-list" }, fields.map(([label, v, k]) =>
        el("div", { className: "stat", dataset: { group: key, key: k } },
          el("dt", {}, label),
          el("dd", {}, formatStat(k, v))))));
    group.style.flexGrow = String(fields.length); // width in proportion to its figures
    return group;
  }).filter(Boolean);
  $("stats").replaceChildren(...groups);
}

// Sessions table

function query(cursor) {
  const q = new URLSearchParams();
  const user = $("f-user").value.trim();
  if (user) q.set("user_id", user);
  if ($("f-help").checked) q.set("help", "true");
  if ($("f-taken").checked) q.set("taken_over", "true");
  if ($("f-status").value) q.set("status", $("f-status").value);
  const from = rfc3339($("f-from").value, "T00:00:00");
  const to = rfc3339($("f-to").value, "T23:59:59");
  if (from) q.set("from", from);
  if (to) q.set("to", to);
  q.set("sort", $("f-sort").value);
  q.set("order", $("f-order").value);
  q.set("limit", String(PAGE_SIZE));
  if (cursor) q.set("cursor", cursor);
  return q;
}

// rfc3339 turns a date input's value, at a time of day in the admin's
// own time zone, into UTC.
function rfc3339(date, time) {
  if (!date) return "";
  const d = new Date(date + time);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

let rowsRequest = 0;
async function loadRows() {
  const req = ++rowsRequest;
  try {
    const data = await api(base, token, "GET", `api/admin/sessions?${query(cursors[cursors.length - 1])}`);
    if (req !== rowsRequest) return; // a newer request (filters changed) wins
    rows.clear();
    for (const s of data.sessions || []) rows.set(s.id, s);
    nextCursor = data.next_cursor || "";
    renderRows();
  } catch (e) {
    if (req === rowsRequest) failed(e, "Could not load sessions");
  }
}

function applyFilters() {
  cursors = [""];
  loadRows();
}

$("filters").addEventListener("submit", (e) => { e.preventDefault(); applyFilters(); });
for (const id of ["f-status", "f-sort", "f-order", "f-help", "f-taken", "f-from", "f-to"]) $(id).addEventListener("change", applyFilters);
$("f-reset").addEventListener("click", () => {
  $("filters").reset();
  applyFilters();
});
$("next").addEventListener("click", () => {
  if (!nextCursor) return;
  cursors.push(nextCursor);
  loadRows();
});
$("prev").addEventListener("click", () => {
  if (cursors.length < 2) return;
  cursors.pop();
  loadRows();
});

// renderRows updates the table in place, keyed by session id, so a
// periodic refresh keeps the focused row and the scroll position.
function renderRows() {
  const body = $("rows");
  const focused = document.activeElement;
  const existing = new Map([...body.children].map((tr) => [tr.dataset.id, tr]));
  let at = body.firstElementChild;
  for (const s of rows.values()) {
    let tr = existing.get(s.id);
    existing.delete(s.id);
    if (!tr) tr = newRow(s.id);
    fillRow(tr, s);
    if (tr !== at) body.insertBefore(tr, at);
    else at = at.nextElementSibling;
  }
  for (const tr of existing.values()) tr.remove();
  if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
  $("rows-empty").hidden = rows.size > 0;
  $("prev").disabled = cursors.length < 2;
  $("next").disabled = !nextCursor;
  $("page").textContent = `Page ${cursors.length}`;
}

function newRow(id) {
  const tr = el("tr", {
    tabIndex: 0,
    dataset: { id },
    onclick: () => openSession(id),
    onkeydown: (e) => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openSession(id); }
      else if (e.key === "ArrowDown") { e.preventDefault(); tr.nextElementSibling?.focus(); }
      else if (e.key === "ArrowUp") { e.preventDefault(); tr.previousElementSibling?.focus(); }
    },
  });
  for (let i = 0; i < 5; i++) tr.append(el("td"));
  tr.cells[3].className = "num";
  return tr;
}

function fillRow(tr, s) {
  const [title, user, mode, count, updated] = tr.cells;
  title.replaceChildren(el("span", { className: "row-title" }, s.title || "Untitled conversation"));
  if (s.help_requested) title.prepend(el("span", { className: "badge badge--help" }, "Help"));
  user.textContent = s.user_id || "";
  mode.replaceChildren(s.mode === "human"
    ? el("span", { className: "badge badge--human" }, s.admin_name ? `Human · ${s.admin_name}` : "Human")
    : el("span", { className: "badge badge--bot" }, "Bot"));
  if (s.status === "ended") mode.append(" ", el("span", { className: "badge badge--ended" }, "Ended"));
  count.textContent = s.message_count ?? "";
  updated.textContent = shortTime(s.updated_at);
  updated.title = s.updated_at || "";
  tr.classList.toggle("row--help", !!s.help_requested);
  tr.classList.toggle("row--human", s.mode === "human");
  const selected = open?.id === s.id;
  tr.classList.toggle("row--open", selected);
  if (selected) tr.setAttribute("aria-current", "true");
  else tr.removeAttribute("aria-current");
  tr.setAttribute("aria-label", `${s.title || "Untitled conversation"}, user ${s.user_id || "unknown"}${s.help_requested ? ", help requested" : ""}`);
}

// patchRow merges live changes into a row the table shows.
function patchRow(id, changes) {
  const s = rows.get(id);
  if (!s) return;
  Object.assign(s, changes);
  const tr = $("rows").querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  if (tr) fillRow(tr, s);
}

// A help request: highlight its row (adding it on the first page if the
// table does not show it) and raise a notice.
function onHelp(ev) {
  if (rows.has(ev.session_id)) {
    patchRow(ev.session_id, { help_requested: true });
  } else if (cursors.length === 1) {
    const s = { id: ev.session_id, user_id: ev.user_id, title: ev.title, help_requested: true, mode: "bot", updated_at: new Date().toISOString() };
    rows.delete(s.id);
    const rest = [...rows.entries()];
    rows.clear();
    rows.set(s.id, s);
    for (const [k, v] of rest) rows.set(k, v);
    renderRows();
  }
  const tr = $("rows").querySelector(`tr[data-id="${CSS.escape(ev.session_id)}"]`);
  if (tr) {
    tr.classList.remove("row--flash");
    void tr.offsetWidth; // restart the highlight animation
    tr.classList.add("row--flash");
  }
  if (open?.id === ev.session_id) {
    open.session.help_requested = true;
    renderDetailHead();
  }
  notify(`Help requested by ${ev.user_id || "a user"}`, ev.title || "", ev.session_id);
}

function notify(text, detail, sessionId) {
  const box = el("div", { className: "notice-card", attrs: { role: "alert" } },
    el("span", { className: "notice-dot", attrs: { "aria-hidden": "true" } }),
    el("span", { className: "notice-text" }, text, detail ? el("span", { className: "notice-detail" }, ` · “${detail}”`) : null),
    el("button", { type: "button", className: "small primary", onclick: () => { box.remove(); openSession(sessionId); } }, "Open"),
    el("button", { type: "button", className: "small ghost", onclick: () => box.remove() }, "Dismiss"));
  $("notices").prepend(box);
  while ($("notices").children.length > 3) $("notices").lastElementChild.remove();
}

// The open session

async function openSession(id) {
  if (open?.id === id) return;
  if (open) conn?.send({ type: "unwatch", session_id: open.id });
  open = { id, session: rows.get(id) ? { ...rows.get(id) } : { id }, holder: "", mine: false, refused: false, watchers: [], typingAdmin: "" };
  pendingTakeover = "";
  log.clear();
  typing.hide();
  $("detail-empty").hidden = true;
  $("detail-body").hidden = false;
  $("reply-text").value = "";
  for (const tr of $("rows").children) fillRow(tr, rows.get(tr.dataset.id));
  holderFromSession();
  renderDetailHead();
  renderDetailState();
  // Watch first, then load: whatever happens in between arrives live and
  // is merged by message id, so nothing falls between the two.
  conn?.send({ type: "watch", session_id: id });
  await loadDetail(id);
}

async function loadDetail(id) {
  try {
    const data = await api(base, token, "GET", `api/admin/sessions/${encodeURIComponent(id)}`);
    if (open?.id !== id) return;
    open.session = { ...open.session, ...data.session };
    open.watchers = data.watchers || open.watchers || [];
    for (const m of data.messages || []) {
      if (m.id !== log.streamingId) log.upsert(m);
    }
    holderFromSession();
    renderDetailHead();
    renderDetailState();
  } catch (e) {
    if (open?.id === id) failed(e, "Could not load the conversation");
  }
}

function holderFromSession() {
  const s = open.session;
  open.holder = s.mode === "human" ? (s.admin_name || "an admin") : "";
  // A session held under this admin's name (say, from before a reload) is theirs.
  open.mine = !!open.holder && !!me && open.holder === me.name;
}

function closeSession() {
  if (!open) return;
  const id = open.id;
  conn?.send({ type: "unwatch", session_id: id });
  open = null;
  log.clear();
  typing.hide();
  $("detail-body").hidden = true;
  $("detail-empty").hidden = false;
  for (const tr of $("rows").children) fillRow(tr, rows.get(tr.dataset.id));
  $("rows").querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.focus();
}

function renderDetailHead() {
  if (!open) return;
  const s = open.session;
  $("d-title").textContent = s.title || "Untitled conversation";
  const parts = [`User ${s.user_id || "unknown"}`];
  if (s.model) parts.push(`model ${modelName(s.model)}`);
  if (s.created_at) parts.push(`started ${shortTime(s.created_at)}`);
  if (s.help_requested) parts.push("help requested");
  if (s.rating) parts.push(`rated ${s.rating.score} / 5${s.rating.comment ? ` “${s.rating.comment}”` : ""}`);
  $("d-meta").textContent = parts.join(" · ");
}

function renderDetailState() {
  if (!open) return;
  const live = !!conn?.isOpen;
  const state = $("d-state");
  const ended = open.session?.status === "ended";
  if (ended) {
    state.textContent = "This conversation has ended. It is read-only.";
    state.className = "detail-state";
  } else if (open.mine) {
    state.textContent = "You are answering this conversation. The assistant is paused.";
    state.className = "detail-state detail-state--mine";
  } else if (open.refused) {
    state.textContent = "Another admin is already handling this conversation.";
    state.className = "detail-state detail-state--busy";
  } else if (open.holder) {
    state.textContent = `${open.holder} is answering this conversation.`;
    state.className = "detail-state detail-state--human";
  } else {
    state.textContent = "The assistant is answering. Take over to reply yourself.";
    state.className = "detail-state";
  }
  $("takeover").disabled = !live || open.mine || pendingTakeover === open.id || ended;
  $("release").disabled = !live || !open.mine;
  $("end").disabled = !live || ended;
  // An internal note needs no takeover: any admin watching may write one.
  const noting = $("reply-note").checked;
  $("reply").classList.toggle("reply--note", noting);
  $("reply-text").disabled = !(open.mine || noting) || (ended && !noting);
  $("reply-send").disabled = !live || $("reply-text").disabled;
  $("reply-send").textContent = noting ? "Add note" : "Send";
  $("reply-text").placeholder = noting ? "Write an internal note; the user never sees it" :
    open.mine ? "Write a reply… (Enter to send, Shift+Enter for a new line)" : "Take over to reply";
  renderPresence();
}

$("close").addEventListener("click", closeSession);

$("takeover").addEventListener("click", () => {
  if (!open) return;
  if (conn?.send({ type: "takeover", id: newId(), session_id: open.id })) {
    pendingTakeover = open.id;
    open.refused = false;
    setStatus("");
    renderDetailState();
  }
});

$("release").addEventListener("click", () => {
  if (open?.mine) conn?.send({ type: "release", id: newId(), session_id: open.id });
});

$("end").addEventListener("click", () => {
  if (open && confirm("End this conversation? It stays readable, but no new messages can be sent.")) {
    conn?.send({ type: "end", id: newId(), session_id: open.id });
  }
});

$("reply").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("reply-text").value;
  const noting = $("reply-note").checked;
  if (!open || !(open.mine || noting) || !text.trim()) return;
  if (!conn?.send({ type: noting ? "note" : "send", id: newId(), session_id: open.id, text })) {
    setStatus("Not connected; the reply was not sent.", "warn");
    return;
  }
  $("reply-text").value = "";
  fitReply();
});

const fitReply = autoGrow($("reply-text"), 140);
$("reply-text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("reply").requestSubmit();
  }
});

// Events

function onEvent(ev) {
  switch (ev.type) {
  case "hello":
    if (!ev.admin) {
      showSignIn("This token does not grant admin rights.");
      return;
    }
    me = ev;
    $("me").textContent = ev.name || ev.user_id;
    if (open) {
      // After a reconnect: watch again and fill in what was missed.
      conn.send({ type: "watch", session_id: open.id });
      holderFromSession();
      loadDetail(open.id);
    }
    break;
  case "help":
    onHelp(ev);
    loadQueue(true);
    break;
  case "queue":
    loadQueue();
    break;
  case "watchers":
    if (open?.id === ev.session_id) {
      open.watchers = ev.watchers || [];
      renderPresence();
    }
    break;
  case "rated":
    if (open?.id === ev.session_id) {
      open.session.rating = ev.rating;
      renderDetailHead();
    }
    break;
  case "message":
    patchRow(ev.session_id, { updated_at: ev.message.created_at || new Date().toISOString() });
    if (open?.id === ev.session_id) {
      const isNew = !log.entries.has(ev.message.id);
      typing.hide();
      log.upsert(ev.message);
      if (isNew && rows.has(ev.session_id)) patchRow(ev.session_id, { message_count: (rows.get(ev.session_id).message_count || 0) + 1 });
    }
    break;
  case "typing":
    if (open?.id !== ev.session_id) break;
    if (ev.role === "assistant") log.expect(ev.message_id, ev.parent_id);
    if (ev.role === "admin") otherTyping(ev.author);
    typing.show(ev);
    break;
  case "renamed":
    patchRow(ev.session_id, { title: ev.title });
    if (open?.id === ev.session_id) {
      open.session.title = ev.title;
      renderDetailHead();
    }
    break;
  case "delta":
    // A delta past what this page has (the reply began before the watch)
    // is skipped; the reply's final message brings the whole text.
    if (open?.id === ev.session_id) log.delta(ev);
    break;
  case "takeover":
    patchRow(ev.session_id, { mode: "human", admin_name: ev.admin_name, help_requested: false });
    if (open?.id === ev.session_id) {
      open.mine = pendingTakeover === ev.session_id || (open.mine && open.holder === ev.admin_name);
      pendingTakeover = "";
      open.holder = ev.admin_name;
      Object.assign(open.session, { mode: "human", admin_name: ev.admin_name, help_requested: false });
      renderDetailHead();
      renderDetailState();
      if (open.mine) $("reply-text").focus();
    }
    break;
  case "release":
    patchRow(ev.session_id, { mode: "bot", admin_name: "" });
    if (open?.id === ev.session_id) {
      Object.assign(open, { holder: "", mine: false, refused: false });
      Object.assign(open.session, { mode: "bot", admin_name: "" });
      renderDetailState();
    }
    break;
  case "ended":
    patchRow(ev.session_id, { status: "ended", help_requested: false });
    if (open?.id === ev.session_id) {
      Object.assign(open.session, { status: "ended", help_requested: false });
      renderDetailHead();
      renderDetailState();
    }
    break;
  case "error":
    if (ev.code === "busy" && open && pendingTakeover === open.id) {
      // Another admin holds the session (the backend answers busy).
      pendingTakeover = "";
      open.refused = true;
      renderDetailState();
      break;
    }
    if (ev.session_id && open?.id === ev.session_id) pendingTakeover = "";
    setStatus(ev.message || "Something went wrong.", "error");
    if (open) renderDetailState();
    break;
  }
}

// Audit trail: newest first; "Load more" follows the cursor.

let auditCursor = "";
let auditBusy = false;
async function loadAudit(reset) {
  if (auditBusy) return;
  auditBusy = true;
  try {
    const q = new URLSearchParams({ limit: "20" });
    if (!reset && auditCursor) q.set("cursor", auditCursor);
    const data = await api(base, token, "GET", `api/admin/audit?${q}`);
    const trs = (data.entries || []).map((e) => el("tr", {},
      el("td", {}, el("time", { dateTime: e.at, textContent: shortTime(e.at) })),
      el("td", {}, `${e.admin_name || e.admin_id}${e.role === "user" ? " (user)" : ""}`),
      el("td", {}, e.action),
      el("td", {}, e.user_id),
      el("td", { className: "mono small" }, e.session_id || "—")));
    if (reset) $("audit-rows").replaceChildren(...trs);
    else $("audit-rows").append(...trs);
    auditCursor = data.next_cursor || "";
    $("audit-more").hidden = !auditCursor;
    $("audit-empty").hidden = $("audit-rows").children.length > 0;
  } catch (e) {
    failed(e, "Could not load the audit trail");
  } finally {
    auditBusy = false;
  }
}

$("audit-more").addEventListener("click", () => loadAudit(false));

// A user's data: export as a download, or erase for real.

function userId() {
  const id = $("u-id").value.trim();
  if (!id) $("u-id").reportValidity();
  return id;
}

$("u-export").addEventListener("click", async () => {
  const id = userId();
  if (!id) return;
  let resp;
  try {
    resp = await fetch(`${base}api/admin/users/${encodeURIComponent(id)}/export`, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch {
    return setStatus("The server cannot be reached; no export.", "error");
  }
  if (!resp.ok) return setStatus("The export failed; try again shortly.", "error");
  const url = URL.createObjectURL(await resp.blob());
  const a = el("a", { href: url, download: `chatbox-export-${id}.json` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  loadAudit(true);
});

$("u-erase").addEventListener("click", async () => {
  const id = userId();
  if (!id || !confirm(`Erase every conversation and message of user ${id}? This cannot be undone.`)) return;
  try {
    const data = await api(base, token, "DELETE", `api/admin/users/${encodeURIComponent(id)}`);
    const n = data.erased || {};
    setStatus(`Erased user ${id}: ${n.sessions || 0} conversations, ${n.messages || 0} messages.`);
    if (open && rows.get(open.id)?.user_id === id) closeSession();
    loadRows();
    loadAudit(true);
  } catch (e) {
    failed(e, "Could not erase the user");
  }
});

// The help desk

// The queue: sessions waiting for a person, oldest request first, kept live
// by the help and queue events (and the periodic refresh); the page's title
// carries how many wait, and a new request chimes.
let queue = [];
let queueBusy = false;
let queueTimer = 0;
async function loadQueue(chime = false) {
  if (queueBusy) return;
  queueBusy = true;
  try {
    const data = await api(base, token, "GET", "api/admin/queue");
    const before = new Set(queue.map((s) => s.id));
    queue = data.sessions || [];
    renderQueue();
    if (chime && queue.some((s) => !before.has(s.id))) beep();
  } catch (e) {
    failed(e, "Could not load the queue");
  } finally {
    queueBusy = false;
  }
}

function waited(s) {
  const secs = Math.max(0, Math.round((Date.now() - Date.parse(s.help_requested_at)) / 1000)) || s.waiting_seconds || 0;
  return secs < 60 ? `${secs}s` : secs < 3600 ? `${Math.floor(secs / 60)}m ${secs % 60}s` : `${Math.floor(secs / 3600)}h ${Math.floor(secs / 60) % 60}m`;
}

function renderQueue() {
  $("queue-list").replaceChildren(...queue.map((s) => el("li", { className: "queue-item", dataset: { id: s.id } },
    el("span", { className: "queue-title" }, s.title || "Untitled conversation", el("span", { className: "muted small" }, ` · ${s.user_id}`)),
    el("span", { className: "queue-wait" }, `waiting ${waited(s)}`),
    el("button", { type: "button", className: "small", onclick: () => openSession(s.id) }, "Open"),
    el("button", { type: "button", className: "small primary", attrs: { "aria-label": `Take over ${s.title || s.id}` }, onclick: () => takeFromQueue(s.id) }, "Take over"))));
  $("queue-empty").hidden = queue.length > 0;
  $("queue-count").textContent = queue.length ? String(queue.length) : "";
  document.title = queue.length ? `(${queue.length}) Chatbox admin` : "Chatbox admin";
  clearTimeout(queueTimer);
  if (queue.length) queueTimer = setTimeout(renderQueue, 1000); // the waiting times move
}

async function takeFromQueue(id) {
  await openSession(id);
  if (open?.id !== id || open.mine) return;
  if (conn?.send({ type: "takeover", id: newId(), session_id: id })) {
    pendingTakeover = id;
    open.refused = false;
    renderDetailState();
  }
}

let audio = null;
function beep() {
  try {
    audio ||= new AudioContext();
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.05;
    osc.connect(gain).connect(audio.destination);
    osc.start();
    osc.stop(audio.currentTime + 0.15);
  } catch {
    // No sound where the browser refuses it; the title badge still counts.
  }
}

// Presence: who else watches, and a warning when another admin answers
// here or is typing a reply.
let typingTimer = 0;
function otherTyping(name) {
  if (!open || name === me?.name) return;
  open.typingAdmin = name;
  renderPresence();
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => { if (open) { open.typingAdmin = ""; renderPresence(); } }, 6000);
}

function renderPresence() {
  if (!open) return;
  const others = (open.watchers || []).filter((w) => w.admin_id !== me?.user_id);
  $("d-watchers").textContent = others.length ? `Also watching: ${others.map((w) => w.name || w.admin_id).join(", ")}` : "";
  let warning = "";
  if (open.holder && !open.mine && open.session?.status !== "ended") warning = `${open.holder} is already answering this conversation.`;
  else if (open.typingAdmin) warning = `${open.typingAdmin} is typing a reply in this conversation.`;
  $("d-warning").textContent = warning;
  $("d-warning").hidden = !warning;
}

$("reply-note").addEventListener("change", () => { renderDetailState(); $("reply-text").focus(); });

// Canned replies: a searchable picker that inserts a reply's text at the
// cursor of the composer.
let replies = null;
async function loadReplies() {
  if (replies) return;
  try {
    replies = (await api(base, token, "GET", "api/admin/replies")).replies || [];
  } catch (e) {
    failed(e, "Could not load the canned replies");
    replies = null;
  }
}

function renderReplies() {
  const q = $("replies-search").value.trim().toLowerCase();
  const shown = (replies || []).filter((r) => !q || r.title.toLowerCase().includes(q) || r.text.toLowerCase().includes(q));
  $("replies-list").replaceChildren(...shown.map((r) => el("li", {},
    el("button", { type: "button", className: "ghost small", attrs: { title: r.text }, onclick: () => insertReply(r) }, r.title))));
  $("replies-empty").hidden = shown.length > 0;
}

function insertReply(r) {
  const area = $("reply-text");
  const at = area.selectionStart ?? area.value.length;
  area.value = area.value.slice(0, at) + r.text + area.value.slice(area.selectionEnd ?? at);
  toggleReplies(false);
  fitReply();
  area.focus();
}

async function toggleReplies(show) {
  $("replies-panel").hidden = !show;
  $("replies-open").setAttribute("aria-expanded", String(show));
  if (!show) return;
  await loadReplies();
  $("replies-search").value = "";
  renderReplies();
  $("replies-search").focus();
}

$("replies-open").addEventListener("click", () => toggleReplies($("replies-panel").hidden));
$("replies-search").addEventListener("input", renderReplies);
$("replies-search").addEventListener("keydown", (e) => {
  if (e.key === "Escape") toggleReplies(false);
  if (e.key === "Enter") {
    e.preventDefault();
    $("replies-list").querySelector("button")?.click();
  }
});

if (token) start();
else showSignIn();
