// Chat: conversations, a streamed answer rendered as Markdown, citations that open their passage, and the
// grounding check's marks on sentences the sources do not back. The open conversation lives in the URL (?c=).

import { api, ApiError, items, postEvents } from "./api.js";
import { flash, run, start } from "./layout.js";
import { renderMarkdown } from "./markdown.js";
import { $, clearError, confirmAction, copyText, el, formatBytes, formatDate, kbLabels, showError } from "./ui.js";

const CITATION = /\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]/g;
const MARKS = {
  unsupported: "Not supported by the cited source",
  uncited: "No source cited",
};
const NEAR_BOTTOM_PX = 120;

const list = $("#conversation-list");
const messages = $("#messages");
const composer = $("#composer");
const textarea = $("#message");
const kbSelect = $("#kb");
const status = $("#chat-status");

let kbs = [];
let labels = new Map();
let conversations = [];
let current = null; // the open conversation, as GET /api/conversations/{id} describes it (less its messages)
let answering = null; // {controller} while an answer streams

// ---- answers ----

/** Offsets from the server count code points; JavaScript strings count UTF-16 units. */
function codeUnits(text) {
  if (!/[\uD800-\uDFFF]/.test(text)) return (i) => i;
  const map = [];
  let unit = 0;
  for (const ch of text) {
    map.push(unit);
    unit += ch.length;
  }
  map.push(unit);
  return (i) => map[Math.max(0, Math.min(i, map.length - 1))];
}

/** The answer's spans that the grounding check flagged, as {start, end, kind} in UTF-16 offsets. */
function flaggedRanges(text, sentences) {
  const at = codeUnits(text);
  const out = [];
  let cursor = 0;
  for (const s of sentences || []) {
    const kind = s.supported === false ? "unsupported" : s.supported == null && s.factual ? "uncited" : null;
    let startAt = at(s.start || 0);
    let endAt = at(s.end || 0);
    if (text.slice(startAt, endAt) !== s.text) {
      startAt = text.indexOf(s.text, cursor);
      if (startAt === -1) continue;
      endAt = startAt + s.text.length;
    }
    cursor = endAt;
    if (kind) out.push({ start: startAt, end: endAt, kind });
  }
  return out;
}

function citationNode(n, byNumber) {
  const citation = byNumber.get(n);
  if (!citation) return el("span", { class: "cite pending", title: byNumber.size ? "No such source" : "" }, String(n));
  const name = citation.title || citation.path;
  return el("button", { type: "button", class: "cite", "aria-label": `Source ${n}: ${name}`, title: name, onclick: (e) => openSource(citation, e.currentTarget) }, String(n));
}

/** Plain text of the answer, split at flagged sentences' edges; each flagged piece in a marked span. */
function appendPieces(parent, string, offset, ranges) {
  const cuts = new Set([0, string.length]);
  for (const r of ranges) {
    for (const edge of [r.start - offset, r.end - offset]) if (edge > 0 && edge < string.length) cuts.add(edge);
  }
  const sorted = [...cuts].sort((a, b) => a - b);
  for (let i = 0; i + 1 < sorted.length; i += 1) {
    const piece = string.slice(sorted[i], sorted[i + 1]);
    const at = offset + sorted[i];
    const range = ranges.find((r) => r.start <= at && at < r.end);
    parent.append(range ? el("span", { class: `claim ${range.kind}`, title: MARKS[range.kind] }, piece) : piece);
    appendNotes(parent, at, offset + sorted[i + 1], ranges);
  }
}

/** After the last piece of a flagged sentence, say why it is marked, for screen readers. */
function appendNotes(parent, from, to, ranges) {
  for (const r of ranges) {
    if (r.end > from && r.end <= to) parent.append(el("span", { class: "visually-hidden" }, ` (${MARKS[r.kind]})`));
  }
}

function answerText({ citations = [], sentences = [], content }) {
  const byNumber = new Map(citations.map((c) => [Number(c.n), c]));
  const ranges = flaggedRanges(content, sentences);
  return (string, offset) => {
    const fragment = document.createDocumentFragment();
    let last = 0;
    for (const match of string.matchAll(CITATION)) {
      appendPieces(fragment, string.slice(last, match.index), offset + last, ranges);
      const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
      fragment.append(el("span", { class: "cites" }, numbers.map((n) => citationNode(n, byNumber))));
      last = match.index + match[0].length;
      appendNotes(fragment, offset + match.index, offset + last, ranges);
    }
    appendPieces(fragment, string.slice(last), offset + last, ranges);
    return fragment;
  };
}

function ms(value) {
  return value === null || value === undefined ? null : `${Math.round(Number(value))} ms`;
}

function metaLine(answer) {
  const t = answer.timings || {};
  const usage = answer.usage || answer;
  const tokens = Number(usage.prompt_tokens || 0) + Number(usage.completion_tokens || 0);
  const cost = Number(usage.cost || 0);
  const parts = [
    answer.model,
    t.retrieval_ms !== undefined && `retrieval ${ms(t.retrieval_ms)}`,
    t.ttft_ms !== undefined && t.ttft_ms !== null && `first token ${ms(t.ttft_ms)}`,
    t.generation_ms !== undefined && `generation ${ms(t.generation_ms)}`,
    t.grounding_ms !== undefined && `grounding ${ms(t.grounding_ms)}`,
    tokens > 0 && `${tokens.toLocaleString()} tokens`,
    cost > 0 && `$${cost.toFixed(4)}`,
  ];
  return parts.filter(Boolean).join(" · ");
}

function checkSummary(sentences) {
  const count = (kind) => (sentences || []).filter((s) => (kind === "unsupported" ? s.supported === false : s.supported == null && s.factual)).length;
  const unsupported = count("unsupported");
  const uncited = count("uncited");
  const parts = [];
  if (unsupported) parts.push(el("span", { class: "claim unsupported" }, `${unsupported} sentence${unsupported === 1 ? " is" : "s are"} not supported by the cited source`));
  if (uncited) parts.push(el("span", { class: "claim uncited" }, `${uncited} sentence${uncited === 1 ? " cites" : "s cite"} no source`));
  return parts.length ? el("p", { class: "check-summary small" }, parts.flatMap((p, i) => (i ? [" · ", p] : [p]))) : null;
}

function copyButton(answer) {
  const button = el("button", { type: "button", class: "button secondary small copy", "aria-label": "Copy answer" }, "Copy");
  button.addEventListener("click", async () => {
    const copied = await copyText(answer.content, status);
    button.textContent = copied ? "Copied" : "Copy failed";
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
  return button;
}

function notice(answer) {
  if (answer.stopped || /^stopped/i.test(answer.error || "")) return el("p", { class: "alert info small notice" }, "Stopped before the answer was complete.");
  if (!answer.error) return null;
  const detail = answer.error.charAt(0).toUpperCase() + answer.error.slice(1);
  return el("p", { class: "alert error small notice", role: "alert" }, detail.endsWith(".") ? detail : `${detail}.`);
}

/** Fill an assistant message's element from `answer` {content, citations, sentences, model, timings…}. */
function renderAnswer(node, answer) {
  const body = el("div", { class: "answer markdown" }, renderMarkdown(answer.content, { text: answerText(answer) }));
  if (answer.streaming && !answer.content) body.append(el("p", { class: "muted typing" }, "Searching your documents…"));
  const sources = (answer.citations || []).map((c) =>
    el(
      "li",
      {},
      el("button", { type: "button", class: "source-link", onclick: (e) => openSource(c, e.currentTarget) },
        el("span", { class: "cite static" }, String(c.n)),
        el("span", { class: "source-name" }, c.title || c.path),
        c.heading ? el("span", { class: "muted small" }, c.heading) : null),
    ),
  );
  node.replaceChildren(
    notice(answer) || "",
    body,
    answer.streaming ? "" : checkSummary(answer.sentences) || "",
    sources.length ? el("div", { class: "sources" }, el("h3", { class: "sources-title" }, "Sources"), el("ol", {}, sources)) : "",
    answer.streaming || !answer.content ? "" : el("div", { class: "message-meta" }, el("span", { class: "muted small" }, metaLine(answer)), copyButton(answer)),
  );
}

function messageNode(message) {
  if (message.role === "user") return el("li", { class: "message user" }, el("h2", { class: "visually-hidden" }, "You asked"), el("div", { class: "bubble" }, message.content));
  const node = el("li", { class: "message assistant" });
  const frame = el("div", { class: "answer-frame" });
  node.append(el("h2", { class: "visually-hidden" }, "Memex answered"), frame);
  renderAnswer(frame, message);
  return node;
}

function showMessages(found) {
  messages.replaceChildren(...found.map(messageNode));
  $("#chat-empty").hidden = found.length > 0;
}

// ---- the source panel ----

let sourceRequest = 0;

async function openSource(citation, opener) {
  const dialog = $("#source-dialog");
  const request = ++sourceRequest;
  $("#source-title").textContent = `[${citation.n}] ${citation.title || citation.path || "Source"}`;
  const details = [
    ["File", citation.path],
    ["Knowledge base", labels.get(String(citation.kb))],
    ["Section", citation.heading],
    ["Location", citation.location],
  ].filter(([, value]) => value);
  $("#source-details").replaceChildren(...details.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  $("#source-quote").replaceChildren(el("mark", {}, citation.quote || ""));
  const download = $("#source-download");
  download.hidden = true;
  $("#source-status").textContent = "Looking up the document…";
  dialog.addEventListener("close", () => opener && opener.isConnected && opener.focus(), { once: true });
  if (!dialog.open) dialog.showModal();
  $("#source-close").focus();
  try {
    const doc = await api(`/api/documents/${encodeURIComponent(citation.document_id)}`);
    if (request !== sourceRequest) return;
    download.href = `/api/documents/${encodeURIComponent(doc.id)}/file`;
    download.download = String(doc.name || citation.path || "document").split("/").pop();
    download.textContent = `Download original (${formatBytes(doc.size)})`;
    download.hidden = false;
    $("#source-status").textContent = doc.indexed_at ? `Indexed ${formatDate(doc.indexed_at, { time: true })}.` : "";
  } catch (error) {
    if (request !== sourceRequest) return;
    $("#source-status").textContent = error.status === 404 ? "This document has been deleted, or you can no longer read it." : error.message;
  }
}

function setUpSourceDialog() {
  const dialog = $("#source-dialog");
  $("#source-close").addEventListener("click", () => dialog.close());
  // A click on the backdrop lands on the <dialog> itself.
  dialog.addEventListener("click", (event) => event.target === dialog && dialog.close());
}

// ---- conversations ----

function conversationUrl(id) {
  return id ? `/chat?c=${encodeURIComponent(id)}` : "/chat";
}

function renderConversations() {
  const rows = conversations.map((c) => {
    const isCurrent = current && String(current.id) === String(c.id);
    return el(
      "li",
      { dataset: { id: c.id } },
      el("a", { href: conversationUrl(c.id), class: "conversation-link", "aria-current": isCurrent ? "page" : null, onclick: (e) => choose(e, c.id) },
        el("span", { class: "conversation-title" }, c.title),
        el("span", { class: "muted small" }, formatDate(c.updated_at, { time: true }))),
    );
  });
  list.replaceChildren(...rows);
  $("#conversations-empty").hidden = rows.length > 0;
  $("#toggle-conversations").textContent = `Conversations (${rows.length})`;
}

async function loadConversations() {
  conversations = items(await api("/api/conversations", { params: { limit: 200 } }), "conversations");
  renderConversations();
}

function showHeader() {
  $("#chat-title").textContent = current ? current.title : "New chat";
  document.title = `${current ? current.title : "Chat"} · Memex`;
  $("#conversation-actions").hidden = !current;
  $("#rename-form").hidden = true;
  $("#chat-title").hidden = false;
}

function showKbChoice(kbIds) {
  $("#kb-conversation")?.remove();
  const ids = (kbIds || []).map(String);
  if (ids.length > 1) {
    kbSelect.append(el("option", { id: "kb-conversation", value: "conversation" }, `This conversation’s ${ids.length} knowledge bases`));
    kbSelect.value = "conversation";
  } else {
    kbSelect.value = ids.length === 1 && labels.has(ids[0]) ? ids[0] : "";
  }
}

/** What to send as `kb`: the choice, or every KB to widen a conversation that was limited to some. */
function kbChoice() {
  if (kbSelect.value === "conversation") return undefined;
  if (kbSelect.value) return kbSelect.value;
  return current && current.kb_ids && current.kb_ids.length ? kbs.map((kb) => kb.id) : undefined;
}

function stopAnswering() {
  if (answering) answering.controller.abort();
}

function newChat({ push = true } = {}) {
  stopAnswering();
  current = null;
  if (push && location.search) history.pushState(null, "", "/chat");
  showMessages([]);
  showHeader();
  showKbChoice([]);
  renderConversations();
  collapseConversations();
  textarea.focus();
}

async function openConversation(id, { push = false } = {}) {
  stopAnswering();
  if (push) history.pushState(null, "", conversationUrl(id));
  messages.setAttribute("aria-busy", "true");
  try {
    const data = await api(`/api/conversations/${encodeURIComponent(id)}`);
    current = { ...data, messages: undefined };
    showMessages(data.messages || []);
    showHeader();
    showKbChoice(data.kb_ids);
    renderConversations();
    window.scrollTo(0, document.body.scrollHeight);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    history.replaceState(null, "", "/chat");
    newChat({ push: false });
    flash("That conversation does not exist any more, or it is not yours.");
  } finally {
    messages.removeAttribute("aria-busy");
  }
}

function choose(event, id) {
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  collapseConversations();
  openConversation(id, { push: true }).then(() => $("#chat-title").focus()).catch(flash);
}

function startRename() {
  const form = $("#rename-form");
  form.title.value = current.title;
  form.hidden = false;
  $("#chat-title").hidden = true;
  $("#conversation-actions").hidden = true;
  form.title.select();
  form.title.focus();
}

async function rename(event) {
  event.preventDefault();
  const title = event.currentTarget.title.value.trim();
  try {
    current = { ...current, ...(await api(`/api/conversations/${encodeURIComponent(current.id)}`, { method: "PATCH", json: { title } })) };
  } catch (error) {
    flash(error);
    return;
  }
  showHeader();
  $("#rename").focus();
  status.textContent = `Renamed to “${current.title}”.`;
  await loadConversations();
}

function cancelRename() {
  showHeader();
  $("#rename").focus();
}

async function remove() {
  const ok = await confirmAction({ title: "Delete conversation?", message: `“${current.title}” and all its messages will be deleted.` });
  if (!ok) return;
  try {
    await api(`/api/conversations/${encodeURIComponent(current.id)}`, { method: "DELETE" });
  } catch (error) {
    flash(error);
    return;
  }
  status.textContent = `Deleted “${current.title}”.`;
  newChat();
  await loadConversations();
}

function collapseConversations() {
  $("#conversations").classList.remove("open");
  $("#toggle-conversations").setAttribute("aria-expanded", "false");
}

function toggleConversations() {
  const open = $("#conversations").classList.toggle("open");
  $("#toggle-conversations").setAttribute("aria-expanded", String(open));
}

// ---- asking ----

function setAnswering(controller) {
  answering = controller ? { controller } : null;
  textarea.disabled = Boolean(controller);
  kbSelect.disabled = Boolean(controller);
  $("#send").hidden = Boolean(controller);
  $("#stop").hidden = !controller;
  if (controller) $("#stop").focus();
}

function nearBottom() {
  return window.innerHeight + window.scrollY >= document.body.scrollHeight - NEAR_BOTTOM_PX;
}

async function ask(question) {
  const userNode = messageNode({ role: "user", content: question });
  // Busy while it streams, so that screen readers read the answer once, when it is complete.
  const answerNode = el("li", { class: "message assistant", "aria-busy": "true" }, el("h2", { class: "visually-hidden" }, "Memex answered"));
  const frame = answerNode.appendChild(el("div", { class: "answer-frame" }));
  const answer = { content: "", citations: [], sentences: [], streaming: true };
  messages.append(userNode, answerNode);
  $("#chat-empty").hidden = true;
  window.scrollTo(0, document.body.scrollHeight);
  let frameRequest = 0;
  const draw = () => {
    frameRequest = 0;
    const follow = nearBottom();
    renderAnswer(frame, answer);
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  };
  const schedule = () => (frameRequest ||= requestAnimationFrame(draw));

  const controller = new AbortController();
  setAnswering(controller);
  status.textContent = "Answering…";
  const conversationId = current && current.id;
  let done = null;
  try {
    const json = { message: question, conversation_id: conversationId || undefined, kb: kbChoice() };
    for await (const { event, data } of postEvents("/api/chat", { json, signal: controller.signal })) {
      if (event === "token") answer.content += data.text;
      else if (event === "citations") Object.assign(answer, { citations: data.citations || [], sentences: data.sentences || [] });
      else if (event === "error") Object.assign(answer, { error: data.detail, content: "" }); // a fallback answer follows
      else if (event === "done") Object.assign(answer, (done = data));
      schedule();
    }
    if (!done) answer.error ||= "The answer stopped before it was complete. Try again.";
  } catch (error) {
    if (error.name === "AbortError") answer.stopped = true;
    else if (error instanceof ApiError) {
      // Refused before it started (too long, rate limited…): give the question back to edit and resend.
      userNode.remove();
      answerNode.remove();
      $("#chat-empty").hidden = messages.children.length > 0;
      setAnswering(null);
      textarea.value = question;
      showError($("#composer-error"), error);
      textarea.focus();
      return;
    } else answer.error = "The connection to Memex was lost before the answer was complete.";
  }
  cancelAnimationFrame(frameRequest);
  answer.streaming = false;
  draw();
  answerNode.removeAttribute("aria-busy");
  setAnswering(null);
  status.textContent = answer.stopped ? "Stopped." : answer.error && !answer.content ? "The answer failed." : "Answer ready.";
  textarea.focus();
  if (done && String(done.conversation_id) !== String(conversationId || "")) {
    current = { id: done.conversation_id, title: question, kb_ids: [] };
    history.replaceState(null, "", conversationUrl(done.conversation_id));
  }
  await loadConversations();
  if (current) {
    const found = conversations.find((c) => String(c.id) === String(current.id));
    if (found) current = found;
    showHeader();
    renderConversations();
  }
}

async function submit(event) {
  event.preventDefault();
  const question = textarea.value.trim();
  if (!question || answering) return;
  clearError($("#composer-error"));
  textarea.value = "";
  try {
    await ask(question);
  } catch (error) {
    setAnswering(null);
    flash(error);
  }
}

function setUpComposer() {
  composer.addEventListener("submit", submit);
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  $("#stop").addEventListener("click", stopAnswering);
}

async function showUrl() {
  const id = new URLSearchParams(location.search).get("c");
  if (id) await openConversation(id);
  else newChat({ push: false });
}

run(async () => {
  const user = await start();
  setUpComposer();
  setUpSourceDialog();
  $("#new-chat").addEventListener("click", () => newChat());
  $("#toggle-conversations").addEventListener("click", toggleConversations);
  $("#rename").addEventListener("click", startRename);
  $("#rename-form").addEventListener("submit", rename);
  $("#rename-cancel").addEventListener("click", cancelRename);
  $("#rename-form").addEventListener("keydown", (e) => e.key === "Escape" && cancelRename());
  $("#delete").addEventListener("click", remove);
  window.addEventListener("popstate", () => showUrl().catch(flash));
  const [kbData] = await Promise.all([api("/api/kbs"), loadConversations()]);
  kbs = items(kbData, "kbs");
  labels = kbLabels(kbs, user);
  kbSelect.append(...kbs.map((kb) => el("option", { value: kb.id }, labels.get(String(kb.id)))));
  $("#no-documents").hidden = kbs.some((kb) => Number(kb.document_count) > 0);
  await showUrl();
  textarea.disabled = false; // only now: a question sent earlier would be cut off by opening the conversation
  textarea.focus();
});
