// First steps, on the search page: while the user can see no documents at all, say what Memex does and take
// files right there, into their personal knowledge base. search.js runs the page itself.

import { api, items } from "./api.js";
import { $, clearError, el, showError } from "./ui.js";
import { acceptFiles, plural, showRejected, uploadFiles } from "./uploads.js";

async function upload(kb, files) {
  if (!files.length) return;
  const status = $("#welcome-status");
  const error = $("#welcome-error");
  clearError(error);
  showRejected($("#welcome-rejected"), []);
  status.textContent = `Uploading ${plural(files.length, "file")}…`;
  try {
    const { accepted, rejected } = await uploadFiles(kb.id, files, $("#welcome-file-input"));
    showRejected($("#welcome-rejected"), rejected);
    if (!accepted.length) {
      status.textContent = "No file was added.";
      return;
    }
    status.replaceChildren(
      `${plural(accepted.length, "file")} added: ${accepted.length === 1 ? "it" : "they"} can be searched once indexed, in a few moments. Follow the progress in `,
      el("a", { href: `/kbs/${encodeURIComponent(kb.id)}` }, "your personal knowledge base"),
      ".",
    );
  } catch (err) {
    status.textContent = "";
    showError(error, err);
  }
}

async function main() {
  const [me, kbs] = await Promise.all([api("/api/auth/me"), api("/api/kbs")]);
  const user = (me && me.user) || me;
  const visible = items(kbs, "kbs");
  if (visible.some((kb) => kb.document_count > 0)) return;
  const personal = visible.find((kb) => kb.is_personal && String(kb.owner_id) === String(user.id));
  if (!personal) return;
  $("#welcome").hidden = false;
  acceptFiles({
    zone: $("#welcome-upload"),
    input: $("#welcome-file-input"),
    button: $("#welcome-choose"),
    onFiles: (files) => upload(personal, files),
  });
}

// Errors (no session, server away) are search.js's to show; the welcome just stays hidden.
main().catch(() => {});
