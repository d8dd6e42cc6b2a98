// Taking files from the user: a drop zone with a "Choose files" button, and the upload of those files to a KB.

import { api, items } from "./api.js";

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

/** Upload files to a KB in one request; returns the documents it accepted (queued for indexing). */
export async function uploadFiles(kbId, files) {
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  const data = await api(`/api/kbs/${encodeURIComponent(kbId)}/documents`, { method: "POST", form });
  return items(data, "documents");
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}
