// Knowledge bases: the ones the user may read, with their role, and a form to create one.

import { api, items } from "./api.js";
import { run, start } from "./layout.js";
import { $, badge, busy, clearError, el, fillTable, kbLabels, showError } from "./ui.js";

const ROLE_LABELS = { owner: "Owner", editor: "Editor", viewer: "Viewer" };

async function load(user) {
  const kbs = items(await api("/api/kbs"), "kbs");
  const labels = kbLabels(kbs, user);
  const rows = kbs.map((kb) =>
    el(
      "tr",
      { dataset: { kbId: kb.id } },
      el("td", {}, el("a", { href: `/kbs/${encodeURIComponent(kb.id)}` }, labels.get(String(kb.id)))),
      el("td", {}, badge(ROLE_LABELS[kb.role] || kb.role || "—", kb.role || "")),
      el("td", { class: "num" }, kb.document_count ?? "—"),
      el("td", { class: "muted" }, kb.description || ""),
    ),
  );
  fillTable($("#kb-table"), $("#kb-empty"), rows);
}

async function create(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#kb-create-error");
  clearError(error);
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const kb = await api("/api/kbs", {
        method: "POST",
        json: { name: form.name.value.trim(), description: form.description.value.trim() },
      });
      location.assign(`/kbs/${encodeURIComponent((kb.kb || kb).id)}`);
    } catch (err) {
      showError(error, err);
      form.name.focus();
    }
  });
}

run(async () => {
  const user = await start();
  $("#kb-create").addEventListener("submit", create);
  await load(user);
});
