// A small stand-in for ctxsync-node, for working on the fork review page
// without a built node: it serves fork_detect/ui at /ui/forks and answers
// the review API of docs/forks.md (GET /health, GET /forks, GET /forks/{id},
// POST /forks/{id}/resolve, GET /artifacts) from memory.
//
//   node tests/ui/mock_node.mjs [PORT]      # prints the URL and admin token
//
// fork_review.test.mjs --mock runs the browser scenarios against it; the real
// test runs against real nodes.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const UI_DIR = path.resolve(HERE, '../../fork_detect/ui');
export const MOCK_TOKEN = 'mock-admin-token-0123456789abcdef';

const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
const now = () => new Date().toISOString().replace('Z', '000Z').replace(/\.(\d{3})000Z$/, '.$1000Z');

function canon(v) {
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  if (v && typeof v === 'object') {
    return '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + canon(v[k])).join(',') + '}';
  }
  return JSON.stringify(v);
}
const stored = (c) => (typeof c === 'string' ? c : canon(c));
const lines = (t) => { const l = t === '' ? [] : t.split('\n'); if (l.length && l[l.length - 1] === '') l.pop(); return l; };

function lineDiff(a, b) {
  const x = lines(a), y = lines(b);
  const n = x.length, m = y.length;
  const L = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  }
  const ops = []; let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { ops.push({ op: ' ', line: x[i] }); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) ops.push({ op: '-', line: x[i++] });
    else ops.push({ op: '+', line: y[j++] });
  }
  while (i < n) ops.push({ op: '-', line: x[i++] });
  while (j < m) ops.push({ op: '+', line: y[j++] });
  const stats = { added: 0, removed: 0, unchanged: 0 };
  for (const o of ops) stats[o.op === '+' ? 'added' : o.op === '-' ? 'removed' : 'unchanged']++;
  return { ops, stats };
}

function jsonPatch(a, b, p = '') {
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const out = [];
    for (const k of Object.keys(a)) if (!(k in b)) out.push({ op: 'remove', path: p + '/' + k });
    for (const k of Object.keys(b)) {
      if (!(k in a)) out.push({ op: 'add', path: p + '/' + k, value: b[k] });
      else out.push(...jsonPatch(a[k], b[k], p + '/' + k));
    }
    return out;
  }
  return canon(a) === canon(b) ? [] : [{ op: 'replace', path: p, value: b }];
}

export function startMock({ port = 0, nodeId = 'eu-1', region = 'eu' } = {}) {
  const artifacts = new Map(); // uri -> {versions: [], head, forked, fork_id}
  const forks = new Map();     // fork_id -> record (without content/diffs)
  let seq = 0;

  function mkVersion(uri, { parent, version, content, author, origin, summary, merged_from = [], deleted = false, content_type }) {
    const created_at = new Date(Date.now() + (seq++)).toISOString();
    const body = deleted ? null : stored(content);
    const v = {
      uri, version, parent_id: parent, merged_from, author_id: author, summary: summary || '',
      content: deleted ? null : content, deleted,
      content_type: content_type || (typeof content === 'string' ? 'text/plain; charset=utf-8' : 'application/json'),
      content_hash: deleted ? null : 'sha256:' + sha(body), size: deleted ? 0 : Buffer.byteLength(body),
      created_at, origin, payload_state: 'inline',
    };
    v.version_id = 'v:' + sha(JSON.stringify([uri, version, parent, created_at, origin.node_id, v.content_hash]));
    return v;
  }

  function branchOf(v, head) {
    const { content, uri, merged_from, parent_id, ...b } = v;
    return { ...b, provisional_head: v.version_id === head };
  }

  /* A fork of `uri`: a base version then one branch per entry, all on the base. */
  function createFork(uri, base, branches) {
    const eu = { node_id: nodeId, region, seq: 0 };
    const a = { versions: [], forked: false, fork_id: null };
    const b0 = mkVersion(uri, { parent: null, version: 1, content: base, author: 'admin', origin: { ...eu, seq: ++seq } });
    a.versions.push(b0);
    const tips = branches.map((br) => mkVersion(uri, {
      parent: b0.version_id, version: 2, content: br.content, deleted: !!br.deleted, author: br.author || 'alice',
      summary: br.summary, origin: { node_id: br.node_id || br.region + '-1', region: br.region, seq: ++seq },
    }));
    a.versions.push(...tips);
    const head = [...tips].sort((x, y) => (x.deleted - y.deleted) || (y.version - x.version) ||
      (y.created_at < x.created_at ? -1 : y.created_at > x.created_at ? 1 : 0) || (y.version_id < x.version_id ? -1 : 1))[0];
    const fork_id = 'f:' + sha(uri + '\n' + b0.version_id);
    a.forked = true; a.fork_id = fork_id; a.head = head.version_id;
    artifacts.set(uri, a);
    forks.set(fork_id, {
      fork_id, uri, parent_id: b0.version_id, status: 'open', versions: tips,
      provisional_head: head.version_id, detected_at: new Date().toISOString(), detected_by: 'ingest',
      resolved_by: null, resolution_version_id: null, resolved_at: null, policy: 'manual',
    });
    return fork_id;
  }

  function record(f, withContent) {
    const { versions, ...r } = f;
    r.branches = versions.map((v) => ({ ...branchOf(v, f.provisional_head), ...(withContent ? { content: v.content } : {}) }));
    if (withContent) {
      const h = versions.find((v) => v.version_id === f.provisional_head);
      r.diffs = versions.filter((v) => v !== h).map((v) => ({
        from: h.version_id, to: v.version_id,
        lines: lineDiff(h.deleted ? '' : stored(h.content), v.deleted ? '' : stored(v.content)),
        json_patch: (!h.deleted && !v.deleted && typeof h.content === 'object' && typeof v.content === 'object')
          ? jsonPatch(h.content, v.content) : null,
      }));
    }
    return r;
  }

  function send(res, status, body, rid) {
    res.writeHead(status, { 'Content-Type': 'application/json', 'X-Request-Id': rid });
    res.end(JSON.stringify(body));
  }

  const server = http.createServer((req, res) => {
    const rid = 'req-' + crypto.randomBytes(6).toString('hex');
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    const err = (status, code, message) => send(res, status, { error: code, message, request_id: rid }, rid);
    const files = { '/ui/forks': ['index.html', 'text/html; charset=utf-8'],
      '/ui/forks/app.js': ['app.js', 'text/javascript; charset=utf-8'],
      '/ui/forks/style.css': ['style.css', 'text/css; charset=utf-8'] };
    if (req.method === 'GET' && files[p]) {
      const [f, ct] = files[p];
      res.writeHead(200, { 'Content-Type': ct, 'Cache-Control': 'no-store', 'X-Request-Id': rid,
        'Content-Security-Policy': "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        'X-Content-Type-Options': 'nosniff', });
      res.end(fs.readFileSync(path.join(UI_DIR, f)));
      return;
    }
    if (req.method === 'GET' && p === '/health') {
      return send(res, 200, { status: 'ok', node_id: nodeId, region, version: '0.1.0-mock' }, rid);
    }
    if (req.headers.authorization !== 'Bearer ' + MOCK_TOKEN) return err(401, 'unauthenticated', 'missing or unknown credentials');
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      let m;
      if (req.method === 'GET' && p === '/forks') {
        const status = url.searchParams.get('status') || 'open';
        const pattern = url.searchParams.get('pattern') || '';
        const limit = Math.min(500, parseInt(url.searchParams.get('limit') || '50', 10) || 50);
        const cursor = parseInt(url.searchParams.get('cursor') || '0', 10) || 0;
        if (!['open', 'resolved', 'all'].includes(status)) return err(400, 'bad_request', 'status must be open, resolved or all');
        const re = pattern ? new RegExp('^' + pattern.split(/(\*\*|\*)/).map((s) => (s === '**' ? '.*' : s === '*' ? '[^/]*' : s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))).join('') + '$') : null;
        const all = [...forks.values()].filter((f) => !re || re.test(f.uri));
        const sel = all.filter((f) => status === 'all' || f.status === status);
        const page = sel.slice(cursor, cursor + limit);
        return send(res, 200, {
          forks: page.map((f) => record(f, false)),
          next_cursor: cursor + limit < sel.length ? String(cursor + limit) : null,
          counts: { open: all.filter((f) => f.status === 'open').length, resolved: all.filter((f) => f.status === 'resolved').length },
        }, rid);
      }
      if ((m = /^\/forks\/([^/]+)(\/resolve)?$/.exec(p))) {
        const f = forks.get(decodeURIComponent(m[1]));
        if (!f) return err(404, 'not_found', 'no such fork');
        if (req.method === 'GET' && !m[2]) return send(res, 200, record(f, true), rid);
        if (req.method === 'POST' && m[2]) {
          let body;
          try { body = JSON.parse(raw); } catch { return err(400, 'invalid_json', 'body is not JSON'); }
          if (f.status !== 'open') return err(409, 'conflict', 'fork already resolved');
          let kept, content, ct;
          if (typeof body.keep === 'string') {
            kept = f.versions.find((v) => v.version_id === body.keep);
            if (!kept) return err(400, 'bad_request', 'keep is not a tip of the fork');
            content = kept.content; ct = kept.content_type;
          } else if ('content' in body) {
            kept = f.versions.find((v) => v.version_id === f.provisional_head);
            content = body.content; ct = body.content_type;
          } else return err(400, 'bad_request', 'give keep or content');
          const a = artifacts.get(f.uri);
          const mv = mkVersion(f.uri, {
            parent: kept.version_id, version: kept.version + 1, content, content_type: ct, author: 'admin',
            summary: body.summary || 'fork resolved', merged_from: f.versions.filter((v) => v !== kept).map((v) => v.version_id),
            origin: { node_id: nodeId, region, seq: ++seq },
          });
          a.versions.push(mv); a.head = mv.version_id; a.forked = false; a.fork_id = null;
          Object.assign(f, { status: 'resolved', resolved_by: 'admin', resolution_version_id: mv.version_id, resolved_at: mv.created_at });
          const { content: c, ...v } = mv;
          return send(res, 200, { fork: record(f, false), version: { ...v, content: c } }, rid);
        }
        return err(404, 'not_found', 'no such route');
      }
      if (req.method === 'GET' && p === '/artifacts') {
        const a = artifacts.get(url.searchParams.get('uri') || '');
        if (!a) return err(404, 'not_found', 'no such artifact');
        const v = a.versions.find((x) => x.version_id === a.head);
        return send(res, 200, { ...v, forked: a.forked, fork_id: a.fork_id }, rid);
      }
      return err(404, 'not_found', 'no such route');
    });
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const url = 'http://127.0.0.1:' + server.address().port;
      resolve({ url, token: MOCK_TOKEN, createFork, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const m = await startMock({ port: parseInt(process.argv[2] || '0', 10) });
  m.createFork('ctx://acme/docs/readme', 'title\nline two\nline three\n', [
    { region: 'eu', content: 'title\nline two (eu edit)\nline three\n', summary: 'eu edit' },
    { region: 'us', content: 'title\nline two (us edit)\nline three\nline four\n', summary: 'us edit' }]);
  m.createFork('ctx://acme/config/limits', { a: 1, b: [1, 2] }, [
    { region: 'eu', content: { a: 2, b: [1, 2] } }, { region: 'us', content: { a: 1, b: [1, 2, 3], c: true } }]);
  m.createFork('ctx://acme/docs/gone', 'x\n', [{ region: 'eu', deleted: true }, { region: 'us', content: 'x\ny\n' }]);
  console.log(m.url + '/ui/forks  token: ' + m.token);
}
