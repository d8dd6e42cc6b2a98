// The API client: JSON in and out, the CSRF header on writes, and the API's {"detail"} as the error message.

export class ApiError extends Error {
  constructor(status, detail, body = null) {
    super(detail);
    this.status = status;
    this.body = body; // the whole error body, for errors that say more than `detail` (an upload's rejected files)
  }
}

const CSRF_COOKIE = "memex_csrf";

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

/** The header that proves a cookie-authenticated write comes from our own pages. */
export function csrfHeader() {
  const token = cookie(CSRF_COOKIE);
  return token ? { "X-CSRF-Token": token } : {};
}

/** The API's details are written to be read inside other text ("knowledge base not found"); alone on a page
 * they start with a capital and end with a full stop. */
export function sentence(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return trimmed;
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

function detailOf(data, response) {
  const detail = data && data.detail;
  if (typeof detail === "string" && detail) return sentence(detail);
  if (Array.isArray(detail)) return sentence(detail.map((d) => d.msg || String(d)).join("; "));
  return `The server answered ${response.status} ${response.statusText || "error"}.`.replace(" .", ".");
}

async function readBody(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      return await response.json();
    } catch {
      return null;
    }
  }
  return { detail: (await response.text()).slice(0, 300) || undefined };
}

export function loginUrl() {
  return "/login?next=" + encodeURIComponent(location.pathname + location.search);
}

/** Call the API; resolves to the parsed body, rejects with ApiError carrying the server's detail. */
export async function api(path, { method = "GET", json, form, params, redirectOn401 = true } = {}) {
  const url = new URL(path, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    for (const item of [].concat(value)) {
      if (item !== undefined && item !== null && item !== "") url.searchParams.append(key, item);
    }
  }
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  if (method !== "GET" && method !== "HEAD") Object.assign(headers, csrfHeader());
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: "same-origin" });
  } catch {
    throw new ApiError(0, "Cannot reach the Memex server. Check your connection and try again.");
  }
  const data = await readBody(response);
  if (response.status === 401 && redirectOn401) {
    location.assign(loginUrl());
    return new Promise(() => {}); // the page is going away; callers need not handle this
  }
  if (!response.ok) throw new ApiError(response.status, detailOf(data, response), data);
  return data;
}

/** The list in a response, whether the API sent a bare array or {key: [...]}. */
export function items(data, key) {
  if (Array.isArray(data)) return data;
  return (data && Array.isArray(data[key]) && data[key]) || [];
}

/** One Server-Sent Event block ("event: x" / "data: …" lines) as {event, data}; null for a heartbeat. */
function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try {
    return { event, data: JSON.parse(data.join("\n")) };
  } catch {
    return { event, data: data.join("\n") };
  }
}

/**
 * POST `json` and yield the Server-Sent Events of the answer as {event, data}. Errors before the stream
 * starts reject with ApiError, as `api` does; aborting `signal` ends the stream with an AbortError.
 */
export async function* postEvents(path, { json, signal }) {
  const headers = { Accept: "text/event-stream", "Content-Type": "application/json", ...csrfHeader() };
  let response;
  try {
    response = await fetch(new URL(path, location.origin), {
      method: "POST", headers, body: JSON.stringify(json), credentials: "same-origin", signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "Cannot reach the Memex server. Check your connection and try again.");
  }
  if (response.status === 401) {
    location.assign(loginUrl());
    return;
  }
  if (!response.ok || !response.body) throw new ApiError(response.status, detailOf(await readBody(response), response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      const blocks = buffer.split(/\r\n\r\n|\n\n|\r\r/);
      buffer = blocks.pop();
      for (const block of blocks) {
        const parsed = parseEvent(block);
        if (parsed) yield parsed;
      }
    }
    const last = parseEvent(buffer);
    if (last) yield last;
  } finally {
    reader.cancel().catch(() => {});
  }
}
