// The sessions page: one tenant's sessions, why they pile up, and the means to end
// them, all from the session API. Every text from the database is set with
// textContent (never parsed as HTML); the page runs no inline script (the
// exporter's Content-Security-Policy forbids it) and fetches from its own origin
// only. A bearer token typed in is kept in sessionStorage: this tab, until it closes.
'use strict';

(() => {
  const TOKEN_KEY = 'session_exporter.token';
  const REFRESH_MS = 5000;
  const SQL_SHOWN = 120;
  const DEADLOCKS_SHOWN = 10;
  const OLDEST_SHOWN = 10;
  const tenant = new URLSearchParams(location.search).get('tenant') || '';
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
    $('target').textContent = known.kind + ' target ' + known.target;
    $('signin').hidden = true;
    $('signout').hidden = !(token() || memoryToken);
    $('content').hidden = false;
    $('actions').hidden = !state.allowKill;
    $('pick-all').hidden = !state.allowKill;
    notice('');
    await refresh();
  }

  // Refresh ------------------------------------------------------------------

  function stopTimer() {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
  }

  function schedule() {
    stopTimer();
    if (!state.paused) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function listQuery() {
    const query = new URLSearchParams();
    query.set('page', String(state.page));
    query.set('size', String(state.size));
    for (const [key, value] of Object.entries(state.query)) {
      if (value !== '' && value !== false) query.set(key, value === true ? 'true' : value);
    }
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
      const calls = [
        api('GET', base + '/sessions?' + listQuery()),
        api('GET', base + '/sessions/pileup'),
        state.deadlocks ? api('GET', base + '/deadlocks?page=1&size=' + DEADLOCKS_SHOWN) : Promise.resolve(null),
      ];
      const [list, pileup, deadlocks] = await Promise.allSettled(calls);
      const refused = [list, pileup, deadlocks].find((r) => r.status === 'rejected' && r.reason.status === 401);
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
        notice('');
      } else {
        notice('The list failed: ' + list.reason.message);
      }
      renderDeadlocks(deadlocks);
      $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
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
      if (state.allowKill) {
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
    const waitersOf = new Map();
    const waiting = new Set();
    for (const w of pileup.lock_waits) {
      if (!waitersOf.has(w.blocker)) waitersOf.set(w.blocker, []);
      waitersOf.get(w.blocker).push(w);
      waiting.add(w.waiter);
    }
    // Root blockers hold locks and wait for none; a cycle (a deadlock not yet
    // resolved) has none, and is drawn from its first blocker.
    const roots = [...waitersOf.keys()].filter((id) => !waiting.has(id));
    roots.sort((a, b) => waitersOf.get(b).length - waitersOf.get(a).length);
    const drawn = new Set();
    for (const root of roots.concat([...waitersOf.keys()])) {
      if (drawn.has(root)) continue;
      tree.appendChild(treeNode(root, null, sessions, waitersOf, drawn, 0, 'root'));
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

  function treeNode(id, wait, sessions, waitersOf, drawn, depth, className) {
    const li = el('li', null, className || '');
    li.dataset.id = String(id);
    const node = el('span', null, 'node');
    idLink(node, id).classList.add('id');
    const s = sessions.get(id);
    node.appendChild(el('span', s ? who(s) : '(session gone)'));
    if (s) node.appendChild(el('span', s.command + ' / ' + s.state, 'muted'));
    if (wait) node.appendChild(el('span', 'waits ' + seconds(wait.wait_seconds), 'waited'));
    const waiters = waitersOf.get(id) || [];
    if (waiters.length > 0) node.appendChild(el('span', waiters.length + (waiters.length === 1 ? ' waiter' : ' waiters'), 'muted'));
    if (s && s.info) node.appendChild(el('code', shortSql(s.info)));
    li.appendChild(node);
    drawn.add(id);
    if (waiters.length > 0 && depth < 16) {
      const ul = el('ul');
      for (const w of [...waiters].sort((a, b) => b.wait_seconds - a.wait_seconds)) {
        if (drawn.has(w.waiter)) {
          ul.appendChild(el('li', w.waiter + ' (shown above: a cycle)', 'muted'));
          continue;
        }
        ul.appendChild(treeNode(w.waiter, w, sessions, waitersOf, drawn, depth + 1));
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
    note.textContent = page.page.total_elements === 0
      ? 'No deadlock detected.'
      : page.page.total_elements + ' detected; the latest ' + page.contents.length + ' below.';
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
    $('detail-kill').hidden = !state.allowKill;
    $('detail-kill-query').hidden = !state.allowKill;
    if (!$('detail').open) $('detail').showModal();
    try {
      const session = await api('GET', base + '/sessions/' + encodeURIComponent(String(id)));
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
    if (!state.allowKill || ids.length === 0) return;
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

  // The sort shown is the sort asked for.
  state.query.sort = 'time,desc';
  start();
})();
