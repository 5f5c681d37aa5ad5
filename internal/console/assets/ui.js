// Small DOM helpers: elements are built with textContent, never innerHTML,
// so no server data is ever parsed as markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(headers, rows, caption) {
  return h('div', { class: 'tablewrap' }, h('table', {},
    caption ? h('caption', { class: 'skip' }, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows.map((r) => h('tr', {}, r.map((c) => h('td', {}, c))))
      : h('tr', {}, h('td', { colspan: headers.length }, 'none')))));
}

export function card(k, v, id) {
  return h('div', { class: 'card' }, h('div', { class: 'v', id }, v), h('div', { class: 'k' }, k));
}

export function field(label, attrs) {
  return h('label', {}, label, attrs.tag === 'select' ? h('select', attrs.props, attrs.options.map((o) => h('option', { value: o, selected: o === attrs.value }, o)))
    : h('input', attrs));
}

export function status(msg, bad) {
  const el = document.getElementById('status');
  el.replaceChildren(msg ? h('span', { class: bad ? 'err' : 'okmsg' }, msg) : '');
}

// confirmAction asks in a modal dialog (keyboard: Esc cancels).
export function confirmAction(text) {
  const d = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    document.getElementById('confirm-ok').focus();
  });
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
export const fmtRate = (n) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(0)) : '–');

// Series keeps the last points of a value for a chart.
export class Series {
  constructor(max = 300) { this.max = max; this.points = []; }
  push(v) { this.points.push(v); if (this.points.length > this.max) this.points.shift(); }
}

// chart draws series on a canvas as lines; the canvas carries a text
// alternative (aria-label) with the latest values.
export function drawChart(canvas, series, colors) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, hgt = canvas.clientHeight || 120;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const c = canvas.getContext('2d');
  c.scale(dpr, dpr);
  c.clearRect(0, 0, w, hgt);
  let max = 1;
  for (const s of series) for (const p of s.points) max = Math.max(max, p);
  c.strokeStyle = '#d5dae0'; c.lineWidth = 1;
  c.beginPath(); c.moveTo(0, hgt - 0.5); c.lineTo(w, hgt - 0.5); c.stroke();
  c.fillStyle = '#5b6470'; c.font = '11px system-ui'; c.fillText(fmtRate(max), 4, 12);
  canvas.dataset.points = Math.max(0, ...series.map((s) => s.points.length));
  series.forEach((s, i) => {
    const n = s.max;
    c.strokeStyle = colors[i]; c.lineWidth = 2; c.beginPath();
    s.points.forEach((p, j) => {
      const x = ((n - s.points.length + j) / (n - 1)) * w;
      const y = hgt - 2 - (p / max) * (hgt - 16);
      if (j === 0) c.moveTo(x, y); else c.lineTo(x, y);
    });
    c.stroke();
    if (s.points.length === 1) { c.fillStyle = colors[i]; c.fillRect(w - 4, hgt - 4 - (s.points[0] / max) * (hgt - 16), 4, 4); }
  });
}
