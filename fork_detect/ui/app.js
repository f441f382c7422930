/* ContextSync fork review page (docs/forks.md).
 *
 * Plain browser JavaScript, no build step, no framework, nothing loaded from
 * outside the node.  The page talks to the node's JSON API on the same
 * origin with the bearer token the admin pastes; the token is kept in
 * sessionStorage only (never in a URL, never logged).  All text from the
 * API goes into the DOM through textContent, never as HTML.
 */
'use strict';

(function () {
  var TOKEN_KEY = 'ctxsync.forkReview.token';

  var state = {
    token: null,
    status: 'open',
    pattern: '',
    limit: 50,
    cursor: null,        // cursor of the page shown (null = first)
    prevCursors: [],     // cursors of the pages before it
    nextCursor: null,
    forks: [],           // records on the page shown
    selected: new Set(), // fork_ids checked on the page shown
    detail: null,        // GET /forks/{id} answer shown in the detail view
    busy: false
  };

  // ---------------------------------------------------------------- helpers

  function $(id) { return document.getElementById(id); }

  /* el('td', {class: 'x', title: 't'}, child, 'text', ...) */
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'class') node.className = v;
        else if (k === 'text') node.textContent = v;
        else if (k.slice(0, 2) === 'on') node.addEventListener(k.slice(2), v);
        else if (v === true) node.setAttribute(k, '');
        else node.setAttribute(k, String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(typeof c === 'string' || typeof c === 'number'
        ? document.createTextNode(String(c)) : c);
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function shortId(id) {
    if (typeof id !== 'string') return '—';
    var m = /^([a-z]+:)([0-9a-f]+)$/.exec(id);
    return m ? m[1] + m[2].slice(0, 12) : (id.length > 16 ? id.slice(0, 16) + '…' : id);
  }

  function idCode(id) {
    return el('code', {title: id || '', class: 'id'}, shortId(id));
  }

  function fmtTime(ts) {
    if (!ts) return el('span', {class: 'muted'}, '—');
    var shown = String(ts).replace('T', ' ').replace(/\.\d+/, '');
    return el('time', {datetime: ts, title: ts}, shown);
  }

  function regionsOf(fork) {
    var seen = [];
    (fork.branches || []).forEach(function (b) {
      var r = b.origin && b.origin.region;
      if (r && seen.indexOf(r) < 0) seen.push(r);
    });
    return seen;
  }

  function isJsonType(ct) {
    if (!ct) return false;
    var base = String(ct).split(';')[0].trim().toLowerCase();
    return base === 'application/json' || /\+json$/.test(base);
  }

  /* Path of one fork: fork ids are "f:" + hex; ':' is legal in a path. */
  function forkPath(id) {
    return '/forks/' + encodeURIComponent(id).replace(/%3A/gi, ':');
  }

  function contentText(content) {
    if (content === null || content === undefined) return null;
    if (typeof content === 'string') return content;
    return JSON.stringify(content, null, 2);
  }

  /* Lines the way the node's diff counts them: split on \n, a final
   * newline ends the last line and adds no empty line. */
  function splitLines(text) {
    if (text === '') return [];
    var lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    return lines;
  }

  // -------------------------------------------------------------------- API

  function ApiError(status, code, message, requestId) {
    this.status = status;
    this.code = code;
    this.message = message;
    this.requestId = requestId;
  }
  ApiError.prototype = Object.create(Error.prototype);
  ApiError.prototype.name = 'ApiError';

  function api(method, path, body, opts) {
    var headers = {'Accept': 'application/json'};
    var auth = !(opts && opts.noAuth);
    if (auth) {
      if (!state.token) {
        return Promise.reject(new ApiError(401, 'unauthenticated',
          'No token: paste an admin token and press Connect.', null));
      }
      headers['Authorization'] = 'Bearer ' + state.token;
    }
    var init = {method: method, headers: headers, cache: 'no-store',
                credentials: 'omit', redirect: 'error'};
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      var rid = res.headers.get('X-Request-Id');
      return res.text().then(function (text) {
        var data = null;
        if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
        if (!res.ok) {
          throw new ApiError(res.status,
            (data && data.error) || 'http_' + res.status,
            (data && data.message) || res.statusText || 'request failed',
            (data && data.request_id) || rid);
        }
        if (data === null) {
          throw new ApiError(res.status, 'bad_response',
            'The node answered ' + method + ' ' + path.split('?')[0] + ' with something that is not JSON.', rid);
        }
        return data;
      });
    }, function (e) {
      throw new ApiError(0, 'network', 'Cannot reach the node (' + (e && e.message || 'network error') + ').', null);
    });
  }

  // ----------------------------------------------------------------- banner

  function showBanner(text, kind) {
    $('banner').className = 'banner ' + (kind || 'error');
    $('banner-text').textContent = text;
    $('banner').hidden = false;
  }

  function hideBanner() { $('banner').hidden = true; }

  function describe(err) {
    if (!(err instanceof ApiError)) return String(err && err.message || err);
    var s = (err.status ? err.status + ' ' : '') + err.code + ': ' + err.message;
    if (err.requestId) s += ' (request_id ' + err.requestId + ')';
    return s;
  }

  /* Shows an API error; 401 forgets the token and asks for it again. */
  function handleError(err, what) {
    if (err instanceof ApiError && err.status === 401) {
      forgetToken();
      showBanner(what + ' failed: ' + describe(err) +
        '. The node did not accept the token: paste the admin token again.');
      setConn('Not connected: the token was refused (401).', 'bad');
      $('token').focus();
      return;
    }
    if (err instanceof ApiError && err.status === 403) {
      showBanner(what + ' failed: ' + describe(err) +
        '. This token may not review these forks (admin, or approve on the URI, is needed).');
      return;
    }
    showBanner(what + ' failed: ' + describe(err));
  }

  // ------------------------------------------------------------------ token

  function setConn(text, kind) {
    var p = $('conn-status');
    p.textContent = text;
    p.className = 'conn-status ' + (kind || '');
  }

  function forgetToken() {
    state.token = null;
    try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* storage off */ }
    $('forget').hidden = true;
    updateBulkButtons();
  }

  function connect(token) {
    state.token = token;
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage off */ }
    $('token').value = '';
    $('forget').hidden = false;
    setConn('Connecting…');
    hideBanner();
    return loadQueue(true).then(function (ok) {
      if (ok) setConn('Connected: the token is accepted for fork review.', 'ok');
    });
  }

  // ----------------------------------------------------------------- health

  function loadHealth() {
    api('GET', '/health', undefined, {noAuth: true}).then(function (h) {
      var parts = ['Node ' + (h.node_id || '?'), 'region ' + (h.region || '?')];
      if (h.version) parts.push('version ' + h.version);
      if (h.status && h.status !== 'ok') parts.push('status ' + h.status);
      $('node-info').textContent = parts.join(' · ');
    }, function (err) {
      $('node-info').textContent = 'Node: unreachable (' + describe(err) + ')';
    });
  }

  // ------------------------------------------------------------------ queue

  function readFilters() {
    state.status = $('f-status').value;
    state.pattern = $('f-pattern').value.trim();
    state.limit = parseInt($('f-limit').value, 10) || 50;
  }

  /* Loads the page at state.cursor (reset: back to the first page). */
  function loadQueue(reset) {
    readFilters();
    if (reset) { state.cursor = null; state.prevCursors = []; }
    var q = new URLSearchParams();
    q.set('status', state.status);
    if (state.pattern) q.set('pattern', state.pattern);
    q.set('limit', String(state.limit));
    if (state.cursor) q.set('cursor', state.cursor);
    $('fork-table').setAttribute('aria-busy', 'true');
    return api('GET', '/forks?' + q.toString()).then(function (data) {
      state.forks = Array.isArray(data.forks) ? data.forks : [];
      state.nextCursor = data.next_cursor || null;
      var counts = data.counts || {};
      $('count-open').textContent = counts.open !== undefined ? String(counts.open) : '?';
      $('count-resolved').textContent = counts.resolved !== undefined ? String(counts.resolved) : '?';
      renderQueue();
      return true;
    }, function (err) {
      handleError(err, 'Loading the fork queue');
      if (!state.token) {
        state.forks = [];
        renderQueue();
      }
      return false;
    }).then(function (ok) {
      $('fork-table').removeAttribute('aria-busy');
      return ok;
    });
  }

  function renderQueue() {
    var body = $('fork-rows');
    clear(body);
    var onPage = new Set(state.forks.map(function (f) { return f.fork_id; }));
    state.selected.forEach(function (id) { if (!onPage.has(id)) state.selected.delete(id); });
    if (!state.forks.length) {
      body.appendChild(el('tr', {class: 'empty'}, el('td', {colspan: 7},
        state.token ? 'No ' + (state.status === 'all' ? '' : state.status + ' ') +
          'forks' + (state.pattern ? ' matching ' + state.pattern : '') + '.'
          : 'Connect with a token to load the queue.')));
    }
    state.forks.forEach(function (f) {
      var id = f.fork_id;
      var cb = el('input', {type: 'checkbox', 'aria-label': 'Select fork ' + shortId(id) + ' on ' + f.uri,
        'data-fork-id': id});
      cb.checked = state.selected.has(id);
      cb.addEventListener('change', function () {
        if (cb.checked) state.selected.add(id); else state.selected.delete(id);
        updateSelection();
      });
      var open = el('button', {type: 'button', class: 'link-button', title: id,
        'aria-label': 'Open fork ' + shortId(id) + ' on ' + f.uri}, shortId(id));
      open.addEventListener('click', function () { openFork(id); });
      var n = (f.branches || []).length;
      var tr = el('tr', {'data-fork-id': id, class: state.detail && state.detail.fork_id === id ? 'current' : null},
        el('td', {class: 'sel'}, cb),
        el('td', null, open),
        el('td', {class: 'uri'}, el('code', null, f.uri || '')),
        el('td', {class: 'num'}, String(n)),
        el('td', null, regionsOf(f).join(', ') || '—'),
        el('td', null, fmtTime(f.detected_at)),
        el('td', null, el('span', {class: 'status ' + (f.status || '')}, f.status || '?')));
      tr.addEventListener('click', function (ev) {
        if (ev.target.closest('input, button, a')) return;
        openFork(id);
      });
      body.appendChild(tr);
    });
    var page = state.prevCursors.length + 1;
    $('page-info').textContent = 'Page ' + page + ' · ' + state.forks.length + ' shown';
    $('prev-page').disabled = state.prevCursors.length === 0;
    $('next-page').disabled = !state.nextCursor;
    renderRegionChoices();
    updateSelection();
  }

  function updateSelection() {
    var all = $('select-all');
    var n = state.selected.size;
    all.checked = n > 0 && n === state.forks.length;
    all.indeterminate = n > 0 && n < state.forks.length;
    $('sel-count').textContent = '(' + n + ' selected)';
    updateBulkButtons();
  }

  function updateBulkButtons() {
    var n = state.selected.size;
    var off = n === 0 || state.busy || !state.token;
    $('bulk-head').disabled = off;
    $('bulk-head').textContent = 'Resolve ' + (n || '') + (n ? ' ' : '') + 'selected: keep provisional head';
    $('bulk-region').disabled = off || $('bulk-region').options.length === 0 || !$('bulk-region').value;
    $('bulk-region-go').disabled = $('bulk-region').disabled;
  }

  function renderRegionChoices() {
    var sel = $('bulk-region');
    var before = sel.value;
    var regions = [];
    state.forks.forEach(function (f) {
      regionsOf(f).forEach(function (r) { if (regions.indexOf(r) < 0) regions.push(r); });
    });
    regions.sort();
    clear(sel);
    if (!regions.length) sel.appendChild(el('option', {value: ''}, '(no regions)'));
    regions.forEach(function (r) { sel.appendChild(el('option', {value: r}, r)); });
    if (regions.indexOf(before) >= 0) sel.value = before;
  }

  // ----------------------------------------------------------------- detail

  function openFork(id) {
    hideBanner();
    return api('GET', forkPath(id)).then(function (f) {
      state.detail = f;
      renderDetail();
      Array.prototype.forEach.call($('fork-rows').querySelectorAll('tr[data-fork-id]'), function (tr) {
        tr.classList.toggle('current', tr.getAttribute('data-fork-id') === id);
      });
      $('detail').hidden = false;
      $('detail-h').focus();
      $('detail').scrollIntoView({block: 'start'});
    }, function (err) { handleError(err, 'Opening fork ' + shortId(id)); });
  }

  function branchLabel(f, b) {
    var i = f.branches.indexOf(b);
    if (f.branches.length === 2) return i === 0 ? 'Left' : 'Right';
    return 'Branch ' + (i + 1);
  }

  function headId(f) {
    if (f.provisional_head) return f.provisional_head;
    var h = (f.branches || []).filter(function (b) { return b.provisional_head; })[0];
    return h ? h.version_id : null;
  }

  function findBranch(f, vid) {
    return (f.branches || []).filter(function (b) { return b.version_id === vid; })[0] || null;
  }

  function metaRow(dl, term, value) {
    dl.appendChild(el('dt', null, term));
    dl.appendChild(el('dd', null, value));
  }

  function renderDetail() {
    var f = state.detail;
    var open = f.status === 'open';
    var head = headId(f);
    $('detail-h').textContent = 'Fork ' + shortId(f.fork_id) + (open ? '' : ' (resolved)');
    $('detail-h').title = f.fork_id;

    var dl = $('detail-meta');
    clear(dl);
    metaRow(dl, 'URI', el('code', null, f.uri || ''));
    metaRow(dl, 'Fork id', el('code', {class: 'id-full'}, f.fork_id));
    metaRow(dl, 'Common parent', f.parent_id ? idCode(f.parent_id) : 'none (created on two nodes)');
    metaRow(dl, 'Status', el('span', {class: 'status ' + f.status}, f.status));
    metaRow(dl, 'Detected', el('span', null, fmtTime(f.detected_at), f.detected_by ? ' by ' + f.detected_by : ''));
    if (f.policy) metaRow(dl, 'Policy', f.policy);
    if (!open) {
      metaRow(dl, 'Resolved', el('span', null, fmtTime(f.resolved_at), ' by ' + (f.resolved_by || '?')));
      metaRow(dl, 'Resolution version', idCode(f.resolution_version_id));
    }

    var note = $('detail-note');
    note.hidden = open;
    note.textContent = open ? '' : 'This fork is resolved; the buttons are off. The branches stay readable by version_id.';

    renderBranches(f, head);
    renderKeepButtons(f);
    renderDiffs(f, head);
    $('merge-form').hidden = true;
    $('edit-merge').disabled = !open;
    $('merge-submit').disabled = !open;
    $('merge-cancel').disabled = false;
    $('resolve-summary').disabled = !open;
    $('resolve-result').textContent = '';
  }

  /* Lines of a branch with the marks of the diff it takes part in (2
   * branches only), or null when the diff does not rebuild its content. */
  function markedLines(f, b, text) {
    if (f.branches.length !== 2 || !Array.isArray(f.diffs) || f.diffs.length !== 1) return null;
    var d = f.diffs[0];
    var ops = d && d.lines && d.lines.ops;
    if (!Array.isArray(ops)) return null;
    var side = d.from === b.version_id ? 'from' : d.to === b.version_id ? 'to' : null;
    if (!side) return null;
    var skip = side === 'from' ? '+' : '-';
    var out = [];
    for (var i = 0; i < ops.length; i++) {
      var op = ops[i].op;
      if (op !== ' ' && op !== '+' && op !== '-') continue;
      if (op === skip) continue;
      out.push({op: op, line: String(ops[i].line)});
    }
    var want = splitLines(text);
    if (want.length !== out.length) return null;
    for (var j = 0; j < want.length; j++) if (want[j] !== out[j].line) return null;
    return out;
  }

  function renderBranches(f, head) {
    var box = $('branches');
    clear(box);
    var legend = $('branches-legend');
    var d = f.branches.length === 2 && Array.isArray(f.diffs) && f.diffs.length === 1 ? f.diffs[0] : null;
    if (d) {
      var fb = findBranch(f, d.from), tb = findBranch(f, d.to);
      legend.textContent = 'Highlighted lines differ: \u2212 red lines are only in the ' +
        (fb ? branchLabel(f, fb).toLowerCase() : 'first') + ' branch, + green lines only in the ' +
        (tb ? branchLabel(f, tb).toLowerCase() : 'other') + ' branch.';
    } else {
      legend.textContent = f.branches.length > 2 ? 'The diffs below compare the provisional head with each other branch.' : '';
    }
    var n = f.branches.length;
    box.style.setProperty('--cols', String(Math.max(1, n)));
    f.branches.forEach(function (b) {
      var isHead = b.version_id === head || b.provisional_head === true;
      var label = branchLabel(f, b);
      var o = b.origin || {};
      var dl = el('dl', {class: 'bmeta'});
      metaRow(dl, 'Version', el('span', null, idCode(b.version_id), ' (v' + b.version + ')'));
      metaRow(dl, 'Author', b.author_id || '—');
      metaRow(dl, 'Origin', (o.region || '?') + ' / ' + (o.node_id || '?') + (o.seq !== undefined ? ' #' + o.seq : ''));
      metaRow(dl, 'Created', fmtTime(b.created_at));
      metaRow(dl, 'Summary', b.summary ? b.summary : el('span', {class: 'muted'}, '(none)'));
      if (!b.deleted) {
        metaRow(dl, 'Type', (b.content_type || '—') + (b.size !== undefined && b.size !== null ? ', ' + b.size + ' bytes' : ''));
      }

      var body;
      if (b.deleted) {
        body = el('p', {class: 'tombstone'}, 'Deleted (tombstone): this branch deletes the artifact.');
      } else if (b.content === null || b.content === undefined) {
        body = el('p', {class: 'no-payload'}, 'Payload not stored here (metadata-only mirror' +
          (b.payload_state && b.payload_state !== 'inline' ? ', payload ' + b.payload_state : '') + ').');
      } else {
        var text = contentText(b.content);
        var marks = typeof b.content === 'string' ? markedLines(f, b, text) : null;
        body = el('pre', {class: 'content', tabindex: '0', 'aria-label': label + ' branch content'});
        if (marks) {
          marks.forEach(function (m) {
            var tag = m.op === '+' ? 'ins' : m.op === '-' ? 'del' : 'span';
            body.appendChild(el(tag, {class: 'line' + (m.op === '+' ? ' add' : m.op === '-' ? ' del' : '')}, m.line + '\n'));
          });
        } else {
          body.textContent = text;
        }
      }

      var col = el('article', {class: 'branch' + (isHead ? ' head' : ''), 'data-version-id': b.version_id,
        'aria-label': label + ' branch' + (isHead ? ', provisional head' : '')},
        el('h4', null, label, ' · ', o.region || '?',
          isHead ? el('span', {class: 'badge', title: 'Reads of the artifact return this branch while the fork is open'}, 'provisional head') : null),
        dl, body);
      if (n > 2) {
        var keep = keepButton(f, b, 'Keep branch ' + (f.branches.indexOf(b) + 1));
        col.appendChild(el('p', {class: 'col-keep'}, keep));
      }
      box.appendChild(col);
    });
  }

  function keepButton(f, b, text) {
    var region = b.origin && b.origin.region || '?';
    var btn = el('button', {type: 'button', class: 'keep', 'data-version-id': b.version_id,
      title: 'Keep ' + b.version_id + ' (' + region + ')'}, text,
      el('span', {class: 'btn-sub'}, ' (' + region + ', ' + shortId(b.version_id) + ')'));
    btn.disabled = f.status !== 'open';
    btn.addEventListener('click', function () {
      var body = {keep: b.version_id};
      var s = $('resolve-summary').value.trim();
      if (s) body.summary = s;
      resolve(f.fork_id, body, text);
    });
    return btn;
  }

  /* Two branches: "Keep left" / "Keep right" in the action bar; more: a
   * "Keep" button in each column (renderBranches). */
  function renderKeepButtons(f) {
    var box = $('keep-buttons');
    clear(box);
    if (f.branches.length !== 2) return;
    box.appendChild(keepButton(f, f.branches[0], 'Keep left'));
    box.appendChild(keepButton(f, f.branches[1], 'Keep right'));
  }

  function renderDiffs(f, head) {
    var box = $('diffs');
    clear(box);
    var diffs = Array.isArray(f.diffs) ? f.diffs : [];
    if (!diffs.length) {
      box.appendChild(el('p', {class: 'muted'}, 'No diff given (a branch may be deleted or not stored here).'));
      return;
    }
    diffs.forEach(function (d) {
      var from = findBranch(f, d.from), to = findBranch(f, d.to);
      var name = function (b, vid) {
        return b ? branchLabel(f, b) + ' (' + (b.origin && b.origin.region || '?') + ', ' + shortId(vid) +
          (vid === head ? ', provisional head' : '') + ')' : shortId(vid);
      };
      var sec = el('section', {class: 'diff'});
      sec.appendChild(el('h4', null, 'From ' + name(from, d.from) + ' to ' + name(to, d.to)));
      var lines = d.lines;
      if (lines && Array.isArray(lines.ops)) {
        var st = lines.stats || {};
        sec.appendChild(el('p', {class: 'stats'},
          el('span', {class: 'plus'}, '+' + (st.added || 0) + ' added'), ' · ',
          el('span', {class: 'minus'}, '\u2212' + (st.removed || 0) + ' removed'), ' · ',
          (st.unchanged || 0) + ' unchanged'));
        var pre = el('pre', {class: 'line-diff', tabindex: '0', 'aria-label': 'Line diff'});
        lines.ops.forEach(function (o) {
          var op = o.op, line = String(o.line);
          if (op === '+') pre.appendChild(el('ins', {class: 'line add'}, '+ ' + line + '\n'));
          else if (op === '-') pre.appendChild(el('del', {class: 'line del'}, '\u2212 ' + line + '\n'));
          else if (op === ' ') pre.appendChild(el('span', {class: 'line same'}, '  ' + line + '\n'));
          else pre.appendChild(el('span', {class: 'line meta'}, line + '\n'));
        });
        sec.appendChild(pre);
      } else {
        sec.appendChild(el('p', {class: 'muted'}, 'No line diff.'));
      }
      if (Array.isArray(d.json_patch)) {
        sec.appendChild(el('h5', null, 'JSON Patch (' + d.json_patch.length + ' operation' + (d.json_patch.length === 1 ? '' : 's') + ')'));
        var ol = el('ol', {class: 'json-patch'});
        d.json_patch.forEach(function (p) {
          var li = el('li', {class: 'jp ' + (p.op || '')}, el('strong', null, p.op || '?'), ' ', el('code', null, p.path || ''));
          if (p.from !== undefined) li.appendChild(el('span', null, ' from ', el('code', null, p.from)));
          if (p.value !== undefined) li.appendChild(el('span', null, ' = ', el('code', null, JSON.stringify(p.value))));
          ol.appendChild(li);
        });
        sec.appendChild(ol);
      }
      box.appendChild(sec);
    });
  }

  // ------------------------------------------------------------------ merge

  function openMerge() {
    var f = state.detail;
    if (!f) return;
    var head = findBranch(f, headId(f));
    var text = head ? contentText(head.content) : null;
    $('merge-text').value = text === null ? '' : text;
    $('merge-hint').textContent = head
      ? 'Prefilled with the provisional head (' + shortId(head.version_id) + ', ' +
        (head.origin && head.origin.region || '?') + ')' +
        (text === null ? ', whose content is not available here' : '') + '. Edit it into the merged result.'
      : 'Write the merged result.';
    $('merge-summary').value = $('resolve-summary').value;
    $('merge-form').hidden = false;
    updateMergeKind();
    $('merge-text').focus();
  }

  function mergeBody() {
    var f = state.detail;
    var head = findBranch(f, headId(f));
    var ct = head && head.content_type;
    var text = $('merge-text').value;
    var body = {};
    var asJson = false;
    if (isJsonType(ct) || (head && head.content !== null && typeof head.content === 'object')) {
      try { body.content = JSON.parse(text); asJson = true; } catch (e) { asJson = false; }
    }
    if (!asJson) {
      body.content = text;
      if (ct && !isJsonType(ct)) body.content_type = ct;
    }
    var s = $('merge-summary').value.trim();
    if (s) body.summary = s;
    return {body: body, asJson: asJson, jsonType: isJsonType(ct)};
  }

  function updateMergeKind() {
    if (!state.detail) return;
    var m = mergeBody();
    $('merge-kind').textContent = m.asJson
      ? 'Parses as JSON: it will be sent as a JSON value.'
      : m.jsonType ? 'Does not parse as JSON: it will be sent as text.' : 'It will be sent as text.';
  }

  // ---------------------------------------------------------------- resolve

  function resolve(forkId, body, what) {
    if (state.busy) return Promise.resolve();
    state.busy = true;
    setDetailButtons(false);
    $('resolve-result').textContent = 'Resolving (' + what + ')…';
    return api('POST', forkPath(forkId) + '/resolve', body).then(function (r) {
      var v = r.version || {};
      $('resolve-result').textContent = 'Resolved with ' + what + ': merge version ' + shortId(v.version_id) +
        (v.version !== undefined ? ' (version ' + v.version + ')' : '') + '.';
      if (r.fork) { state.detail = Object.assign({}, state.detail, r.fork); }
      state.busy = false;
      return api('GET', forkPath(forkId)).then(function (f) {
        state.detail = f;
        var msg = $('resolve-result').textContent;
        renderDetail();
        $('resolve-result').textContent = msg;
      }, function () { renderDetail(); }).then(function () { return loadQueue(false); });
    }, function (err) {
      state.busy = false;
      $('resolve-result').textContent = '';
      setDetailButtons(state.detail && state.detail.status === 'open');
      handleError(err, 'Resolving fork ' + shortId(forkId));
    }).then(function () { updateBulkButtons(); });
  }

  function setDetailButtons(on) {
    Array.prototype.forEach.call(document.querySelectorAll('#actions button, #merge-form button'), function (b) {
      b.disabled = !on;
    });
  }

  // ------------------------------------------------------------------- bulk

  function bulkResolve(mode) {
    if (state.busy || !state.selected.size) return;
    var region = $('bulk-region').value;
    if (mode === 'region' && !region) return;
    var ids = state.forks.map(function (f) { return f.fork_id; })
      .filter(function (id) { return state.selected.has(id); });
    var summary = $('bulk-summary').value.trim();
    var list = $('bulk-results');
    clear(list);
    state.busy = true;
    updateBulkButtons();
    hideBanner();
    var tally = {resolved: 0, skipped: 0, failed: 0};
    var how = mode === 'head' ? 'keep provisional head' : 'keep branch from region ' + region;
    var progress = function (i) {
      $('bulk-progress').textContent = 'Resolving ' + ids.length + ' fork' + (ids.length === 1 ? '' : 's') +
        ' (' + how + '): ' + i + ' of ' + ids.length + ' done · ' + tally.resolved + ' resolved, ' +
        tally.skipped + ' skipped, ' + tally.failed + ' failed';
    };
    var report = function (id, uri, kind, text) {
      tally[kind]++;
      list.appendChild(el('li', {class: 'r-' + kind, 'data-fork-id': id},
        el('code', {title: id}, shortId(id)), ' ', el('code', {class: 'uri'}, uri || ''), ': ',
        el('strong', null, kind), ' \u2014 ', text));
    };
    var stopped = false;
    var i = 0;
    progress(0);
    var step = function () {
      if (stopped || i >= ids.length) return Promise.resolve();
      var id = ids[i];
      var rec = state.forks.filter(function (f) { return f.fork_id === id; })[0] || {};
      return api('GET', forkPath(id)).then(function (f) {
        if (f.status !== 'open') { report(id, f.uri, 'skipped', 'already resolved'); return null; }
        var keep;
        if (mode === 'head') {
          keep = headId(f);
          if (!keep) { report(id, f.uri, 'skipped', 'no provisional head given'); return null; }
        } else {
          var m = (f.branches || []).filter(function (b) { return b.origin && b.origin.region === region; });
          if (!m.length) { report(id, f.uri, 'skipped', 'no branch from region ' + region); return null; }
          if (m.length > 1) { report(id, f.uri, 'skipped', m.length + ' branches from region ' + region + ': resolve it by hand'); return null; }
          keep = m[0].version_id;
        }
        var body = {keep: keep};
        if (summary) body.summary = summary;
        return api('POST', forkPath(id) + '/resolve', body).then(function (r) {
          var b = findBranch(f, keep);
          report(id, f.uri, 'resolved', 'kept ' + shortId(keep) + ' (' + (b && b.origin && b.origin.region || '?') +
            '), merge version ' + shortId(r.version && r.version.version_id));
        });
      }).catch(function (err) {
        report(id, rec.uri, 'failed', describe(err));
        if (err instanceof ApiError && (err.status === 401 || err.status === 0)) {
          stopped = true;
          handleError(err, 'Bulk resolve');
        }
      }).then(function () {
        i++;
        progress(i);
        return step();
      });
    };
    return step().then(function () {
      state.busy = false;
      $('bulk-progress').textContent = (stopped ? 'Stopped after ' + i + ' of ' + ids.length : 'Done') + ' (' + how + '): ' +
        tally.resolved + ' resolved, ' + tally.skipped + ' skipped, ' + tally.failed + ' failed.';
      state.selected.clear();
      if (!state.token) { updateSelection(); return; }
      var current = state.detail && state.detail.fork_id;
      return loadQueue(false).then(function () {
        if (current && ids.indexOf(current) >= 0) {
          return api('GET', forkPath(current)).then(function (f) { state.detail = f; renderDetail(); }, function () {});
        }
      });
    });
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    $('token-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var t = $('token').value.trim();
      if (!t) {
        showBanner('Paste a bearer token first (the admin token printed by "ctxsync-node init", or one from POST /actors/{id}/tokens).');
        $('token').focus();
        return;
      }
      connect(t);
    });
    $('forget').addEventListener('click', function () {
      forgetToken();
      state.forks = [];
      state.detail = null;
      $('detail').hidden = true;
      $('count-open').textContent = '–';
      $('count-resolved').textContent = '–';
      renderQueue();
      setConn('Not connected. The token was removed from this tab.');
    });
    $('banner-close').addEventListener('click', hideBanner);
    $('filters').addEventListener('submit', function (ev) {
      ev.preventDefault();
      loadQueue(true);
    });
    $('f-status').addEventListener('change', function () { if (state.token) loadQueue(true); });
    $('f-limit').addEventListener('change', function () { if (state.token) loadQueue(true); });
    $('next-page').addEventListener('click', function () {
      if (!state.nextCursor) return;
      state.prevCursors.push(state.cursor);
      state.cursor = state.nextCursor;
      loadQueue(false);
    });
    $('prev-page').addEventListener('click', function () {
      if (!state.prevCursors.length) return;
      state.cursor = state.prevCursors.pop();
      loadQueue(false);
    });
    $('select-all').addEventListener('change', function () {
      var on = $('select-all').checked;
      state.selected.clear();
      if (on) state.forks.forEach(function (f) { state.selected.add(f.fork_id); });
      Array.prototype.forEach.call($('fork-rows').querySelectorAll('input[type=checkbox]'), function (cb) {
        cb.checked = on;
      });
      updateSelection();
    });
    $('bulk-region').addEventListener('change', updateBulkButtons);
    $('bulk-head').addEventListener('click', function () { bulkResolve('head'); });
    $('bulk-region-go').addEventListener('click', function () { bulkResolve('region'); });
    $('detail-close').addEventListener('click', function () {
      $('detail').hidden = true;
      state.detail = null;
      renderQueue();
    });
    $('edit-merge').addEventListener('click', openMerge);
    $('merge-cancel').addEventListener('click', function () { $('merge-form').hidden = true; $('edit-merge').focus(); });
    $('merge-text').addEventListener('input', updateMergeKind);
    $('merge-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (!state.detail) return;
      var m = mergeBody();
      resolve(state.detail.fork_id, m.body, 'edited merge');
    });

    loadHealth();
    var saved = null;
    try { saved = sessionStorage.getItem(TOKEN_KEY); } catch (e) { saved = null; }
    if (saved) connect(saved);
    else updateSelection();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
