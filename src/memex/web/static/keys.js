// API keys: create (the key is shown once), list with prefix, last use and expiry, revoke.

import { api, items } from "./api.js";
import { run, start } from "./layout.js";
import { $, badge, busy, clearError, confirmAction, copyText, el, fillTable, kbLabels, refocus, showError, timeElement } from "./ui.js";

let kbNames = new Map();

function isExpired(key) {
  return key.expires_at && new Date(key.expires_at) < new Date();
}

function keyRow(key) {
  const kbs = key.kbs || key.kb_ids;
  const kbText = kbs && kbs.length ? kbs.map((id) => kbNames.get(String(id)) || String(id).slice(0, 8)).join(", ") : "All";
  const expires = key.expires_at ? timeElement(key.expires_at) : "Never";
  const state = key.revoked_at ? badge("revoked", "bad") : isExpired(key) ? badge("expired", "bad") : null;
  const actions = el("td", { class: "row-actions" });
  if (!key.revoked_at) {
    actions.append(el("button", { type: "button", class: "button danger small", onclick: () => revoke(key), "aria-label": `Revoke ${key.name}` }, "Revoke"));
  }
  return el(
    "tr",
    { dataset: { id: key.id } },
    el("td", {}, key.name, state ? " " : "", state),
    el("td", {}, el("code", {}, `mx_${key.prefix}_…`)),
    el("td", {}, (key.scopes || []).join(", ")),
    el("td", {}, kbText),
    el("td", {}, key.last_used_at ? timeElement(key.last_used_at, { time: true }) : "Never"),
    el("td", {}, expires),
    actions,
  );
}

async function load() {
  const keys = items(await api("/api/keys"), "keys");
  fillTable($("#keys-table"), $("#keys-empty"), keys.map(keyRow));
}

function showNewKey(secret) {
  $("#new-key-value").textContent = secret;
  $("#copy-status").textContent = "";
  const panel = $("#new-key");
  panel.hidden = false;
  panel.focus();
}

async function create(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#key-create-error");
  clearError(error);
  const scopes = [...form.querySelectorAll("input[name=scopes]:checked")].map((c) => c.value);
  const kbs = [...form.querySelectorAll("input[name=kbs]:checked")].map((c) => c.value);
  if (!scopes.length) {
    showError(error, "Choose at least one scope.");
    return;
  }
  const body = { name: form.name.value.trim(), scopes };
  if (kbs.length) body.kbs = kbs;
  // A date means "until the end of that day" in the user's time zone.
  if (form.expires.value) body.expires_at = new Date(`${form.expires.value}T23:59:59`).toISOString();
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const created = await api("/api/keys", { method: "POST", json: body });
      form.reset();
      showNewKey(created.key);
      await load();
    } catch (err) {
      showError(error, err);
    }
  });
}

async function revoke(key) {
  const ok = await confirmAction({
    title: "Revoke key?",
    message: `Programs using “${key.name}” (mx_${key.prefix}_…) will stop working at once.`,
    confirmLabel: "Revoke",
  });
  if (!ok) return;
  try {
    await api(`/api/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
  } catch (err) {
    showError($("#key-create-error"), err);
  }
  await load();
  refocus($("#key-list-title"));
}

run(async () => {
  const user = await start();
  $("#scope-admin").hidden = !user.is_admin;
  $("#key-create").addEventListener("submit", create);
  $("#copy-key").addEventListener("click", () => copyText($("#new-key-value").textContent, $("#copy-status")));
  $("#new-key-done").addEventListener("click", () => {
    $("#new-key").hidden = true;
    $("#new-key-value").textContent = "";
    $("#key-name").focus();
  });
  const tomorrow = new Date(Date.now() + 86400000);
  $("#key-expires").min = tomorrow.toISOString().slice(0, 10);
  const kbs = items(await api("/api/kbs"), "kbs");
  kbNames = kbLabels(kbs, user);
  if (kbs.length) {
    $("#key-kbs").replaceChildren(
      ...kbs.map((kb) =>
        el("label", { class: "check" }, el("input", { type: "checkbox", name: "kbs", value: kb.id }), ` ${kbNames.get(String(kb.id))}`),
      ),
    );
  }
  await load();
});
