// Search: query, KB filter, mode and page live in the URL, so results can be linked to and the back button works.
// Passages of one document are shown under it; the same file in several KBs is one entry naming each KB. A title
// opens the document page at its passage; a passage's snippet can be expanded to the whole passage.

import { api, items } from "./api.js";
import { run, start } from "./layout.js";
import { $, el, kbLabels, snippetNodes } from "./ui.js";

const PAGE = 20;
const form = $("#search-form");
const status = $("#search-status");
const results = $("#results");
const more = $("#more-results");
let shown = 0; // pages on screen
let generation = 0; // a newer search makes the answers of older ones stale

function fileUrl(result) {
  return `/api/documents/${encodeURIComponent(result.document_id)}/file`;
}

/** The document page, opened at this passage. */
function documentUrl(result) {
  const chunk = result.chunk_id === undefined || result.chunk_id === null ? "" : `?chunk=${encodeURIComponent(result.chunk_id)}`;
  return `/documents/${encodeURIComponent(result.document_id)}${chunk}`;
}

/** The whole passage, its paragraphs kept. */
function fullPassage(text) {
  return el("div", { class: "full-passage", hidden: true }, el("p", {}, text));
}

/** One passage: where it is, its snippet, and (when cut) the whole passage on request; `link` adds a link to
 * its place in the document (the title already opens the document at the best passage). */
function passage(result, { link = false } = {}) {
  const where = [result.heading, result.location].filter(Boolean).join(" · ");
  const snippet = el("p", { class: "snippet" }, snippetNodes(result.snippet || result.text));
  // A snippet that already shows the whole passage needs no "Show full passage".
  const cut = snippet.textContent.replace(/\s+/g, " ").trim() !== String(result.text).replace(/\s+/g, " ").trim();
  const full = cut ? fullPassage(result.text) : null;
  const toggle = cut ? el("button", { type: "button", class: "link-button show-full", "aria-expanded": "false" }, "Show full passage") : null;
  toggle?.addEventListener("click", () => {
    full.hidden = !full.hidden;
    snippet.hidden = !full.hidden;
    toggle.setAttribute("aria-expanded", String(!full.hidden));
    toggle.textContent = full.hidden ? "Show full passage" : "Show less";
  });
  return el(
    "div",
    { class: "passage" },
    where ? el("p", { class: "result-where" }, where) : null,
    snippet,
    full,
    toggle || link
      ? el("p", { class: "passage-actions" }, toggle, link ? el("a", { href: documentUrl(result) }, "Open in document") : null)
      : null,
  );
}

/** Results grouped by document, in the order of each document's best passage. */
function groups(found) {
  const byKey = new Map();
  for (const result of found) {
    const key = `${result.title}\u0000${result.path}`;
    if (!byKey.has(key)) byKey.set(key, { best: result, passages: [], texts: new Set(), kbs: new Map() });
    const group = byKey.get(key);
    group.kbs.set(String(result.kb), result.kb_name);
    if (group.texts.has(result.text)) continue; // the same passage of another copy
    group.texts.add(result.text);
    group.passages.push(result);
  }
  return [...byKey.values()];
}

function renderGroup(group) {
  const { best } = group;
  const extra = group.passages.slice(1);
  const list = el("div", { class: "more-passages", hidden: true }, ...extra.map((r) => passage(r, { link: true })));
  const toggle = extra.length
    ? el(
        "button",
        { type: "button", class: "link-button more-from-document", "aria-expanded": "false" },
        `More from this document (${extra.length})`,
      )
    : null;
  toggle?.addEventListener("click", () => {
    list.hidden = !list.hidden;
    toggle.setAttribute("aria-expanded", String(!list.hidden));
    toggle.textContent = list.hidden ? `More from this document (${extra.length})` : "Fewer from this document";
  });
  const kbs = [...group.kbs].map(([id, name]) => el("a", { class: "badge", href: `/kbs/${encodeURIComponent(id)}` }, name));
  return el(
    "li",
    { class: "result" },
    el("h2", { class: "result-title" }, el("a", { href: documentUrl(best) }, best.title || best.path)),
    el("p", { class: "result-path" }, best.path),
    passage(best),
    toggle,
    list,
    el(
      "p",
      { class: "result-foot" },
      kbs.length > 1 ? el("span", { class: "muted" }, "In") : null,
      ...kbs,
      el("a", { href: fileUrl(best), download: String(best.path).split("/").pop() }, "Download"),
    ),
  );
}

function urlState() {
  const params = new URLSearchParams(location.search);
  return {
    q: params.get("q") || "",
    kb: params.get("kb") || "",
    mode: params.get("mode") || "hybrid",
    page: Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1),
  };
}

function pushUrl({ page = 1 } = {}) {
  const q = form.q.value.trim();
  const params = new URLSearchParams();
  if (q) {
    params.set("q", q);
    params.set("mode", form.mode.value);
    if (form.kb.value) params.set("kb", form.kb.value);
    if (page > 1) params.set("page", String(page));
  }
  const url = params.size ? `/?${params}` : "/";
  if (url !== location.pathname + location.search) history.pushState(null, "", url);
}

function fetchPage(q, page) {
  return api("/api/search", {
    params: { q, kb: form.kb.value, mode: form.mode.value, limit: PAGE, offset: (page - 1) * PAGE },
  });
}

/** Show pages 1..`pages` of the search the form holds. */
async function search(pages = 1) {
  const mine = ++generation;
  const q = form.q.value.trim();
  more.hidden = true;
  if (!q) {
    results.replaceChildren();
    status.textContent = "";
    shown = 0;
    return;
  }
  status.textContent = "Searching…";
  results.setAttribute("aria-busy", "true");
  try {
    const answers = [];
    for (let page = 1; page <= pages; page += 1) {
      const data = await fetchPage(q, page);
      answers.push(data);
      if (data.next_offset === null || data.next_offset === undefined) break;
    }
    if (mine !== generation) return;
    const found = answers.flatMap((data) => items(data, "results"));
    const last = answers[answers.length - 1];
    shown = answers.length;
    const docs = groups(found);
    results.replaceChildren(...docs.map(renderGroup));
    more.hidden = last.next_offset === null || last.next_offset === undefined;
    if (docs.length) {
      status.textContent = `${docs.length} document${docs.length === 1 ? "" : "s"} for “${q}”.`;
    } else if (answers.some((data) => data.hidden > 0)) {
      status.textContent = `Nothing relevant to “${q}”: no passage contains these words or comes close in meaning. Try other words.`;
    } else {
      status.textContent = `No results for “${q}”. Try other words, another mode or all knowledge bases.`;
    }
  } catch (error) {
    if (mine !== generation) return;
    results.replaceChildren();
    status.textContent = "";
    status.append(el("span", { class: "error-text", role: "alert" }, error.message));
  } finally {
    if (mine === generation) results.removeAttribute("aria-busy");
  }
}

function applyUrl() {
  const state = urlState();
  form.q.value = state.q;
  form.kb.value = [...form.kb.options].some((o) => o.value === state.kb) ? state.kb : "";
  form.mode.value = state.mode === "vector" ? "semantic" : state.mode;
  return search(state.page);
}

function newSearch(event) {
  event?.preventDefault();
  pushUrl();
  return search(1);
}

function clear() {
  form.q.value = "";
  pushUrl();
  search();
}

run(async () => {
  const user = await start();
  const typedWhileLoading = form.q.value;
  form.q.focus();
  form.addEventListener("submit", newSearch);
  for (const select of [form.kb, form.mode]) {
    select.addEventListener("change", () => {
      if (form.q.value.trim()) newSearch();
    });
  }
  form.q.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      clear();
    }
  });
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    const typing = target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      form.q.focus();
      form.q.select();
    }
  });
  more.addEventListener("click", () => {
    pushUrl({ page: shown + 1 });
    search(shown + 1);
  });
  window.addEventListener("popstate", applyUrl);
  const kbs = items(await api("/api/kbs"), "kbs");
  const labels = kbLabels(kbs, user);
  form.kb.append(...kbs.map((kb) => el("option", { value: kb.id }, labels.get(String(kb.id)))));
  if (kbs.length === 0) {
    status.replaceChildren("Nothing to search yet — ", el("a", { href: "/kbs" }, "create a knowledge base"), " and add documents.");
  }
  if (new URLSearchParams(location.search).has("q")) await applyUrl();
  else if (typedWhileLoading) form.q.value = typedWhileLoading;
});
