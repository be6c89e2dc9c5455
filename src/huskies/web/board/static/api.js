// The public HTTP API, with the access token when the server asks for one.

const TOKEN_KEY = "huskies.token";

let token = localStorage.getItem(TOKEN_KEY) || "";

export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

export function hasToken() {
  return token !== "";
}

export function setToken(value) {
  token = value.trim();
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(
      0,
      "the server cannot be reached (is it restarting?); try again in a moment",
    );
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = data?.error ?? { message: `${method} ${path} failed: HTTP ${response.status}` };
    throw new ApiError(response.status, error.message, error.field ?? null);
  }
  return data;
}

export function post(path, body) {
  return api(path, { method: "POST", body });
}

// The event stream's address; a browser cannot set headers on a websocket, so the token
// goes in the query.
export function eventsUrl() {
  const url = new URL("/api/events", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  return url.href;
}
