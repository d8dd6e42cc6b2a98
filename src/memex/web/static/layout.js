// The page frame: who is logged in, the admin link, log out. Each page calls start() first.

import { api } from "./api.js";
import { $ } from "./ui.js";

export async function logout() {
  try {
    await api("/api/auth/logout", { method: "POST", redirectOn401: false });
  } catch {
    // Already logged out or the server is gone: the login page is the right place either way.
  }
  location.assign("/login");
}

export function flash(error) {
  const region = $("#flash");
  region.textContent = error && error.message ? error.message : String(error);
  region.hidden = false;
}

/** Load the current user (redirecting to /login without a session), fill the frame and show the page. */
export async function start({ adminOnly = false } = {}) {
  const data = await api("/api/auth/me");
  const user = (data && data.user) || data;
  $("#user-email").textContent = user.email;
  $("#nav-admin").hidden = !user.is_admin;
  $("#logout").addEventListener("click", logout);
  document.body.dataset.state = "ready";
  if (adminOnly && !user.is_admin) {
    flash("Only administrators can see this page.");
    for (const section of document.querySelectorAll("main section")) section.hidden = true;
    return null;
  }
  return user;
}

/** Run a page's main function, showing any error it throws in the page's alert area. */
export function run(main) {
  const go = () =>
    main().catch((error) => {
      document.body.dataset.state = "ready";
      flash(error);
    });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", go);
  else go();
}
