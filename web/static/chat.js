// The chat page: sign in with a token, list and open conversations, send
// messages and watch replies stream over one WebSocket that resumes with
// sync after any drop or reload.
import { appBase, takeToken, el, api, newId, shortTime, autoGrow, Connection, MessageLog, TypingIndicator, typingNotifier, TOKEN_REFUSED, switchToSignIn, switchToApp } from "./common.js";

const TOKEN_KEY = "chatbox.token";
const SESSION_KEY = "chatbox.session";
const PAGE_SIZE = 30;

const base = appBase("");
const $ = (id) => document.getElementById(id);

let token = takeToken(TOKEN_KEY);
let conn = null;
let me = null; // the hello event
let current = sessionStorage.getItem(SESSION_KEY) || ""; // open session id, "" for a new chat
let pendingNew = ""; // client id of a send that starts a session, until its ack
const gapRepaired = new Set(); // reply ids already re-synced after a gap

// sessions is the sidebar's list, newest first, keyed by id.
const sessions = new Map();
let nextCursor = "";

const log = new MessageLog($("log"), {
  authorFor: () => modelName(sessions.get(current)?.model || $("model").value),
  emptyText: "Start a conversation: write a message below.",
  // An edit is a new version of the message beside the old one; a
  // regenerated reply likewise. Both are answered like a send.
  onEdit: (m, text) => command({ type: "edit", id: newId(), session_id: current, message_id: m.id, text }),
  onRegenerate: (m) => command({ type: "regenerate", id: newId(), session_id: current, message_id: m.id }),
  canRegenerate: () => sessions.get(current)?.mode !== "human",
  renderFiles: (div, files) => files.forEach((f) => div.append(fileView(f))),
});
const typing = new TypingIndicator($("typing"));
const notifyTyping = typingNotifier(() => { if (current) conn?.send({ type: "typing", session_id: current }); });
// The rating prompt's state (showRating, at the end).
const rateAsked = new Set(); // sessions released while open here
const rateDismissed = new Set();
const rateSent = new Set();
let rateScore = 0;

// command sends a command of the open conversation, saying so when the
// connection is down; false when it was not sent.
function command(cmd) {
  if (!current || !conn?.send(cmd)) {
    setStatus("Not connected; nothing was sent. Reconnecting…", "warn");
    return false;
  }
  setStatus("");
  return true;
}

function modelName(id) {
  const m = me?.models?.find((x) => x.id === id);
  return m ? m.name : "Assistant";
}

function setStatus(text, kind = "") {
  $("status").textContent = text;
  $("status").className = `statusline${kind ? ` statusline--${kind}` : ""}`;
}

// Sign-in

function showSignIn(error = "") {
  conn?.stop();
  conn = null;
  me = null;
  token = "";
  // Nothing of the previous token's conversations stays on screen.
  sessions.clear();
  nextCursor = "";
  log.clear();
  renderSessions();
  hideShare();
  switchToSignIn(TOKEN_KEY, error);
}

function start() {
  switchToApp();
  conn = new Connection({
    base, token,
    onEvent,
    onState: (s) => {
      if (s === "connecting" && !me) setStatus("Connecting…");
      if (s === "offline") setStatus("Connection lost; reconnecting…", "warn");
      updateControls();
    },
    onRejected: () => showSignIn(TOKEN_REFUSED),
  });
  conn.start();
  loadSessions(true);
  showSession();
  $("text").focus();
}

$("signin").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  start();
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem(SESSION_KEY);
  current = "";
  showSignIn();
});

// Sessions

async function loadSessions(reset) {
  try {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (!reset && nextCursor) q.set("cursor", nextCursor);
    const data = await api(base, token, "GET", `api/sessions?${q}`);
    if (reset) {
      // Keep what later pages loaded; the first page refreshes the top.
      for (const s of data.sessions || []) sessions.delete(s.id);
      const rest = [...sessions.values()];
      sessions.clear();
      for (const s of [...(data.sessions || []), ...rest]) sessions.set(s.id, s);
      if (rest.length === 0) nextCursor = data.next_cursor || "";
    } else {
      for (const s of data.sessions || []) if (!sessions.has(s.id)) sessions.set(s.id, s);
      nextCursor = data.next_cursor || "";
    }
    renderSessions();
    if (current) showSession();
  } catch (e) {
    if (e.status === 401) return showSignIn(TOKEN_REFUSED);
    setStatus(`Could not load conversations: ${e.message}`, "error");
  }
}

function renderSessions() {
  const list = $("sessions");
  const focused = list.contains(document.activeElement) ? document.activeElement.dataset.id : "";
  const sorted = [...sessions.values()].sort((a, b) => (b.updated_at || "").localeCompare(a.updated_at || ""));
  list.replaceChildren(...sorted.map((s) => el("li", {},
    el("button", {
      type: "button",
      className: "session-item",
      dataset: { id: s.id },
      attrs: s.id === current ? { "aria-current": "true" } : {},
      onclick: () => openSession(s.id),
    },
    el("span", { className: "session-title" }, s.title || "Untitled conversation"),
    el("span", { className: "session-meta" },
      shortTime(s.updated_at),
      s.mode === "human" ? el("span", { className: "badge badge--human" }, "with a person") : null,
      s.help_requested && s.mode !== "human" ? el("span", { className: "badge badge--help" }, "help asked") : null)))));
  if (focused) list.querySelector(`[data-id="${CSS.escape(focused)}"]`)?.focus();
  $("sessions-empty").hidden = sessions.size > 0;
  $("more").hidden = !nextCursor;
}

$("more").addEventListener("click", () => loadSessions(false));

// touchSession notes activity in a session from a live event; a session the
// list does not know yet (started on another device) refreshes the list.
let refreshQueued = false;
function touchSession(id, changes = {}) {
  const s = sessions.get(id);
  if (!s) {
    if (!refreshQueued) {
      refreshQueued = true;
      setTimeout(() => { refreshQueued = false; loadSessions(true); }, 300);
    }
    return;
  }
  Object.assign(s, changes, { updated_at: new Date().toISOString() });
  renderSessions();
}

function openSession(id) {
  if (id === current) return;
  current = id;
  sessionStorage.setItem(SESSION_KEY, id);
  log.clear();
  typing.hide();
  hideRename();
  hideDelete();
  gapRepaired.clear();
  hideShare();
  renderSessions();
  showSession();
  conn?.send({ type: "sync", session_id: id, after_seq: 0 });
  $("text").focus();
}

function newChat() {
  current = "";
  sessionStorage.removeItem(SESSION_KEY);
  log.clear();
  typing.hide();
  hideRename();
  hideDelete();
  hideShare();
  renderSessions();
  showSession();
  $("text").focus();
}

$("new-chat").addEventListener("click", newChat);

// showSession brings the header, banner and controls in line with the
// open session's state.
function showSession() {
  const s = sessions.get(current);
  $("title").textContent = current ? (s?.title || "Conversation") : "New chat";
  document.title = current && s?.title ? `${s.title} · Chatbox` : "Chatbox";
  if (s?.model && me?.models?.some((m) => m.id === s.model)) $("model").value = s.model;
  if (s?.status === "ended") showBanner("This conversation has ended. It stays readable; start a new chat to go on.", "ended");
  else if (s?.mode === "human") showBanner(`${s.admin_name || "A person from the team"} has joined the conversation`, "human");
  else if (s?.help_requested) showBanner("a human has been asked to join", "help");
  else if (!(s && s.id === releasedId)) hideBanner();
  showRating();
  updateControls();
  log.layout(); // Regenerate only while the bot answers
}

// The banner says who answers: a person who took over, a pending help
// request, or, for a few seconds after a release, that the bot is back.
let releasedId = "";
let bannerTimer = 0;
function showBanner(text, kind) {
  clearTimeout(bannerTimer);
  $("banner").textContent = text;
  $("banner").className = `banner banner--${kind}`;
  $("banner").hidden = false;
}

function hideBanner() {
  clearTimeout(bannerTimer);
  $("banner").hidden = true;
  $("banner").textContent = "";
}

function showReleased(sessionId) {
  releasedId = sessionId;
  showBanner("the assistant is back", "bot");
  bannerTimer = setTimeout(() => { releasedId = ""; showSession(); }, 10000);
}

function updateControls() {
  const open = !!conn?.isOpen;
  const s = sessions.get(current);
  $("stop").disabled = !(open && current && log.streaming);
  $("help").disabled = !(open && current) || s?.mode === "human" || !!s?.help_requested;
  $("share").disabled = !current;
  // An ended conversation is read-only: the composer is disabled.
  const ended = s?.status === "ended";
  $("help").disabled ||= ended;
  $("end").disabled = !(open && current) || ended;
  $("rename").disabled = !current;
  $("delete").disabled = !current;
  $("text").disabled = ended;
  $("send").disabled = !open || ended;
}

// Events

function onEvent(ev) {
  switch (ev.type) {
  case "hello": {
    me = ev;
    $("me").textContent = ev.name || ev.user_id;
    const models = ev.models || [];
    const chosen = $("model").value || sessions.get(current)?.model || ev.default_model;
    $("model").replaceChildren(...models.map((m) => new Option(m.name, m.id, false, m.id === chosen)));
    $("model").hidden = models.length === 0;
    setStatus("");
    // After a reload the log is empty and this syncs from 0; after a drop,
    // from the last message seen. A reply in flight comes back as one delta.
    if (current) conn.send({ type: "sync", session_id: current, after_seq: log.lastSeq });
    showSession();
    break;
  }
  case "ack":
    if (ev.id && ev.id === pendingNew) {
      pendingNew = "";
      if (!current) {
        current = ev.session_id;
        sessionStorage.setItem(SESSION_KEY, current);
        loadSessions(true);
        showSession();
      }
    }
    break;
  case "message":
    if (ev.session_id === current) {
      typing.hide();
      log.upsert(ev.message);
      if (ev.message.role === "admin") touchSession(ev.session_id, { mode: "human", admin_name: ev.message.author });
      else touchSession(ev.session_id);
      updateControls();
    } else {
      touchSession(ev.session_id);
    }
    break;
  case "delta":
    if (ev.session_id !== current) break;
    if (!log.delta(ev) && !gapRepaired.has(ev.message_id)) {
      // A piece is missing: the sync replays the reply so far at offset 0.
      gapRepaired.add(ev.message_id);
      conn.send({ type: "sync", session_id: current, after_seq: log.lastSeq });
    }
    updateControls();
    break;
  case "typing":
    if (ev.session_id !== current) break;
    if (ev.role === "assistant") log.expect(ev.message_id, ev.parent_id);
    typing.show(ev);
    break;
  case "renamed":
    touchSession(ev.session_id, { title: ev.title });
    if (ev.session_id === current) showSession();
    break;
  case "deleted":
    sessions.delete(ev.session_id);
    renderSessions();
    if (ev.session_id === current) {
      newChat();
      setStatus("The conversation was deleted.");
    }
    break;
  case "takeover":
    touchSession(ev.session_id, { mode: "human", admin_name: ev.admin_name, help_requested: false });
    if (ev.session_id === current) showSession();
    break;
  case "release":
    touchSession(ev.session_id, { mode: "bot", admin_name: "", help_requested: false });
    if (ev.session_id === current) {
      rateAsked.add(current); // a person has helped: ask how it went
      showReleased(current);
      showSession();
    }
    break;
  case "ended":
    touchSession(ev.session_id, { status: "ended", help_requested: false });
    if (ev.session_id === current) showSession();
    break;
  case "rated":
    touchSession(ev.session_id, { rating: ev.rating });
    if (ev.session_id === current) {
      $("rate-thanks").hidden = !rateSent.has(current);
      showSession();
    }
    break;
  case "error":
    if (ev.code === "not_found" && ev.session_id && ev.session_id === current) {
      sessions.delete(current);
      newChat();
      setStatus("That conversation is no longer available.", "error");
      break;
    }
    setStatus(ev.message || "Something went wrong.", "error");
    break;
  }
}

// Composer

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (pending.some((p) => !p.id && !p.error)) {
    setStatus("Wait for the files to finish uploading.", "warn");
    return;
  }
  const files = pending.filter((p) => p.id).map((p) => p.id);
  if (!text.trim() && files.length === 0) return;
  const id = newId();
  const cmd = { type: "send", id, text, model: $("model").value || undefined };
  if (files.length) cmd.attachments = files;
  if (current) {
    cmd.session_id = current;
    // Continue the branch on screen, whichever version it shows.
    const parent = log.leafId();
    if (parent) cmd.parent_id = parent;
  } else pendingNew = id;
  if (!conn?.send(cmd)) {
    setStatus("Not connected; your message was not sent. Reconnecting…", "warn");
    return;
  }
  setStatus("");
  $("text").value = "";
  clearPending();
  fitComposer();
});

const fitComposer = autoGrow($("text"));
$("text").addEventListener("input", () => { if ($("text").value.trim()) notifyTyping(); });
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

$("stop").addEventListener("click", () => {
  if (current) conn?.send({ type: "stop", session_id: current });
});

$("help").addEventListener("click", () => {
  if (!current || !conn?.send({ type: "help", session_id: current })) return;
  touchSession(current, { help_requested: true });
  showSession();
  $("text").focus();
});

$("end").addEventListener("click", () => {
  if (!current || !confirm("End this conversation? It stays readable, but no new messages can be sent.")) return;
  conn?.send({ type: "end", session_id: current });
});

// Export downloads everything of the user as one JSON file.
$("export").addEventListener("click", async () => {
  let resp;
  try {
    resp = await fetch(base + "api/me/export", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch {
    setStatus("The server cannot be reached; no export.", "error");
    return;
  }
  if (!resp.ok) {
    setStatus("The export failed; try again shortly.", "error");
    return;
  }
  const url = URL.createObjectURL(await resp.blob());
  const a = el("a", { href: url, download: "chatbox-export.json" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
});

// Share

function hideShare() {
  $("share-panel").hidden = true;
  $("share").setAttribute("aria-expanded", "false");
}

$("share").addEventListener("click", async () => {
  if (!$("share-panel").hidden) return hideShare();
  const id = current;
  try {
    const data = await api(base, token, "POST", `api/sessions/${encodeURIComponent(id)}/share`);
    if (id !== current) return;
    $("share-url").value = new URL(`share/#${encodeURIComponent(data.share_id)}`, location.origin + base).href;
    $("share-panel").hidden = false;
    $("share").setAttribute("aria-expanded", "true");
    $("share-url").select();
    setStatus("Anyone with this link can read the conversation.");
  } catch (e) {
    setStatus(`Could not create a share link: ${e.message}`, "error");
  }
});

$("copy").addEventListener("click", async () => {
  $("share-url").select();
  try {
    await navigator.clipboard.writeText($("share-url").value);
  } catch {
    document.execCommand("copy"); // plain-http pages have no clipboard API
  }
  setStatus("Link copied.");
});

$("revoke").addEventListener("click", async () => {
  try {
    await api(base, token, "DELETE", `api/sessions/${encodeURIComponent(current)}/share`);
    hideShare();
    setStatus("The share link was revoked; it no longer opens.");
    $("share").focus();
  } catch (e) {
    setStatus(`Could not revoke the link: ${e.message}`, "error");
  }
});

// Rename and delete

function hideRename() {
  $("rename-form").hidden = true;
  $("title").hidden = false;
  $("rename").hidden = false;
}

$("rename").addEventListener("click", () => {
  $("rename-input").value = sessions.get(current)?.title || "";
  $("title").hidden = true;
  $("rename").hidden = true;
  $("rename-form").hidden = false;
  $("rename-input").select();
  $("rename-input").focus();
});

$("rename-cancel").addEventListener("click", () => { hideRename(); $("rename").focus(); });
$("rename-input").addEventListener("keydown", (e) => { if (e.key === "Escape") { hideRename(); $("rename").focus(); } });

$("rename-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const id = current;
  const title = $("rename-input").value.trim();
  if (!title) return;
  try {
    const data = await api(base, token, "PATCH", `api/sessions/${encodeURIComponent(id)}`, { title });
    touchSession(id, { title: data.session?.title || title });
    hideRename();
    if (id === current) showSession();
    $("rename").focus();
  } catch (err) {
    setStatus(`Could not rename the conversation: ${err.message}`, "error");
  }
});

function hideDelete() {
  $("delete-panel").hidden = true;
  $("delete").setAttribute("aria-expanded", "false");
}

$("delete").addEventListener("click", () => {
  if (!$("delete-panel").hidden) return hideDelete();
  $("delete-panel").hidden = false;
  $("delete").setAttribute("aria-expanded", "true");
  $("delete-cancel").focus();
});

$("delete-cancel").addEventListener("click", () => { hideDelete(); $("delete").focus(); });

$("delete-confirm").addEventListener("click", async () => {
  const id = current;
  try {
    await api(base, token, "DELETE", `api/sessions/${encodeURIComponent(id)}`);
    hideDelete();
    sessions.delete(id);
    renderSessions();
    if (id === current) newChat();
    setStatus("The conversation was deleted.");
  } catch (err) {
    setStatus(`Could not delete the conversation: ${err.message}`, "error");
  }
});

if (token) start();
else showSignIn();

// Satisfaction: after a person hands the conversation back, or once it has
// ended, the page asks for a 1–5 rating with an optional comment (rate).
// It asks once per conversation unless dismissed; a rated one is not asked.

function showRating() {
  const s = sessions.get(current);
  const due = !!current && !s?.rating && !rateDismissed.has(current) &&
    (s?.status === "ended" || rateAsked.has(current));
  if (due && $("rate-panel").hidden) {
    rateScore = 0;
    $("rate-comment").value = "";
    renderScores();
  }
  $("rate-panel").hidden = !due;
  if (!rateSent.has(current)) $("rate-thanks").hidden = true;
}

function renderScores() {
  for (const b of $("rate-panel").querySelectorAll("[data-score]")) {
    b.setAttribute("aria-pressed", String(Number(b.dataset.score) === rateScore));
  }
  $("rate-send").disabled = rateScore === 0;
}

$("rate-panel").querySelector(".rate-scores").addEventListener("click", (e) => {
  const b = e.target.closest("[data-score]");
  if (!b) return;
  rateScore = Number(b.dataset.score);
  renderScores();
});

$("rate-panel").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!current || rateScore === 0) return;
  const cmd = { type: "rate", id: newId(), session_id: current, score: rateScore };
  const comment = $("rate-comment").value.trim();
  if (comment) cmd.comment = comment;
  if (command(cmd)) rateSent.add(current);
});

$("rate-dismiss").addEventListener("click", () => {
  rateDismissed.add(current);
  showRating();
});

// Attachments: files chosen with the file input, dropped on the composer
// or recorded as voice notes are uploaded at once (with progress) and sent
// with the next message; what is in the conversation is fetched with the
// token and shown from a blob: URL (an img or audio element cannot send
// the Authorization header).

const pending = []; // {name, li, id?, error?}
const blobURLs = new Map(); // attachment id → Promise of its blob: URL

function clearPending() {
  pending.length = 0;
  $("pending").replaceChildren();
  $("pending").hidden = true;
  $("text").required = true;
}

function uploadError(status, code, name, message) {
  if (status === 413 || code === "too_large") return `“${name}” is too large: ${message || "over the upload limit"}.`;
  if (status === 415 || code === "unsupported") return `“${name}” is a kind of file that cannot be sent here.`;
  if (status === 0) return `“${name}” was not uploaded: the server cannot be reached.`;
  return `“${name}” was not uploaded: ${message || "something went wrong"}.`;
}

function uploadFile(file, name = file.name) {
  const bar = el("progress", { max: 100, value: 0, attrs: { "aria-label": `Uploading ${name}` } });
  const remove = el("button", { type: "button", className: "ghost small", attrs: { "aria-label": `Remove ${name}` } }, "×");
  const li = el("li", {}, el("span", {}, name), bar, remove);
  const p = { name, li };
  pending.push(p);
  $("pending").append(li);
  $("pending").hidden = false;
  $("text").required = false;
  remove.onclick = () => {
    pending.splice(pending.indexOf(p), 1);
    li.remove();
    if (pending.length === 0) clearPending();
  };
  const form = new FormData();
  form.append("file", file, name);
  const xhr = new XMLHttpRequest();
  xhr.open("POST", base + "api/attachments");
  xhr.setRequestHeader("Authorization", `Bearer ${token}`);
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total); };
  const fail = (msg) => {
    p.error = msg;
    li.classList.add("failed");
    bar.replaceWith(el("span", { role: "alert" }, msg));
    setStatus(msg, "error");
  };
  xhr.onerror = () => fail(uploadError(0, "", name));
  xhr.onload = () => {
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch { data = null; }
    if (xhr.status !== 201 || !data?.attachment) {
      fail(uploadError(xhr.status, data?.error?.code, name, data?.error?.message));
      return;
    }
    p.id = data.attachment.id;
    bar.value = 100;
    bar.replaceWith(el("span", { className: "visually-hidden" }, "uploaded"));
  };
  xhr.send(form);
}

$("file").addEventListener("change", () => {
  for (const f of $("file").files) uploadFile(f);
  $("file").value = "";
});
const composer = $("composer");
composer.addEventListener("dragover", (e) => {
  if (!e.dataTransfer?.types?.includes("Files")) return;
  e.preventDefault();
  composer.classList.add("dragging");
});
composer.addEventListener("dragleave", () => composer.classList.remove("dragging"));
composer.addEventListener("drop", (e) => {
  if (!e.dataTransfer?.files?.length) return;
  e.preventDefault();
  composer.classList.remove("dragging");
  for (const f of e.dataTransfer.files) uploadFile(f);
});

function blobURL(id) {
  if (!blobURLs.has(id)) {
    blobURLs.set(id, fetch(base + `api/attachments/${encodeURIComponent(id)}`, { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" })
      .then((r) => { if (!r.ok) throw new Error(String(r.status)); return r.blob(); })
      .then((b) => URL.createObjectURL(b)));
  }
  return blobURLs.get(id);
}

function fileView(f) {
  if (f.type.startsWith("image/")) {
    const img = el("img", { alt: f.name, title: f.name, loading: "lazy" });
    blobURL(f.id).then((u) => { img.src = u; }, () => { img.replaceWith(el("span", { className: "file" }, `${f.name} (unavailable)`)); });
    return img;
  }
  if (f.type.startsWith("audio/")) {
    const audio = el("audio", { controls: true, preload: "metadata", attrs: { "aria-label": f.name } });
    const transcript = el("figcaption", {}, "");
    blobURL(f.id).then((u) => { audio.src = u; }, () => {});
    api(base, token, "GET", `api/attachments/${encodeURIComponent(f.id)}/meta`)
      .then((d) => { if (d?.attachment?.transcript) transcript.textContent = d.attachment.transcript; }, () => {});
    return el("figure", {}, audio, transcript);
  }
  const a = el("a", { href: "#", download: f.name }, f.name);
  a.addEventListener("click", (e) => {
    if (a.dataset.ready) return;
    e.preventDefault();
    blobURL(f.id).then((u) => { a.href = u; a.dataset.ready = "1"; a.click(); }, () => setStatus(`“${f.name}” cannot be downloaded.`, "error"));
  });
  return a;
}

// Voice notes: MediaRecorder, with a visible recording state; Stop
// recording attaches the note, Cancel drops it.
let recorder = null;
let recTimer = 0;
$("record").disabled = !(window.MediaRecorder && navigator.mediaDevices?.getUserMedia);
$("record").addEventListener("click", async () => {
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    setStatus("The microphone is not available, or permission was refused.", "error");
    return;
  }
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    clearInterval(recTimer);
    $("recording").hidden = true;
    $("record").hidden = false;
    if (recorder?.cancelled || chunks.length === 0) { recorder = null; return; }
    const type = (recorder.mimeType || "audio/webm").split(";")[0];
    const ext = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    recorder = null;
    uploadFile(new Blob(chunks, { type }), `voice-note-${new Date().toISOString().slice(11, 19).replaceAll(":", "")}.${ext}`);
  };
  const started = Date.now();
  $("rec-time").textContent = "Recording… 0:00";
  recTimer = setInterval(() => {
    const s = Math.floor((Date.now() - started) / 1000);
    $("rec-time").textContent = `Recording… ${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }, 500);
  $("recording").hidden = false;
  $("record").hidden = true;
  recorder.start();
});
$("rec-stop").addEventListener("click", () => recorder?.stop());
$("rec-cancel").addEventListener("click", () => { if (recorder) { recorder.cancelled = true; recorder.stop(); } });
