// The document page: a document shown inside Memex with one passage (`?chunk=ID`, a search result's chunk_id)
// highlighted and scrolled into view. Markdown and HTML are rendered from the original text (safely: see
// markdown.js and safehtml.js), a PDF is shown as the text of all its pages, anything else as its passages' text.

import { api } from "./api.js";
import { run, start } from "./layout.js";
import { renderMarkdown } from "./markdown.js";
import { renderHtml } from "./safehtml.js";
import { $, el, formatBytes, kbLabels, timeElement } from "./ui.js";

const HEADING_SEPARATOR = " › ";
const BLOCKS = "p, li, pre, blockquote, td, th, dt, dd, figcaption, caption";
const FRONT_MATTER = /^\uFEFF?---[ \t]*\r?\n[\s\S]*?\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|$)/;

/** Text reduced to its words, lower-cased: rendered markup and stored text then compare equal. */
function words(text) {
  return (String(text || "").toLowerCase().match(/[\p{L}\p{N}]+/gu) || []).join(" ");
}

function markWhole(node) {
  const mark = el("mark", { class: "passage-mark" });
  mark.append(...node.childNodes);
  node.append(mark);
  node.classList.add("passage-block");
}

/** Every heading of the rendered document with the path of headings it sits under, in order. */
function headingPaths(root) {
  const stack = [];
  return [...root.querySelectorAll("h1, h2, h3, h4, h5, h6")].map((node) => {
    const level = Number(node.localName[1]);
    while (stack.length && stack[stack.length - 1].level >= level) stack.pop();
    stack.push({ level, text: words(node.textContent) });
    return { node, path: stack.map((h) => h.text) };
  });
}

function endsWith(path, tail) {
  return tail.length <= path.length && tail.every((part, i) => path[path.length - tail.length + i] === part);
}

/**
 * Mark the blocks of rendered Markdown or HTML that hold the passage: those under its heading whose words are part
 * of the passage (or hold its beginning or end, where the passage starts or stops inside a long paragraph).
 * Returns the element to scroll to: the first marked block, else the passage's heading, else null.
 */
function highlightRendered(root, passage) {
  const target = words(passage.text);
  const path = passage.heading ? passage.heading.split(HEADING_SEPARATOR).map(words) : [];
  const headings = headingPaths(root);
  const heading = path.length
    ? (headings.find((h) => endsWith(h.path, path)) || headings.find((h) => h.path[h.path.length - 1] === path[path.length - 1]))
    : null;
  // A passage without headings comes before the first one; one whose heading is not found is looked for anywhere.
  const after = heading ? headings[headings.indexOf(heading) + 1] : path.length ? undefined : headings[0];
  const inSection = (node) =>
    (!heading || heading.node.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING) &&
    (!after || after.node.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_PRECEDING);
  const blocks = [...root.querySelectorAll(BLOCKS)].filter((b) => !b.querySelector(BLOCKS) && inSection(b));
  const head = target.slice(0, 80);
  const tail = target.slice(-80);
  const marked = [];
  for (const block of blocks) {
    const text = words(block.textContent);
    if (!text || !target) continue;
    if (target.includes(text) || text.includes(head) || text.includes(tail)) marked.push(block);
    else if (marked.length) break;
  }
  marked.forEach(markWhole);
  if (marked.length) return marked[0];
  if (heading) {
    heading.node.classList.add("passage-heading");
    return heading.node;
  }
  return null;
}

function passageText(passage, wanted) {
  const text = el("p", { class: "doc-text", dataset: { chunk: String(passage.id) } });
  if (passage.id === wanted) text.append(el("mark", { class: "passage-mark" }, passage.text));
  else text.append(passage.text);
  return text;
}

/** A PDF: every page's text under its number, with links to each page; the passage's page is scrolled to. */
function renderPages(body, passages, wanted) {
  const pages = new Map();
  for (const passage of passages) {
    const page = passage.location || "";
    if (!pages.has(page)) pages.set(page, []);
    pages.get(page).push(passage);
  }
  const anchor = (page, i) => `page-${(/\d+/.exec(page) || [String(i + 1)])[0]}`;
  const named = [...pages.keys()];
  if (named.length > 1) {
    body.append(
      el("nav", { class: "doc-pages", "aria-label": "Pages" }, el("span", { class: "muted" }, "Pages"),
        ...named.map((page, i) => el("a", { href: `#${anchor(page, i)}` }, (/\d+/.exec(page) || [String(i + 1)])[0]))),
    );
  }
  named.forEach((page, i) => {
    const id = anchor(page, i);
    const label = page ? page.charAt(0).toUpperCase() + page.slice(1) : `Page ${i + 1}`;
    body.append(
      el("section", { class: "doc-page", id, "aria-labelledby": `${id}-title` },
        el("h2", { class: "doc-page-title", id: `${id}-title` }, label),
        ...pages.get(page).map((p) => passageText(p, wanted))),
    );
  });
}

/** Text of any other format (or Markdown and HTML too large to render): passages under their headings. */
function renderPassages(body, passages, wanted) {
  let heading = null;
  for (const passage of passages) {
    if (passage.heading && passage.heading !== heading) body.append(el("h2", { class: "doc-heading" }, passage.heading));
    heading = passage.heading;
    body.append(passageText(passage, wanted));
  }
}

function showDetails(data, user) {
  const doc = data.document;
  const label = kbLabels([data.kb], user).get(String(data.kb.id)) || data.kb.name;
  document.title = `${doc.title || doc.name} · Memex`;
  $("#doc-title").textContent = doc.title || doc.name;
  const details = [
    ["Knowledge base", el("a", { href: `/kbs/${encodeURIComponent(data.kb.id)}` }, label)],
    ["File", doc.name],
    ["Size", formatBytes(doc.size)],
    ["Indexed", doc.indexed_at ? timeElement(doc.indexed_at, { time: true }) : null],
  ].filter(([, value]) => value);
  $("#doc-details").replaceChildren(...details.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  const download = $("#doc-download");
  download.href = `/api/documents/${encodeURIComponent(doc.id)}/file`;
  download.download = String(doc.name).split("/").pop();
  download.setAttribute("aria-label", `Download ${String(doc.name).split("/").pop()} (${formatBytes(doc.size)})`);
  download.hidden = false;
}

function emptyMessage(doc) {
  if (doc.status === "failed") return `This document could not be read: ${doc.error || "no reason was recorded"}.`;
  if (doc.status !== "indexed") return "This document is still being indexed; its text appears here once it is.";
  return "This document holds no text to show.";
}

function render(data, wanted) {
  const body = $("#doc-body");
  const passage = data.passages.find((p) => p.id === wanted) || null;
  let target = null;
  if (data.source !== null && data.format === "markdown") {
    body.append(el("div", { class: "markdown doc-markdown" }, renderMarkdown(data.source.replace(FRONT_MATTER, ""), { headingOffset: 1 })));
  } else if (data.source !== null && data.format === "html") {
    body.append(el("div", { class: "markdown doc-markdown" }, renderHtml(data.source)));
  } else if (data.format === "pdf") {
    renderPages(body, data.passages, wanted);
  } else {
    renderPassages(body, data.passages, wanted);
  }
  if (passage) target = body.querySelector("mark.passage-mark") ? body.querySelector("mark.passage-mark") : highlightRendered(body, passage);
  body.hidden = !body.childNodes.length;
  const status = $("#doc-status");
  const where = passage ? [passage.heading, passage.location].filter(Boolean).join(" · ") : "";
  if (!data.passages.length && data.source === null) status.textContent = emptyMessage(data.document);
  else if (Number.isFinite(wanted) && !passage) {
    status.textContent = "The passage you followed is no longer in this document; here is the document as it is now.";
  } else if (passage) {
    // The passage itself when it was found in the rendered page, else the heading of its section.
    if (!target) status.textContent = `The passage could not be pinpointed in the rendered document${where ? `; it is at ${where}` : ""}.`;
    else if (target.classList.contains("passage-heading")) status.textContent = `The passage is in the highlighted section: ${where}.`;
    else status.textContent = where ? `The passage is highlighted: ${where}.` : "The passage is highlighted.";
  }
  else status.textContent = "";
  status.hidden = !status.textContent;
  if (target) {
    target.closest(".passage-block, .doc-text, .passage-heading")?.setAttribute("id", "passage");
    target.scrollIntoView({ block: "center" });
  }
}

function backLink() {
  // Back to the search that led here, query and all, when that is where the reader came from.
  try {
    const from = new URL(document.referrer);
    if (from.origin === location.origin && from.pathname === "/") $("#doc-back").href = from.pathname + from.search;
  } catch {
    // No referrer: the plain search page.
  }
}

run(async () => {
  const user = await start();
  backLink();
  const id = document.body.dataset.documentId || "";
  const wanted = Number.parseInt(new URLSearchParams(location.search).get("chunk") || "", 10);
  let data;
  try {
    data = await api(`/api/documents/${encodeURIComponent(id)}/text`);
  } catch (error) {
    // An unknown id, a malformed one and a document the reader may not see look the same, as in the API.
    if (error.status !== 404 && error.status !== 422) throw error;
    document.title = "Document not found · Memex";
    $("#doc-title").textContent = "Document not found";
    $("#doc-status").hidden = true;
    $("#doc-not-found").hidden = false;
    return;
  }
  showDetails(data, user);
  render(data, wanted);
});
