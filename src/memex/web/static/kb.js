// One knowledge base: its documents (upload, live status, download, retry, delete), members and settings.

import { api, items } from "./api.js";
import { flash, run, start } from "./layout.js";
import { acceptFiles, plural, showRejected, uploadFiles } from "./uploads.js";
import { $, badge, busy, clearError, confirmAction, el, fillTable, formatBytes, kbLabels, refocus, showError, shown, timeElement } from "./ui.js";

const kbId = document.body.dataset.kbId;
const kbPath = `/api/kbs/${encodeURIComponent(kbId)}`;
const POLL_MS = 1500;
const PENDING = new Set(["queued", "indexing"]);
const STATUS_KIND = { queued: "pending", indexing: "pending", indexed: "ok", failed: "bad" };
const ROLE_LABELS = { owner: "Owner", editor: "Editor", viewer: "Viewer" };

let canWrite = false;
let pollTimer = null;
let currentKb = null;
let isOwnerOfKb = false;
let me = null;

// ---- documents ----

function documentRow(doc) {
  const file = doc.name || doc.path || doc.source_path || "";
  const name = doc.title || file;
  const path = file !== name ? file : "";
  const fileUrl = `/api/documents/${encodeURIComponent(doc.id)}/file`;
  const status = el("td", { class: "status" }, badge(doc.status, STATUS_KIND[doc.status] || ""));
  if (doc.status === "failed" && doc.error) status.append(el("div", { class: "error-text small" }, doc.error));
  else if (doc.error) status.append(el("div", { class: "muted small" }, `Retrying after: ${doc.error}`));
  if (doc.status === "failed" && doc.retryable === false) {
    // The file itself is the problem: say so, rather than offer a retry that would fail the same way.
    status.append(el("div", { class: "muted small" }, "Trying again would fail the same way: upload a repaired copy under the same name to replace it."));
  }
  if (doc.progress) status.append(progressOf(doc.progress, name));
  const actions = el(
    "td",
    { class: "row-actions" },
    el("a", { class: "button secondary small", href: fileUrl, download: file.split("/").pop(), "aria-label": `Download ${name}` }, "Download"),
  );
  if (canWrite && doc.status === "failed" && doc.retryable !== false) {
    actions.append(el("button", { type: "button", class: "button secondary small", onclick: (e) => retry(doc, e.currentTarget), "aria-label": `Retry ${name}` }, "Retry"));
  }
  if (canWrite) {
    actions.append(el("button", { type: "button", class: "button danger small", onclick: () => remove(doc, name), "aria-label": `Delete ${name}` }, "Delete"));
  }
  return el(
    "tr",
    { dataset: { id: doc.id, status: doc.status } },
    el("td", {}, el("div", { class: "doc-name" }, name), path ? el("div", { class: "muted small" }, path) : null),
    status,
    el("td", { class: "num" }, formatBytes(doc.size)),
    el("td", { class: "wide-only" }, timeElement(doc.updated_at || doc.indexed_at || doc.created_at, { time: true })),
    actions,
  );
}

/** How far indexing got: "120 of 300 chunks", with a bar. */
function progressOf(progress, name) {
  const label = `${progress.done} of ${progress.total} ${progress.unit || "chunks"}`;
  return el(
    "div",
    { class: "progress muted small" },
    el("progress", { max: progress.total, value: progress.done, "aria-label": `Indexing ${name}: ${label}` }),
    el("span", {}, label),
  );
}

/** Rows are replaced only when their document changed, so focus survives the polling. */
function renderDocuments(docs) {
  const table = $("#docs-table");
  const previous = new Map([...table.tBodies[0].rows].map((row) => [row.dataset.id, row]));
  const rows = docs.map((doc) => {
    const signature = JSON.stringify([doc.status, doc.error, doc.retryable, doc.progress, doc.title, doc.size, doc.updated_at, canWrite]);
    const old = previous.get(String(doc.id));
    if (old && old.dataset.signature === signature) return old;
    const row = documentRow(doc);
    row.dataset.signature = signature;
    return row;
  });
  fillTable(table, $("#docs-empty"), rows);
  const pending = docs.filter((d) => PENDING.has(d.status)).length;
  $("#docs-count").textContent = docs.length
    ? `${docs.length} document${docs.length === 1 ? "" : "s"}${pending ? `, ${pending} being indexed` : ""}`
    : "";
  return pending;
}

async function loadDocuments() {
  clearTimeout(pollTimer);
  pollTimer = null;
  try {
    const pending = renderDocuments(items(await api(`${kbPath}/documents`), "documents"));
    if (pending) pollTimer = setTimeout(loadDocuments, POLL_MS);
  } catch (error) {
    showError($("#upload-error"), error);
    pollTimer = setTimeout(loadDocuments, POLL_MS * 4); // a blip should not stop the live status for good
  }
}

async function upload(files) {
  if (!files.length) return;
  const error = $("#upload-error");
  const status = $("#upload-status");
  clearError(error);
  showRejected($("#upload-rejected"), []);
  status.textContent = `Uploading ${plural(files.length, "file")}…`;
  try {
    const { accepted, rejected } = await uploadFiles(kbId, files, $("#file-input"));
    status.textContent = accepted.length ? `${plural(accepted.length, "file")} accepted.` : "No file was added.";
    showRejected($("#upload-rejected"), rejected);
  } catch (err) {
    status.textContent = "";
    showError(error, err);
  }
  await loadDocuments();
}

async function retry(doc, button) {
  await busy(button, async () => {
    try {
      await api(`/api/documents/${encodeURIComponent(doc.id)}/retry`, { method: "POST" });
    } catch (err) {
      showError($("#upload-error"), err);
    }
  });
  await loadDocuments();
}

async function remove(doc, name) {
  const ok = await confirmAction({ title: "Delete document?", message: `“${name}” and its search index will be deleted.` });
  if (!ok) return;
  try {
    await api(`/api/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
    $("#upload-status").textContent = shown(`Deleted “${name}”.`);
  } catch (err) {
    showError($("#upload-error"), err);
  }
  await loadDocuments();
  refocus($("#docs-title"));
}

function setUpDropzone() {
  acceptFiles({ zone: $("#upload"), input: $("#file-input"), button: $("#choose-files"), onFiles: upload });
}

// ---- members ----

async function loadMembers(isOwner) {
  let members;
  try {
    members = items(await api(`${kbPath}/members`), "members");
  } catch {
    return; // without the right to see members the section simply stays hidden
  }
  $("#members").hidden = false;
  $("#share-form").hidden = !isOwner;
  const rows = members.map((m) => {
    const who = m.email || m.user_id;
    const isMe = String(m.user_id) === String(me.id);
    const actions = el("td", { class: "row-actions" });
    if (m.role !== "owner" && (isOwner || isMe)) {
      const label = isMe && !isOwner ? "Leave" : "Remove";
      actions.append(el("button", { type: "button", class: "button danger small", onclick: () => removeMember(m, who, isMe), "aria-label": `${label} ${who}` }, label));
    }
    const role = isOwner && m.role !== "owner" ? roleSelect(m, who) : badge(ROLE_LABELS[m.role] || m.role, m.role);
    return el("tr", { dataset: { userId: m.user_id } }, el("td", {}, who), el("td", {}, role), actions);
  });
  fillTable($("#members-table"), null, rows);
  $("#members-table").hidden = false;
  if (isOwner) await suggestPeople(members);
}

function roleSelect(member, who) {
  const select = el(
    "select",
    { class: "role-select", "aria-label": `Role of ${who}`, onchange: (e) => changeRole(member, who, e.currentTarget) },
    ...["viewer", "editor"].map((role) => el("option", { value: role, selected: role === member.role }, ROLE_LABELS[role])),
  );
  return select;
}

async function changeRole(member, who, select) {
  const error = $("#share-error");
  clearError(error);
  select.disabled = true;
  try {
    const changed = await api(`${kbPath}/members/${encodeURIComponent(member.user_id)}`, { method: "PATCH", json: { role: select.value } });
    member.role = changed.role;
    $("#share-status").textContent = `${who} is now ${ROLE_LABELS[changed.role].toLowerCase()} of this knowledge base.`;
  } catch (err) {
    select.value = member.role;
    showError(error, err);
  } finally {
    select.disabled = false;
  }
}

/** Offer the people the server suggests (everyone for an admin, people you already share with otherwise),
 * minus the members. Suggestions are a convenience: without them the field still takes any address. */
async function suggestPeople(members) {
  let emails = [];
  try {
    emails = (await api("/api/share-suggestions")).emails || [];
  } catch {
    return;
  }
  const taken = new Set(members.map((m) => String(m.email).toLowerCase()));
  const options = emails.filter((email) => !taken.has(email.toLowerCase())).map((email) => el("option", { value: email }));
  $("#share-people").replaceChildren(...options);
}

async function share(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#share-error");
  clearError(error);
  $("#share-status").textContent = "";
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      // Sharing is an invitation: the answer reads the same whether or not the address has an account.
      const sent = await api(`${kbPath}/members`, { method: "POST", json: { email: form.email.value.trim(), role: form.role.value } });
      $("#share-status").textContent = (sent && sent.detail) || "Invitation sent.";
      form.email.value = "";
      await loadMembers(true);
    } catch (err) {
      showError(error, err);
      form.email.focus();
    }
  });
}

async function removeMember(member, who, isMe) {
  const leaving = isMe && !isOwnerOfKb;
  const ok = await confirmAction(
    leaving
      ? { title: "Leave knowledge base?", message: "You will lose access to it until someone shares it with you again.", confirmLabel: "Leave" }
      : { title: "Remove member?", message: `${who} will lose access to this knowledge base.`, confirmLabel: "Remove" },
  );
  if (!ok) return;
  try {
    await api(`${kbPath}/members/${encodeURIComponent(member.user_id)}`, { method: "DELETE" });
  } catch (err) {
    flash(err);
    return;
  }
  if (leaving) location.assign("/kbs");
  else {
    await loadMembers(true);
    refocus($("#members-title"));
  }
}

// ---- settings ----

function showKb(kb) {
  currentKb = kb;
  const label = kbLabels([kb], me).get(String(kb.id));
  document.title = `${label} · Memex`;
  $("#kb-title").textContent = label;
  $("#kb-role").textContent = ROLE_LABELS[kb.role] || kb.role || "";
  $("#kb-role").className = `badge ${kb.role || ""}`;
  $("#kb-description").textContent = shown(kb.description || "");
}

async function save(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("#kb-edit-error");
  clearError(error);
  await busy(form.querySelector("button[type=submit]"), async () => {
    try {
      const kb = await api(kbPath, { method: "PATCH", json: { name: form.name.value.trim(), description: form.description.value.trim() } });
      showKb({ role: currentKb.role, ...(kb.kb || kb) });
    } catch (err) {
      showError(error, err);
    }
  });
}

async function deleteKb() {
  const kb = currentKb;
  const ok = await confirmAction({
    title: "Delete knowledge base?",
    message: `“${kb.name}”, all its documents and its search index will be deleted for everyone. This cannot be undone.`,
  });
  if (!ok) return;
  try {
    await api(kbPath, { method: "DELETE" });
    location.assign("/kbs");
  } catch (err) {
    showError($("#kb-edit-error"), err);
  }
}

run(async () => {
  const user = await start();
  me = user;
  let kb;
  try {
    kb = await api(kbPath);
  } catch (error) {
    $("#kb-title").textContent = "Knowledge base not available";
    for (const section of document.querySelectorAll("main section")) section.hidden = true;
    flash(error);
    return;
  }
  kb = kb.kb || kb;
  showKb(kb);
  const isOwner = kb.role === "owner" || user.is_admin;
  isOwnerOfKb = isOwner;
  canWrite = isOwner || kb.role === "editor";
  $("#kb-readonly").hidden = canWrite;
  $("#docs-empty").textContent = canWrite ? "No documents yet. Drag files onto the box above or choose them: once indexed, they can be searched and asked about in chat." : "No documents yet. Its owner or an editor can add some.";
  if (canWrite) setUpDropzone();
  if (isOwner) {
    $("#kb-settings").hidden = false;
    const form = $("#kb-edit");
    form.name.value = kb.name;
    form.description.value = kb.description || "";
    form.addEventListener("submit", save);
    // A personal knowledge base comes with the account and cannot be deleted.
    $("#kb-delete").hidden = Boolean(kb.is_personal);
    $("#kb-delete").addEventListener("click", deleteKb);
    $("#share-form").addEventListener("submit", share);
  }
  await Promise.all([loadDocuments(), loadMembers(isOwner)]);
});
