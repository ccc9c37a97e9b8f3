// Requests to the server from the pages: the JSON API (session + CSRF) and the server-rendered fragments
// the pages place as they are, so every rule of how things look is written once, in the templates.

const csrfToken = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

export class HttpError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(method, url, body) {
  const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
  let payload = body;
  if (body && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new HttpError(response.status, data);
  return data;
}

// A part of a page, as HTML: {status, html}; 204 means "nothing (any more) for this".
export async function fragment(url, kind = "part") {
  const response = await fetch(url, { headers: { "X-Fragment": kind }, credentials: "same-origin" });
  if (response.status === 401 || response.status === 403) {
    location.reload(); // the session ended or lost its clinic: the server shows the login
    throw new HttpError(response.status);
  }
  if (!response.ok && response.status !== 204) throw new HttpError(response.status);
  return { status: response.status, html: response.status === 204 ? "" : await response.text() };
}

// Parsed, not injected: the HTML comes from our own templates, and the result is adopted node by node.
export function nodesOf(html) {
  const template = document.createElement("template");
  template.innerHTML = html; // server-rendered by our templates, every user string already escaped
  return [...template.content.children];
}

export function config() {
  const element = document.getElementById("workspace-config");
  return element ? JSON.parse(element.textContent) : {};
}

export function announce(text) {
  const region = document.getElementById("announcer");
  if (region) region.textContent = text;
}
