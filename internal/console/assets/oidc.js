// OIDC sign-in through the access plane's identity provider: authorization
// code with PKCE (S256) in the browser, as `mb access login` does on the
// command line. The ID token is exchanged at the access plane's Login for a
// broker token of the role <tenant>.admin; nothing of the flow outlives it:
// the verifier, state and nonce sit in sessionStorage until the callback and
// are removed there, and no refresh token is kept.
import { api } from './api.js';

const PENDING = 'mb.oidc';

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));

async function getJSON(url, init) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 15000);
  try {
    const res = await fetch(url, { ...init, credentials: 'omit', cache: 'no-store', signal: ctl.signal });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${body.error_description || body.error || ''}`.trim());
    return body;
  } catch (e) {
    throw new Error(e.name === 'AbortError' ? `${url}: no answer in time` : e.message);
  } finally { clearTimeout(timer); }
}

// loginConfig is the access plane's login issuer and client, or null when
// the server offers no OIDC login.
export async function loginConfig() {
  try {
    const c = await api.access('GetConfig');
    return c && c.oidcIssuer && c.loginClientId ? c : null;
  } catch { return null; }
}

// redirectURI is the console's own page: the provider sends the code here.
const redirectURI = () => location.origin + location.pathname;

// startLogin sends the browser to the provider's authorization endpoint.
export async function startLogin(cfg, tenant) {
  const d = await getJSON(cfg.oidcIssuer.replace(/\/$/, '') + '/.well-known/openid-configuration');
  if (d.issuer !== cfg.oidcIssuer) throw new Error(`the provider calls itself ${d.issuer}, not ${cfg.oidcIssuer}`);
  const verifier = random(32), state = random(16), nonce = random(16);
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  sessionStorage.setItem(PENDING, JSON.stringify({
    state, nonce, verifier, tenant, issuer: d.issuer, clientId: cfg.loginClientId, tokenEndpoint: d.token_endpoint, redirect: redirectURI(),
  }));
  const u = new URL(d.authorization_endpoint);
  u.search = new URLSearchParams({
    response_type: 'code', client_id: cfg.loginClientId, redirect_uri: redirectURI(),
    scope: (cfg.loginScopes && cfg.loginScopes.length ? cfg.loginScopes : ['openid', 'email', 'groups']).join(' '),
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  }).toString();
  location.assign(u.toString());
}

// claims reads a JWT's payload (the server verifies its signature at Login).
function claims(jwt) {
  const p = (jwt || '').split('.')[1];
  if (!p) throw new Error('the provider returned no ID token');
  return JSON.parse(decodeURIComponent(escape(atob(p.replace(/-/g, '+').replace(/_/g, '/')))));
}

// finishLogin completes a callback in the page's URL: it returns the broker
// token, null when the URL is no callback, or throws why the login failed.
export async function finishLogin() {
  const q = new URLSearchParams(location.search);
  if (!q.has('code') && !q.has('error')) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || 'null');
  sessionStorage.removeItem(PENDING);
  // The code must not stay in the address bar or the history.
  history.replaceState(null, '', location.pathname + '#/login');
  if (!pending) throw new Error('no sign-in was started in this tab');
  if (q.get('state') !== pending.state) throw new Error('the answer does not belong to this sign-in (state mismatch)');
  if (q.has('error')) throw new Error(`the provider refused: ${q.get('error_description') || q.get('error')}`);
  if (q.has('iss') && q.get('iss') !== pending.issuer) throw new Error('the answer comes from another issuer (RFC 9207 iss mismatch)');
  const tok = await getJSON(pending.tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: q.get('code'), redirect_uri: pending.redirect,
      client_id: pending.clientId, code_verifier: pending.verifier,
    }).toString(),
  });
  const c = claims(tok.id_token);
  if (c.nonce !== pending.nonce) throw new Error('the ID token was not issued for this sign-in (nonce mismatch)');
  if (c.iss !== pending.issuer) throw new Error('the ID token comes from another issuer');
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  if (!aud.includes(pending.clientId)) throw new Error('the ID token is for another client');
  const creds = await api.access('Login', { tenant: pending.tenant, idToken: tok.id_token });
  return creds.token;
}
