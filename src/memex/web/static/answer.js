// One message of the chat: the answer as Markdown, its [n] citations as buttons, the sentences the grounding
// check flagged, the sources it cites, what went wrong, and the model and timings in small print.

import { sentence } from "./api.js";
import { renderMarkdown } from "./markdown.js";
import { copyText, el } from "./ui.js";

const CITATION = /\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]/g;
const MARKS = {
  unsupported: "Not supported by the cited source",
  uncited: "No source cited",
};

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

function citationNode(n, byNumber, onCite) {
  const citation = byNumber.get(n);
  if (!citation) return el("span", { class: "cite pending", title: byNumber.size ? "No such source" : "" }, String(n));
  const name = citation.title || citation.path;
  return el("button", { type: "button", class: "cite", "aria-label": `Source ${n}: ${name}`, title: name, onclick: (e) => onCite(citation, e.currentTarget) }, String(n));
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

function answerText({ citations = [], sentences = [], content }, onCite) {
  const byNumber = new Map(citations.map((c) => [Number(c.n), c]));
  const ranges = flaggedRanges(content, sentences);
  return (string, offset) => {
    const fragment = document.createDocumentFragment();
    let last = 0;
    for (const match of string.matchAll(CITATION)) {
      appendPieces(fragment, string.slice(last, match.index), offset + last, ranges);
      const numbers = match[1].split(/\s*[,;]\s*/).map(Number);
      fragment.append(el("span", { class: "cites" }, numbers.map((n) => citationNode(n, byNumber, onCite))));
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

function copyButton(answer, status) {
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
  return el("p", { class: "alert error small notice", role: "alert" }, sentence(answer.error));
}

/**
 * Fill an assistant message's frame from `answer` {content, citations, sentences, model, timings, error…}.
 * `onCite(citation, button)` opens a source; `status` is the live region that says the answer was copied.
 */
export function renderAnswer(frame, answer, { onCite, status }) {
  const body = el("div", { class: "answer markdown" }, renderMarkdown(answer.content, { text: answerText(answer, onCite) }));
  if (answer.streaming && !answer.content) body.append(el("p", { class: "muted typing" }, "Searching your documents…"));
  const sources = (answer.citations || []).map((c) =>
    el(
      "li",
      {},
      el("button", { type: "button", class: "source-link", onclick: (e) => onCite(c, e.currentTarget) },
        el("span", { class: "cite static" }, String(c.n)),
        el("span", { class: "source-name" }, c.title || c.path),
        c.heading ? el("span", { class: "muted small" }, c.heading) : null),
    ),
  );
  frame.replaceChildren(
    notice(answer) || "",
    body,
    answer.streaming ? "" : checkSummary(answer.sentences) || "",
    sources.length ? el("div", { class: "sources" }, el("h3", { class: "sources-title" }, "Sources"), el("ol", {}, sources)) : "",
    answer.streaming || !answer.content ? "" : el("div", { class: "message-meta" }, el("span", { class: "muted small" }, metaLine(answer)), copyButton(answer, status)),
  );
}

/** A stored or new message as a list item of the chat history; an assistant's answer sits in `.answer-frame`. */
export function messageNode(message, options) {
  if (message.role === "user") return el("li", { class: "message user" }, el("h2", { class: "visually-hidden" }, "You asked"), el("div", { class: "bubble" }, message.content));
  const node = el("li", { class: "message assistant" });
  const frame = el("div", { class: "answer-frame" });
  node.append(el("h2", { class: "visually-hidden" }, "Memex answered"), frame);
  renderAnswer(frame, message, options);
  return node;
}
