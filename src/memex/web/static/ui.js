// Small DOM helpers shared by the pages. Text is always inserted as text; only search snippets carry markup.

export function $(selector, root = document) {
  return root.querySelector(selector);
}

// Bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069): a file named "invoice\u202Efdp.exe" would
// show as "invoiceexe.pdf". Removed from every text and attribute el() writes (memex/safe_text.py does the same for
// the CLI).
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

/** Text as it may be shown: without bidi control characters. */
export function shown(text) {
  return String(text).replace(BIDI_CONTROLS, "");
}

/** Build an element: el("a", {href, class: "x", onclick}, "text", child). Strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : shown(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(shown(child)));
  }
  return node;
}

export function showError(region, error) {
  region.textContent = error && error.message ? error.message : String(error);
  region.hidden = false;
}

export function clearError(region) {
  region.textContent = "";
  region.hidden = true;
}

/** Run `action` with `button` disabled, so a double click or a second Enter does not submit twice. */
export async function busy(button, action) {
  if (!button) return action();
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatDate(iso, { time = false, empty = "—" } = {}) {
  if (!iso) return empty;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return empty;
  return (time ? dateTimeFormat : dateFormat).format(date);
}

export function timeElement(iso, options = {}) {
  const text = formatDate(iso, options);
  return iso ? el("time", { datetime: iso, title: formatDate(iso, { time: true }) }, text) : text;
}

export function formatBytes(size) {
  if (size === undefined || size === null) return "—";
  const units = ["B", "KB", "MB", "GB"];
  let value = Number(size);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * The search snippet as nodes: the API sends escaped text with <mark> around matches. Rebuilding it
 * from text plus <mark> elements keeps any other markup inert, whatever the server sent.
 */
export function snippetNodes(html) {
  const fragment = document.createDocumentFragment();
  const decoder = document.createElement("textarea");
  let target = fragment;
  for (const part of String(html || "").split(/(<mark>|<\/mark>)/i)) {
    if (/^<mark>$/i.test(part)) {
      target = fragment.appendChild(document.createElement("mark"));
    } else if (/^<\/mark>$/i.test(part)) {
      target = fragment;
    } else if (part) {
      decoder.innerHTML = part; // a <textarea> only decodes entities; it never creates elements or runs scripts
      target.append(document.createTextNode(decoder.value));
    }
  }
  return fragment;
}

/** Ask before a destructive action, in an accessible modal <dialog>; resolves to true to proceed. */
export function confirmAction({ title, message, confirmLabel = "Delete" }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title", dialog).textContent = title;
  $("#confirm-message", dialog).textContent = shown(message);
  $("#confirm-ok", dialog).textContent = confirmLabel;
  const opener = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        resolve(dialog.returnValue === "ok");
        if (opener && opener.isConnected) opener.focus();
      },
      { once: true },
    );
    dialog.returnValue = "cancel";
    dialog.showModal();
    $("#confirm-cancel", dialog).focus();
  });
}

export async function copyText(text, statusRegion) {
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    const area = el("textarea", { class: "visually-hidden", readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    copied = document.execCommand("copy");
    area.remove();
  }
  if (statusRegion) statusRegion.textContent = copied ? "Copied to the clipboard." : "Copy failed: select the text and copy it.";
  return copied;
}

export function badge(text, kind = "") {
  return el("span", { class: `badge ${kind}`.trim() }, text);
}

/** Show or hide a table and its empty-state message, filling the table body with `rows`. */
export function fillTable(table, emptyMessage, rows) {
  // Each cell carries its column's name, shown beside it where narrow screens stack a row's cells (app.css).
  const headers = table.tHead ? [...table.tHead.rows[0].cells].map((th) => th.textContent.trim()) : [];
  for (const row of rows) [...row.cells].forEach((cell, i) => (cell.dataset.label = headers[i] || ""));
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  if (emptyMessage) emptyMessage.hidden = rows.length !== 0;
}

/** "Lena" from an owner name such as "lena" (the local part of their email). */
function ownerLabel(name) {
  return name ? name.charAt(0).toUpperCase() + name.slice(1) : "";
}

/** Names to show for KBs: another user's personal KB is "Lena's personal KB", a name shared by several KBs says
 * whose each is. Never an id. */
export function kbLabels(kbs, user) {
  const mine = (kb) => user && String(kb.owner_id) === String(user.id);
  const base = (kb) => (kb.is_personal && !mine(kb) && kb.owner_name ? `${ownerLabel(kb.owner_name)}'s personal KB` : kb.name);
  const counts = new Map();
  for (const kb of kbs) counts.set(base(kb), (counts.get(base(kb)) || 0) + 1);
  return new Map(
    kbs.map((kb) => {
      const name = base(kb);
      if (counts.get(name) === 1) return [String(kb.id), shown(name)];
      const whose = mine(kb) ? "yours" : kb.owner_name ? ownerLabel(kb.owner_name) : "local";
      return [String(kb.id), shown(`${name} (${whose})`)];
    }),
  );
}

/** After the focused control was removed (a deleted row), put keyboard focus somewhere sensible. */
export function refocus(fallback) {
  if (!document.activeElement || document.activeElement === document.body) fallback.focus();
}
