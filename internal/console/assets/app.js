// The console: a hash-routed page of plain ES modules (no build step). Every
// view reads the admin API with the user's token; what the server refuses is
// shown with its reason.
import { api, session, enc, sum, APIError } from './api.js';
import { splitBatch } from './batch.js';
import { loginConfig, startLogin, finishLogin } from './oidc.js';
import { h, table, card, status, confirmAction, fmtBytes, fmtRate, Series, drawChart } from './ui.js';

const main = () => document.getElementById('main');
let timers = [];
let me = null; // WhoAmI of the token, when the access plane answers

function every(ms, fn) { fn(); timers.push(setInterval(fn, ms)); }
function stopTimers() { timers.forEach(clearInterval); timers = []; }

function show(title, ...content) {
  document.title = title + ' · MessageBus console';
  main().replaceChildren(h('h1', {}, title), ...content);
  main().focus({ preventScroll: true });
}

// run performs an action, reporting the server's answer in the status line.
async function run(what, fn, after) {
  try {
    await fn();
    status(what + ': done');
    if (after) await after();
    return true;
  } catch (e) {
    status(what + ' refused: ' + (e.reason || e.message), true);
    return false;
  }
}

const errBox = (e) => h('p', { class: 'err', role: 'alert' }, e instanceof APIError ? `${e.reason} (HTTP ${e.status})` : String(e));

// ---------- login ----------
async function signedIn() {
  // Any authenticated read proves the token; WhoAmI also says who.
  await api.get('/admin/v2/clusters');
  await whoami();
  location.hash = '#/overview';
}

async function viewLogin(callbackError) {
  const ta = h('textarea', { id: 'token', name: 'token', autocomplete: 'off', spellcheck: 'false', required: true });
  const msg = h('p', { role: 'alert' }, callbackError ? errBox(callbackError) : null);
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      session.token = ta.value.trim();
      try { await signedIn(); } catch (e) { session.token = ''; msg.replaceChildren(errBox(e)); }
    },
  }, h('label', { for: 'token' }, 'Token (JWT) — kept in this tab only'), ta,
  h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Sign in')));
  show('Sign in', h('p', {}, 'Paste a token issued for your role. The console acts with exactly its rights.'), form, msg);
  ta.focus();
  const cfg = await loginConfig();
  if (!cfg) return;
  const tenant = h('input', { id: 'oidc-tenant', name: 'tenant', required: true, autocomplete: 'off' });
  main().append(h('h2', {}, 'Sign in with your identity provider'),
    h('form', {
      class: 'inline',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try { await startLogin(cfg, tenant.value.trim()); } catch (e) { msg.replaceChildren(errBox(e)); }
      },
    }, h('label', { for: 'oidc-tenant' }, 'Tenant', tenant),
    h('button', { class: 'primary', type: 'submit', id: 'oidc-login' }, 'Log in with OIDC')),
    h('p', {}, `Through ${cfg.oidcIssuer}: you get the tenant's admin role if your account is in one of its groups.`));
}
async function whoami() {
  me = null;
  if (session.token) try { me = await api.access('WhoAmI'); } catch { /* access plane off: role unknown */ }
  const who = document.getElementById('who');
  who.textContent = me ? `${me.role}${me.superuser ? ' (superuser)' : ''}${me.expiresAt ? ' · expires ' + new Date(me.expiresAt).toLocaleString() : ''}` : (session.token ? 'signed in' : '');
  document.getElementById('logout').hidden = !session.token;
}

// ---------- overview ----------
const rateIn = new Series(), rateOut = new Series();
let lastCounters = null;

async function viewOverview() {
  const cIn = h('canvas', { role: 'img', 'aria-label': 'messages per second in' });
  const cOut = h('canvas', { role: 'img', 'aria-label': 'messages per second out' });
  const errs = h('div');
  show('Overview',
    h('div', { class: 'cards' },
      card('clusters', '…', 'ov-clusters'), card('tenants', '…', 'ov-tenants'), card('namespaces', '…', 'ov-namespaces'),
      card('topics', '…', 'ov-topics'), card('msg/s in', '…', 'ov-in'), card('msg/s out', '…', 'ov-out'),
      card('connections', '…', 'ov-conns'), card('storage (local)', '…', 'ov-storage'), card('storage (offloaded)', '…', 'ov-offloaded')),
    h('div', { class: 'charts' },
      h('figure', {}, cIn, h('figcaption', {}, 'msg/s in, last 15 min')),
      h('figure', {}, cOut, h('figcaption', {}, 'msg/s out, last 15 min'))), errs);
  const set = (id, v) => { const el = document.getElementById(id); if (el) el.textContent = v; };
  every(3000, async () => {
    try {
      const m = await api.metrics();
      const now = Date.now();
      const inN = sum(m, 'pulsar_broker_in_messages_total'), outN = sum(m, 'pulsar_broker_out_messages_total');
      if (lastCounters) {
        const dt = (now - lastCounters.t) / 1000;
        rateIn.push(Math.max(0, (inN - lastCounters.in) / dt));
        rateOut.push(Math.max(0, (outN - lastCounters.out) / dt));
      }
      lastCounters = { t: now, in: inN, out: outN };
      set('ov-in', fmtRate(rateIn.points.at(-1) ?? 0)); set('ov-out', fmtRate(rateOut.points.at(-1) ?? 0));
      set('ov-conns', sum(m, 'pulsar_active_connections'));
      set('ov-storage', fmtBytes(sum(m, 'pulsar_storage_size')));
      drawChart(cIn, [rateIn], ['#0b5cad']); drawChart(cOut, [rateOut], ['#1e7a34']);
      cIn.setAttribute('aria-label', 'messages per second in: ' + fmtRate(rateIn.points.at(-1) ?? 0));
      cOut.setAttribute('aria-label', 'messages per second out: ' + fmtRate(rateOut.points.at(-1) ?? 0));
    } catch (e) { errs.replaceChildren(errBox(e)); }
  });
  try {
    const clusters = await api.get('/admin/v2/clusters');
    set('ov-clusters', clusters.join(', '));
    const tenants = await api.get('/admin/v2/tenants');
    set('ov-tenants', tenants.length);
    let nss = 0, topics = 0, offloaded = 0;
    const sample = [];
    for (const t of tenants) {
      const list = await api.get('/admin/v2/namespaces/' + enc(t)).catch(() => []);
      nss += list.length;
      for (const ns of list) {
        const tl = await api.get('/admin/v2/namespaces/' + ns.split('/').map(encodeURIComponent).join('/') + '/topics').catch(() => []);
        topics += tl.length;
        sample.push(...tl.filter((x) => x.startsWith('persistent://')));
      }
    }
    set('ov-namespaces', nss); set('ov-topics', topics);
    // Offloaded bytes are per topic in stats; the first 100 topics are summed.
    for (const t of sample.slice(0, 100)) {
      const st = await api.get(topicPath(t) + '/stats').catch(() => null);
      if (st) offloaded += st.offloadedStorageSize || 0;
    }
    set('ov-offloaded', fmtBytes(offloaded) + (sample.length > 100 ? ' (first 100 topics)' : ''));
  } catch (e) { errs.replaceChildren(errBox(e)); }
}

// topicPath turns persistent://t/ns/x into the admin path.
function topicPath(full) {
  const m = /^(persistent|non-persistent):\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(full);
  if (!m) throw new Error('not a topic name: ' + full);
  return `/admin/v2/${m[1]}/${enc(m[2], m[3], m[4])}`;
}
const topicHash = (full) => '#/topic/' + full.replace('://', '/').split('/').map(encodeURIComponent).join('/');

// ---------- browser ----------
function searchBox(label, onInput) {
  return h('label', {}, label, h('input', { type: 'search', oninput: (e) => onInput(e.target.value.toLowerCase()) }));
}

function filteredList(items, link, label) {
  const ul = h('ul', { id: 'list' });
  const render = (q) => ul.replaceChildren(...items.filter((x) => x.toLowerCase().includes(q)).map((x) => h('li', {}, h('a', { href: link(x) }, x))));
  render('');
  return [searchBox(label, render), ul];
}

async function viewTenants() {
  try {
    const tenants = await api.get('/admin/v2/tenants');
    show('Tenants', ...filteredList(tenants, (t) => '#/t/' + encodeURIComponent(t), 'Search tenants'));
  } catch (e) { show('Tenants', errBox(e)); }
}

async function viewTenant(tenant) {
  try {
    const nss = await api.get('/admin/v2/namespaces/' + enc(tenant));
    show('Tenant ' + tenant, h('p', { class: 'crumbs' }, h('a', { href: '#/tenants' }, 'tenants')),
      ...filteredList(nss, (n) => '#/ns/' + n.split('/').map(encodeURIComponent).join('/'), 'Search namespaces'));
  } catch (e) { show('Tenant ' + tenant, errBox(e)); }
}

async function viewNamespace(tenant, ns) {
  const base = '/admin/v2/namespaces/' + enc(tenant, ns);
  const title = `Namespace ${tenant}/${ns}`;
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/tenants' }, 'tenants'), ' / ', h('a', { href: '#/t/' + encodeURIComponent(tenant) }, tenant));
  let topics = [], partitioned = [];
  try {
    topics = await api.get(base + '/topics');
    partitioned = await api.get('/admin/v2/persistent/' + enc(tenant, ns) + '/partitioned').catch(() => []);
  } catch (e) { show(title, crumbs, errBox(e)); return; }
  // Partitions are grouped under their partitioned topic.
  const groups = new Map();
  for (const p of partitioned) groups.set(p, []);
  const plain = [];
  for (const t of topics) {
    const m = /^(.*)-partition-\d+$/.exec(t);
    if (m && groups.has(m[1])) groups.get(m[1]).push(t); else plain.push(t);
  }
  const ul = h('ul', { id: 'topics' });
  const render = (q) => {
    const items = [];
    for (const [p, parts] of groups) {
      if (!p.toLowerCase().includes(q)) continue;
      items.push(h('li', {}, `${p} (partitioned, ${parts.length} partitions)`,
        h('ul', {}, parts.map((x) => h('li', {}, h('a', { href: topicHash(x) }, x))))));
    }
    for (const t of plain) if (t.toLowerCase().includes(q)) items.push(h('li', {}, h('a', { href: topicHash(t) }, t)));
    ul.replaceChildren(...items);
  };
  render('');
  const name = h('input', { name: 'topic', required: true, pattern: '[A-Za-z0-9_.:=-]+', 'aria-describedby': 'topic-help' });
  const create = h('form', {
    class: 'inline',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const full = `persistent://${tenant}/${ns}/${name.value}`;
      await run('create topic ' + full, () => api.put(topicPath(full)), () => route());
    },
  }, h('label', {}, 'New topic name', name), h('button', { type: 'submit' }, 'Create topic'),
  h('span', { id: 'topic-help', class: 'crumbs' }, 'persistent, non-partitioned'));
  show(title, crumbs, h('p', {}, h('a', { href: `#/policies/${enc(tenant, ns)}` }, 'Namespace policies')),
    searchBox('Search topics', render), ul, create);
}

// ---------- topic ----------
async function viewTopic(domain, tenant, ns, topic) {
  const full = `${domain}://${tenant}/${ns}/${topic}`;
  const path = topicPath(full);
  const crumbs = h('p', { class: 'crumbs' }, h('a', { href: '#/tenants' }, 'tenants'), ' / ',
    h('a', { href: '#/t/' + encodeURIComponent(tenant) }, tenant), ' / ', h('a', { href: '#/ns/' + enc(tenant, ns) }, ns));
  const cards = h('div', { class: 'cards' });
  const chart = h('canvas', { role: 'img', 'aria-label': 'rates' });
  const bChart = h('canvas', { role: 'img', 'aria-label': 'backlog' });
  const pubs = h('div'), subs = h('div'), misc = h('div'), errs = h('div');
  const sIn = new Series(), sOut = new Series(), sBacklog = new Series();
  const refresh = async () => {
    try {
      const st = await api.get(path + '/stats');
      const backlog = Object.values(st.subscriptions || {}).reduce((a, s) => a + (s.msgBacklog || 0), 0);
      sIn.push(st.msgRateIn || 0); sOut.push(st.msgRateOut || 0); sBacklog.push(backlog);
      cards.replaceChildren(card('msg/s in', fmtRate(st.msgRateIn), 'rate-in'), card('msg/s out', fmtRate(st.msgRateOut), 'rate-out'),
        card('bytes/s in', fmtBytes(st.msgThroughputIn)), card('backlog', backlog, 'backlog'),
        card('storage', fmtBytes(st.storageSize)), card('offloaded', fmtBytes(st.offloadedStorageSize || 0)),
        card('dedup', st.deduplicationStatus || '–'));
      drawChart(chart, [sIn, sOut], ['#0b5cad', '#1e7a34']);
      drawChart(bChart, [sBacklog], ['#b3261e']);
      chart.setAttribute('aria-label', `msg/s in ${fmtRate(st.msgRateIn)}, out ${fmtRate(st.msgRateOut)}`);
      pubs.replaceChildren(h('h2', {}, 'Producers'), table(['name', 'address', 'client version', 'msg/s', 'since'],
        (st.publishers || []).map((p) => [p.producerName, p.address, p.clientVersion, fmtRate(p.msgRateIn), p.connectedSince])));
      subs.replaceChildren(h('h2', {}, 'Subscriptions'), table(['name', 'type', 'backlog', 'unacked', 'consumers (address, client version)', 'actions'],
        Object.entries(st.subscriptions || {}).map(([name, s]) => [name, s.type, s.msgBacklog, s.unackedMessages,
          h('ul', {}, (s.consumers || []).map((c) => h('li', {}, `${c.consumerName} ${c.address} ${c.clientVersion}`))),
          subActions(path, full, name)])));
      errs.replaceChildren();
    } catch (e) { errs.replaceChildren(errBox(e)); }
  };
  const subName = h('input', { name: 'sub', required: true });
  const createSub = h('form', {
    class: 'inline',
    onsubmit: async (ev) => {
      ev.preventDefault();
      await run('create subscription ' + subName.value, () => api.put(`${path}/subscription/${enc(subName.value)}`), refresh);
    },
  }, h('label', {}, 'New subscription (at the end)', subName), h('button', { type: 'submit' }, 'Create subscription'));
  const ledger = h('input', { name: 'ledger', type: 'number', min: 0, required: true, size: 8 });
  const entry = h('input', { name: 'entry', type: 'number', min: 0, required: true, size: 8 });
  const readOut = h('div', { id: 'read-out' });
  const readById = h('form', {
    class: 'inline',
    onsubmit: async (ev) => {
      ev.preventDefault();
      readOut.replaceChildren(await messageView(`${path}/ledger/${ledger.value}/entry/${entry.value}`));
    },
  }, h('label', {}, 'Ledger id', ledger), h('label', {}, 'Entry id', entry), h('button', { type: 'submit' }, 'Read message by id'));
  const since = h('input', { name: 'since', size: 26, required: true, value: new Date(Date.now() - 3600e3).toISOString() });
  const readByTime = h('form', {
    class: 'inline',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const ms = Date.parse(since.value);
      if (!Number.isFinite(ms)) { readOut.replaceChildren(errBox('not a time: use ISO 8601, e.g. 2026-01-01T10:00:00Z')); return; }
      try {
        // The first entry published at or after the time, then the ones after it.
        const id = await api.get(`${path}/messageid/${ms}`);
        readOut.replaceChildren(h('h2', {}, `Messages from ${new Date(ms).toISOString()}`), ...(await readFrom(path, id.ledgerId, id.entryId)));
      } catch (e) { readOut.replaceChildren(errBox(e)); }
    },
  }, h('label', {}, 'Publish time (ISO 8601)', since), h('button', { type: 'submit' }, 'Read from time'));
  const topicActions = h('div', { class: 'row' },
    h('button', { type: 'button', onclick: () => act(`Unload ${full}?`, 'unload', () => api.put(path + '/unload'), refresh) }, 'Unload'),
    h('button', { type: 'button', class: 'danger', onclick: () => act(`Terminate ${full}? No more messages can be published.`, 'terminate', () => api.post(path + '/terminate'), refresh) }, 'Terminate'),
    h('button', { type: 'button', class: 'danger', onclick: () => act(`Delete ${full}?`, 'delete topic', () => api.del(path), () => { location.hash = '#/ns/' + enc(tenant, ns); }) }, 'Delete topic'),
    h('a', { href: `#/topic-policies/${enc(domain, tenant, ns, topic)}` }, 'Topic policies'));
  show('Topic ' + topic, crumbs, h('p', {}, full), topicActions, cards,
    h('div', { class: 'charts' }, h('figure', {}, chart, h('figcaption', {}, 'msg/s in (blue) and out (green)')),
      h('figure', {}, bChart, h('figcaption', {}, 'backlog'))), errs, pubs, subs, createSub, misc,
    h('h2', {}, 'Read messages'), readById, readByTime, readOut, h('div', { id: 'peek-out' }));
  every(3000, refresh);
  const [comp, off] = await Promise.all([api.get(path + '/compaction').catch((e) => ({ error: e.reason })), api.get(path + '/offload').catch((e) => ({ error: e.reason }))]);
  misc.replaceChildren(h('h2', {}, 'Compaction and offload'), table(['', 'status'], [['compaction', JSON.stringify(comp)], ['offload', JSON.stringify(off)]]));
}

async function act(question, what, fn, after) {
  if (await confirmAction(question)) await run(what, fn, after);
}

function subActions(path, full, name) {
  const sp = `${path}/subscription/${enc(name)}`;
  const after = () => route();
  return h('div', { class: 'row' },
    h('button', { type: 'button', onclick: async () => { document.getElementById('peek-out').replaceChildren(h('h2', {}, `Next messages of ${name}`), ...(await peek(sp))); } }, 'Peek'),
    h('button', { type: 'button', onclick: async () => {
      const n = prompt('Skip how many messages?', '1');
      if (n && /^\d+$/.test(n)) await act(`Skip ${n} messages of ${name}?`, 'skip', () => api.post(`${sp}/skip/${n}`), after);
    } }, 'Skip…'),
    h('button', { type: 'button', onclick: async () => {
      const t = prompt('Reset to time (ISO 8601, e.g. 2026-01-01T10:00:00Z)', new Date(Date.now() - 3600e3).toISOString());
      const ms = t && Date.parse(t);
      if (ms) await act(`Reset ${name} to ${new Date(ms).toISOString()}?`, 'reset', () => api.post(`${sp}/resetcursor/${ms}`), after);
    } }, 'Reset…'),
    h('button', { type: 'button', class: 'danger', onclick: () => act(`Clear the backlog of ${name}?`, 'clear backlog', () => api.post(`${sp}/skip_all`), after) }, 'Clear'),
    h('button', { type: 'button', class: 'danger', onclick: () => act(`Delete subscription ${name} of ${full}?`, 'delete subscription', () => api.del(sp), after) }, 'Delete'));
}

// readFrom shows up to five entries from ledger:entry on, with a button for
// the next five; it stops at the first missing entry (the topic's end).
async function readFrom(path, ledgerId, entryId) {
  const out = [];
  let next = entryId;
  for (; next < entryId + 5; next++) {
    const v = await messageView(`${path}/ledger/${ledgerId}/entry/${next}`);
    if (v.dataset.missing) {
      if (next === entryId) out.push(v);
      return out;
    }
    out.push(v);
  }
  const more = h('button', { type: 'button', onclick: async () => { more.replaceWith(...(await readFrom(path, ledgerId, next))); } }, 'Next messages');
  out.push(more);
  return out;
}

async function peek(sp) {
  const out = [];
  for (let i = 1; i <= 5; i++) {
    const v = await messageView(`${sp}/position/${i}`);
    out.push(v);
    if (v.dataset.missing) break;
  }
  return out;
}

// messageView reads one message (payload in the body, metadata in
// X-Pulsar-* headers) and shows it as text, pretty JSON or hex.
const MAX_SHOWN = 64 * 1024;
async function messageView(url) {
  let res;
  try { res = await api.get(url, { raw: true }); } catch (e) {
    const el = h('div', { class: 'msg' }, errBox(e));
    el.dataset.missing = '1';
    return el;
  }
  const bytes = new Uint8Array(await res.arrayBuffer());
  const hd = (k) => res.headers.get(k);
  let props = {};
  try { props = JSON.parse(hd('X-Pulsar-Property') || '{}'); } catch { /* shown as none */ }
  const common = [['message id', hd('X-Pulsar-Message-ID')], ['publish time', hd('X-Pulsar-Publish-Time')],
    ['producer', hd('X-Pulsar-Producer-Name')], ['redelivery count', hd('X-Pulsar-Redelivery-Count')], ['compression', hd('X-Pulsar-Compression')]];
  const n = Number(hd('X-Pulsar-Num-Batch-Message') || 0);
  const box = h('div', { class: 'msg' });
  // The server sends batches decompressed (X-Pulsar-Compression says how
  // they were stored), so any batch is split here.
  if (n > 0) {
    let parts;
    try { parts = splitBatch(bytes, n); } catch (e) { parts = null; box.append(h('p', { class: 'err' }, 'batch not readable: ' + e.message)); }
    if (parts) {
      box.append(table(['', ''], [...common, ['batch', n === 1 ? '1 message' : `${n} messages`]].filter(([, v]) => v)));
      parts.forEach((m, i) => box.append(h('h3', {}, `message ${i} of the batch`), payloadView(m.payload, [['key', m.md.key], ['event time', m.md.eventTime],
        ['sequence id', m.md.sequenceId], ['properties', fmtProps(m.md.properties)]])));
      return box;
    }
  }
  box.append(payloadView(bytes, [...common, ['key', hd('X-Pulsar-Partition-Key')], ['event time', hd('X-Pulsar-Event-Time')], ['properties', fmtProps(props)]]));
  return box;
}

const fmtProps = (p) => Object.entries(p || {}).map(([k, v]) => `${k}=${v}`).join(', ');

// payloadView shows a payload as pretty JSON when it parses, else text,
// with hex on demand; large payloads are cut at MAX_SHOWN.
function payloadView(bytes, meta) {
  const shown = bytes.subarray(0, MAX_SHOWN);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(shown);
  let json = null;
  if (bytes.length <= MAX_SHOWN) { try { json = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ } }
  const hex = Array.from(shown.subarray(0, 4096), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const pre = h('pre', { class: 'payload' });
  const fmt = h('select', { onchange: () => { pre.textContent = fmt.value === 'json' ? json : fmt.value === 'hex' ? hex : text; } },
    json ? h('option', { value: 'json' }, 'JSON') : null, h('option', { value: 'text' }, 'text'), h('option', { value: 'hex' }, 'hex'));
  pre.textContent = json ?? text;
  const rows = [...meta, ['size', fmtBytes(bytes.length) + (bytes.length > MAX_SHOWN ? ' (truncated)' : '')]].filter(([, v]) => v !== undefined && v !== null && v !== '');
  return h('div', {}, table(['', ''], rows), h('label', {}, 'Show payload as', fmt), pre);
}

// ---------- policies ----------
function policyForm(title, fields, load, save, remove) {
  const msg = h('p', { 'aria-live': 'polite' });
  const inputs = fields.map(([name, label, type, options]) => (type === 'select'
    ? h('select', { name }, options.map((o) => h('option', { value: o }, o)))
    : h('input', { name, type: type || 'number' })));
  const form = h('form', {
    class: 'inline', 'aria-label': title,
    onsubmit: async (ev) => {
      ev.preventDefault();
      const vals = Object.fromEntries(inputs.map((i) => [i.name, i.type === 'number' ? Number(i.value) : i.value]));
      try { await save(vals); msg.replaceChildren(h('span', { class: 'okmsg' }, 'saved')); await fill(); } catch (e) { msg.replaceChildren(errBox(e)); }
    },
  }, fields.map(([, label], i) => h('label', {}, label, inputs[i])), h('button', { type: 'submit', class: 'primary' }, 'Save'),
  remove ? h('button', { type: 'button', onclick: async () => { try { await remove(); msg.replaceChildren(h('span', { class: 'okmsg' }, 'removed')); await fill(); } catch (e) { msg.replaceChildren(errBox(e)); } } }, 'Remove') : null);
  const current = h('code', { class: 'current' });
  async function fill() {
    try {
      const v = await load();
      current.textContent = v === null ? 'not set' : JSON.stringify(v);
      if (v && typeof v === 'object') for (const i of inputs) if (v[i.name] !== undefined) i.value = v[i.name];
      if (v !== null && typeof v !== 'object' && inputs.length === 1) inputs[0].value = String(v);
    } catch (e) { current.textContent = e.reason || e.message; }
  }
  fill();
  return h('section', {}, h('h2', {}, title), h('p', {}, 'Current: ', current), form, msg);
}

function policySections(base) {
  return [
    policyForm('Retention', [['retentionTimeInMinutes', 'time (minutes, -1 infinite)'], ['retentionSizeInMB', 'size (MB, -1 infinite)']],
      () => api.get(base + '/retention'), (v) => api.post(base + '/retention', v), () => api.del(base + '/retention')),
    policyForm('Message TTL', [['ttl', 'seconds']], () => api.get(base + '/messageTTL'), (v) => api.post(base + '/messageTTL', v.ttl), () => api.del(base + '/messageTTL')),
    policyForm('Backlog quota', [['limitSize', 'size (bytes)'], ['limitTime', 'time (seconds)'], ['policy', 'when exceeded', 'select', ['producer_request_hold', 'producer_exception', 'consumer_backlog_eviction']]],
      () => api.get(base + '/backlogQuotaMap'), (v) => api.post(base + '/backlogQuota', v), () => api.del(base + '/backlogQuota')),
    policyForm('Deduplication', [['enabled', 'enabled', 'select', ['true', 'false']]], () => api.get(base + '/deduplication'),
      (v) => api.post(base + '/deduplication', v.enabled === 'true'), () => api.del(base + '/deduplication')),
  ];
}

function permissionsSection(base) {
  const list = h('div');
  const role = h('input', { name: 'role', required: true });
  const actions = ['produce', 'consume', 'functions'].map((a) => h('label', {}, a, h('input', { type: 'checkbox', value: a })));
  const msg = h('p');
  const load = async () => {
    try {
      const p = await api.get(base + '/permissions') || {};
      list.replaceChildren(table(['role', 'actions', ''], Object.entries(p).map(([r, a]) => [r, a.join(', '),
        h('button', { type: 'button', class: 'danger', onclick: () => act(`Revoke ${r}'s permissions?`, 'revoke', () => api.del(`${base}/permissions/${enc(r)}`), load) }, 'Revoke')])));
    } catch (e) { list.replaceChildren(errBox(e)); }
  };
  load();
  return h('section', {}, h('h2', {}, 'Permissions'), list, h('form', {
    class: 'inline', 'aria-label': 'grant permission',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const acts = actions.map((l) => l.querySelector('input')).filter((i) => i.checked).map((i) => i.value);
      try { await api.post(`${base}/permissions/${enc(role.value)}`, acts); msg.replaceChildren(); await load(); } catch (e) { msg.replaceChildren(errBox(e)); }
    },
  }, h('label', {}, 'Role', role), actions, h('button', { type: 'submit' }, 'Grant')), msg);
}

function viewPolicies(tenant, ns) {
  const base = '/admin/v2/namespaces/' + enc(tenant, ns);
  show(`Policies of ${tenant}/${ns}`, h('p', { class: 'crumbs' }, h('a', { href: '#/ns/' + enc(tenant, ns) }, `${tenant}/${ns}`)),
    ...policySections(base), permissionsSection(base));
}

function viewTopicPolicies(domain, tenant, ns, topic) {
  const full = `${domain}://${tenant}/${ns}/${topic}`;
  const base = topicPath(full);
  show(`Policies of ${topic}`, h('p', { class: 'crumbs' }, h('a', { href: topicHash(full) }, full)),
    h('p', {}, 'Topic policies override the namespace\'s.'), ...policySections(base), permissionsSection(base));
}

// ---------- access ----------
async function viewAccess() {
  const body = h('div');
  show('Access', body);
  try { me = await api.access('WhoAmI'); } catch (e) { body.replaceChildren(errBox(e)); return; }
  const tenants = [];
  try { tenants.push(...((await api.access('ListTenants')).tenants || [])); } catch (e) { body.append(errBox(e)); }
  const ts = (x) => (x ? new Date(x).toLocaleString() : '');
  body.append(h('p', {}, `Signed in as ${me.role}${me.superuser ? ' (superuser)' : ''}; administers ${(me.adminOf || []).join(', ') || 'no tenant'}; token expires ${me.expiresAt ? ts(me.expiresAt) : 'never'}.`));
  body.append(h('h2', {}, 'Tenants'), table(['tenant', 'groups', 'admin roles', 'created by', 'created'],
    tenants.map((t) => [t.name, (t.groups || []).join(', '), (t.adminRoles || []).join(', '), t.createdBy || '', ts(t.createdAt)])));
  // Only superusers may create tenants; the server decides, the form is
  // offered to them alone so others are not invited to a certain refusal.
  if (me.superuser) body.append(createTenantForm());
  for (const t of tenants) {
    try {
      const r = await api.access('ListRoles', { tenant: t.name });
      body.append(h('h2', {}, `Role associations of ${t.name}`), table(['role', 'identity', 'issuer', 'actions', 'namespaces', 'vault', 'created', ''],
        (r.associations || []).map((a) => [a.role, `${a.identityKind || ''} ${a.subject || ''}`, a.issuer || '', (a.actions || []).join(', '), (a.namespaces || []).join(', '),
          a.vaultPath || '', ts(a.createdAt), removeAssociationButton(t.name, a)])), associateForm(t.name));
    } catch (e) { body.append(h('h2', {}, `Role associations of ${t.name}`), errBox(e)); }
  }
  const fTenant = h('input', { name: 'tenant' }), fActor = h('input', { name: 'actor' }), fAction = h('input', { name: 'action' });
  const fLimit = h('input', { name: 'limit', type: 'number', min: 1, max: 1000, value: 100 });
  const out = h('div', { id: 'audit' });
  const load = async () => {
    try {
      const r = await api.access('ListAudit', { tenant: fTenant.value, limit: Number(fLimit.value) || 100 });
      const rows = (r.records || []).filter((x) => (x.actor || '').includes(fActor.value) && (x.action || '').includes(fAction.value));
      out.replaceChildren(table(['time', 'actor', 'action', 'tenant', 'detail', 'reason', 'source'],
        rows.map((x) => [ts(x.time), x.actor, x.action, x.tenant, x.detail || x.role || '', x.reason || '', x.source || ''])));
    } catch (e) { out.replaceChildren(errBox(e)); }
  };
  body.append(h('h2', {}, 'Audit log'), h('form', { class: 'inline', 'aria-label': 'audit filters', onsubmit: (ev) => { ev.preventDefault(); load(); } },
    h('label', {}, 'Tenant', fTenant), h('label', {}, 'Actor contains', fActor), h('label', {}, 'Action contains', fAction),
    h('label', {}, 'Limit', fLimit), h('button', { type: 'submit' }, 'Filter')), out);
  load();
}

const list = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);

// accessForm is a form that asks for confirmation, calls the access plane
// and shows the server's answer (its validation message when it refuses)
// inside the form; on success the view is reloaded.
function accessForm(label, fields, question, call) {
  const msg = h('div'); // errBox is the alert
  return h('form', {
    class: 'inline', 'aria-label': label,
    onsubmit: async (ev) => {
      ev.preventDefault();
      if (!(await confirmAction(question()))) return;
      try {
        await call();
        route(); // clears the status line first, synchronously
        status(label + ': done');
      } catch (e) { msg.replaceChildren(errBox(e)); status(label + ' refused: ' + (e.reason || e.message), true); }
    },
  }, fields, h('button', { type: 'submit' }, label), msg);
}

function createTenantForm() {
  const name = h('input', { name: 'tenant', required: true, autocomplete: 'off' });
  const groups = h('input', { name: 'groups', placeholder: 'team_eng, team_ops', autocomplete: 'off' });
  const ns = h('input', { name: 'namespace', placeholder: 'default', autocomplete: 'off' });
  return h('section', {}, h('h3', {}, 'New tenant'), accessForm('Create tenant',
    [h('label', {}, 'Tenant', name), h('label', {}, 'Groups (comma-separated)', groups), h('label', {}, 'Default namespace', ns)],
    () => `Create tenant ${name.value}, administered by ${list(groups.value).join(', ') || 'no group'}?`,
    () => api.access('CreateTenant', { tenant: name.value.trim(), groups: list(groups.value), defaultNamespace: ns.value.trim() })));
}

function associateForm(tenant) {
  const id = h('input', { name: 'identity', required: true, autocomplete: 'off', placeholder: 'OIDC subject or IAM role ARN' });
  const issuer = h('input', { name: 'issuer', autocomplete: 'off', placeholder: 'when several are trusted' });
  const role = h('input', { name: 'role', required: true, autocomplete: 'off' });
  const acts = ['produce', 'consume', 'functions'].map((a) => h('input', { type: 'checkbox', name: 'action', value: a }));
  const ns = h('input', { name: 'namespaces', autocomplete: 'off', placeholder: 'default' });
  const vault = h('input', { type: 'checkbox', name: 'vault' });
  const chosen = () => acts.filter((a) => a.checked).map((a) => a.value);
  return h('section', {}, h('h3', {}, `Associate a role in ${tenant}`), accessForm(`Associate role in ${tenant}`,
    [h('label', {}, 'Identity', id), h('label', {}, 'Issuer', issuer), h('label', {}, 'Role', role),
      h('fieldset', {}, h('legend', {}, 'Actions'), acts.map((a) => h('label', { class: 'check' }, a, a.value))),
      h('label', {}, 'Namespaces (comma-separated)', ns), h('label', { class: 'check' }, vault, 'Deliver to Vault')],
    () => `Associate ${id.value} with role ${role.value} of ${tenant}${chosen().length ? ', granting ' + chosen().join(', ') : ''}?`,
    () => api.access('AssociateRole', { tenant, identity: id.value.trim(), issuer: issuer.value.trim(), role: role.value.trim(),
      actions: chosen(), namespaces: list(ns.value), deliverToVault: vault.checked })));
}

function removeAssociationButton(tenant, a) {
  return h('button', {
    type: 'button', class: 'danger', 'aria-label': `Remove ${a.role} from ${a.subject}`,
    onclick: () => act(`Remove the association of ${a.subject} with ${a.role}? Its grants go when no other identity has the role.`, 'remove association',
      () => api.access('RemoveAssociation', { tenant, identity: a.subject, issuer: a.issuer || '', role: a.role }), route),
  }, 'Remove');
}

// ---------- routing ----------
const routes = [
  [/^#\/overview$/, viewOverview],
  [/^#\/tenants$/, viewTenants],
  [/^#\/t\/([^/]+)$/, viewTenant],
  [/^#\/ns\/([^/]+)\/([^/]+)$/, viewNamespace],
  [/^#\/policies\/([^/]+)\/([^/]+)$/, viewPolicies],
  [/^#\/topic\/([^/]+)\/([^/]+)\/([^/]+)\/(.+)$/, viewTopic],
  [/^#\/topic-policies\/([^/]+)\/([^/]+)\/([^/]+)\/(.+)$/, viewTopicPolicies],
  [/^#\/access$/, viewAccess],
];

async function route() {
  stopTimers();
  status('');
  if (!session.token && location.hash !== '#/login') { location.hash = '#/login'; return; }
  if (location.hash === '#/login') { viewLogin(); return; }
  for (const [re, view] of routes) {
    const m = re.exec(location.hash);
    if (m) { await view(...m.slice(1).map(decodeURIComponent)); return; }
  }
  location.hash = '#/overview';
}

window.addEventListener('hashchange', route);
window.addEventListener('mb-unauthorized', () => status('The server refused the token (401): sign in again.', true));
document.getElementById('logout').addEventListener('click', () => { session.token = ''; me = null; whoami(); location.hash = '#/login'; });
// An OIDC callback (?code=…&state=…) is completed before the first view.
(async () => {
  try {
    const tok = await finishLogin();
    if (tok) { session.token = tok; await signedIn(); return; } // signedIn routes
  } catch (e) {
    session.token = '';
    await whoami();
    viewLogin(e); // finishLogin left the address at #/login
    return;
  }
  await whoami();
  route();
})();
