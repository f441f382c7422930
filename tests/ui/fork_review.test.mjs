// Browser test of the fork review page (fork_detect/ui, docs/forks.md).
//
// Starts two real ctxsync-node processes (eu-1 / us-1) from $CS_BIN_DIR,
// makes forks by writing the same artifacts on both and cross-ingesting the
// federation feeds, then drives the page served by eu-1 at /ui/forks in
// Debian's headless Chromium through playwright-core, and checks the outcome
// through the JSON API.  See README.md beside this file.
//
//   CS_BIN_DIR=build/bin node tests/ui/fork_review.test.mjs
//   node tests/ui/fork_review.test.mjs --mock     # against mock_node.mjs, no node needed
//
// Env: CS_BIN_DIR (default <repo>/build/bin), CS_CHROMIUM (default
// /usr/bin/chromium), CS_UI_SCREENSHOTS (folder for the PNGs; default a
// temporary folder, e.g. docs/screenshots to refresh the committed ones).
// Prints "N passed, M failed" last; exits non-zero on any failure.
import { chromium } from 'playwright-core';
import { spawn, spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const MOCK = process.argv.includes('--mock') || process.env.CS_UI_MOCK === '1';
const BIN_DIR = path.resolve(process.env.CS_BIN_DIR || path.join(REPO, 'build', 'bin'));
const CHROMIUM = process.env.CS_CHROMIUM || '/usr/bin/chromium';
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-ui-'));
const SHOTS = path.resolve(process.env.CS_UI_SCREENSHOTS || path.join(TMP, 'screenshots'));
const TOTAL_TIMEOUT_MS = 240_000;

const children = new Set(); // child processes we started (nodes, chromium)
let browser = null;

function log(...a) { console.log(...a); }
const uniq = () => crypto.randomBytes(4).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ processes

function killChild(cp, signal = 'SIGTERM') {
  if (!cp || cp.exitCode !== null || cp.signalCode !== null) return;
  try { process.kill(cp.pid, signal); } catch { /* already gone */ }
}

async function stopChild(cp, ms = 5000) {
  if (!cp) return;
  if (cp.exitCode === null && cp.signalCode === null) {
    const done = new Promise((r) => cp.once('exit', r));
    killChild(cp, 'SIGTERM');
    const t = setTimeout(() => killChild(cp, 'SIGKILL'), ms);
    await done;
    clearTimeout(t);
  }
  children.delete(cp);
}

function killAllNow() {
  for (const cp of children) killChild(cp, 'SIGKILL');
  if (chromiumProc) { try { process.kill(-chromiumProc.pid, 'SIGKILL'); } catch { /* gone */ } }
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { killAllNow(); process.exit(130); });
}

// ---------------------------------------------------------------- HTTP client

async function request(base, token, method, p, { body, query } = {}) {
  const url = new URL(p, base);
  for (const [k, v] of Object.entries(query || {})) url.searchParams.set(k, String(v));
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: res.status, body: json, text, headers: res.headers };
}

async function ok(promise, want = 200) {
  const r = await promise;
  assert.equal(r.status, want, `HTTP ${r.status}: ${r.text.slice(0, 400)}`);
  return r.body;
}

const forkPath = (id) => '/forks/' + encodeURIComponent(id).replace(/%3A/gi, ':');

// --------------------------------------------------------------- real nodes

class Node {
  constructor(nodeId, region) {
    this.nodeId = nodeId;
    this.region = region;
    this.dir = fs.mkdtempSync(path.join(TMP, nodeId + '-'));
    this.data = path.join(this.dir, 'data');
    this.readyFile = path.join(this.dir, 'ready');
    this.logPath = path.join(this.dir, 'node.log');
    this.proc = null;
  }

  async start() {
    const exe = path.join(BIN_DIR, 'ctxsync-node');
    if (!fs.existsSync(exe)) throw new Error(`${exe} not found (set CS_BIN_DIR to the build's bin folder)`);
    const init = spawnSync(exe, ['init', '--data', this.data, '--node-id', this.nodeId,
      '--region', this.region, '--admin', 'admin'], { encoding: 'utf8', timeout: 30_000 });
    if (init.status !== 0) throw new Error(`init failed (${init.status}): ${init.stderr}`);
    const line = init.stdout.split('\n').filter((l) => l.trim()).pop();
    const info = JSON.parse(line);
    this.token = info.token;
    assert.ok(this.token, 'init printed a token');
    const out = fs.openSync(this.logPath, 'a');
    this.proc = spawn(exe, ['serve', '--data', this.data, '--listen', '127.0.0.1:0',
      '--ready-file', this.readyFile], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    children.add(this.proc);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`${this.nodeId} exited during start; log:\n${this.tail()}`);
      let m = null;
      try { m = /127\.0\.0\.1:(\d+)\s*$/.exec(fs.readFileSync(this.readyFile, 'utf8')); } catch { /* not yet */ }
      if (m && +m[1] > 0) {
        this.url = `http://127.0.0.1:${m[1]}`;
        try {
          const h = await request(this.url, null, 'GET', '/health');
          if (h.status === 200) return this;
        } catch { /* listener not up yet */ }
      }
      await sleep(30);
    }
    throw new Error(`${this.nodeId} not ready in 10 s; log:\n${this.tail()}`);
  }

  tail() {
    try { return fs.readFileSync(this.logPath, 'utf8').split('\n').slice(-30).join('\n'); } catch { return '(no log)'; }
  }

  req(method, p, opts) { return request(this.url, this.token, method, p, opts); }

  async stop() {
    await stopChild(this.proc);
    this.proc = null;
  }
}

/* Whole federation feed of src (mode=full) ingested into dst. */
async function sync(src, dst) {
  const info = await ok(src.req('GET', '/federation/info'));
  let since = 0;
  for (;;) {
    const page = await ok(src.req('GET', '/federation/changes', { query: { since, mode: 'full', limit: 5000 } }));
    if (page.events.length) {
      const res = await ok(dst.req('POST', '/federation/ingest', { body: {
        source: { node_id: info.node_id, epoch: info.epoch }, events: page.events,
        checkpoint: { seq: page.next_since } } }));
      const bad = res.results.filter((r) => r.status === 'rejected' || r.status === 'deferred');
      assert.equal(bad.length, 0, `ingest ${src.nodeId} -> ${dst.nodeId}: ${JSON.stringify(bad)}`);
    }
    since = page.next_since;
    if (!page.has_more) break;
  }
}

/* CS_UI_FILES_PROXY=1: a proxy in front of eu-1 that answers /ui/forks*
 * from fork_detect/ui in the work tree and forwards everything else to the
 * node; for trying page edits without rebuilding the node. */
async function filesProxy(target) {
  const http = await import('node:http');
  const dir = path.join(REPO, 'fork_detect', 'ui');
  const files = { '/ui/forks': ['index.html', 'text/html; charset=utf-8'],
    '/ui/forks/app.js': ['app.js', 'text/javascript; charset=utf-8'],
    '/ui/forks/style.css': ['style.css', 'text/css; charset=utf-8'] };
  const t = new URL(target);
  const server = http.createServer((req, res) => {
    const f = files[req.url];
    if (req.method === 'GET' && f) {
      res.writeHead(200, { 'Content-Type': f[1], 'Cache-Control': 'no-store', // headers as node/routes_ui.c sends them
        'Content-Security-Policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        'X-Content-Type-Options': 'nosniff', });
      res.end(fs.readFileSync(path.join(dir, f[0])));
      return;
    }
    const up = http.request({ host: t.hostname, port: t.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: t.host } }, (r) => { res.writeHead(r.statusCode, r.headers); r.pipe(res); });
    up.on('error', () => { res.writeHead(502); res.end(); });
    req.pipe(up);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

async function realBackend() {
  const eu = await new Node('eu-1', 'eu').start();
  const us = await new Node('us-1', 'us').start();
  const proxy = process.env.CS_UI_FILES_PROXY === '1' ? await filesProxy(eu.url) : null;
  const pageNode = proxy ? { url: proxy.url, token: eu.token, nodeId: eu.nodeId, req: (m, p, o) => eu.req(m, p, o), tail: () => eu.tail() } : eu;
  return {
    name: proxy ? 'real nodes, page files from the work tree' : 'real nodes',
    page: pageNode,   // the node whose /ui/forks the browser loads
    nodeId: 'eu-1',
    region: 'eu',
    /* specs: [{uri, base, eu, us}] -> fork ids, after writing base on eu,
     * replicating it, writing eu / us concurrently and cross-ingesting. */
    async makeForks(specs) {
      for (const s of specs) await ok(eu.req('POST', '/artifacts', { body: { uri: s.uri, content: s.base, summary: 'base' } }), 201);
      await sync(eu, us);
      for (const s of specs) {
        if (s.eu === null) await ok(eu.req('DELETE', '/artifacts', { query: { uri: s.uri } }));
        else await ok(eu.req('PUT', '/artifacts', { query: { uri: s.uri }, body: { content: s.eu, summary: 'edit in eu' } }));
        await ok(us.req('PUT', '/artifacts', { query: { uri: s.uri }, body: { content: s.us, summary: 'edit in us' } }));
      }
      await sync(eu, us);
      await sync(us, eu);
      const ids = [];
      for (const s of specs) {
        const a = await ok(eu.req('GET', '/artifacts', { query: { uri: s.uri } }));
        assert.equal(a.forked, true, `${s.uri} is forked on eu-1 after cross-ingest`);
        ids.push(a.fork_id);
      }
      return ids;
    },
    async close() { if (proxy) await proxy.close(); await eu.stop(); await us.stop(); },
  };
}

async function mockBackend() {
  const { startMock } = await import('./mock_node.mjs');
  const m = await startMock({ nodeId: 'eu-1', region: 'eu' });
  const page = { url: m.url, token: m.token, req: (method, p, opts) => request(m.url, m.token, method, p, opts) };
  return {
    name: 'mock node',
    page,
    nodeId: 'eu-1',
    region: 'eu',
    async makeForks(specs) {
      return specs.map((s) => m.createFork(s.uri, s.base, [
        { region: 'eu', node_id: 'eu-1', content: s.eu, deleted: s.eu === null, summary: 'edit in eu' },
        { region: 'us', node_id: 'us-1', content: s.us, summary: 'edit in us' }]));
    },
    close: () => m.close(),
  };
}

// ------------------------------------------------------------------ browser

const consoleProblems = [];
let phase = 'start';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
let chromiumProc = null;

/* Starts Debian's Chromium ourselves (fresh user-data-dir, known PID) and
 * attaches playwright-core to it over the DevTools protocol. */
async function startChromium() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install -y chromium, or set CS_CHROMIUM)`);
  const profile = fs.mkdtempSync(path.join(TMP, 'chromium-profile-'));
  chromiumProc = spawn(CHROMIUM, [...CHROMIUM_ARGS, `--user-data-dir=${profile}`,
    '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', 'about:blank'],
  { stdio: ['ignore', 'ignore', 'pipe'], detached: true }); // own process group: its helpers go with it
  children.add(chromiumProc);
  let err = '';
  const ws = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`chromium did not open DevTools in 20 s:\n${err.slice(-2000)}`)), 20_000);
    chromiumProc.stderr.on('data', (d) => {
      err += d;
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    chromiumProc.once('exit', (code) => { clearTimeout(t); reject(new Error(`chromium exited (${code}):\n${err.slice(-2000)}`)); });
  });
  chromiumProc.stderr.resume();
  return chromium.connectOverCDP(ws);
}

async function openPage() {
  browser = await startChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') consoleProblems.push({ phase, type: msg.type(), text: msg.text() });
  });
  page.on('pageerror', (e) => consoleProblems.push({ phase, type: 'pageerror', text: String(e && e.message || e) }));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.host !== new URL(backend.page.url).host) {
      consoleProblems.push({ phase, type: 'external-request', text: r.url() });
    }
  });
  return page;
}

async function closeBrowser() {
  if (browser) {
    try { await Promise.race([browser.close(), sleep(3000)]); } catch { /* the kill below ends it */ }
    browser = null;
  }
  if (chromiumProc) {
    const pid = chromiumProc.pid;
    await stopChild(chromiumProc, 3000);
    // the zygote / renderer / GPU helpers of that Chromium (its process group)
    try { process.kill(-pid, 'SIGKILL'); } catch { /* already gone */ }
    chromiumProc = null;
  }
}

async function shot(page, name, fullPage = true) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage });
  log(`  screenshot ${file}`);
}

async function textOf(page, sel) { return (await page.locator(sel).textContent()) || ''; }

async function waitText(page, sel, re) {
  await page.waitForFunction(([s, src, flags]) => {
    const n = document.querySelector(s);
    return !!n && new RegExp(src, flags).test(n.textContent || '');
  }, [sel, re.source, re.flags]);
}

// -------------------------------------------------------------------- tests

let backend;
let page;
const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test('page loads, shows the node, refuses a bad token with a clear 401 banner', async () => {
  phase = 'load';
  // the node serves the three files without auth, with usable types
  for (const [p, type] of [['/ui/forks', /^text\/html/], ['/ui/forks/app.js', /^(text|application)\/javascript/],
    ['/ui/forks/style.css', /^text\/css/]]) {
    const r = await request(backend.page.url, null, 'GET', p);
    assert.equal(r.status, 200, `GET ${p} without a token: ${r.status} ${r.text.slice(0, 200)}`);
    assert.match(r.headers.get('content-type') || '', type, `Content-Type of ${p}`);
  }
  const resp = await page.goto(backend.page.url + '/ui/forks');
  assert.equal(resp.status(), 200);
  await waitText(page, '#node-info', new RegExp(backend.nodeId));
  assert.match(await textOf(page, '#node-info'), new RegExp(`region ${backend.region}\\b`));
  assert.equal(await page.getAttribute('#token', 'type'), 'password');

  phase = 'bad-token';
  await page.fill('#token', 'not-a-valid-token-' + uniq());
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.locator('#banner').waitFor({ state: 'visible' });
  const banner = await textOf(page, '#banner-text');
  assert.match(banner, /401/);
  assert.match(banner, /request_id \S+/, 'the banner shows the request_id');
  assert.match(banner, /token again/i);
  assert.match(await textOf(page, '#conn-status'), /refused/);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused token is not kept');
  assert.equal(await page.evaluate(() => document.activeElement && document.activeElement.id), 'token');
  phase = 'after-bad-token';
});

let fork1;
test('one fork: queue, side-by-side detail with highlighted diff, Keep right', async () => {
  const uri = `ctx://acme/docs/readme-${uniq()}`;
  const base = 'Release notes\nversion: 1.0\nowner: ops\n';
  [fork1] = await backend.makeForks([{ uri, base,
    eu: 'Release notes\nversion: 1.1 (eu)\nowner: ops\n',
    us: 'Release notes\nversion: 1.1 (us)\nowner: ops\nreviewed: yes\n' }]);
  const before = await ok(backend.page.req('GET', forkPath(fork1)));
  assert.equal(before.branches.length, 2);
  const [left, right] = before.branches;

  phase = 'connect';
  await page.fill('#token', backend.page.token);
  await page.getByRole('button', { name: 'Connect' }).click();
  await waitText(page, '#count-open', /^1$/);
  assert.match(await textOf(page, '#conn-status'), /Connected/);
  assert.equal(await page.locator('#banner').isVisible(), false, 'the 401 banner is gone after a good connect');
  // the token stays out of the URL, out of the input, in sessionStorage only
  assert.ok(!page.url().includes(backend.page.token));
  assert.equal(await page.inputValue('#token'), '');
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(await page.evaluate((t) => Object.values(sessionStorage).includes(t), backend.page.token));

  const rows = page.locator('#fork-rows tr[data-fork-id]');
  assert.equal(await rows.count(), 1);
  const row = rows.first();
  assert.equal(await row.getAttribute('data-fork-id'), fork1);
  const cells = await row.locator('td').allTextContents();
  assert.equal(cells[2], uri);
  assert.equal(cells[3], '2');
  assert.equal(cells[4].split(', ').sort().join(','), 'eu,us');
  assert.equal(cells[6], 'open');
  await shot(page, 'fork-review-queue.png', false);

  phase = 'detail';
  await row.locator('button').click();
  await page.locator('#detail').waitFor({ state: 'visible' });
  const cols = page.locator('#branches article.branch');
  assert.equal(await cols.count(), 2);
  assert.equal(await cols.nth(0).getAttribute('data-version-id'), left.version_id, 'left = first branch');
  assert.equal(await cols.nth(1).getAttribute('data-version-id'), right.version_id, 'right = second branch');
  const headCol = page.locator('#branches article.branch.head');
  assert.equal(await headCol.count(), 1, 'exactly one column is marked provisional head');
  assert.equal(await headCol.getAttribute('data-version-id'), before.provisional_head);
  assert.match(await headCol.textContent(), /provisional head/);
  assert.match(await cols.nth(0).textContent(), new RegExp(left.content.split('\n')[1].replace(/[()]/g, '\\$&')));
  assert.match(await cols.nth(1).textContent(), /reviewed: yes/);
  // the diff: added and removed lines, highlighted green / red
  const added = page.locator('#diffs pre.line-diff ins.add');
  const removed = page.locator('#diffs pre.line-diff del.del');
  assert.ok(await added.count() >= 1, 'added lines shown');
  assert.ok(await removed.count() >= 1, 'removed lines shown');
  const bgAdd = await added.first().evaluate((n) => getComputedStyle(n).backgroundColor);
  const bgDel = await removed.first().evaluate((n) => getComputedStyle(n).backgroundColor);
  assert.notEqual(bgAdd, 'rgba(0, 0, 0, 0)');
  assert.notEqual(bgDel, 'rgba(0, 0, 0, 0)');
  assert.notEqual(bgAdd, bgDel);
  // and inside the columns too
  assert.ok(await page.locator('#branches pre.content ins.add, #branches pre.content del.del').count() >= 2,
    'lines that differ are highlighted in the columns');
  assert.match(await textOf(page, '#diffs'), /\+.*added.*removed/s);
  await shot(page, 'fork-review.png');

  phase = 'keep-right';
  await page.locator('#resolve-summary').fill('us text wins');
  await page.getByRole('button', { name: /^Keep right/ }).click();
  await waitText(page, '#resolve-result', /Resolved with Keep right/);
  await waitText(page, '#count-open', /^0$/);
  const after = await ok(backend.page.req('GET', forkPath(fork1)));
  assert.equal(after.status, 'resolved');
  assert.ok(after.resolution_version_id, 'resolution_version_id is set');
  const art = await ok(backend.page.req('GET', '/artifacts', { query: { uri } }));
  assert.equal(art.forked, false);
  assert.equal(art.content, right.content, 'the artifact now holds the right branch');
  assert.equal(art.version_id, after.resolution_version_id);
  // the detail view shows the resolved state with the buttons off
  await waitText(page, '#detail-meta', /resolved/);
  assert.equal(await page.getByRole('button', { name: /^Keep right/ }).isDisabled(), true);
  await shot(page, 'fork-review-resolved.png');

  phase = 'reload';
  await page.reload();
  await waitText(page, '#conn-status', /Connected/); // the token came back from sessionStorage
  await waitText(page, '#count-resolved', /^[1-9]\d*$/);
});

test('bulk: three forks resolved with "keep provisional head"', async () => {
  const dom = `bulk${uniq()}`;
  const specs = [1, 2, 3].map((i) => ({
    uri: `ctx://acme/${dom}/doc-${i}`, base: `doc ${i}\nstate: draft\n`,
    eu: `doc ${i}\nstate: approved in eu\n`, us: `doc ${i}\nstate: approved in us\nsigned: ${i}\n` }));
  const ids = await backend.makeForks(specs);
  const heads = {};
  for (const id of ids) {
    const f = await ok(backend.page.req('GET', forkPath(id)));
    heads[id] = f.branches.find((b) => b.version_id === f.provisional_head);
    assert.ok(heads[id], 'the provisional head is one of the branches');
  }

  phase = 'bulk';
  await page.fill('#f-pattern', `ctx://acme/${dom}/**`);
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.waitForFunction(() => document.querySelectorAll('#fork-rows tr[data-fork-id]').length === 3);
  const list = await ok(backend.page.req('GET', '/forks', { query: { status: 'open', pattern: `ctx://acme/${dom}/**` } }));
  assert.equal(await textOf(page, '#count-open'), String(list.counts.open));
  await page.getByLabel('Select all forks on this page').check();
  assert.match(await textOf(page, '#sel-count'), /3 selected/);
  await shot(page, 'fork-review-bulk-selected.png', false);
  await page.getByRole('button', { name: 'Resolve 3 selected: keep provisional head' }).click();
  await waitText(page, '#bulk-progress', /^Done/);
  assert.match(await textOf(page, '#bulk-progress'), /3 resolved, 0 skipped, 0 failed/);
  assert.equal(await page.locator('#bulk-results li.r-resolved').count(), 3);
  await page.waitForFunction(() => document.querySelectorAll('#fork-rows tr[data-fork-id]').length === 0);
  await shot(page, 'fork-review-bulk.png');
  for (const [i, id] of ids.entries()) {
    const f = await ok(backend.page.req('GET', forkPath(id)));
    assert.equal(f.status, 'resolved', `${id} resolved`);
    assert.ok(f.resolution_version_id);
    const art = await ok(backend.page.req('GET', '/artifacts', { query: { uri: specs[i].uri } }));
    assert.equal(art.forked, false);
    assert.equal(art.content, heads[id].content, 'kept the provisional head');
  }
});

test('edit merge of a JSON fork, then bulk "keep branch from region us" skipping resolved forks', async () => {
  const dom = `merge${uniq()}`;
  const jsonUri = `ctx://acme/${dom}/limits`;
  const textUri = `ctx://acme/${dom}/notes`;
  const [jsonFork, textFork] = await backend.makeForks([
    { uri: jsonUri, base: { max: 10, tags: ['a'] }, eu: { max: 20, tags: ['a'] }, us: { max: 10, tags: ['a', 'b'], strict: true } },
    { uri: textUri, base: 'notes\n', eu: 'notes\nfrom eu\n', us: 'notes\nfrom us\n' }]);
  const jf = await ok(backend.page.req('GET', forkPath(jsonFork)));
  const jhead = jf.branches.find((b) => b.version_id === jf.provisional_head);
  const usText = (await ok(backend.page.req('GET', forkPath(textFork)))).branches.find((b) => b.origin.region === 'us');

  phase = 'merge';
  await page.fill('#f-pattern', `ctx://acme/${dom}/**`);
  await page.selectOption('#f-status', 'all');
  await page.waitForFunction(() => document.querySelectorAll('#fork-rows tr[data-fork-id]').length === 2);
  await page.locator(`#fork-rows tr[data-fork-id="${jsonFork}"] button`).click();
  await waitText(page, '#detail-h', new RegExp(jsonFork.slice(0, 10)));
  assert.ok(await page.locator('#diffs ol.json-patch li').count() >= 1, 'the JSON Patch list is shown');
  await page.getByRole('button', { name: 'Edit merge…' }).click();
  const pre = await page.inputValue('#merge-text');
  assert.deepEqual(JSON.parse(pre), jhead.content, 'the textarea starts with the provisional head');
  const merged = { max: 20, tags: ['a', 'b'], strict: true };
  await page.fill('#merge-text', JSON.stringify(merged, null, 2));
  await waitText(page, '#merge-kind', /Parses as JSON/);
  await page.fill('#merge-summary', 'hand merge of eu and us');
  await shot(page, 'fork-review-merge.png');
  await page.getByRole('button', { name: 'Resolve with this content' }).click();
  await waitText(page, '#resolve-result', /Resolved with edited merge/);
  const art = await ok(backend.page.req('GET', '/artifacts', { query: { uri: jsonUri } }));
  assert.equal(art.forked, false);
  assert.deepEqual(art.content, merged, 'the merge holds the edited JSON value');
  assert.equal((await ok(backend.page.req('GET', forkPath(jsonFork)))).status, 'resolved');

  phase = 'bulk-region';
  await page.waitForFunction(() => document.querySelectorAll('#fork-rows tr[data-fork-id]').length === 2);
  await page.getByLabel('Select all forks on this page').check();
  await page.selectOption('#bulk-region', 'us');
  await page.getByRole('button', { name: 'Resolve selected: keep branch from region' }).click();
  await waitText(page, '#bulk-progress', /^Done/);
  assert.match(await textOf(page, '#bulk-progress'), /1 resolved, 1 skipped, 0 failed/);
  assert.match(await textOf(page, `#bulk-results li[data-fork-id="${jsonFork}"]`), /already resolved/);
  const t = await ok(backend.page.req('GET', '/artifacts', { query: { uri: textUri } }));
  assert.equal(t.forked, false);
  assert.equal(t.content, usText.content, 'kept the branch from us');
});

test('delete-vs-edit fork: the tombstone branch is shown as deleted; a text merge resolves it', async () => {
  const uri = `ctx://acme/tomb${uniq()}/page`;
  const [id] = await backend.makeForks([{ uri, base: 'keep me?\n', eu: null, us: 'keep me!\n' }]);
  phase = 'tombstone';
  await page.fill('#f-pattern', uri);
  await page.selectOption('#f-status', 'open');
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.waitForFunction(() => document.querySelectorAll('#fork-rows tr[data-fork-id]').length === 1);
  await page.locator(`#fork-rows tr[data-fork-id="${id}"] td`).nth(2).click(); // a click on the row opens it
  await waitText(page, '#detail-h', new RegExp(id.slice(0, 10)));
  const f = await ok(backend.page.req('GET', forkPath(id)));
  const dead = f.branches.find((b) => b.deleted);
  assert.ok(dead, 'the API lists the tombstone branch');
  const col = page.locator(`#branches article.branch[data-version-id="${dead.version_id}"]`);
  assert.match(await col.textContent(), /Deleted/);
  const live = f.branches.find((b) => !b.deleted);
  assert.equal(f.provisional_head, live.version_id, 'a live tip beats a tombstone');
  assert.equal(await page.locator('#branches article.branch.head').getAttribute('data-version-id'), live.version_id);
  await shot(page, 'fork-review-tombstone.png');

  phase = 'text-merge';
  await page.getByRole('button', { name: 'Edit merge…' }).click();
  assert.equal(await page.inputValue('#merge-text'), live.content, 'prefilled with the provisional head');
  await page.fill('#merge-text', 'keep me, merged\n');
  assert.match(await textOf(page, '#merge-kind'), /sent as text/);
  await page.getByRole('button', { name: 'Resolve with this content' }).click();
  await waitText(page, '#resolve-result', /Resolved with edited merge/);
  const art = await ok(backend.page.req('GET', '/artifacts', { query: { uri } }));
  assert.equal(art.forked, false);
  assert.equal(art.content, 'keep me, merged\n');
  assert.match(art.content_type, /^text\/plain/);
});

test('no console errors, no requests outside the node', async () => {
  const bad = consoleProblems.filter((p) => !(
    // the deliberate bad token: Chromium logs the 401 answer of fetch
    (p.phase === 'bad-token' && /status of 401/.test(p.text))));
  assert.deepEqual(bad, [], JSON.stringify(bad, null, 2));
});

// ------------------------------------------------------------------- runner

async function main() {
  const watchdog = setTimeout(() => {
    console.error(`# aborted: the whole run took more than ${TOTAL_TIMEOUT_MS / 1000} s`);
    killAllNow();
    console.log(`0 passed, ${tests.length} failed`);
    process.exit(1);
  }, TOTAL_TIMEOUT_MS);
  let passed = 0, failed = 0;
  try {
    backend = MOCK ? await mockBackend() : await realBackend();
    log(`# fork review UI test against ${backend.name} (${backend.page.url}); screenshots in ${SHOTS}`);
    page = await openPage();
  } catch (e) {
    console.error('# setup failed:', e && e.stack || e);
    await closeBrowser();
    if (backend) await backend.close();
    killAllNow();
    clearTimeout(watchdog);
    console.log(`0 passed, ${tests.length} failed`);
    process.exit(1);
  }
  let pageMissing = false;
  for (const t of tests) {
    const t0 = Date.now();
    if (pageMissing) {
      failed++;
      log(`not ok - ${t.name}\n  not run: the node does not serve the page`);
      continue;
    }
    try {
      await t.fn();
      passed++;
      log(`ok - ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      log(`not ok - ${t.name}\n  ${String(e && e.stack || e).split('\n').join('\n  ')}`);
      if (/GET \/ui\/forks/.test(String(e && e.message))) pageMissing = true;
      if (page) {
        try {
          const file = path.join(TMP, `failure-${passed + failed}.png`);
          await page.screenshot({ path: file, fullPage: true });
          log(`  failure screenshot ${file}`);
        } catch { /* best effort */ }
      }
    }
  }
  await closeBrowser();
  await backend.close();
  clearTimeout(watchdog);
  if (failed) {
    if (backend.page.tail) log(`# ${backend.page.nodeId} log tail:\n${backend.page.tail()}`);
    log(`# kept ${TMP} (node data, logs, failure screenshots)`);
  }
  if (!failed && !process.env.CS_UI_KEEP_TMP) fs.rmSync(TMP, { recursive: true, force: true });
  log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();
