// The console's only way to reach the API: same-origin fetch with the signed-in key.
//
// The key lives in sessionStorage (gone when the tab closes, never in a URL or a cookie), and
// the API base is derived from the console's own address, so the console works unchanged when
// the API is mounted under an API Gateway stage prefix (/api/console -> /api).

const KEY_ITEM = "sluice.console.key";
const ACCOUNT_ITEM = "sluice.console.account";

export function apiBase(pathname = window.location.pathname) {
  const match = /\/console(\/[^/]*)?$/.exec(pathname);
  return match ? pathname.slice(0, match.index) : "";
}

export const session = {
  get key() {
    return sessionStorage.getItem(KEY_ITEM);
  },
  get isAdmin() {
    const key = this.key;
    return Boolean(key) && !key.startsWith("mk-");
  },
  // The account an admin is managing; management keys always act on their own account.
  get accountId() {
    return this.isAdmin ? sessionStorage.getItem(ACCOUNT_ITEM) : null;
  },
  signIn(key) {
    sessionStorage.setItem(KEY_ITEM, key);
    sessionStorage.removeItem(ACCOUNT_ITEM);
  },
  selectAccount(accountId) {
    if (accountId) sessionStorage.setItem(ACCOUNT_ITEM, accountId);
    else sessionStorage.removeItem(ACCOUNT_ITEM);
  },
  signOut() {
    sessionStorage.removeItem(KEY_ITEM);
    sessionStorage.removeItem(ACCOUNT_ITEM);
  },
};

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && typeof body === "object" && body.error) || {};
    super(error.message || `The API answered with HTTP ${status}.`);
    this.status = status;
    this.type = error.type || null;
    this.code = error.code || null;
    this.param = error.param || null;
  }
}

// An error the console itself found (a field left empty...): its message is already in the
// console's language.
export function localError(message) {
  const error = new ApiError(0, { error: { message } });
  error.local = true;
  return error;
}

// Where clients send API calls: the console's own origin and stage prefix, plus /v1.
export function relayBaseUrl() {
  return `${window.location.origin}${apiBase()}/v1`;
}

export function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function send(method, path, { key, body, query, accept }) {
  const headers = { Accept: accept };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    return await fetch(apiBase() + withQuery(path, query), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
      redirect: "error",
    });
  } catch {
    throw new ApiError(0, { error: { message: "The API could not be reached." } });
  }
}

function parsed(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// One HTTP call. Resolves to {status, data, headers, ms}; rejects with ApiError on 4xx/5xx.
export async function call(method, path, { key, body, query } = {}) {
  const started = performance.now();
  const response = await send(method, path, { key, body, query, accept: "application/json" });
  const data = parsed(await response.text());
  const ms = Math.round(performance.now() - started);
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data, headers: response.headers, ms };
}

// A call answered with bytes (audio...): resolves to {status, blob, headers, ms}; rejects with
// ApiError on 4xx/5xx, whose bodies are OpenAI-shaped JSON.
export async function callBinary(method, path, { key, body } = {}) {
  const started = performance.now();
  const response = await send(method, path, { key, body, accept: "*/*" });
  if (!response.ok) throw new ApiError(response.status, parsed(await response.text()));
  const blob = await response.blob();
  const ms = Math.round(performance.now() - started);
  return { status: response.status, blob, headers: response.headers, ms };
}

// A call answered with server-sent events: resolves to the response once it starts (its body
// still streaming); rejects with ApiError on 4xx/5xx, which arrive as JSON before any event.
export async function openStream(method, path, { key, body } = {}) {
  const response = await send(method, path, { key, body, accept: "text/event-stream" });
  if (!response.ok) throw new ApiError(response.status, parsed(await response.text()));
  return response;
}

// The data of each event of a server-sent-event body, as it arrives ("[DONE]" included).
export async function* eventData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const lines = buffer.slice(0, end).split("\n");
      buffer = buffer.slice(end + 2);
      const data = lines.filter((line) => line.startsWith("data:"));
      if (data.length) yield data.map((line) => line.slice(5).replace(/^ /, "")).join("\n");
    }
    if (done) return;
  }
}

const refusedListeners = [];

export function onKeyRefused(listener) {
  refusedListeners.push(listener);
}

// A call with the signed-in key. ``scoped`` calls act on one account: an admin adds the
// account being managed as ?account_id=, exactly as the API expects.
export async function api(method, path, { body, query, scoped = false } = {}) {
  const fullQuery = { ...(query || {}) };
  if (scoped && session.isAdmin) fullQuery.account_id = session.accountId;
  try {
    return (await call(method, path, { key: session.key, body, query: fullQuery })).data;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      for (const listener of refusedListeners) listener(error);
    }
    throw error;
  }
}
