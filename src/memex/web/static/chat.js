// Chat: conversations, a streamed answer rendered as Markdown, citations that open their passage, and the
// grounding check's marks on sentences the sources do not back. The open conversation lives in the URL (?c=).

import { messageNode, renderAnswer } from "./answer.js";
import { api, ApiError, items, postEvents } from "./api.js";
import { flash, run, start } from "./layout.js";
import { $, clearError, confirmAction, el, formatBytes, formatDate, kbLabels, showError } from "./ui.js";

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
const view = { onCite: openSource, status };

function showMessages(found) {
  messages.replaceChildren(...found.map((message) => messageNode(message, view)));
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
  const open = $("#source-open");
  open.hidden = true;
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
    const chunk = citation.chunk_id === undefined || citation.chunk_id === null ? "" : `?chunk=${encodeURIComponent(citation.chunk_id)}`;
    open.href = `/documents/${encodeURIComponent(doc.id)}${chunk}`;
    open.hidden = false;
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
  const answer = { role: "assistant", content: "", citations: [], sentences: [], streaming: true };
  const userNode = messageNode({ role: "user", content: question }, view);
  const answerNode = messageNode(answer, view);
  const frame = $(".answer-frame", answerNode);
  // Busy while it streams, so that screen readers read the answer once, when it is complete.
  answerNode.setAttribute("aria-busy", "true");
  messages.append(userNode, answerNode);
  $("#chat-empty").hidden = true;
  window.scrollTo(0, document.body.scrollHeight);
  let frameRequest = 0;
  const draw = () => {
    frameRequest = 0;
    const follow = nearBottom();
    renderAnswer(frame, answer, view);
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
