/**
 * Issue 17, Prometheus `/metrics` on both processes (docs/METRICS.md): a real emulator and a real station daemon are
 * scraped over HTTP as Prometheus would; the text is read by the strict exposition-format reader
 * (test/support/prom-text.ts) and, where Debian's prometheus package is installed, by `promtool check metrics`; the
 * values move with what happens (a bad datagram, a secure power cycle, a refresh); the daemon's /metrics needs a
 * credential, the scrape-only one opening nothing else; and the emulator's series do not grow with its NICs.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, ROOT } from '../support/lab.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';
import { metricsTokenFile } from '../../mgmt-station/announce.js';
import { checkLifelineConventions, parsePromText, promtoolCheck, sampleSum, sampleValue, seriesCount, type Family } from '../support/prom-text.js';

async function scrape(base: string, token?: string): Promise<{ status: number; type: string | null; text: string }> {
  const r = await fetch(`http://${base}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(10000) });
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
}

async function scrapeParsed(base: string, token?: string): Promise<Map<string, Family>> {
  const r = await scrape(base, token);
  assert.equal(r.status, 200, r.text.slice(0, 300));
  assert.match(r.type ?? '', /^text\/plain; version=0\.0\.4/);
  const f = parsePromText(r.text);
  checkLifelineConventions(f);
  return f;
}

/** `promtool check metrics`, or a skip saying what to install. */
async function promtool(ctx: Mocha.Context, text: string): Promise<void> {
  const r = await promtoolCheck(text);
  if (r === null) {
    console.log('      (promtool not installed: apt-get install prometheus; the strict reader checked the text)');
    ctx.skip();
  }
  // Exit 0: clean; 3: lint problems only (1 would be a text it cannot parse). prom-client's default metrics have a few
  // names promtool's linter dislikes (the gauge nodejs_active_handles_total ends in _total): those are not ours to
  // rename. Every problem must name a family outside lifeline_.
  const problems = r!.output.split('\n').filter((l) => l.trim() !== '');
  assert.ok(r!.code === 0 || (r!.code === 3 && problems.length > 0), `promtool check metrics exited ${r!.code}:\n${r!.output}`);
  const ours = problems.filter((l) => /lifeline_/.test(l));
  assert.deepEqual(ours, [], `promtool's lint of Lifeline's series:\n${r!.output}`);
}

function sendUdp(address: string, port: number, bytes: Uint8Array): Promise<void> {
  const s = dgram.createSocket('udp4');
  return new Promise<void>((resolve, reject) => s.send(bytes, port, address, (e) => (e ? reject(e) : resolve()))).finally(() => s.close());
}

describe('e2e metrics: GET /metrics on the emulator', function () {
  this.timeout(60000);
  let lab: Lab;

  before(async () => {
    lab = new Lab('metrics-emu');
    await lab.startEmulator(['--nics', '2']);
  });
  after(async () => lab?.cleanup());

  it('answers Prometheus text that the strict reader takes: our series, the default process and Node series', async () => {
    const f = await scrapeParsed(lab.ready!.control);
    assert.equal(sampleValue(f, 'lifeline_nics', { state: 'running' }), 2);
    assert.equal(sampleValue(f, 'lifeline_nic_hosts', { state: 'up' }), 2);
    assert.equal(sampleValue(f, 'lifeline_nics_with_sa'), 0);
    assert.ok(f.has('lifeline_nic_eeprom_page_writes_total'));
    assert.ok((sampleValue(f, 'lifeline_nic_eeprom_page_writes_total', { region: 'config' }) ?? 0) > 0);
    assert.equal(f.get('process_cpu_seconds_total')?.type, 'counter', 'prom-client\'s default metrics are there, unprefixed');
    assert.ok([...f.keys()].some((k) => k.startsWith('nodejs_')));
  });

  it('promtool check metrics accepts it', async function () {
    await promtool(this, (await scrape(lab.ready!.control)).text);
  });

  it('a bad datagram moves the received and dropped counters; nothing per NIC', async () => {
    const before = await scrapeParsed(lab.ready!.control);
    const nic = await lab.nic('nic-1');
    await sendUdp(nic.address, nic.ports.clear, new Uint8Array([6, 0, 0])); // too short for RMCP
    let after = before;
    for (let i = 0; i < 50; i++) {
      after = await scrapeParsed(lab.ready!.control);
      if (sampleSum(after, 'lifeline_nic_datagrams_dropped_total') > sampleSum(before, 'lifeline_nic_datagrams_dropped_total')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(sampleSum(after, 'lifeline_nic_datagrams_dropped_total'), sampleSum(before, 'lifeline_nic_datagrams_dropped_total') + 1);
    assert.equal(sampleValue(after, 'lifeline_nic_datagrams_received_total', { port: 'clear' }), (sampleValue(before, 'lifeline_nic_datagrams_received_total', { port: 'clear' }) ?? 0) + 1);
    const reasons = after.get('lifeline_nic_datagrams_dropped_total')!.samples.map((s) => s.labels.reason);
    assert.ok(reasons.includes('short'), `reasons: ${reasons.join(', ')}`);
  });

  it('a POST to /metrics is 405 with Allow: GET', async () => {
    const r = await fetch(`http://${lab.ready!.control}/metrics`, { method: 'POST', signal: AbortSignal.timeout(5000) });
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'GET');
  });
});

describe('e2e metrics: GET /metrics on the station daemon', function () {
  this.timeout(90000);
  let lab: Lab;
  let daemon: StationDaemon;

  before(async () => {
    lab = new Lab('metrics-station');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
    daemon = await StationDaemon.start(lab, ['--refresh-interval', '3600']);
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  const metricsToken = () => readFileSync(metricsTokenFile(daemon.ready.announce), 'utf8').trim();

  it('needs a credential: none is 401; the scrape-only token (0600 file beside the announce file) opens /metrics only', async () => {
    const none = await scrape(daemon.ready.control);
    assert.equal(none.status, 401);
    assert.equal(JSON.parse(none.text).error.code, 'E_AUTH');
    assert.equal((await scrape(daemon.ready.control, '0'.repeat(64))).status, 401);
    assert.equal(statSync(metricsTokenFile(daemon.ready.announce)).mode & 0o777, 0o600);
    const token = metricsToken();
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.notEqual(token, daemon.control.token, 'not the API credential');
    assert.equal((await scrape(daemon.ready.control, token)).status, 200);
    assert.equal((await scrape(daemon.ready.control, daemon.control.token!)).status, 200, 'the API credential serves too');
    for (const [method, path] of [['GET', '/v1/status'], ['POST', '/v1/nics/nic-1/power-cycle']]) {
      const r = await fetch(`http://${daemon.ready.control}${path}`, { method, headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5000) });
      assert.equal(r.status, 401, `${method} ${path} with the scrape-only token`);
    }
  });

  it('answers text the strict reader takes, with the station\'s series', async () => {
    const f = await scrapeParsed(daemon.ready.control, metricsToken());
    assert.equal(sampleValue(f, 'lifeline_station_info', { station: 'station-1' }), 1);
    assert.equal(sampleValue(f, 'lifeline_station_leases_held'), 1);
    assert.ok((sampleValue(f, 'lifeline_station_lease_renewals_total') ?? 0) >= 1);
    assert.equal(f.get('lifeline_station_command_duration_seconds')?.type, 'histogram');
    assert.equal(sampleValue(f, 'lifeline_station_commands_total', { verb: 'power-cycle', outcome: 'ok' }), 0, 'every verb has a series from the start');
  });

  it('promtool check metrics accepts it', async function () {
    await promtool(this, (await scrape(daemon.ready.control, metricsToken())).text);
  });

  it('a secure power cycle moves the command counter and the latency histogram; a refresh the refresh and IKE counters', async () => {
    const before = await scrapeParsed(daemon.ready.control, metricsToken());
    await daemon.verb('nic-1', 'refresh'); // first: the power cycle takes the host agent down until the host boots
    await daemon.verb('nic-1', 'power-cycle');
    await assert.rejects(daemon.verb('nic-9', 'state'));
    const after = await scrapeParsed(daemon.ready.control, metricsToken());
    const v = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) => sampleValue(f, name, labels) ?? 0;
    assert.equal(v(after, 'lifeline_station_commands_total', { verb: 'power-cycle', outcome: 'ok' }), v(before, 'lifeline_station_commands_total', { verb: 'power-cycle', outcome: 'ok' }) + 1);
    assert.equal(v(after, 'lifeline_station_command_duration_seconds_count', { verb: 'power-cycle' }), v(before, 'lifeline_station_command_duration_seconds_count', { verb: 'power-cycle' }) + 1);
    assert.ok(v(after, 'lifeline_station_command_duration_seconds_sum', { verb: 'power-cycle' }) > v(before, 'lifeline_station_command_duration_seconds_sum', { verb: 'power-cycle' }));
    assert.equal(v(after, 'lifeline_station_sa_refreshes_total', { result: 'ok' }), v(before, 'lifeline_station_sa_refreshes_total', { result: 'ok' }) + 1);
    assert.equal(v(after, 'lifeline_station_key_exchanges_total', { kind: 'refresh', outcome: 'ok' }), v(before, 'lifeline_station_key_exchanges_total', { kind: 'refresh', outcome: 'ok' }) + 1);
    const failedStates = after.get('lifeline_station_commands_total')!.samples.filter((s) => s.labels.verb === 'state' && s.labels.outcome !== 'ok');
    assert.equal(failedStates.reduce((a, s) => a + s.value, 0), 1, 'the failed state verb, by its error code');
    // The emulator saw the command executed over the secure path.
    const emu = await scrapeParsed(lab.ready!.control);
    assert.equal(sampleValue(emu, 'lifeline_nic_commands_executed_total', { command: 'power-cycle', via: 'secure' }), 1);
    assert.equal(sampleValue(emu, 'lifeline_nics_with_sa'), 1);
  });

  it('every series the Grafana dashboard queries (fixtures/grafana/lifeline.json) is served by one of the two', async () => {
    const dashboard = JSON.parse(readFileSync(join(ROOT, 'fixtures/grafana/lifeline.json'), 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    const served = new Set([...(await scrapeParsed(lab.ready!.control)).keys(), ...(await scrapeParsed(daemon.ready.control, metricsToken())).keys()]);
    const used = new Set<string>();
    for (const p of dashboard.panels) for (const t of p.targets ?? []) for (const m of t.expr.matchAll(/\b((?:lifeline|process|nodejs)_[a-z0-9_]+)/g)) used.add(m[1]);
    assert.ok(used.size >= 30, `the dashboard uses ${used.size} series`);
    const missing = [...used].filter((n) => !served.has(n) && !served.has(n.replace(/_(bucket|sum|count)$/, '')));
    assert.deepEqual(missing, []);
  });

  it('the scrape-only token file goes with the daemon', async () => {
    const file = metricsTokenFile(daemon.ready.announce);
    await daemon.kill('SIGTERM');
    assert.throws(() => statSync(file), /ENOENT/);
  });
});

describe('e2e metrics: the emulator\'s series do not grow with its NICs', function () {
  this.timeout(120000);
  const labs: Lab[] = [];
  after(async () => {
    for (const l of labs) await l.cleanup();
  });

  it('4 NICs and 1,000 NICs give the same lifeline_ series; a scrape of 1,000 takes well under a second', async () => {
    const counts: number[] = [];
    for (const nics of [4, 1000]) {
      const lab = new Lab(`metrics-${nics}`);
      labs.push(lab);
      await lab.startEmulator(['--nics', String(nics)], 60000);
      await scrapeParsed(lab.ready!.control); // the first scrape loads prom-client
      const t0 = performance.now();
      const f = await scrapeParsed(lab.ready!.control);
      const ms = performance.now() - t0;
      assert.equal(sampleValue(f, 'lifeline_nics', { state: 'running' }), nics);
      counts.push(seriesCount(f, 'lifeline_'));
      console.log(`      ${nics} NICs: ${seriesCount(f, 'lifeline_')} lifeline_ series, scrape ${ms.toFixed(1)} ms`);
      assert.ok(ms < 1000, `scrape of ${nics} NICs took ${ms.toFixed(0)} ms`);
      await lab.stopEmulator();
    }
    assert.equal(counts[1], counts[0]);
  });
});
