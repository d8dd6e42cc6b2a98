// Log in with email and password (or single sign-on, a plain link), then go back to the page that sent us here.

import { api } from "./api.js";
import { $, busy, clearError, showError } from "./ui.js";

const MAX_NEXT = 2000;

/**
 * Where to go once logged in: ?next= if it is a page of this server, else the home page, so a crafted link
 * cannot send the user elsewhere. The same rule as the server's (accounts/sso.py `safe_next`): a path with one
 * leading "/", no backslash, space or control character (browsers drop tabs and newlines, so "/\t/evil" would
 * become "//evil"), that resolves to this origin. The result is absolute, so nothing is reinterpreted later.
 */
function nextUrl() {
  const next = new URLSearchParams(location.search).get("next") || "/";
  const home = new URL("/", location.origin).href;
  if (next.length > MAX_NEXT || next[0] !== "/" || next[1] === "/" || /[\\\s\u0000-\u001f\u007f-\u009f]/.test(next)) {
    return home;
  }
  try {
    const url = new URL(next, location.origin);
    return url.origin === location.origin ? url.href : home;
  } catch {
    return home;
  }
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
      location.assign(nextUrl());
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
  () => location.replace(nextUrl()),
  () => {},
);
