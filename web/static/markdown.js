// Markdown for message text, shared by the chat page, the admin dashboard
// and the shared view through MessageLog (common.js), the one place that
// puts message text into the page.
//
// Text is parsed by markdown-it (CommonMark with GFM tables and
// strikethrough; raw HTML off, so HTML in a message stays text), code is
// highlighted by highlight.js, and the result passes DOMPurify, which
// returns DOM nodes rather than markup: no script, no event-handler
// attribute, no javascript: URL and no style attribute (the page's policy
// forbids inline styles) survives. Links open in a new tab with
// rel="noopener noreferrer". The libraries are vendored, checksummed files
// (vendor/SOURCES, web/vendor.sh).
import markdownit from "./vendor/markdown-it.min.js";
import DOMPurify from "./vendor/purify.es.js";
import hljs from "./vendor/highlight.min.js";

const md = markdownit({
  html: false,
  linkify: true,
  breaks: true,
  highlight(code, lang) {
    if (lang && hljs.getLanguage(lang)) {
      try {
        return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
      } catch { /* fall through to plain text */ }
    }
    return ""; // markdown-it escapes it
  },
});
// markdown-it's default check already refuses javascript:, vbscript:,
// file: and data: URLs other than images; DOMPurify checks again below.

const PURIFY = {
  RETURN_DOM_FRAGMENT: true,
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed"],
  FORBID_ATTR: ["style", "id", "name"],
  ALLOW_DATA_ATTR: false,
};

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    if (node.hasAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  }
  if (node.tagName === "IMG") {
    // A remote image would load from elsewhere, which the policy refuses:
    // show its alt text as a link instead (done after sanitizing, below).
    node.setAttribute("loading", "lazy");
  }
});

// toFragment is the sanitized DOM of text as Markdown.
function toFragment(text) {
  const frag = DOMPurify.sanitize(md.render(text), PURIFY);
  for (const img of frag.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (!src.startsWith("/") || src.startsWith("//")) {
      const a = document.createElement("a");
      a.textContent = img.getAttribute("alt") || src;
      if (/^https?:/i.test(src)) {
        a.href = src;
        a.target = "_blank";
        a.rel = "noopener noreferrer";
      }
      img.replaceWith(a);
    }
  }
  for (const pre of frag.querySelectorAll("pre")) {
    const code = pre.querySelector("code");
    if (code && !code.classList.contains("hljs")) code.classList.add("hljs");
  }
  return frag;
}

// copyButton copies the code of its block.
function copyButton(code) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "copy-code ghost small";
  b.textContent = "Copy";
  b.setAttribute("aria-label", "Copy");
  b.addEventListener("click", async () => {
    const text = code.textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // A plain-http page has no clipboard API: a copy command whose
      // event carries the text does the same.
      const put = (ev) => { ev.clipboardData.setData("text/plain", text); ev.preventDefault(); };
      document.addEventListener("copy", put, { once: true });
      document.execCommand("copy");
      document.removeEventListener("copy", put);
    }
    b.textContent = "Copied";
    setTimeout(() => { b.textContent = "Copy"; }, 1500);
  });
  return b;
}

// decorate adds a Copy button to each code block of a top-level node.
function decorate(node) {
  const blocks = node.nodeName === "PRE" ? [node] : node.querySelectorAll?.("pre") || [];
  for (const pre of blocks) {
    const code = pre.querySelector("code");
    if (!code) continue;
    const wrap = document.createElement("div");
    wrap.className = "code-block";
    pre.replaceWith(wrap);
    wrap.append(copyButton(code), pre);
    if (pre === node) return wrap;
  }
  return node;
}

// render puts text, as Markdown, into target. While a reply streams it is
// called again with the longer text: the new DOM is compared block by block
// with what is shown, and only the blocks that changed (in practice, the
// last one or two) are replaced, so earlier blocks, their Copy buttons, a
// selection in them and the scroll position stay as they are, and nothing
// flickers.
export function renderMarkdown(target, text) {
  if (target.dataset.source === text) return;
  target.dataset.source = text;
  const fresh = [...toFragment(text).childNodes].filter((n) => n.nodeType !== Node.TEXT_NODE || n.textContent.trim() !== "");
  const shown = [...target.childNodes];
  let i = 0;
  for (; i < fresh.length; i++) {
    const old = shown[i];
    if (old && old.__source && old.__source.isEqualNode(fresh[i])) continue;
    const node = decorate(fresh[i].cloneNode(true));
    node.__source = fresh[i];
    if (old) target.replaceChild(node, old);
    else target.append(node);
  }
  for (; i < shown.length; i++) shown[i].remove();
}
