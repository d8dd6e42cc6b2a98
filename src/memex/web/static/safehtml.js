// An uploaded HTML file, shown safely: parsed into an inert document (DOMParser runs no script and loads nothing),
// then copied element by element from an allow-list into new nodes. Only text and a few harmless attributes
// survive: no scripts, styles, event handlers, frames, forms or images, and links only to http(s) and mailto.

import { el, shown } from "./ui.js";

// Kept with their text; anything else not dropped below is unwrapped (its content kept, the element not).
const KEPT = new Set([
  "p", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "pre", "code", "kbd", "samp", "var", "em", "strong", "b",
  "i", "u", "s", "del", "ins", "sub", "sup", "small", "abbr", "cite", "q", "br", "hr", "table", "caption", "thead",
  "tbody", "tfoot", "tr", "th", "td", "figure", "figcaption", "section", "article", "aside", "header", "footer",
  "div", "span", "a", "mark", "time", "address",
]);
// Dropped with everything inside them: code, styles, embedded content, form controls, metadata.
const DROPPED = new Set([
  "script", "style", "template", "iframe", "frame", "frameset", "object", "embed", "applet", "noscript", "svg",
  "math", "canvas", "audio", "video", "picture", "source", "track", "img", "map", "form", "input", "button",
  "select", "textarea", "option", "head", "title", "meta", "link", "base", "dialog", "slot",
]);
const HEADINGS = /^h([1-6])$/;
const SAFE_LINK = /^(https?:|mailto:)/i;

function attributesFor(tag, source) {
  if (tag === "a") {
    const href = (source.getAttribute("href") || "").trim();
    // The URL parser decides the scheme, so "java\nscript:" or entities cannot sneak past a string test.
    let url = null;
    try {
      url = new URL(href, "https://invalid.example/");
    } catch {
      url = null;
    }
    if (!url || !SAFE_LINK.test(url.protocol) || !SAFE_LINK.test(href)) return {};
    return { href: url.href, target: "_blank", rel: "noopener noreferrer nofollow" };
  }
  if (tag === "td" || tag === "th") {
    const span = (name) => {
      const n = Number.parseInt(source.getAttribute(name) || "", 10);
      return n > 1 && n <= 100 ? String(n) : null;
    };
    return { colspan: span("colspan"), rowspan: span("rowspan") };
  }
  if (tag === "ol") {
    const start = Number.parseInt(source.getAttribute("start") || "", 10);
    return { start: Number.isFinite(start) ? String(start) : null };
  }
  return {};
}

function copy(source, into, depth) {
  for (const node of source.childNodes) {
    if (node.nodeType === Node.TEXT_NODE) {
      into.append(document.createTextNode(shown(node.data)));
      continue;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const tag = node.localName;
    if (DROPPED.has(tag) || node.namespaceURI !== "http://www.w3.org/1999/xhtml") continue;
    // Past this depth the rest is flattened into its text: hostile nesting must not make the page crawl.
    if (depth > 64) {
      into.append(document.createTextNode(shown(node.textContent || "")));
      continue;
    }
    const heading = HEADINGS.exec(tag);
    if (heading) {
      // The page's own title is the h1: the document's headings sit one level below it.
      const level = Math.min(6, Number(heading[1]) + 1);
      copy(node, into.appendChild(el(`h${level}`, { class: "doc-heading" })), depth + 1);
    } else if (KEPT.has(tag)) {
      const attributes = attributesFor(tag, node);
      // A link whose target was refused is plain text, not a link that goes nowhere.
      const made = el(tag === "a" && !attributes.href ? "span" : tag, attributes);
      into.append(tag === "table" ? el("div", { class: "table-wrap" }, made) : made);
      copy(node, made, depth + 1);
    } else {
      copy(node, into, depth + 1);
    }
  }
  return into;
}

/** The body of an HTML document as a DocumentFragment of safe, newly made nodes. */
export function renderHtml(source) {
  const parsed = new DOMParser().parseFromString(String(source || ""), "text/html");
  return copy(parsed.body, document.createDocumentFragment(), 0);
}
