// Users (administrators only): list, create or reset with a generated password shown once, unlock, disable and enable; and every
// knowledge base with its real owner (names and counts, never contents).

import { api, items } from "./api.js";
import { run, start } from "./layout.js";
import { $, badge, busy, clearError, confirmAction, copyText, el, fillTable, formatDate, showError, timeElement } from "./ui.js";

let me = null;

const timeFormat = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });

/** Whether failed logins hold the user back now: until when, or null. */
function lockedUntil(user) {
  const until = user.locked_until ? new Date(user.locked_until) : null;
  return until && until > new Date() ? until : null;
}

function statusCell(user) {
  if (!user.is_active) return el("td", {}, badge("disabled", "bad"));
  const until = lockedUntil(user);
  if (!until) return el("td", {}, badge("active", "ok"));
  const when = el("time", { datetime: user.locked_until, title: formatDate(user.locked_until, { time: true }) }, timeFormat.format(until));
  return el("td", {}, el("span", { class: "badge bad" }, "locked until ", when));
}

function userRow(user) {
  const actions = el("td", { class: "row-actions" });
  const button = (label, kind, onclick) =>
    el("button", { type: "button", class: `button small ${kind}`, onclick, "aria-label": `${label} ${user.email}` }, label);
  if (lockedUntil(user)) actions.append(button("Unlock", "secondary", (e) => unlock(user, e.currentTarget)));
  if (String(user.id) !== String(me.id)) {
    // Your own password is changed on the Account page, with the current one.
    actions.append(button("Reset password", "secondary", (e) => resetPassword(user, e.currentTarget)));
    const label = user.is_active ? "Disable" : "Enable";
    actions.append(button(label, user.is_active ? "danger" : "secondary", (e) => setActive(user, !user.is_active, e.currentTarget)));
  }
  return el(
    "tr",
    { dataset: { id: user.id } },
    el("td", {}, user.email),
    el("td", {}, user.is_admin ? badge("admin", "owner") : "User"),
    statusCell(user),
    el("td", {}, timeElement(user.created_at)),
    el("td", {}, user.last_login_at ? timeElement(user.last_login_at, { time: true }) : "Never"),
    actions,
  );
}

/** The card that shows a password once: for a new user, or after a reset. */
function showPassword(title, email, password) {
  $("#new-user-title").textContent = title;
  $("#new-user-email").textContent = email;
  $("#new-user-password").textContent = password || "";
  $("#copy-status").textContent = "";
  $("#new-user").hidden = false;
  $("#new-user").focus();
}

async function resetPassword(user, button) {
  const ok = await confirmAction({
    title: "Reset password?",
    message: `${user.email} gets a new password, shown to you once, and is logged out everywhere. Their API keys keep working.`,
    confirmLabel: "Reset password",
  });
  if (!ok) return;
  const error = $("#users-error");
  clearError(error);
  await busy(button, async () => {
    try {
      const data = await api(`/api/admin/users/${encodeURIComponent(user.id)}/password`, { method: "POST" });
      showPassword("Password reset", user.email, data.password);
    } catch (err) {
      showError(error, err);
    }
  });
}

async function unlock(user, button) {
  const error = $("#users-error");
  clearError(error);
  await busy(button, async () => {
    try {
      await api(`/api/admin/users/${encodeURIComponent(user.id)}/unlock`, { method: "POST" });
      $("#users-status").textContent = `${user.email} can log in again at once.`;
    } catch (err) {
      showError(error, err);
    }
  });
  await load();
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
      showPassword("User created", user.email, data.password || user.password);
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
