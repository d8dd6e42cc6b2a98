// Search: query, KB filter and mode live in the URL, so results can be linked to and the back button works.

import { api, items } from "./api.js";
import { run, start } from "./layout.js";
import { $, busy, el, kbLabels, snippetNodes } from "./ui.js";

const form = $("#search-form");
const status = $("#search-status");
const results = $("#results");

function fileUrl(result) {
  return `/api/documents/${encodeURIComponent(result.document_id)}/file`;
}

function renderResult(result) {
  const where = [result.path, result.heading, result.location].filter(Boolean).join(" · ");
  const score = Number(result.score);
  return el(
    "li",
    { class: "result" },
    el("h2", { class: "result-title" }, el("a", { href: fileUrl(result), target: "_blank", rel: "noopener" }, result.title || result.path)),
    el("p", { class: "result-where" }, where),
    el("p", { class: "snippet" }, snippetNodes(result.snippet || result.text)),
    el(
      "p",
      { class: "result-foot" },
      result.kb_name ? el("a", { class: "badge", href: `/kbs/${encodeURIComponent(result.kb)}` }, result.kb_name) : null,
      el("span", { class: "score", title: "Relevance score" }, `score ${Number.isFinite(score) ? score.toFixed(4) : "—"}`),
      el("a", { href: fileUrl(result), target: "_blank", rel: "noopener" }, "Open source file"),
    ),
  );
}

/** Fill the form from the URL; on first load, leave alone whatever the user typed while the page loaded. */
function readUrl({ initial = false } = {}) {
  const params = new URLSearchParams(location.search);
  if (!initial || params.has("q")) form.q.value = params.get("q") || "";
  if (params.has("kb")) form.kb.value = params.get("kb");
  if (params.has("mode")) form.mode.value = params.get("mode");
  return params.has("q") && form.q.value.trim();
}

async function search() {
  const q = form.q.value.trim();
  if (!q) {
    results.replaceChildren();
    status.textContent = "";
    return;
  }
  status.textContent = "Searching…";
  results.setAttribute("aria-busy", "true");
  try {
    const data = await api("/api/search", { params: { q, kb: form.kb.value, mode: form.mode.value, limit: 20 } });
    const found = items(data, "results");
    results.replaceChildren(...found.map(renderResult));
    status.textContent = found.length
      ? `${found.length} result${found.length === 1 ? "" : "s"} for “${q}”.`
      : `No results for “${q}”. Try other words, another mode or all knowledge bases.`;
  } catch (error) {
    results.replaceChildren();
    status.textContent = "";
    status.append(el("span", { class: "error-text", role: "alert" }, error.message));
  } finally {
    results.removeAttribute("aria-busy");
  }
}

async function submit(event) {
  event.preventDefault();
  const params = new URLSearchParams({ q: form.q.value.trim(), mode: form.mode.value });
  if (form.kb.value) params.set("kb", form.kb.value);
  history.pushState(null, "", `/?${params}`);
  await busy(form.querySelector("button[type=submit]"), search);
}

run(async () => {
  const user = await start();
  form.q.focus();
  form.addEventListener("submit", submit);
  window.addEventListener("popstate", () => {
    readUrl();
    search();
  });
  const kbs = items(await api("/api/kbs"), "kbs");
  const labels = kbLabels(kbs, user);
  form.kb.append(...kbs.map((kb) => el("option", { value: kb.id }, labels.get(String(kb.id)))));
  if (kbs.length === 0) {
    status.replaceChildren("Nothing to search yet — ", el("a", { href: "/kbs" }, "create a knowledge base"), " and add documents.");
  }
  if (readUrl({ initial: true })) await search();
});
