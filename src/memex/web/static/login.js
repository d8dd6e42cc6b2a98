// Log in with email and password (or single sign-on, a plain link), then go back to the page that sent us here.

import { api } from "./api.js";
import { $, busy, clearError, showError } from "./ui.js";

/** Only same-site paths, so a crafted ?next= cannot send the user elsewhere. */
function nextPath() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

async function login(event) {
  event.preventDefault();
  const form = event.currentTarget;
  if (!form.email) return; // password login is off: only the single sign-on button is shown
  const error = $("#login-error");
  clearError(error);
  const email = form.email.value.trim();
  const password = form.password.value;
  if (!email || !password) {
    showError(error, "Enter your email and password.");
    (email ? form.password : form.email).focus();
    return;
  }
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      await api("/api/auth/login", { method: "POST", json: { email, password }, redirectOn401: false });
      location.assign(nextPath());
    } catch (err) {
      showError(error, err);
      form.password.select();
      form.password.focus();
    }
  });
}

$("#login-form").addEventListener("submit", login);

// Already logged in (a bookmarked /login, the back button): go straight on.
api("/api/auth/me", { redirectOn401: false }).then(
  () => location.replace(nextPath()),
  () => {},
);
