// The read-only view of a shared conversation: /share/#<share_id>. It needs
// no token; a revoked or unknown link answers 404.
import { appBase, api, shortTime, MessageLog } from "../common.js";

const base = appBase("share");
const $ = (id) => document.getElementById(id);

async function show() {
  const shareId = decodeURIComponent(location.hash.slice(1));
  const log = new MessageLog($("log"));
  if (!shareId) {
    $("status").textContent = "This link is incomplete.";
    return;
  }
  try {
    const data = await api(base, "", "GET", `api/shared/${encodeURIComponent(shareId)}`);
    const s = data.session || {};
    $("title").textContent = s.title || "Shared conversation";
    document.title = `${s.title || "Shared conversation"} · Chatbox`;
    $("meta").textContent = s.updated_at ? `Last updated ${shortTime(s.updated_at)}` : "";
    $("status").textContent = "";
    for (const m of data.messages || []) log.upsert(m);
    if (!data.messages?.length) $("status").textContent = "This conversation has no messages yet.";
  } catch (e) {
    $("title").textContent = "Shared conversation";
    $("status").textContent = e.status === 404 ? "this link was revoked" : `The conversation could not be loaded: ${e.message}`;
  }
}

window.addEventListener("hashchange", show);
show();
