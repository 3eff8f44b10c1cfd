// The one door to the server: every request carries the page's token and every error reaches
// the message bar. Nothing here waits synchronously; callers get promises.

const params = new URLSearchParams(window.location.search);
export const token = params.get("token") || "";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------- message bar
let messageEl = null;
let messageTimer = null;

export function showMessage(text, kind = "error", ms = kind === "error" ? 8000 : 3500) {
  if (!messageEl) messageEl = document.querySelector("[data-testid=message]");
  if (!messageEl) {
    console.warn(text);
    return;
  }
  messageEl.querySelector(".text").textContent = text;
  messageEl.className = `message ${kind}`;
  messageEl.hidden = false;
  clearTimeout(messageTimer);
  if (ms > 0) messageTimer = setTimeout(hideMessage, ms);
}

export function hideMessage() {
  if (messageEl) messageEl.hidden = true;
}

// ---------------------------------------------------------------- requests
function headers(extra = {}) {
  const h = { ...extra };
  if (token) h["X-PPSeg-Token"] = token;
  return h;
}

async function errorText(resp) {
  let text = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.error) text = body.error;
  } catch (_) {
    /* not JSON */
  }
  return text;
}

/** A JSON request. `quiet` keeps errors out of the message bar (the caller shows them). */
export async function request(method, path, body, { quiet = false, text = false } = {}) {
  const opts = { method, headers: headers() };
  if (body !== undefined) {
    if (text) {
      opts.headers["Content-Type"] = "text/plain; charset=utf-8";
      opts.body = body;
    } else {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    const msg = `${method} ${path}: server unreachable (${e.message})`;
    if (!quiet) showMessage(msg);
    throw new ApiError(msg, 0);
  }
  if (!resp.ok) {
    const msg = await errorText(resp);
    if (!quiet) showMessage(msg);
    throw new ApiError(msg, resp.status);
  }
  const type = resp.headers.get("Content-Type") || "";
  if (type.includes("application/json")) return resp.json();
  return resp.text();
}

export const get = (path, o) => request("GET", path, undefined, o);
export const put = (path, body, o) => request("PUT", path, body, o);
export const post = (path, body, o) => request("POST", path, body ?? {}, o);
export const patch = (path, body, o) => request("PATCH", path, body, o);
export const del = (path, o) => request("DELETE", path, undefined, o);

/** A binary resource (a tile) as an ImageBitmap; errors are thrown, never shown. */
export async function getBitmap(path, signal) {
  const resp = await fetch(path, { headers: headers(), signal });
  if (!resp.ok) throw new ApiError(await errorText(resp), resp.status);
  const blob = await resp.blob();
  return createImageBitmap(blob);
}

/** Download a GET resource as a file named `filename`. */
export async function download(path, filename) {
  const resp = await fetch(path, { headers: headers() });
  if (!resp.ok) {
    const msg = await errorText(resp);
    showMessage(msg);
    throw new ApiError(msg, resp.status);
  }
  const blob = await resp.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
