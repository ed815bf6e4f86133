/**
 * The fleet page's server side (docs/FLEET-PAGE.md; issue 17): the daemon serves the page's files and its reads
 * without a credential (loopback names only), the live stream of server-sent events carries an alert within 1 s of
 * the host event, and an action on a NIC needs the daemon's credential (refused without it: nothing runs). Real
 * processes on 127.0.182.0/24, ports 18200-18219.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';

const PAGE = '127.0.182.1:18212';

/** GET (or POST) on the daemon, with the Host header and credential given; resolves status, headers and body text. */
function request(path: string, o: { method?: string; host?: string; token?: string } = {}): Promise<{ status: number; type: string; body: string }> {
  const [host, port] = PAGE.split(':');
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), path, method: o.method ?? 'GET', headers: { host: o.host ?? PAGE, ...(o.token ? { authorization: `Bearer ${o.token}` } : {}) }, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.on('error', reject);
    req.end(o.method === 'POST' ? '{}' : undefined);
  });
}
const json = async (path: string, o: Parameters<typeof request>[1] = {}) => {
  const r = await request(path, o);
  return { status: r.status, j: JSON.parse(r.body) };
};

/** The daemon's event stream: every event as it arrives, with its arrival time. */
function stream(): { events: { at: number; event: string; data: any }[]; close: () => void } {
  const events: { at: number; event: string; data: any }[] = [];
  const [host, port] = PAGE.split(':');
  const req = http.get({ host, port: Number(port), path: '/v1/fleet/events' }, (res) => {
    assert.equal(res.headers['content-type'], 'text/event-stream');
    let buf = '';
    res.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (ev && data) events.push({ at: performance.now(), event: ev, data: JSON.parse(data) });
      }
    });
  });
  req.on('error', () => undefined);
  return { events, close: () => req.destroy() };
}

describe('e2e fleet page: files, reads, live events, actions behind the credential', function () {
  this.timeout(90_000);
  const lab = new Lab('fleet-page');
  let token = '';
  let s: ReturnType<typeof stream> | null = null;
  after(async () => {
    s?.close();
    await stopAllStations();
    await lab.cleanup();
  });

  before(async () => {
    await lab.startEmulator(['--nics', '3', '--first-address', '127.0.182.10', '--control', '127.0.182.1:18210']);
    await lab.station(['enroll', 'all', '--psk-file', writePskFile(lab).file]);
    const d = await StationDaemon.start(lab, ['--poll-interval', '200', '--listen', '127.0.182.1:18211', '--control', PAGE]);
    token = d.control.token!;
    assert.equal(d.ready.control, PAGE);
    await waitFor('every NIC polled', async () => (await d.status()).nics.filter((n: { host: string }) => n.host === 'S0').length === 3, 15_000, 50);
  });

  it('serves the page, its module and uPlot without a credential', async () => {
    const page = await request('/');
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.body, /<title>Lifeline fleet<\/title>/);
    const js = await request('/page/fleet.js');
    assert.equal(js.status, 200);
    assert.match(js.type, /^text\/javascript/);
    const uplot = await request('/vendor/uPlot.esm.js');
    assert.equal(uplot.status, 200);
    assert.match(uplot.body, /export \{ uPlot as default \}|export default/);
    const missing = await json('/page/nope.js');
    assert.equal(missing.status, 404);
    assert.equal(missing.j.error.code, 'E_NOT_FOUND');
  });

  it('GET /v1/fleet: the fleet at a glance', async () => {
    await waitFor('three NICs in S0', async () => (await json('/v1/fleet')).j.hosts.s0 === 3, 5000, 100);
    const { status, j } = await json('/v1/fleet');
    assert.equal(status, 200);
    assert.equal(j.station, 'station-1');
    assert.equal(j.nics, 3);
    assert.deepEqual(j.owners, { 'station-1': 3 });
    assert.equal(j.saGeneration['1'], 3);
    assert.equal(j.saAge['< 1 min'], 3);
    assert.equal(j.activity.t.length, 60);
    assert.ok(Array.isArray(j.alerts));
  });

  it('GET /v1/fleet/nics: search, filter and pages; bad parameters are E_USAGE', async () => {
    let { j } = await json('/v1/fleet/nics');
    assert.deepEqual(j.rows.map((r: { id: string }) => r.id), ['nic-1', 'nic-2', 'nic-3']);
    assert.equal(j.rows[0].generation, 1);
    assert.equal(j.rows[0].owner, 'station-1');
    ({ j } = await json('/v1/fleet/nics?q=nic-2'));
    assert.deepEqual([j.total, j.rows[0].id], [1, 'nic-2']);
    ({ j } = await json('/v1/fleet/nics?q=127.0.182.12'));
    assert.deepEqual([j.total, j.rows[0].id], [1, 'nic-3']);
    ({ j } = await json('/v1/fleet/nics?host=s5'));
    assert.equal(j.total, 0);
    ({ j } = await json('/v1/fleet/nics?offset=1&limit=1'));
    assert.deepEqual([j.total, j.offset, j.rows.map((r: { id: string }) => r.id)], [3, 1, ['nic-2']]);
    for (const bad of ['limit=0', 'limit=501', 'offset=-1', 'host=bogus']) {
      const r = await json(`/v1/fleet/nics?${bad}`);
      assert.equal(r.status, 400, bad);
      assert.equal(r.j.error.code, 'E_USAGE', bad);
    }
  });

  it('GET /v1/fleet/nics/:id: host state, SAs, command log with its audit, alerts; an unknown NIC is E_NOT_FOUND', async () => {
    const { status, j } = await json('/v1/fleet/nics/nic-1');
    assert.equal(status, 200);
    assert.equal(j.host, 'S0');
    assert.equal(j.sas[0].state, 'active');
    assert.match(j.sas[0].toNicSpi, /^0x[0-9a-f]{8}$/);
    assert.ok(!JSON.stringify(j).includes('"key'), 'no key material');
    assert.equal(j.audit.ok, true);
    assert.equal(j.lease.owner, 'station-1');
    const none = await json('/v1/fleet/nics/nic-9');
    assert.equal(none.status, 404);
    assert.equal(none.j.error.code, 'E_NOT_FOUND');
  });

  it('a Host that is not a loopback name is refused (E_HOST, 403): no DNS rebinding', async () => {
    for (const path of ['/', '/v1/fleet', '/v1/fleet/nics/nic-1']) {
      const r = await json(path, { host: 'evil.example:18212' });
      assert.equal(r.status, 403, path);
      assert.equal(r.j.error.code, 'E_HOST', path);
    }
  });

  it('the event stream: a glance every second, and an alert within 1 s of `host nic-1 hang`', async () => {
    s = stream();
    await waitFor('the first glance', async () => s!.events.find((e) => e.event === 'glance'), 5000, 10);
    const t0 = performance.now();
    await lab.host('nic-1', 'hang');
    const a = await waitFor('the hang alert on the stream', async () => s!.events.find((e) => e.event === 'alert' && e.data.nic === 'nic-1' && e.data.event === 'os-hang'), 5000, 1);
    const ms = a.at - t0;
    assert.ok(ms <= 1000, `alert after ${ms.toFixed(1)} ms`);
    const glances = s.events.filter((e) => e.event === 'glance' && e.at > t0);
    await waitFor('another glance', async () => s!.events.filter((e) => e.event === 'glance' && e.at > t0).length > glances.length, 3000, 10);
    assert.equal((await json('/v1/fleet/nics/nic-1')).j.alerts[0].event, 'os-hang');
    await lab.host('nic-1', 'reset').catch(() => undefined);
  });

  it('an action needs the daemon\'s credential: refused without it (E_AUTH, nothing runs), done with it', async () => {
    const before = (await json('/v1/fleet/nics/nic-2')).j.commands.total;
    const refused = await json('/v1/nics/nic-2/power-cycle', { method: 'POST' });
    assert.equal(refused.status, 401);
    assert.equal(refused.j.error.code, 'E_AUTH');
    const wrong = await json('/v1/nics/nic-2/power-cycle', { method: 'POST', token: 'ab'.repeat(32) });
    assert.equal(wrong.status, 401);
    assert.equal((await json('/v1/fleet/nics/nic-2')).j.commands.total, before, 'nothing was logged');
    const done = await json('/v1/nics/nic-2/power-cycle', { method: 'POST', token });
    assert.equal(done.status, 200, JSON.stringify(done.j));
    assert.equal(done.j.ok, true);
    const n = (await json('/v1/fleet/nics/nic-2')).j;
    assert.equal(n.commands.total, before + 1);
    assert.deepEqual([n.commands.newest[0].command, n.commands.newest[0].outcome], ['power-cycle', 'acked']);
    const g = await waitFor('the command in the last minute', async () => {
      const x = (await json('/v1/fleet')).j;
      return x.lastMinute.commands >= 1 && x;
    }, 3000, 100);
    assert.equal(g.lastMinute.failed, 0);
  });
});
