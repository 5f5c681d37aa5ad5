// Drives the web console in headless Chromium (Debian's package) with
// playwright-core; started by test/console_test.go, which sets up the broker
// and passes what it needs in the environment. Each step prints a line;
// any failure exits non-zero with the step's name.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(k + ' is not set'); return v; };
const base = env('MB_WEB_URL') + '/console/';
const admin = env('MB_ADMIN_TOKEN'), viewer = env('MB_VIEWER_TOKEN');
const topic = env('MB_TOPIC'), sub = env('MB_SUB');
const shots = env('MB_SHOTS');
mkdirSync(shots, { recursive: true });
const T = 20000;

const browser = await chromium.launch({
  executablePath: process.env.MB_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let step = 'start';
const log = (s) => { step = s; console.log('step:', s); };
try {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  // Only the broker and the test's OpenID provider, both on loopback: the
  // provider's page imports a web font, which must not leave the machine.
  await ctx.route((u) => u.hostname !== '127.0.0.1', (r) => r.abort());
  const page = await ctx.newPage();
  const cspErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') { console.log('browser console:', m.text()); if (/Content Security Policy/i.test(m.text())) cspErrors.push(m.text()); } });
  page.on('response', (r) => { if (r.status() >= 400) console.log('HTTP', r.status(), r.request().method(), new URL(r.url()).pathname); });
  page.on('pageerror', (e) => { throw new Error('page error: ' + e.message); });
  const shot = (name) => page.screenshot({ path: join(shots, name + '.png') });

  log('login with a token');
  await page.goto(base);
  await page.getByLabel(/Token/).fill(admin);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: T });
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('ov-topics')?.textContent || ''), null, { timeout: T });
  if (await page.evaluate(() => Object.keys(localStorage).length) !== 0) throw new Error('localStorage used');
  if (!(await page.evaluate(() => sessionStorage.getItem('mb.token')))) throw new Error('token not in sessionStorage');
  // Let the charts gather a few points.
  await page.waitForFunction(() => Number(document.getElementById('ov-in')?.textContent) > 0 &&
    Number(document.querySelector('canvas')?.dataset.points) >= 3, null, { timeout: T });
  await shot('overview');

  log('browse to the topic');
  const [, , tenant, ns, name] = /^(persistent):\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(topic);
  await page.getByRole('link', { name: 'Topics' }).click();
  await page.getByRole('link', { name: tenant, exact: true }).click();
  await page.getByRole('link', { name: `${tenant}/${ns}`, exact: true }).click();
  await page.getByLabel('Search topics').fill(name);
  await page.getByRole('link', { name: topic, exact: true }).click();
  await page.getByRole('heading', { name: 'Topic ' + name }).waitFor({ timeout: T });

  log('see the rate rise while the producer runs');
  await page.waitForFunction(() => Number(document.getElementById('rate-in')?.textContent) > 1, null, { timeout: T });
  await page.getByRole('cell', { name: sub, exact: true }).waitFor({ timeout: T });
  await page.waitForFunction(() => Number(document.querySelector('canvas')?.dataset.points) >= 3, null, { timeout: T });
  await shot('topic');

  log('peek a message and see its JSON');
  const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: sub, exact: true }) });
  await row.getByRole('button', { name: 'Peek' }).click();
  const payload = page.locator('#peek-out pre.payload').first();
  await payload.waitFor({ timeout: T });
  const text = await payload.textContent();
  if (!text.includes('"console": "hello"')) throw new Error('peeked payload is not the pretty JSON: ' + text);
  await page.locator('#peek-out').scrollIntoViewIfNeeded();
  await shot('message');

  log('read compressed batches from a publish time');
  const batchTopic = env('MB_BATCH_TOPIC');
  await page.goto(base + '#/topic/' + batchTopic.replace('://', '/'));
  await page.getByLabel('Publish time (ISO 8601)').fill(env('MB_BATCH_FROM'));
  await page.getByRole('button', { name: 'Read from time' }).click();
  const out = page.locator('#read-out');
  await out.locator('.msg').nth(2).waitFor({ timeout: T });
  const read = await out.textContent();
  if (read.includes('"before"')) throw new Error('read from time shows the message published before it');
  for (const codec of ['LZ4', 'ZLIB', 'ZSTD']) {
    for (let i = 0; i < 3; i++) {
      if (!read.includes(`"codec": "${codec}"`) || !read.includes(`"i": ${i}`)) throw new Error(`${codec} batch message ${i} not shown: ${read}`);
    }
  }
  if ((read.match(/message \d of the batch/g) || []).length !== 9) throw new Error('batches not split into 9 messages: ' + read);
  if (!/compression\s*LZ4/.test(read)) throw new Error('compression not shown: ' + read);
  await out.scrollIntoViewIfNeeded();
  await shot('message-time');

  log('change a retention policy and see it applied');
  await page.goto(base + `#/policies/${tenant}/${ns}`);
  const retention = page.getByRole('form', { name: 'Retention' });
  await retention.getByLabel(/time/).fill('120');
  await retention.getByLabel(/size/).fill('64');
  await retention.getByRole('button', { name: 'Save' }).click();
  await page.locator('section', { has: page.getByRole('heading', { name: 'Retention' }) }).locator('code.current')
    .filter({ hasText: '"retentionTimeInMinutes":120' }).waitFor({ timeout: T });
  log('see the server\'s validation message');
  await retention.getByLabel(/time/).fill('-5');
  await retention.getByRole('button', { name: 'Save' }).click();
  await page.locator('section', { has: page.getByRole('heading', { name: 'Retention' }) }).getByRole('alert').waitFor({ timeout: T });
  await shot('policies');

  log('see an audit entry');
  await page.getByRole('link', { name: 'Access' }).click();
  await page.locator('#audit table').waitFor({ timeout: T });
  await page.locator('#audit td', { hasText: 'create-tenant' }).first().waitFor({ timeout: T });

  log('create a tenant (confirmed) and see the server refuse a duplicate');
  const confirm = () => page.locator('#confirm').getByRole('button', { name: 'Confirm' }).click();
  const newTenant = page.getByRole('form', { name: 'Create tenant' });
  await newTenant.getByLabel('Tenant').fill('edit-team');
  await newTenant.getByLabel(/Groups/).fill('edit-admins, edit-ops');
  await newTenant.getByRole('button', { name: 'Create tenant' }).click();
  await confirm();
  await page.getByRole('cell', { name: 'edit-admins, edit-ops', exact: true }).waitFor({ timeout: T });
  const again = page.getByRole('form', { name: 'Create tenant' });
  await again.getByLabel('Tenant').fill('edit-team');
  await again.getByLabel(/Groups/).fill('edit-admins');
  await again.getByRole('button', { name: 'Create tenant' }).click();
  await confirm();
  await again.getByRole('alert').filter({ hasText: 'already exists' }).waitFor({ timeout: T });

  log('associate a role, see a refused one, remove it');
  const assoc = page.getByRole('form', { name: 'Associate role in edit-team' });
  await assoc.getByLabel('Identity').fill('workload-a');
  await assoc.getByLabel('Role').fill('admin');
  await assoc.getByRole('button', { name: 'Associate role in edit-team' }).click();
  await confirm();
  await assoc.getByRole('alert').filter({ hasText: 'reserved' }).waitFor({ timeout: T });
  await assoc.getByLabel('Role').fill('billing');
  await assoc.getByLabel('produce').check();
  await assoc.getByRole('button', { name: 'Associate role in edit-team' }).click();
  await confirm();
  await page.getByRole('cell', { name: 'edit-team.billing', exact: true }).waitFor({ timeout: T });
  await page.locator('#audit td', { hasText: 'associate-role' }).first().waitFor({ timeout: T });
  await shot('access');
  await page.getByRole('button', { name: 'Remove edit-team.billing from workload-a' }).click();
  await confirm();
  await page.getByRole('cell', { name: 'edit-team.billing', exact: true }).waitFor({ state: 'detached', timeout: T });

  log('see a refused action with a non-admin token');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel(/Token/).fill(viewer);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: T });
  await page.goto(base + '#/topic/' + topic.replace('://', '/'));
  await page.getByRole('heading', { name: 'Topic ' + name }).waitFor({ timeout: T });
  await page.getByRole('button', { name: 'Delete topic' }).click();
  await page.getByRole('button', { name: 'Confirm' }).click();
  await page.locator('#status .err', { hasText: 'refused' }).waitFor({ timeout: T });
  console.log('refusal shown:', await page.locator('#status').textContent());

  log('log in through the OpenID provider (authorization code + PKCE)');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('Tenant').fill(env('MB_OIDC_TENANT'));
  await shot('login');
  await page.getByRole('button', { name: 'Log in with OIDC' }).click();
  await page.waitForURL((u) => u.origin !== new URL(base).origin, { timeout: T });
  await page.locator('input[name=login]').fill(env('MB_OIDC_USER'));
  await page.locator('input[name=password]').fill('any');
  await page.locator('button[type=submit]').click();
  await page.getByRole('button', { name: 'Continue' }).click({ timeout: T });
  await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: T });
  await page.locator('#who', { hasText: env('MB_OIDC_TENANT') + '.admin' }).waitFor({ timeout: T });
  const after = await page.evaluate(() => ({ search: location.search, keys: Object.keys(sessionStorage), local: Object.keys(localStorage).length }));
  if (after.search !== '' || after.local !== 0 || after.keys.join() !== 'mb.token') throw new Error('after the OIDC login: ' + JSON.stringify(after));
  log('a tenant admin may edit its role associations, not create tenants');
  await page.getByRole('link', { name: 'Access' }).click();
  await page.getByRole('form', { name: 'Associate role in ' + env('MB_OIDC_TENANT') }).waitFor({ timeout: T });
  if (await page.getByRole('form', { name: 'Create tenant' }).count() !== 0) throw new Error('tenant creation offered to a tenant admin');
  log('a replayed callback is refused (state checked)');
  const callback = base + '?code=replayed&state=forged';
  await page.goto(callback);
  await page.locator('#main .err', { hasText: 'no sign-in was started' }).waitFor({ timeout: T });
  if (cspErrors.length) throw new Error('CSP violations: ' + cspErrors.join('; '));
  console.log('ok');
} catch (e) {
  console.error(`FAILED at step "${step}": ${e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
