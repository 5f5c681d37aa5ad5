// Calls to the admin API and the access plane with the user's token. The
// token lives in sessionStorage only (gone when the tab closes) and travels
// in the Authorization header, never in a cookie, so other sites cannot
// make the browser send it (no CSRF).
const KEY = 'mb.token';

export const session = {
  get token() { return sessionStorage.getItem(KEY) || ''; },
  set token(v) { if (v) sessionStorage.setItem(KEY, v); else sessionStorage.removeItem(KEY); },
};

export class APIError extends Error {
  constructor(status, reason) { super(`${status}: ${reason}`); this.status = status; this.reason = reason; }
}

async function call(method, path, body, opts = {}) {
  const headers = {};
  if (session.token) headers.Authorization = 'Bearer ' + session.token;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), opts.timeout || 15000);
  init.signal = ctl.signal;
  let res;
  try { res = await fetch(path, init); } catch (e) {
    throw new APIError(0, e.name === 'AbortError' ? 'the server did not answer in time' : 'network error: ' + e.message);
  } finally { clearTimeout(timer); }
  if (!res.ok) {
    let reason = res.statusText;
    const text = await res.text();
    try { const j = JSON.parse(text); reason = j.reason || j.message || text; } catch { if (text) reason = text; }
    if (res.status === 401 && path !== '/access/v1/WhoAmI') window.dispatchEvent(new CustomEvent('mb-unauthorized'));
    throw new APIError(res.status, reason);
  }
  if (opts.raw) return res;
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  try { return JSON.parse(text); } catch { return text; }
}

export const api = {
  get: (p, o) => call('GET', p, undefined, o),
  put: (p, b, o) => call('PUT', p, b, o),
  post: (p, b, o) => call('POST', p, b, o),
  del: (p, o) => call('DELETE', p, undefined, o),
  // The access plane's JSON mapping: POST /access/v1/<Method>.
  access: (method, req = {}) => call('POST', '/access/v1/' + method, req),
  metrics: async () => {
    const res = await call('GET', '/metrics', undefined, { raw: true });
    return parseMetrics(await res.text());
  },
};

// parseMetrics reads Prometheus text format into name -> [{labels, value}].
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return out;
}

export function sum(metrics, name, filter) {
  let s = 0;
  for (const x of metrics.get(name) || []) if (!filter || filter(x.labels)) s += x.value;
  return s;
}

// enc encodes each path segment.
export const enc = (...parts) => parts.map(encodeURIComponent).join('/');
