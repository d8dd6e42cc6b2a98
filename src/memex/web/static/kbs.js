// Knowledge bases: invitations to accept or decline, the ones the user may read with their role, and a form to
// create one.

import { api, items } from "./api.js";
import { run, start } from "./layout.js";
import { $, badge, busy, clearError, el, fillTable, kbLabels, refocus, showError } from "./ui.js";

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
      el("td", { class: "muted wide-only" }, kb.description || ""),
    ),
  );
  fillTable($("#kb-table"), $("#kb-empty"), rows);
}

async function loadInvitations(user) {
  const invitations = items(await api("/api/invitations"), "invitations");
  const labels = kbLabels(invitations.map((i) => ({ id: i.kb, name: i.name, is_personal: i.is_personal, owner_name: i.owner_name })), user);
  const rows = invitations.map((invitation) => {
    const name = labels.get(String(invitation.kb));
    const answer = (accept) => async (event) => {
      await busy(event.currentTarget, () => respond(user, invitation, accept));
    };
    return el(
      "tr",
      { dataset: { kbId: invitation.kb } },
      el("td", {}, name),
      el("td", {}, invitation.owner_name || "—"),
      el("td", {}, badge(ROLE_LABELS[invitation.role] || invitation.role, invitation.role)),
      el(
        "td",
        { class: "row-actions" },
        el("button", { type: "button", class: "button primary small", onclick: answer(true), "aria-label": `Accept ${name}` }, "Accept"),
        el("button", { type: "button", class: "button secondary small", onclick: answer(false), "aria-label": `Decline ${name}` }, "Decline"),
      ),
    );
  });
  fillTable($("#invitations-table"), null, rows);
  $("#invitations").hidden = rows.length === 0;
}

async function respond(user, invitation, accept) {
  const error = $("#invitations-error");
  clearError(error);
  const path = `/api/invitations/${encodeURIComponent(invitation.kb)}`;
  try {
    await api(accept ? `${path}/accept` : path, { method: accept ? "POST" : "DELETE" });
  } catch (err) {
    showError(error, err);
    return;
  }
  await Promise.all([loadInvitations(user), load(user)]);
  refocus($("#kb-list-title"));
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
  await Promise.all([loadInvitations(user), load(user)]);
});
