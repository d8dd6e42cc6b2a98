// A small Markdown renderer that builds DOM nodes and never parses HTML: whatever a document or a model wrote
// shows as text. Paragraphs, headings, lists, block quotes, fenced code, tables, rules; code spans, strong,
// emphasis and http(s) links. Each run of plain text goes through `text(string, offset)`, with its offset in the
// source, so callers can turn citations into buttons and mark sentences by their position in the answer.

import { el } from "./ui.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+/;
const RULE = /^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?/;
const ITEM = /^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+/;
const TABLE_RULE = /^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const ESCAPABLE = /[\\`*_{}[\]()#+\-.!|>~]/;
const LINK = /^\[([^\]\n]+)\]\((https?:\/\/[^\s()]+|mailto:[^\s()]+)\)/;

function plainText(string) {
  return document.createTextNode(string);
}

function lines(source) {
  const out = [];
  let start = 0;
  for (const line of source.split("\n")) {
    out.push({ text: line, start });
    start += line.length + 1;
  }
  return out;
}

function findClosing(source, marker, from) {
  for (let i = source.indexOf(marker, from); i !== -1; i = source.indexOf(marker, i + 1)) {
    if (source[i - 1] !== "\\" && !/\s/.test(source[i - 1])) return i;
  }
  return -1;
}

/** Inline markup of `source` (which starts at `base` in the whole text) appended to `parent`. */
function inline(parent, source, base, text) {
  let plainFrom = 0;
  const flush = (to) => {
    if (to > plainFrom) parent.append(text(source.slice(plainFrom, to), base + plainFrom));
  };
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (c === "\\" && ESCAPABLE.test(source[i + 1] || "")) {
      flush(i);
      plainFrom = i + 1;
      i += 2;
      continue;
    }
    if (c === "`") {
      const ticks = /^`+/.exec(source.slice(i))[0];
      const close = source.indexOf(ticks, i + ticks.length);
      if (close !== -1) {
        flush(i);
        parent.append(el("code", {}, source.slice(i + ticks.length, close).trim() || " "));
        i = close + ticks.length;
        plainFrom = i;
        continue;
      }
      i += ticks.length;
      continue;
    }
    const double = source.slice(i, i + 2);
    if ((double === "**" || double === "__") && source[i + 2] && !/\s/.test(source[i + 2])) {
      const close = findClosing(source, double, i + 3);
      if (close !== -1) {
        flush(i);
        inline(parent.appendChild(el("strong")), source.slice(i + 2, close), base + i + 2, text);
        i = close + 2;
        plainFrom = i;
        continue;
      }
    }
    const wordBefore = /[\p{L}\p{N}]/u.test(source[i - 1] || "");
    if ((c === "*" || (c === "_" && !wordBefore)) && source[i + 1] && !/[\s*_]/.test(source[i + 1])) {
      const close = findClosing(source, c, i + 2);
      if (close !== -1 && !(c === "_" && /[\p{L}\p{N}]/u.test(source[close + 1] || ""))) {
        flush(i);
        inline(parent.appendChild(el("em")), source.slice(i + 1, close), base + i + 1, text);
        i = close + 1;
        plainFrom = i;
        continue;
      }
    }
    if (c === "[") {
      const link = LINK.exec(source.slice(i));
      if (link) {
        flush(i);
        const a = el("a", { href: link[2], target: "_blank", rel: "noopener noreferrer nofollow" });
        inline(a, link[1], base + i + 1, text);
        parent.append(a);
        i += link[0].length;
        plainFrom = i;
        continue;
      }
    }
    i += 1;
  }
  flush(source.length);
}

function tableCells(line) {
  const cells = [];
  const body = line.text;
  let from = 0;
  let to = body.length;
  while (from < to && /\s/.test(body[from])) from += 1;
  while (to > from && /\s/.test(body[to - 1])) to -= 1;
  if (body[from] === "|") from += 1;
  if (to > from && body[to - 1] === "|" && body[to - 2] !== "\\") to -= 1;
  let cellStart = from;
  for (let i = from; i <= to; i += 1) {
    if (i === to || (body[i] === "|" && body[i - 1] !== "\\")) {
      const raw = body.slice(cellStart, i);
      const lead = raw.length - raw.trimStart().length;
      cells.push({ text: raw.trim(), start: line.start + cellStart + lead });
      cellStart = i + 1;
    }
  }
  return cells;
}

function startsBlock(rows, index) {
  const line = rows[index].text;
  return (
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line) ||
    (line.includes("|") && index + 1 < rows.length && TABLE_RULE.test(rows[index + 1].text))
  );
}

function renderTable(rows, index, text) {
  const head = tableCells(rows[index]);
  const table = el("table", { class: "md-table" });
  const tr = table.createTHead().insertRow();
  for (const cell of head) inline(tr.appendChild(el("th", { scope: "col" })), cell.text, cell.start, text);
  const body = table.createTBody();
  let i = index + 2;
  for (; i < rows.length && rows[i].text.includes("|") && rows[i].text.trim(); i += 1) {
    const row = body.insertRow();
    for (const cell of tableCells(rows[i]).slice(0, head.length)) inline(row.insertCell(), cell.text, cell.start, text);
  }
  return { node: el("div", { class: "table-wrap" }, table), next: i };
}

function renderList(rows, index, source, text) {
  const stack = [];
  let i = index;
  while (i < rows.length) {
    const match = ITEM.exec(rows[i].text);
    if (!match) break;
    const indent = match[1].replace(/\t/g, "    ").length;
    const number = parseInt(match[2], 10);
    const ordered = !Number.isNaN(number);
    while (stack.length > 1 && indent < stack[stack.length - 1].indent) stack.pop();
    let level = stack[stack.length - 1];
    // A bulleted list right after a numbered one (or the other way round) is a list of its own.
    if (stack.length === 1 && indent <= level.indent + 1 && level.ordered !== ordered) break;
    if (!level || indent > level.indent + 1) {
      const list = el(ordered ? "ol" : "ul", { start: number > 1 ? String(number) : null });
      if (level) level.item.append(list);
      level = { indent, list, item: null, ordered };
      stack.push(level);
    }
    // The item's text runs on over following lines that are neither blank nor the start of another block.
    let end = i + 1;
    while (end < rows.length && rows[end].text.trim() && !startsBlock(rows, end)) end += 1;
    const from = rows[i].start + match[0].length;
    const to = rows[end - 1].start + rows[end - 1].text.length;
    level.item = level.list.appendChild(el("li"));
    inline(level.item, source.slice(from, to), from, text);
    i = end;
    // One blank line between items keeps the list going.
    if (i + 1 < rows.length && !rows[i].text.trim() && ITEM.test(rows[i + 1].text)) i += 1;
  }
  return { node: stack[0].list, next: i };
}

/**
 * `source` as a DocumentFragment; `text(string, offset)` makes the node for each run of plain text. A heading of
 * level n becomes h(n + headingOffset): answers sit below the page's h1 and h2, a document below its page's h1.
 */
export function renderMarkdown(source, { text = plainText, headingOffset = 2 } = {}) {
  const fragment = document.createDocumentFragment();
  const normalised = String(source || "").replace(/\r\n?/g, (m) => (m.length === 2 ? " \n" : "\n"));
  const rows = lines(normalised);
  let i = 0;
  while (i < rows.length) {
    const line = rows[i].text;
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const lang = line.slice(fence[0].length).trim().split(/\s/)[0];
      let end = i + 1;
      while (end < rows.length && !rows[end].text.trimStart().startsWith(fence[1])) end += 1;
      const code = rows.slice(i + 1, end).map((r) => r.text).join("\n");
      fragment.append(el("pre", { class: "md-code" }, el("code", { dataset: lang ? { lang } : {} }, code)));
      i = end + 1;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const level = Math.min(6, heading[1].length + headingOffset);
      const content = line.replace(/[ \t]+#+[ \t]*$/, "");
      inline(fragment.appendChild(el(`h${level}`, { class: "md-heading" })), content.slice(heading[0].length), rows[i].start + heading[0].length, text);
      i += 1;
      continue;
    }
    if (RULE.test(line)) {
      fragment.append(el("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      const quote = el("blockquote");
      for (; i < rows.length && QUOTE.test(rows[i].text); i += 1) {
        const prefix = QUOTE.exec(rows[i].text)[0].length;
        if (rows[i].text.slice(prefix).trim()) inline(quote.appendChild(el("p")), rows[i].text.slice(prefix), rows[i].start + prefix, text);
      }
      fragment.append(quote);
      continue;
    }
    if (ITEM.test(line)) {
      const list = renderList(rows, i, normalised, text);
      fragment.append(list.node);
      i = list.next;
      continue;
    }
    if (line.includes("|") && i + 1 < rows.length && TABLE_RULE.test(rows[i + 1].text)) {
      const table = renderTable(rows, i, text);
      fragment.append(table.node);
      i = table.next;
      continue;
    }
    let end = i + 1;
    while (end < rows.length && rows[end].text.trim() && !startsBlock(rows, end)) end += 1;
    const from = rows[i].start;
    const to = rows[end - 1].start + rows[end - 1].text.length;
    inline(fragment.appendChild(el("p")), normalised.slice(from, to), from, text);
    i = end;
  }
  return fragment;
}
