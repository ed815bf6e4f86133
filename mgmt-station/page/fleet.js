// The fleet page (docs/FLEET-PAGE.md): hand-written ES module, no build step. Reads the station daemon's
// /v1/fleet* endpoints, follows its server-sent events, and acts on a NIC through the daemon's API with the
// daemon's credential (Authorization: Bearer TOKEN), which the user gives it (pasted, or in the address as
// #token=TOKEN: read once, kept in this tab's sessionStorage, taken out of the address bar).
const $ = (id) => document.getElementById(id);
const PAGE = 100;
const HOSTS = { s0: 'S0 working', s3: 'S3 sleeping', s5: 'S5 off', unknown: 'unknown', owned_elsewhere: 'owned elsewhere', other: 'other' };
const ACTIONS = ['state', 'ping', 'refresh', 'power-cycle', 'reset', 'power-up', 'power-down'];

const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const num = (n) => Number(n).toLocaleString('en');
function age(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString('en-GB') : '—');

// --- the credential -------------------------------------------------------------------------------
const cred = {
  get: () => sessionStorage.getItem('lifeline-token'),
  set(t) {
    if (t) sessionStorage.setItem('lifeline-token', t);
    else sessionStorage.removeItem('lifeline-token');
    showCred();
  },
};
function showCred() {
  const t = cred.get();
  $('cred-state').textContent = t ? 'can act' : 'view only';
  $('cred-state').className = t ? 'act' : '';
  $('cred-token').hidden = !!t;
  $('cred-set').hidden = !!t;
  $('cred-clear').hidden = !t;
}
{
  const m = /(?:^#|&)token=([0-9a-fA-F]{64})/.exec(location.hash);
  if (m) {
    cred.set(m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
}
$('cred-set').onclick = () => {
  const t = $('cred-token').value.trim();
  $('cred-token').value = '';
  if (t) cred.set(t);
};
$('cred-token').onkeydown = (e) => e.key === 'Enter' && $('cred-set').click();
$('cred-clear').onclick = () => cred.set(null);
showCred();

// --- reads ------------------------------------------------------------------------------------------
async function getJson(path) {
  const r = await fetch(path, { headers: { accept: 'application/json' } });
  const j = await r.json();
  if (!r.ok || j.ok === false) throw new Error(j.error ? `${j.error.code}: ${j.error.message}` : `HTTP ${r.status}`);
  return j;
}

// --- the glance ---------------------------------------------------------------------------------------
function bars(el, counts, filter, labels = {}) {
  const max = Math.max(1, ...Object.values(counts));
  el.innerHTML = Object.entries(counts)
    .map(([k, v]) => `<div class="row"${filter && v ? ` data-filter="${esc(filter)}" data-value="${esc(k)}"` : ''}><span>${esc(labels[k] ?? k)}</span><span class="bar" style="width:${(100 * v) / max}%"></span><span class="num">${num(v)}</span></div>`)
    .join('');
}
function kv(el, obj) {
  const rows = Object.entries(obj);
  el.innerHTML = rows.length ? rows.map(([k, v]) => `<div class="row"><span>${esc(k)}</span><span class="num">${num(v)}</span></div>`).join('') : '<span class="sub">none</span>';
}
function alertItem(a, fresh) {
  return `<li class="${fresh ? 'new' : ''}" data-alert="${esc(a.id)}"><span class="sub">${time(a.receivedAt)}</span> <a href="#nic=${encodeURIComponent(a.nic)}">${esc(a.nic)}</a> <b class="sev-${esc(a.severity)}">${esc(a.event)}</b> ${esc(a.text ?? '')} <span class="sub">(${esc(a.severity)}, by ${esc(a.station)})</span></li>`;
}
let glance = null;
let chart = null;
function renderGlance(g) {
  glance = g;
  $('station').textContent = `station ${g.station}`;
  $('g-nics').textContent = num(g.nics);
  $('g-failing').textContent = g.failing ? `${num(g.failing)} failing their polls` : 'all polls answered';
  bars($('g-hosts'), g.hosts, 'host', HOSTS);
  bars($('g-owners'), g.owners, 'owner');
  bars($('g-age'), g.saAge);
  bars($('g-gen'), g.saGeneration);
  kv($('g-minute'), { commands: g.lastMinute.commands, 'commands failed': g.lastMinute.failed, 'polls failed': g.lastMinute.pollsFailed, alerts: g.lastMinute.alerts });
  kv($('g-drops'), g.drops);
  const shown = new Set([...$('g-alerts').children].map((li) => li.dataset.alert));
  $('g-alerts').innerHTML = g.alerts.length ? g.alerts.map((a) => alertItem(a, false)).join('') : '<li class="sub">no alerts stored</li>';
  for (const li of $('g-alerts').children) if (li.dataset.alert && !shown.has(li.dataset.alert) && shown.size) li.classList.add('new');
  const owners = $('f-owner');
  const have = new Set([...owners.options].map((o) => o.value));
  for (const o of Object.keys(g.owners)) if (!have.has(o)) owners.add(new Option(o === 'none' ? 'no live lease' : o, o));
  drawChart(g.activity);
}
async function drawChart(a) {
  const data = [a.t, a.ok, a.failed, a.pollsFailed, a.alerts];
  if (chart) return chart.setData(data);
  const { default: uPlot } = await import('/vendor/uPlot.esm.js');
  if (chart) return chart.setData(data);
  const el = $('g-chart');
  chart = new uPlot({
    width: Math.max(300, el.clientWidth), height: 150, legend: { show: false },
    scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
    series: [{}, { label: 'commands ok', stroke: '#1f8a4c' }, { label: 'commands failed', stroke: '#c0352b' }, { label: 'polls failed', stroke: '#b26a00' }, { label: 'alerts', stroke: '#2a62c9' }],
  }, data, el);
}
$('glance').onclick = (e) => {
  const row = e.target.closest('[data-filter]');
  if (!row) return;
  $(row.dataset.filter === 'host' ? 'f-host' : 'f-owner').value = row.dataset.value;
  offset = 0;
  loadList();
};

// --- the NIC list (server-side filter and paging: 100 rows whatever the fleet's size) -------------------
for (const [k, v] of Object.entries(HOSTS)) $('f-host').add(new Option(v, k));
let offset = 0;
let listSeq = 0;
function listQuery() {
  const p = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
  if ($('f-q').value.trim()) p.set('q', $('f-q').value.trim());
  if ($('f-host').value) p.set('host', $('f-host').value);
  if ($('f-owner').value) p.set('owner', $('f-owner').value);
  if ($('f-problem').checked) p.set('problem', '1');
  return p;
}
let firstList = true;
async function loadList() {
  const seq = ++listSeq;
  const r = await getJson(`/v1/fleet/nics?${listQuery()}`);
  if (seq !== listSeq) return; // a newer query went out meanwhile
  $('nics').tBodies[0].innerHTML = r.rows.map((n) => `<tr data-nic="${esc(n.id)}"><td><a href="#nic=${encodeURIComponent(n.id)}">${esc(n.id)}</a></td><td>${esc(n.address)}</td><td class="h-${esc(n.hostGroup)}">${esc(n.host)}</td><td>${esc(n.owner ?? '—')}</td><td class="num">${n.epoch}</td><td class="num">${n.generation ?? '—'}</td><td class="num">${age(n.saAgeMs)}</td><td class="num">${n.refreshes}</td><td class="num">${n.dropped}</td><td class="err" title="${esc(n.lastError ?? '')}">${esc(n.lastError ?? '')}</td></tr>`).join('');
  const end = Math.min(r.total, r.offset + r.rows.length);
  $('f-count').textContent = r.total ? `${num(r.offset + 1)}–${num(end)} of ${num(r.total)}` : 'no NIC matches';
  $('p-prev').disabled = r.offset === 0;
  $('p-next').disabled = end >= r.total;
  if (firstList) {
    firstList = false;
    performance.mark('lifeline-list-rendered');
  }
}
let typing = null;
$('f-q').oninput = () => {
  clearTimeout(typing);
  typing = setTimeout(() => ((offset = 0), loadList()), 150);
};
for (const id of ['f-host', 'f-owner', 'f-problem']) $(id).onchange = () => ((offset = 0), loadList());
$('p-prev').onclick = () => ((offset = Math.max(0, offset - PAGE)), loadList());
$('p-next').onclick = () => ((offset += PAGE), loadList());
$('nics').tBodies[0].onclick = (e) => {
  const tr = e.target.closest('tr[data-nic]');
  if (tr && !e.target.closest('a')) location.hash = `nic=${encodeURIComponent(tr.dataset.nic)}`;
};

// --- a NIC's page ------------------------------------------------------------------------------------------
let nicShown = null;
/** The last action's result on this NIC's page: kept across the page's re-renders (every glance re-reads the NIC). */
let action = { cls: '', text: '' };
function showAction(cls, text) {
  action = { cls, text };
  const el = $('action-result');
  if (el) {
    el.className = cls;
    el.textContent = text;
  }
}
function table(head, rows) {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.length ? rows.join('') : `<tr><td colspan="${head.length}" class="sub">none</td></tr>`}</tbody></table>`;
}
async function loadNic(id) {
  const n = await getJson(`/v1/fleet/nics/${encodeURIComponent(id)}`);
  if (nicShown !== id) return;
  const l = n.lease;
  $('nic-view').innerHTML = `
    <div class="nic-head"><h2 id="nic-id">${esc(n.id)}</h2><span class="h-${esc(n.hostGroup)}" id="nic-host">host ${esc(n.host)}</span><a href="#">‹ back to the fleet</a></div>
    <div class="facts">
      <div><span>address</span>${esc(n.address)} (clear ${n.ports.clear}, secure ${n.ports.secure}, IKE ${n.ports.ike})</div>
      <div><span>enrolled</span>${n.enrolled ? time(n.enrolledAt) : 'no (manual SA)'}</div>
      <div><span>owner</span>${l ? `${esc(l.owner ?? 'none')} (epoch ${l.epoch}${l.live ? '' : ', lapsed'})` : 'no lease'}</div>
      <div><span>refreshes</span>${n.refreshes}, last ${time(n.lastRefresh)}${n.refreshFailures ? `, ${n.refreshFailures} failed in a row` : ''}</div>
      <div><span>unanswered polls</span>${n.unansweredPolls}</div>
      <div><span>last error</span>${esc(n.lastError ?? 'none')}</div>
      <div><span>dropped</span>${Object.entries(n.dropped).map(([k, v]) => `${esc(k)} ${v}`).join(', ') || 'none'}</div>
    </div>
    <div class="actions"><b>Act</b> ${ACTIONS.map((a) => `<button type="button" data-action="${a}">${a}</button>`).join('')}
      <span id="action-result" class="${action.cls}">${esc(action.text)}</span></div>
    <h3>SAs (newest first; retired ones are history)</h3>
    ${table(['generation', 'state', 'since', 'age', 'origin', 'policy', 'transform', 'SPI to NIC', 'SPI from NIC'], n.sas.map((s) => `<tr><td class="num">${s.generation}</td><td>${esc(s.state)}</td><td>${time(s.since)}</td><td>${age(s.ageMs)}</td><td>${esc(s.origin)}</td><td>${esc(s.policy)}</td><td>${esc(s.transform)}</td><td>${esc(s.toNicSpi)}</td><td>${esc(s.fromNicSpi)}</td></tr>`))}
    <h3>Command log <span id="audit" class="${n.audit.ok ? 'audit-ok' : 'audit-bad'}">${n.audit.ok ? `audit ok: ${n.audit.entries} entries, chain and MACs verify` : `audit FAILED at entry ${n.audit.firstBadIndex}: ${esc(n.audit.problem)}`}</span></h3>
    ${table(['#', 'time', 'command', 'outcome', 'outcome at', 'station', 'RMCP seq', 'ASF tag'], n.commands.newest.map((c) => `<tr><td class="num">${c.index}</td><td>${time(c.time)}</td><td>${esc(c.command)}</td><td>${esc(c.outcome)}</td><td>${time(c.outcomeTime)}</td><td>${esc(c.station)}</td><td class="num">${c.rmcpSeq}</td><td class="num">${c.asfTag}</td></tr>`))}
    <h3>Alerts</h3>
    <ol id="nic-alerts" class="alerts">${n.alerts.length ? n.alerts.map((a) => alertItem(a, false)).join('') : '<li class="sub">no alerts stored</li>'}</ol>`;
}
$('nic-view').onclick = async (e) => {
  const b = e.target.closest('button[data-action]');
  if (!b || !nicShown) return;
  const token = cred.get();
  showAction('', `${b.dataset.action}…`);
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    const r = await fetch(`/v1/nics/${encodeURIComponent(nicShown)}/${b.dataset.action}`, { method: 'POST', headers, body: '{}' });
    const j = await r.json();
    if (j.ok) showAction('ok', `${b.dataset.action}: done${j.rttMs !== undefined ? ` in ${j.rttMs} ms` : ''}`);
    else if (r.status === 401) showAction('bad', `${b.dataset.action} refused: ${j.error.code}: this page needs the daemon's credential to act (paste it above)`);
    else showAction('bad', `${b.dataset.action} failed: ${j.error.code}: ${j.error.message}`);
  } catch (err) {
    showAction('bad', `${b.dataset.action} failed: ${err.message}`);
  }
  loadNic(nicShown).catch(() => undefined);
};

// --- routing: #nic=ID shows a NIC, anything else the fleet ---------------------------------------------------
function route() {
  const m = /^#nic=(.+)$/.exec(location.hash);
  const next = m ? decodeURIComponent(m[1]) : null;
  if (next !== nicShown) action = { cls: '', text: '' };
  nicShown = next;
  $('fleet-view').hidden = nicShown !== null;
  $('nic-view').hidden = nicShown === null;
  if (nicShown) {
    $('nic-view').innerHTML = '<p class="sub">loading…</p>';
    loadNic(nicShown).catch((e) => ($('nic-view').innerHTML = `<p class="audit-bad">${esc(e.message)}</p><a href="#">‹ back to the fleet</a>`));
  } else loadList().catch(() => undefined);
}
window.addEventListener('hashchange', route);

// --- live: server-sent events ------------------------------------------------------------------------------
function follow() {
  const es = new EventSource('/v1/fleet/events');
  es.onopen = () => {
    $('live').className = 'live';
    $('live').textContent = 'live';
  };
  es.onerror = () => {
    $('live').className = 'live off';
    $('live').textContent = 'reconnecting…';
  };
  es.addEventListener('glance', (e) => {
    renderGlance(JSON.parse(e.data));
    if (nicShown) loadNic(nicShown).catch(() => undefined);
    else loadList().catch(() => undefined);
  });
  es.addEventListener('alert', (e) => {
    const a = JSON.parse(e.data);
    const list = $('g-alerts');
    if (list.firstElementChild?.classList.contains('sub')) list.innerHTML = '';
    list.insertAdjacentHTML('afterbegin', alertItem(a, true));
    if (nicShown === a.nic) {
      const mine = $('nic-alerts');
      if (mine.firstElementChild?.classList.contains('sub')) mine.innerHTML = '';
      mine.insertAdjacentHTML('afterbegin', alertItem(a, true));
    }
  });
}

route();
getJson('/v1/fleet').then(renderGlance).catch(() => undefined);
follow();
