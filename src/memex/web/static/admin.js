// Users (administrators only): list, create with a generated password shown once, disable and enable; and every
// knowledge base with its real owner (names and counts, never contents).

import { api, items } from "./api.js";
import { run, start } from "./layout.js";
import { $, badge, busy, clearError, confirmAction, copyText, el, fillTable, showError, timeElement } from "./ui.js";

let me = null;

function userRow(user) {
  const actions = el("td", { class: "row-actions" });
  if (String(user.id) !== String(me.id)) {
    const label = user.is_active ? "Disable" : "Enable";
    actions.append(
      el("button", {
        type: "button",
        class: `button small ${user.is_active ? "danger" : "secondary"}`,
        onclick: (e) => setActive(user, !user.is_active, e.currentTarget),
        "aria-label": `${label} ${user.email}`,
      }, label),
    );
  }
  return el(
    "tr",
    { dataset: { id: user.id } },
    el("td", {}, user.email),
    el("td", {}, user.is_admin ? badge("admin", "owner") : "User"),
    el("td", {}, user.is_active ? badge("active", "ok") : badge("disabled", "bad")),
    el("td", {}, timeElement(user.created_at)),
    el("td", {}, user.last_login_at ? timeElement(user.last_login_at, { time: true }) : "Never"),
    actions,
  );
}

function kbRow(kb) {
  const owner = kb.owner_email || "Local (command line)";
  return el(
    "tr",
    { dataset: { id: kb.id } },
    el("td", {}, kb.name, kb.is_personal ? " " : "", kb.is_personal ? badge("personal", "") : ""),
    el("td", {}, owner),
    el("td", { class: "num" }, kb.document_count),
    el("td", { class: "num" }, kb.member_count),
    el("td", {}, timeElement(kb.created_at)),
  );
}

async function load() {
  const [users, kbs] = await Promise.all([api("/api/admin/users"), api("/api/admin/kbs")]);
  fillTable($("#users-table"), null, items(users, "users").map(userRow));
  $("#users-table").hidden = false;
  fillTable($("#admin-kbs-table"), null, items(kbs, "kbs").map(kbRow));
  $("#admin-kbs-table").hidden = false;
}

async function setActive(user, active, button) {
  if (!active) {
    const ok = await confirmAction({
      title: "Disable user?",
      message: `${user.email} will be logged out and their API keys will stop working.`,
      confirmLabel: "Disable",
    });
    if (!ok) return;
  }
  const error = $("#users-error");
  clearError(error);
  await busy(button, async () => {
    try {
      await api(`/api/admin/users/${encodeURIComponent(user.id)}`, { method: "PATCH", json: { is_active: active } });
    } catch (err) {
      showError(error, err);
    }
  });
  await load();
}

async function create(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#user-create-error");
  clearError(error);
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const data = await api("/api/admin/users", {
        method: "POST",
        json: { email: form.email.value.trim(), is_admin: form.is_admin.checked },
      });
      const user = data.user || data;
      form.reset();
      $("#new-user-email").textContent = user.email;
      $("#new-user-password").textContent = data.password || user.password || "";
      $("#copy-status").textContent = "";
      $("#new-user").hidden = false;
      $("#new-user").focus();
      await load();
    } catch (err) {
      showError(error, err);
      form.email.focus();
    }
  });
}

run(async () => {
  me = await start({ adminOnly: true });
  if (!me) return;
  $("#user-create").addEventListener("submit", create);
  $("#copy-password").addEventListener("click", () => copyText($("#new-user-password").textContent, $("#copy-status")));
  $("#new-user-done").addEventListener("click", () => {
    $("#new-user").hidden = true;
    $("#new-user-password").textContent = "";
    $("#user-email-input").focus();
  });
  await load();
});
