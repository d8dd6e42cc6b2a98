// Taking files from the user: a drop zone with a "Choose files" button, and the upload of those files to a KB.

import { api, items } from "./api.js";
import { el } from "./ui.js";

/** Call `onFiles` with the files dropped on `zone` or picked through `button` (which opens `input`). */
export function acceptFiles({ zone, input, button, onFiles }) {
  zone.hidden = false;
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    await onFiles([...input.files]);
    input.value = "";
  });
  // Dropping a file anywhere else would make the browser open it and leave the page.
  for (const type of ["dragover", "drop"]) document.addEventListener(type, (e) => e.preventDefault());
  let depth = 0;
  zone.addEventListener("dragenter", () => {
    depth += 1;
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (event) => {
    depth = 0;
    zone.classList.remove("dragging");
    onFiles([...event.dataTransfer.files]);
  });
}

// The server's limit is on each request: files go in requests that stay under it, and room is left for the
// multipart envelope (the server allows 64 KiB of it), so a file within the limit is never refused for its company.
const FILES_PER_REQUEST = 40;

/** The largest file the picker's input says an upload takes, in bytes (0: no limit known). */
function maxBytesOf(input) {
  return Number(input.dataset.maxMb || 0) * 1024 * 1024;
}

function inBatches(files, maxBytes) {
  const batches = [];
  let batch = [];
  let size = 0;
  for (const file of files) {
    if (batch.length && (batch.length >= FILES_PER_REQUEST || (maxBytes && size + file.size > maxBytes))) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(file);
    size += file.size;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

/**
 * Upload files to a KB; resolves to {accepted, rejected}: the documents accepted (queued for indexing) and each
 * file not accepted as {name, reason}. A file over the size limit is not sent at all. Rejects only when nothing
 * could be uploaded for a reason that is not the files' own (no permission, the server away).
 */
export async function uploadFiles(kbId, files, input) {
  const maxBytes = input ? maxBytesOf(input) : 0;
  const accepted = [];
  const rejected = [];
  const sendable = [];
  for (const file of files) {
    if (maxBytes && file.size > maxBytes) {
      rejected.push({ name: file.name, reason: `the file is larger than the upload limit of ${input.dataset.maxMb} MiB` });
    } else sendable.push(file);
  }
  let failure = null;
  let failedFiles = [];
  for (const batch of inBatches(sendable, maxBytes)) {
    const form = new FormData();
    for (const file of batch) form.append("files", file, file.name);
    try {
      const data = await api(`/api/kbs/${encodeURIComponent(kbId)}/documents`, { method: "POST", form });
      accepted.push(...items(data, "documents"));
      rejected.push(...items(data, "rejected"));
    } catch (error) {
      const theirs = error.body ? items(error.body, "rejected") : [];
      if (theirs.length) rejected.push(...theirs);
      else {
        failure = failure || error;
        failedFiles = failedFiles.concat(batch.map((file) => ({ name: file.name, reason: error.message })));
      }
    }
  }
  // Nothing got through and no file has a reason of its own: one message says it better than one per file.
  if (failure && !accepted.length && !rejected.length) throw failure;
  // Listed in the order the files were picked, wherever their reason came from.
  const order = new Map(files.map((file, i) => [file.name, i]).reverse());
  const place = (r) => (order.has(r.name) ? order.get(r.name) : files.length);
  return { accepted, rejected: rejected.concat(failedFiles).sort((a, b) => place(a) - place(b)) };
}

/** List the rejected files in `region` (an alert), each with its reason; hide it when there are none. */
export function showRejected(region, rejected) {
  region.replaceChildren();
  region.hidden = !rejected.length;
  if (!rejected.length) return;
  region.append(
    el("p", { class: "rejected-title" }, rejected.length === 1 ? "This file was not added:" : `These ${rejected.length} files were not added:`),
    el("ul", {}, ...rejected.map((r) => el("li", {}, el("strong", {}, r.name), `: ${sentence(r.reason)}`))),
  );
}

/** A reason as the end of a sentence: a capital is not wanted after "name:", a full stop is. */
function sentence(reason) {
  const text = String(reason || "not accepted").trim();
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}
