// Your account: who you are signed in as, and changing your own password (the current one is needed).

import { api } from "./api.js";
import { run, start } from "./layout.js";
import { $, busy, clearError, formatDate, showError } from "./ui.js";

async function changePassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#password-error");
  const status = $("#password-status");
  clearError(error);
  status.textContent = "";
  if (form.new.value !== form.repeat.value) {
    showError(error, "The two new passwords are not the same: type the new one again in both fields.");
    form.repeat.focus();
    return;
  }
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const done = await api("/api/auth/password", {
        method: "POST",
        json: { current_password: form.current.value, new_password: form.new.value },
      });
      form.reset();
      status.textContent = (done && done.detail) || "Your password has been changed.";
    } catch (err) {
      showError(error, err);
      form.current.focus();
    }
  });
}

run(async () => {
  const me = await start();
  $("#account-email").textContent = me.email;
  $("#account-role").textContent = me.is_admin ? "Administrator" : "User";
  $("#account-created").textContent = formatDate(me.created_at);
  $("#password-form").addEventListener("submit", changePassword);
});
