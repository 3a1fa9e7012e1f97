// The sessions page: one tenant's sessions, why they pile up, and the means to end
// them, all from the session API. Every text from the database is set with
// textContent (never parsed as HTML); the page runs no inline script (the
// exporter's Content-Security-Policy forbids it) and fetches from its own origin
// only. A bearer token typed in is kept in sessionStorage: this tab, until it closes.
// With the session history on, a timeline (drawn by uPlot, served beside this file)
// tops the page, and a moment picked on it (or given as `&at=`, as Grafana's data
// links do) shows the list and the blocking tree as they were recorded then.
'use strict';

(() => {
  const TOKEN_KEY = 'session_exporter.token';
  const REFRESH_MS = 5000;
  const SQL_SHOWN = 120;
  const DEADLOCKS_SHOWN = 10;
  const OLDEST_SHOWN = 10;
  const TOP_STATEMENTS_SHOWN = 5;
  const WAIT_CLASSES_SHOWN = 6;
  // How often a live page asks for the timeline again (it changes once a cycle).
  const TIMELINE_REFRESH_MS = 15000;
  const STORY_RUNS_SHOWN = 50;
  const PALETTE = ['#2f7d32', '#1f5fa8', '#b35900', '#7b3fa0', '#a11d48', '#00727a', '#6b6b6b'];
  const params = new URLSearchParams(location.search);
  const tenant = params.get('tenant') || '';
  const base = '/api/v1/tenant/' + encodeURIComponent(tenant);
  const $ = (id) => document.getElementById(id);

  const state = {
    page: 1,
    size: 50,
    query: {},
    paused: false,
    timer: null,
    busy: false,
    again: false,
    allowKill: false,
    deadlocks: true,
    rows: [],
    selected: new Set(),
    pileup: null,
    totalPages: 0,
    // The moment shown (Unix ms), or null for now.
    at: null,
    // Why a moment asked for is not shown, until another is picked.
    said: '',
    history: false,
    window: 3600,
    timeline: null,
    timelineAt: 0,
    chart: null,
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (_) {
      return '';
    }
  }

  function setToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // Storage refused (a private mode): the token lasts until the page reloads.
    }
    memoryToken = value;
  }
  let memoryToken = '';

  // One call of the session API: its data, or an ApiError with the server's message.
  async function api(method, path, body) {
    const headers = { Accept: 'application/json', 'X-Requested-With': 'session_exporter' };
    const bearer = token() || memoryToken;
    if (bearer) headers.Authorization = 'Bearer ' + bearer;
    const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, 'the exporter did not answer (' + err.message + ')');
    }
    let json = null;
    try {
      json = await response.json();
    } catch (_) {
      json = null;
    }
    if (response.ok && json && json.successful) return json.data;
    const message = json && json.error && json.error.message
      ? json.error.message
      : 'HTTP ' + response.status + ' ' + response.statusText;
    throw new ApiError(response.status, message);
  }

  // Elements -----------------------------------------------------------------

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function cell(row, text, className) {
    const td = el('td', text, className);
    row.appendChild(td);
    return td;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function seconds(value) {
    if (value === null || value === undefined || !isFinite(value)) return '';
    const s = Math.max(0, Number(value));
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' m ' + String(Math.floor(s % 60)).padStart(2, '0') + ' s';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + String(Math.floor((s % 3600) / 60)).padStart(2, '0') + ' m';
    return Math.floor(s / 86400) + ' d ' + Math.floor((s % 86400) / 3600) + ' h';
  }

  function shortSql(text) {
    const flat = String(text || '').replace(/\s+/g, ' ').trim();
    return flat.length > SQL_SHOWN ? flat.slice(0, SQL_SHOWN) + '…' : flat;
  }

  function who(session) {
    if (!session) return '';
    const parts = [session.user || '?'];
    if (session.host) parts.push('@' + session.host);
    if (session.db) parts.push(' ' + session.db);
    return parts.join('');
  }

  function notice(text) {
    const node = $('notice');
    node.textContent = text || '';
    node.hidden = !text;
  }

  // Sign-in ------------------------------------------------------------------

  function showSignIn(message) {
    stopTimer();
    $('content').hidden = true;
    $('signin').hidden = false;
    $('signout').hidden = true;
    $('signin-error').textContent = message || '';
    $('token').focus();
  }

  async function start() {
    if (!tenant) {
      notice('No tenant given: open this page from the landing page, which links every tenant (/sessions?tenant=NAME).');
      return;
    }
    $('title').textContent = 'Sessions of ' + tenant;
    document.title = 'Sessions of ' + tenant + ' · session_exporter';
    let info;
    try {
      // Asked first, answered 200 either way: no refused request before signing in.
      const credentials = await api('GET', '/api/v1/credentials');
      if (!credentials.accepted) {
        showSignIn(token() || memoryToken ? 'The token was refused: give the session API\'s bearer token.' : '');
        return;
      }
      info = await api('GET', '/api/v1/tenants');
    } catch (err) {
      if (err.status === 401) showSignIn('The credentials were refused: ' + err.message);
      else notice('The session API did not answer: ' + err.message);
      return;
    }
    const known = (info.tenants || []).find((t) => t.name === tenant);
    if (!known) {
      notice('The exporter serves no tenant "' + tenant + '" (it may not be found yet, or its target has no session API).');
      return;
    }
    state.allowKill = Boolean(known.kill);
    state.deadlocks = Boolean(known.deadlocks);
    state.history = Boolean(info.history);
    $('timeline-card').hidden = !state.history;
    const asked = params.get('at');
    if (asked) {
      const at = parseMoment(asked);
      if (!state.history) state.said = 'This exporter records no session history (docs/history.md): the page shows now, not ' + asked + '.';
      else if (at === null) state.said = '"' + asked + '" is not a moment (give RFC 3339, 2026-12-07T03:12:00Z, or Unix milliseconds): the page shows now.';
      else state.at = Math.min(Date.now(), at);
      // What is shown is what the address says.
      if (state.at === null) keepInUrl(null);
    }
    $('target').textContent = known.kind + ' target ' + known.target;
    $('signin').hidden = true;
    $('signout').hidden = !(token() || memoryToken);
    $('content').hidden = false;
    notice(state.said);
    showMoment();
    await refresh();
  }

  // Refresh ------------------------------------------------------------------

  function stopTimer() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  function schedule() {
    stopTimer();
    // A moment of the past does not change: nothing to refresh.
    if (!state.paused && state.at === null) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function listQuery() {
    const query = new URLSearchParams();
    query.set('page', String(state.page));
    query.set('size', String(state.size));
    for (const [key, value] of Object.entries(state.query)) {
      if (value !== '' && value !== false) query.set(key, value === true ? 'true' : value);
    }
    if (state.at !== null) query.set('at', String(state.at));
    return query.toString();
  }

  async function refresh() {
    stopTimer();
    // Asked for while one runs (a filter applied, a page turned): once it ends,
    // another runs with what is asked now, and only that one counts as drawn.
    if (state.busy) {
      state.again = true;
      return;
    }
    // A dialog open is a person reading or deciding: nothing moves under them.
    if ($('confirm').open || $('detail').open) {
      schedule();
      return;
    }
    state.busy = true;
    state.again = false;
    try {
      const at = state.at;
      const calls = [
        api('GET', base + '/sessions?' + listQuery()),
        api('GET', base + '/sessions/pileup' + (at === null ? '' : '?at=' + at)),
        state.deadlocks ? api('GET', base + '/deadlocks?page=1&size=' + DEADLOCKS_SHOWN) : Promise.resolve(null),
        timelineDue() ? api('GET', base + '/history?' + timelineQuery()) : Promise.resolve(null),
      ];
      const asked = state.timelineAsked;
      const [list, pileup, deadlocks, timeline] = await Promise.allSettled(calls);
      const refused = [list, pileup, deadlocks, timeline].find((r) => r.status === 'rejected' && r.reason.status === 401);
      if (refused) {
        showSignIn('The session API refused the credentials: ' + refused.reason.message);
        return;
      }
      state.pileup = pileup.status === 'fulfilled' ? pileup.value : null;
      renderPileup(pileup);
      if (list.status === 'fulfilled') {
        const pages = list.value.page.total_pages;
        if (state.page > 1 && state.page > pages) {
          // Sessions ended since: the last page there is.
          state.page = Math.max(1, pages);
          state.again = true;
          return;
        }
        renderList(list.value);
        notice(state.said);
      } else if (at !== null) {
        // Nothing of now may stay under the banner of a moment.
        renderList({ contents: [], page: { number: 1, total_pages: 0, total_elements: 0 } });
        notice(list.reason.status === 404
          ? 'Nothing was recorded at or before ' + clock(at) + ': ' + list.reason.message
          : 'The list at that moment failed: ' + list.reason.message);
      } else {
        notice('The list failed: ' + list.reason.message);
      }
      renderDeadlocks(deadlocks);
      if (timeline.status === 'rejected') {
        $('timeline-note').textContent = 'The timeline could not be read: ' + timeline.reason.message;
      } else if (timeline.value && asked === state.timelineAsked) {
        // Only the answer for the span asked last: a window or a moment picked
        // meanwhile asks again.
        state.timeline = timeline.value;
        state.timelineAt = Date.now();
        $('timeline-note').textContent = '';
        drawTimeline();
      }
      renderTopStatements();
      if (at !== null && list.status === 'fulfilled') showMoment(list.value.page.recorded_at);
      $('updated').textContent = at === null ? 'updated ' + new Date().toLocaleTimeString() : '';
      // How many refreshes of what is asked now have been drawn: what a test waits on.
      if (!state.again) {
        document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
      }
    } finally {
      state.busy = false;
      if (state.again) refresh();
      else if ($('signin').hidden) schedule();
    }
  }

  // The list -----------------------------------------------------------------

  function pileupIndex() {
    const ages = new Map();
    const waits = new Map();
    const pileup = state.pileup;
    if (pileup) {
      for (const t of pileup.transactions) ages.set(t.id, t.age_seconds);
      for (const w of pileup.lock_waits) {
        const seen = waits.get(w.waiter);
        if (!seen || w.wait_seconds > seen.wait_seconds) waits.set(w.waiter, w);
      }
    }
    return { ages, waits };
  }

  function renderList(list) {
    state.rows = list.contents;
    state.totalPages = list.page.total_pages;
    $('total').textContent = '(' + list.page.total_elements + ' matching)';
    const present = new Set(list.contents.map((s) => s.id));
    for (const id of [...state.selected]) if (!present.has(id)) state.selected.delete(id);
    const { ages, waits } = pileupIndex();
    const body = $('rows');
    clear(body);
    for (const session of list.contents) {
      const tr = el('tr', null, 'row');
      tr.tabIndex = 0;
      tr.dataset.id = String(session.id);
      const pick = cell(tr, null, 'pick');
      if (canKill()) {
        const box = el('input');
        box.type = 'checkbox';
        box.checked = state.selected.has(session.id);
        box.setAttribute('aria-label', 'select session ' + session.id);
        box.addEventListener('click', (event) => event.stopPropagation());
        box.addEventListener('change', () => {
          if (box.checked) state.selected.add(session.id);
          else state.selected.delete(session.id);
          renderSelection();
        });
        pick.appendChild(box);
      }
      cell(tr, session.id, 'num id');
      cell(tr, session.user);
      cell(tr, session.db);
      cell(tr, session.host);
      cell(tr, session.command + ' / ' + session.state);
      cell(tr, seconds(session.time), 'num time');
      cell(tr, ages.has(session.id) ? seconds(ages.get(session.id)) : '', 'num trx');
      const wait = waits.get(session.id);
      cell(tr, wait ? seconds(wait.wait_seconds) + ' on ' + wait.blocker : '', 'num lock');
      if (wait) tr.classList.add('waiting');
      const sql = cell(tr, shortSql(session.info), 'sql');
      sql.title = String(session.info || '').slice(0, 2000);
      tr.addEventListener('click', () => openDetail(session.id));
      tr.addEventListener('keydown', (event) => {
        if (event.key === 'Enter') openDetail(session.id);
      });
      body.appendChild(tr);
    }
    // When the first rows were drawn, from the navigation's start: what the bench
    // compares with the API call behind them.
    if (list.contents.length > 0 && !document.body.dataset.firstRowsMs) {
      document.body.dataset.firstRowsMs = String(performance.now());
    }
    if (list.contents.length === 0) {
      const tr = el('tr');
      const td = cell(tr, 'No session matches.', 'muted');
      td.colSpan = 10;
      body.appendChild(tr);
    }
    $('pageinfo').textContent = 'page ' + list.page.number + ' of ' + Math.max(1, list.page.total_pages);
    $('first').disabled = state.page <= 1;
    $('prev').disabled = state.page <= 1;
    $('next').disabled = state.page >= list.page.total_pages;
    renderSelection();
  }

  function renderSelection() {
    const n = state.selected.size;
    $('selected').textContent = n === 0 ? 'none selected' : n + ' selected';
    $('kill-selected').disabled = n === 0;
    $('kill-query-selected').disabled = n === 0;
    const all = $('pick-all');
    all.checked = state.rows.length > 0 && state.rows.every((s) => state.selected.has(s.id));
  }

  // Why they pile up ---------------------------------------------------------

  function renderPileup(result) {
    const tree = $('tree');
    const idle = $('idle');
    const oldest = $('oldest');
    const note = $('pileup-note');
    clear(tree);
    clear(idle);
    clear(oldest);
    note.textContent = '';
    if (result.status === 'rejected') {
      note.textContent = 'Lock waits and transactions could not be read: ' + result.reason.message;
      return;
    }
    const pileup = result.value;
    const sessions = new Map(pileup.sessions.map((s) => [s.id, s]));
    // The API places each waiter under one of its blockers (the one nearest a
    // session that waits for none) and names the others: InnoDB and PostgreSQL
    // count earlier waiters for the same lock as blockers too, which is no cycle.
    const graph = { sessions, placed: new Map(), below: new Map(), waits: new Map(), waitedOn: new Map() };
    for (const w of pileup.lock_waits) {
      graph.waits.set(w.waiter + ':' + w.blocker, w);
      // Each waiter once, though it may wait on a row and a metadata lock of one holder.
      if (!graph.waitedOn.has(w.blocker)) graph.waitedOn.set(w.blocker, new Set());
      graph.waitedOn.get(w.blocker).add(w.waiter);
    }
    const cycleStarts = [];
    for (const w of pileup.waiters || []) {
      graph.placed.set(w.id, w);
      if (w.under === null) {
        cycleStarts.push(w.id);
        continue;
      }
      if (!graph.below.has(w.under)) graph.below.set(w.under, []);
      graph.below.get(w.under).push(w);
    }
    // Roots hold locks and wait for none; a cycle of waits (a deadlock not yet
    // resolved) has none, and is drawn from the session the API names.
    const roots = [...graph.waitedOn.keys()].filter((id) => !graph.placed.has(id));
    roots.sort((a, b) => graph.waitedOn.get(b).size - graph.waitedOn.get(a).size);
    const drawn = new Set();
    for (const root of roots.concat(cycleStarts)) {
      if (drawn.has(root)) continue;
      tree.appendChild(treeNode(root, graph, drawn, 0, 'root'));
    }
    if (pileup.lock_waits.length === 0) tree.appendChild(el('li', 'No session waits for a lock.', 'muted'));
    const idleOnes = pileup.transactions.filter((t) => t.idle);
    for (const t of idleOnes) {
      const s = sessions.get(t.id);
      const tr = el('tr');
      idLink(cell(tr, null), t.id);
      cell(tr, s ? s.user : '');
      cell(tr, s ? s.host : '');
      cell(tr, seconds(t.age_seconds), 'num');
      cell(tr, s ? seconds(s.time) : '', 'num');
      idle.appendChild(tr);
    }
    if (idleOnes.length === 0) emptyRow(idle, 5, 'None.');
    for (const t of pileup.transactions.slice(0, OLDEST_SHOWN)) {
      const s = sessions.get(t.id);
      const tr = el('tr');
      idLink(cell(tr, null), t.id);
      cell(tr, s ? s.user : '');
      cell(tr, t.idle ? 'idle' : 'running');
      cell(tr, seconds(t.age_seconds), 'num');
      oldest.appendChild(tr);
    }
    if (pileup.transactions.length === 0) emptyRow(oldest, 4, 'No open transaction.');
    if (pileup.truncated) note.textContent = 'More waits or transactions exist than are shown: the longest waits and the oldest transactions are.';
  }

  function emptyRow(body, span, text) {
    const tr = el('tr');
    cell(tr, text, 'muted').colSpan = span;
    body.appendChild(tr);
  }

  function idLink(parent, id) {
    const button = el('button', id, 'link');
    button.type = 'button';
    button.setAttribute('aria-label', 'session ' + id);
    button.addEventListener('click', () => openDetail(id));
    parent.appendChild(button);
    return button;
  }

  // One session of the blocking tree, and the waiters placed under it.
  function treeNode(id, graph, drawn, depth, className) {
    const li = el('li', null, className || '');
    li.dataset.id = String(id);
    const node = el('span', null, 'node');
    idLink(node, id).classList.add('id');
    const s = graph.sessions.get(id);
    node.appendChild(el('span', s ? who(s) : '(session gone)'));
    if (s) node.appendChild(el('span', s.command + ' / ' + s.state, 'muted'));
    const placed = graph.placed.get(id);
    const edge = placed && placed.under !== null ? graph.waits.get(id + ':' + placed.under) : null;
    if (edge) {
      const what = edge.lock === 'metadata' && edge.object
        ? ' for the metadata lock of ' + edge.object.schema + '.' + edge.object.name
        : '';
      node.appendChild(el('span', 'waits ' + seconds(edge.wait_seconds) + what, 'waited'));
    }
    if (placed && placed.also_waits_on.length > 0) {
      node.appendChild(el('span', 'also waits on ' + placed.also_waits_on.join(', '), 'muted'));
    }
    if (placed && placed.in_cycle) {
      node.appendChild(el('span', 'in a cycle of waits: a deadlock not yet resolved', 'waited'));
    }
    const waitedOn = graph.waitedOn.has(id) ? graph.waitedOn.get(id).size : 0;
    if (waitedOn > 0) node.appendChild(el('span', waitedOn + (waitedOn === 1 ? ' waiter' : ' waiters'), 'muted'));
    if (s && s.info) node.appendChild(el('code', shortSql(s.info)));
    li.appendChild(node);
    drawn.add(id);
    const below = (graph.below.get(id) || []).filter((w) => !drawn.has(w.id));
    if (below.length > 0 && depth < 16) {
      const ul = el('ul');
      const wait = (w) => (graph.waits.get(w.id + ':' + id) || { wait_seconds: 0 }).wait_seconds;
      for (const w of below.sort((a, b) => wait(b) - wait(a))) {
        ul.appendChild(treeNode(w.id, graph, drawn, depth + 1));
      }
      li.appendChild(ul);
    }
    return li;
  }

  // Deadlocks ----------------------------------------------------------------

  function renderDeadlocks(result) {
    const list = $('deadlocks');
    const note = $('deadlocks-note');
    clear(list);
    if (!state.deadlocks) {
      note.textContent = 'This engine keeps no history of its deadlocks; dbsession_deadlocks_total counts them.';
      return;
    }
    if (!result || result.status === 'rejected') {
      note.textContent = result ? 'The deadlock history could not be read: ' + result.reason.message : '';
      return;
    }
    const page = result.value;
    note.textContent = (state.at === null ? '' : 'Now, not at the moment shown: ') + (page.page.total_elements === 0
      ? 'No deadlock detected.'
      : page.page.total_elements + ' detected; the latest ' + page.contents.length + ' below.');
    for (const event of page.contents) {
      const li = el('li');
      li.appendChild(el('strong', event.report_time));
      li.appendChild(el('span', ' · ' + event.size + ' transactions in a cycle · event ' + event.event_id, 'muted'));
      const nodes = [...event.nodes].sort((a, b) => a.idx - b.idx);
      const cycle = nodes.map((n) => 'T' + n.idx).concat(nodes.length ? ['T' + nodes[0].idx] : []);
      li.appendChild(el('div', 'waits for: ' + cycle.join(' → ')));
      const ul = el('ul');
      for (const n of nodes) {
        const item = el('li');
        item.appendChild(el('span', 'T' + n.idx + (n.roll_backed ? ' (rolled back)' : '') + ' · ' + n.svr_ip + ':' + n.svr_port + ' · ' + n.resource + ' '));
        item.appendChild(el('code', shortSql(n.sql)));
        ul.appendChild(item);
      }
      li.appendChild(ul);
      list.appendChild(li);
    }
  }

  // The moment and the timeline ---------------------------------------------

  // Sessions of the past cannot be ended: the actions are offered for now only.
  function canKill() {
    return state.allowKill && state.at === null;
  }

  // A moment as a URL gives it: Unix milliseconds (Grafana's ${__value.time}) or
  // RFC 3339; null for anything else.
  function parseMoment(text) {
    if (/^\d{1,15}$/.test(text)) return Number(text);
    const ms = Date.parse(text);
    return isFinite(ms) ? ms : null;
  }

  function clock(ms) {
    const d = new Date(ms);
    return d.toLocaleDateString() + ' ' + d.toLocaleTimeString();
  }

  // Says plainly whether the page shows now or a moment of the past, and offers
  // the actions that fit.
  function showMoment(recordedAt) {
    const past = state.at !== null;
    $('moment').hidden = !past;
    if (past) {
      const recorded = recordedAt ? Date.parse(recordedAt) : NaN;
      $('moment-text').textContent = 'History: the sessions as recorded at '
        + (isFinite(recorded) ? clock(recorded) : clock(state.at))
        + ' (the last cycle at or before ' + clock(state.at) + '), not now.';
    }
    $('actions').hidden = !canKill();
    $('pick-all').hidden = !canKill();
    $('pause').disabled = past;
    document.body.dataset.moment = past ? String(state.at) : '';
  }

  // Shows `at` (Unix ms), or now when null, and keeps it in the URL to share.
  function pick(at) {
    state.at = at;
    state.said = '';
    state.page = 1;
    state.selected.clear();
    keepInUrl(at);
    // The timeline is read again around the moment.
    askTimeline();
    showMoment();
    refresh();
  }

  function keepInUrl(at) {
    const url = new URL(location.href);
    if (at === null) url.searchParams.delete('at');
    else url.searchParams.set('at', String(at));
    history.replaceState(null, '', url.pathname + url.search);
  }

  // The timeline's span, in Unix ms: the window up to now, or around the moment
  // (three quarters of it before, a quarter after, never past now).
  function span() {
    const now = Date.now();
    const windowMs = state.window * 1000;
    const to = state.at === null ? now : Math.min(now, state.at + windowMs / 4);
    return [to - windowMs, to];
  }

  // Asks for the timeline again (a new window or moment): answers to earlier
  // asks are then ignored.
  function askTimeline() {
    state.timelineAt = 0;
    state.timelineAsked = (state.timelineAsked || 0) + 1;
  }

  function timelineDue() {
    // Around a moment once; live, again every TIMELINE_REFRESH_MS.
    return state.history && (state.timelineAt === 0
      || (state.at === null && Date.now() - state.timelineAt >= TIMELINE_REFRESH_MS));
  }

  function timelineQuery() {
    const [from, to] = span();
    return 'from=' + Math.floor(from) + '&to=' + Math.ceil(to);
  }

  // The series of a timeline: the wait classes with the most active sessions
  // (the rest summed as "other"), each stacked on the ones before it.
  function series(timeline) {
    const totals = new Map();
    for (const step of timeline.steps) {
      for (const w of step.by_wait_class) totals.set(w.wait_class, (totals.get(w.wait_class) || 0) + w.avg);
    }
    const ranked = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a));
    const shown = ranked.length > WAIT_CLASSES_SHOWN ? ranked.slice(0, WAIT_CLASSES_SHOWN - 1) : ranked;
    const names = shown.concat(ranked.length > shown.length ? ['other'] : []);
    const x = [];
    const own = names.map(() => []);
    const waiting = [];
    const idle = [];
    for (const step of timeline.steps) {
      x.push(Date.parse(step.at) / 1000);
      const seen = step.cycles > 0;
      const byClass = new Map(step.by_wait_class.map((w) => [w.wait_class, w.avg]));
      names.forEach((name, i) => {
        let value = byClass.get(name) || 0;
        if (name === 'other' && !shown.includes('other')) {
          value = step.by_wait_class.filter((w) => !shown.includes(w.wait_class)).reduce((sum, w) => sum + w.avg, 0);
        }
        own[i].push(seen ? value : null);
      });
      waiting.push(seen ? step.lock_waiting.avg : null);
      idle.push(seen ? step.idle_in_transaction.avg : null);
    }
    const stacked = [];
    own.forEach((values, i) => {
      stacked.push(values.map((v, j) => (v === null ? null : v + (i > 0 ? stacked[i - 1][j] : 0))));
    });
    return { x, names, own, stacked, waiting, idle };
  }

  // A press on the chart (a click or a drag under way): a new timeline waits for
  // its release, so a refresh does not take the chart from under the pointer.
  let pressed = false;
  let drawLater = false;
  window.addEventListener('pointerup', () => {
    pressed = false;
    if (drawLater) {
      drawLater = false;
      drawTimeline();
    }
  });

  function drawTimeline() {
    if (pressed) {
      drawLater = true;
      return;
    }
    const timeline = state.timeline;
    const box = $('chart');
    if (!timeline || typeof uPlot === 'undefined') {
      if (typeof uPlot === 'undefined') $('timeline-note').textContent = 'The chart could not be loaded.';
      return;
    }
    const s = series(timeline);
    const [from, to] = [Date.parse(timeline.from) / 1000, Date.parse(timeline.to) / 1000];
    // Drawn from the top of the stack down, so each lower class covers its share.
    const order = s.names.map((_, i) => i).reverse();
    const data = [s.x].concat(order.map((i) => s.stacked[i]), [s.waiting, s.idle]);
    const uSeries = [{}].concat(
      order.map((i) => ({
        label: s.names[i],
        stroke: PALETTE[i % PALETTE.length],
        fill: PALETTE[i % PALETTE.length] + 'cc',
        width: 1,
        points: { show: false },
      })),
      [
        { label: 'lock waiters', stroke: '#c00000', width: 2, dash: [6, 3], points: { show: false } },
        { label: 'idle in a transaction', stroke: '#111111', width: 2, dash: [2, 3], points: { show: false } },
      ],
    );
    const marker = {
      hooks: {
        draw: [(u) => {
          if (state.at === null) return;
          const x = u.valToPos(state.at / 1000, 'x', true);
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = '#b86e00';
          ctx.lineWidth = 2 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }],
        setCursor: [(u) => legendValues(u.cursor.idx)],
        // A drag across the chart: its busiest moment.
        setSelect: [(u) => {
          if (u.select.width <= 3) return;
          const a = u.posToVal(u.select.left, 'x');
          const b = u.posToVal(u.select.left + u.select.width, 'x');
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
          pick(busiest(a * 1000, b * 1000));
        }],
      },
    };
    const options = {
      width: Math.max(300, box.clientWidth),
      height: 220,
      legend: { show: false },
      scales: { x: { time: true, range: () => [from, to] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{}, { label: 'sessions', size: 50 }],
      cursor: { drag: { x: true, y: false, setScale: false }, points: { show: false } },
      series: uSeries,
      plugins: [marker],
    };
    if (state.chart) state.chart.destroy();
    clear(box);
    state.chart = new uPlot(options, data, box);
    state.chartSeries = { s, order };
    box.dataset.from = String(from * 1000);
    box.dataset.to = String(to * 1000);
    box.dataset.steps = String(s.x.length);
    box.dataset.classes = s.names.join(',');
    const over = state.chart.over;
    let downAt = null;
    over.addEventListener('pointerdown', (event) => {
      downAt = event.clientX;
      pressed = true;
    });
    // A click (not the end of a drag): the moment under the pointer.
    over.addEventListener('pointerup', (event) => {
      const chart = state.chart;
      if (downAt === null || !chart) return;
      const dragged = Math.abs(event.clientX - downAt) > 3;
      downAt = null;
      if (dragged) return;
      const t = chart.posToVal(event.clientX - over.getBoundingClientRect().left, 'x');
      pick(Math.min(Date.now(), Math.round(t * 1000)));
    });
    legendValues(null);
    const peak = Math.max(0, ...timeline.steps.map((step) => step.active.peak));
    box.setAttribute('aria-label', 'Active sessions by wait class, lock waiters and sessions idle in a transaction, '
      + clock(from * 1000) + ' to ' + clock(to * 1000) + '; at most ' + peak + ' active at once.');
    document.body.dataset.timelines = String(Number(document.body.dataset.timelines || 0) + 1);
  }

  // Within [a, b] (Unix ms), the end of the step with the most active sessions
  // (its peak), never past now; the span's end when it holds no recorded step.
  function busiest(a, b) {
    const timeline = state.timeline;
    const stepMs = timeline.step_seconds * 1000;
    let best = null;
    for (const step of timeline.steps) {
      const at = Date.parse(step.at);
      if (step.cycles === 0 || at + stepMs < a || at > b) continue;
      if (!best || step.active.peak > best.active.peak) best = step;
    }
    const end = best ? Date.parse(best.at) + stepMs - 1 : b;
    return Math.min(Date.now(), Math.round(end));
  }

  // The legend: each series with its own value at the cursor (none: the latest).
  function legendValues(idx) {
    const list = $('legend');
    const drawn = state.chartSeries;
    if (!drawn) return;
    const { s } = drawn;
    const last = s.x.length - 1;
    const i = idx === null || idx === undefined ? last : idx;
    const value = (values) => (i >= 0 && values[i] !== null && values[i] !== undefined ? values[i].toFixed(1) : '–');
    const items = s.names.map((name, k) => [name, PALETTE[k % PALETTE.length], value(s.own[k]), false])
      .concat([['lock waiters', '#c00000', value(s.waiting), true], ['idle in a transaction', '#111111', value(s.idle), true]]);
    clear(list);
    for (const [name, color, v, line] of items) {
      const li = el('li');
      const swatch = el('span', null, line ? 'swatch line' : 'swatch');
      swatch.style.backgroundColor = color;
      li.appendChild(swatch);
      li.appendChild(el('span', name));
      li.appendChild(el('span', v, 'value'));
      list.appendChild(li);
    }
  }

  // The top statements by active samples: at the moment's step, or over the window.
  function renderTopStatements() {
    const body = $('top-statements');
    const timeline = state.timeline;
    if (!timeline) return;
    clear(body);
    const stepMs = timeline.step_seconds * 1000;
    const steps = state.at === null
      ? timeline.steps
      : timeline.steps.filter((step) => Date.parse(step.at) <= state.at && state.at < Date.parse(step.at) + stepMs);
    const samples = new Map();
    for (const step of steps) {
      for (const t of step.top_statements) samples.set(t.sql_id, (samples.get(t.sql_id) || 0) + t.active_samples);
    }
    const total = [...samples.values()].reduce((a, b) => a + b, 0);
    const top = [...samples.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_STATEMENTS_SHOWN);
    $('top-when').textContent = state.at === null
      ? '(the window shown)'
      : '(the step of ' + clock(state.at) + ')';
    for (const [sqlId, n] of top) {
      const tr = el('tr');
      if (sqlId) cell(tr, sqlId, 'sql');
      else cell(tr, '(no statement id)', 'muted');
      cell(tr, n, 'num');
      cell(tr, total > 0 ? Math.round((100 * n) / total) + ' %' : '', 'num');
      body.appendChild(tr);
    }
    if (top.length === 0) emptyRow(body, 3, 'No statement was active.');
  }

  // A session's story: the cycles it was seen in, runs of the same state, wait and
  // statement drawn as one row, the latest last.
  async function showStory(id) {
    const now = Date.now();
    const to = state.at === null ? now : Math.min(now, state.at + 15 * 60000);
    const from = to - 3600000;
    let story;
    try {
      story = await api('GET', base + '/sessions/' + encodeURIComponent(String(id)) + '/history?from=' + from + '&to=' + to);
    } catch (err) {
      if (detailId === id) {
        $('detail-history').hidden = false;
        $('detail-history-when').textContent = '(could not be read: ' + err.message + ')';
      }
      return;
    }
    if (detailId !== id) return;
    const runs = [];
    for (const sample of story.samples) {
      const key = [sample.command, sample.state, sample.wait_event, sample.blocked_by, sample.sql_id, sample.sql_text].join('\u0000');
      const last = runs[runs.length - 1];
      if (last && last.key === key) {
        last.to = sample.at;
        last.cycles += 1;
        last.sample = sample;
      } else {
        runs.push({ key, from: sample.at, to: sample.at, cycles: 1, sample });
      }
    }
    const body = $('detail-story');
    clear(body);
    for (const run of runs.slice(-STORY_RUNS_SHOWN)) {
      const s = run.sample;
      const tr = el('tr');
      cell(tr, new Date(Date.parse(run.from)).toLocaleTimeString());
      cell(tr, new Date(Date.parse(run.to)).toLocaleTimeString());
      cell(tr, run.cycles, 'num');
      cell(tr, s.command + ' / ' + s.state);
      cell(tr, s.wait_event ? s.wait_class + ': ' + s.wait_event : '');
      cell(tr, s.lock_wait === null ? '' : seconds(s.lock_wait) + (s.blocked_by === null ? '' : ' on ' + s.blocked_by));
      const sql = cell(tr, shortSql(s.sql_text || s.sql_id), 'sql');
      sql.title = String(s.sql_text || '').slice(0, 2000);
      body.appendChild(tr);
    }
    if (runs.length === 0) emptyRow(body, 7, 'Not recorded in this hour (only sessions active, in a transaction, waiting or blocking are).');
    $('detail-history-when').textContent = '(' + clock(from) + ' to ' + clock(to)
      + (story.truncated ? ', its first cycles' : '') + (runs.length > STORY_RUNS_SHOWN ? ', the latest ' + STORY_RUNS_SHOWN + ' changes' : '') + ')';
    $('detail-history').hidden = false;
  }

  // Detail -------------------------------------------------------------------

  let detailId = null;
  // The session the detail shows, whose start a kill from the detail sends.
  let detailSession = null;

  async function openDetail(id) {
    detailId = id;
    detailSession = null;
    $('detail-title').textContent = 'Session ' + id;
    $('detail-sql').textContent = '';
    clear($('detail-fields'));
    $('detail-error').textContent = '';
    $('detail-kill').hidden = !canKill();
    $('detail-kill-query').hidden = !canKill();
    clear($('detail-story'));
    $('detail-history').hidden = true;
    if (!$('detail').open) $('detail').showModal();
    if (state.history) showStory(id);
    try {
      // At a moment of the past, the session as it was recorded (never as it is
      // now); now, as it is.
      let session;
      if (state.at === null) {
        session = await api('GET', base + '/sessions/' + encodeURIComponent(String(id)));
      } else {
        session = state.rows.find((s) => s.id === id)
          || (state.pileup ? state.pileup.sessions.find((s) => s.id === id) : null);
        if (!session) {
          $('detail-error').textContent = 'Session ' + id + ' is not among the sessions recorded at that moment on this page; its history is below.';
          return;
        }
      }
      if (detailId !== id) return;
      detailSession = session;
      $('detail-sql').textContent = session.info || '(no statement)';
      const fields = $('detail-fields');
      const { ages, waits } = pileupIndex();
      const extra = [];
      if (ages.has(id)) extra.push(['transaction age', seconds(ages.get(id))]);
      if (waits.has(id)) extra.push(['lock wait', seconds(waits.get(id).wait_seconds) + ' on session ' + waits.get(id).blocker]);
      for (const [key, value] of Object.entries(session).filter(([k]) => k !== 'info').concat(extra)) {
        fields.appendChild(el('dt', key));
        fields.appendChild(el('dd', value === '' ? '—' : value));
      }
    } catch (err) {
      if (detailId === id) $('detail-error').textContent = err.message;
    }
  }

  // Ending sessions ----------------------------------------------------------

  let pending = null;

  function askToEnd(ids, queryOnly) {
    if (!canKill() || ids.length === 0) return;
    const known = new Map(state.rows.map((s) => [s.id, s]));
    if (state.pileup) for (const s of state.pileup.sessions) if (!known.has(s.id)) known.set(s.id, s);
    if (detailSession && !known.has(detailSession.id)) known.set(detailSession.id, detailSession);
    // What identifies each session's life where the engine records it (PostgreSQL's
    // backend_start): the server ends nothing if an id now names another session.
    const started = {};
    for (const id of ids) {
      const s = known.get(id);
      if (s && s.started) started[String(id)] = s.started;
    }
    pending = { ids: [...ids], queryOnly, started };
    $('confirm-title').textContent = queryOnly ? 'End the running statements?' : 'End the sessions?';
    $('confirm-what').textContent = queryOnly
      ? 'The statement each of these ' + ids.length + ' sessions runs is cancelled (KILL QUERY); the sessions stay.'
      : 'These ' + ids.length + ' sessions are ended (KILL): their open transactions roll back.';
    const list = $('confirm-list');
    clear(list);
    for (const id of ids) {
      const s = known.get(id);
      list.appendChild(el('li', 'session ' + id + (s ? ' · ' + who(s) + ' · ' + s.command + ' · ' + shortSql(s.info) : '')));
    }
    $('confirm-result').textContent = '';
    $('confirm-result').className = '';
    $('confirm-yes').disabled = false;
    $('confirm-yes').hidden = false;
    $('confirm-no').textContent = 'Cancel';
    if ($('detail').open) $('detail').close();
    $('confirm').showModal();
    $('confirm-no').focus();
  }

  async function end() {
    if (!pending) return;
    const { ids, queryOnly, started } = pending;
    $('confirm-yes').disabled = true;
    const result = $('confirm-result');
    const body = { session_ids: ids };
    if (Object.keys(started).length > 0) body.started = started;
    try {
      await api('DELETE', base + (queryOnly ? '/sessions/queries' : '/sessions'), body);
      result.textContent = (queryOnly ? 'Statements cancelled: ' : 'Sessions ended: ') + ids.join(', ');
      result.className = 'ok';
      for (const id of ids) state.selected.delete(id);
    } catch (err) {
      result.textContent = 'Refused: ' + err.message;
      result.className = 'error';
    }
    pending = null;
    $('confirm-yes').hidden = true;
    $('confirm-no').textContent = 'Close';
  }

  // Wiring -------------------------------------------------------------------

  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    setToken($('token').value.trim());
    $('token').value = '';
    start();
  });
  $('signout').addEventListener('click', () => {
    setToken('');
    showSignIn('Signed out.');
  });
  $('pause').addEventListener('click', () => {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    $('pause').setAttribute('aria-pressed', String(state.paused));
    if (state.paused) stopTimer();
    else refresh();
  });
  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = new FormData($('filters'));
    state.query = {
      user: (form.get('user') || '').trim(),
      db: (form.get('db') || '').trim(),
      host: (form.get('host') || '').trim(),
      state: (form.get('state') || '').trim(),
      min_time: (form.get('min_time') || '').trim(),
      active_only: form.get('active_only') === 'on',
      sort: form.get('sort') || 'time,desc',
    };
    state.size = Number(form.get('size')) || 50;
    state.page = 1;
    refresh();
  });
  $('first').addEventListener('click', () => { state.page = 1; refresh(); });
  $('prev').addEventListener('click', () => { state.page = Math.max(1, state.page - 1); refresh(); });
  $('next').addEventListener('click', () => { state.page += 1; refresh(); });
  $('pick-all').addEventListener('change', () => {
    const on = $('pick-all').checked;
    for (const s of state.rows) {
      if (on) state.selected.add(s.id);
      else state.selected.delete(s.id);
    }
    for (const box of $('rows').querySelectorAll('input[type=checkbox]')) box.checked = on;
    renderSelection();
  });
  $('kill-selected').addEventListener('click', () => askToEnd([...state.selected], false));
  $('kill-query-selected').addEventListener('click', () => askToEnd([...state.selected], true));
  $('detail-kill').addEventListener('click', () => askToEnd([detailId], false));
  $('detail-kill-query').addEventListener('click', () => askToEnd([detailId], true));
  $('detail-close').addEventListener('click', () => $('detail').close());
  $('confirm-yes').addEventListener('click', end);
  $('confirm-no').addEventListener('click', () => $('confirm').close());
  $('confirm').addEventListener('close', () => {
    pending = null;
    refresh();
  });
  $('detail').addEventListener('close', () => { detailId = null; });
  $('live').addEventListener('click', () => pick(null));
  // The keyboard's way to a moment: a local date and time.
  $('at-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const at = new Date($('at-input').value).getTime();
    if (isFinite(at)) pick(Math.min(Date.now(), at));
  });
  for (const button of $('windows').querySelectorAll('button')) {
    button.addEventListener('click', () => {
      state.window = Number(button.dataset.window);
      for (const b of $('windows').querySelectorAll('button')) b.setAttribute('aria-pressed', String(b === button));
      askTimeline();
      refresh();
    });
  }
  let resizing = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      if (state.chart) state.chart.setSize({ width: Math.max(300, $('chart').clientWidth), height: 220 });
    }, 150);
  });

  // The sort shown is the sort asked for.
  state.query.sort = 'time,desc';
  start();
})();
