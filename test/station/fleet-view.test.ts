/**
 * The fleet page's reads (mgmt-station/fleet-view.ts, docs/FLEET-PAGE.md) over an in-memory store and a stand-in for
 * the daemon's poll state: the glance's counts and buckets, the list's search, filters and pages over 10,000 NICs,
 * one NIC, coded errors for bad parameters, the last minute's activity, and the Host check of the page's server.
 */
import assert from 'node:assert/strict';
import { MemoryStore } from '../../mgmt-station/store/memory-store.js';
import { FleetView, hostGroup } from '../../mgmt-station/fleet-view.js';
import { loopbackHost } from '../../mgmt-station/fleet-page-server.js';
import type { StationContext } from '../../mgmt-station/context.js';
import type { DaemonCore, NicState } from '../../mgmt-station/core/daemon-core.js';
import { KEY, nic, pair } from '../store/contract/harness.js';

const NOW = 1_800_000_000_000;

async function fleet(n: number) {
  const store = new MemoryStore(KEY);
  const nics = new Map<string, NicState>();
  for (let i = 1; i <= n; i++) {
    const id = `nic-${i}`;
    await store.addNicIfAbsent(nic(id, { address: `127.0.${i >> 8}.${i & 255}` }));
    const owner = i % 4 === 0 ? 'station-2' : 'station-1';
    const l = await store.acquireLease(id, owner, i % 10 === 0 ? NOW - 120_000 : NOW, 60_000); // every 10th: lapsed
    const fence = { station: owner, epoch: l.lease.epoch };
    if (i % 5 !== 0) {
      // SA ages: 30 s for odd NICs, 2 h for even ones; a second generation for every third.
      const at = NOW - (i % 2 ? 30_000 : 7_200_000);
      await store.putSa(id, { pair: pair(1), state: 'pending', ike: null }, at, fence);
      await store.activateSa(id, 1, at, fence);
      if (i % 3 === 0) {
        await store.putSa(id, { pair: pair(2), state: 'pending', ike: null }, at, fence);
        await store.activateSa(id, 2, at, fence);
      }
    }
    nics.set(id, { lastRefresh: 0, host: i % 7 === 0 ? 'unknown (last S0)' : i % 2 ? 'S0' : 'S5', lastError: i % 7 === 0 ? 'E_TIMEOUT: no answer' : null, refreshes: 0, busy: false, unanswered: 0, rekeyTriedAt: 0, refreshFailures: 0, retryRefreshAt: 0, keepUntil: 0, avoidUntil: 0, polledAt: 0 });
  }
  const ctx = { store, o: { stationId: 'station-1' }, drops: () => ({ socket: { short: 2 }, nics: { 'nic-1': { replay: 3 }, 'nic-2': { icv: 1, replay: 1 } } }) } as unknown as StationContext;
  const polls = new Map([['ok', 10], ['timeout', 4]]);
  const core = { nics, counters: { polls } } as unknown as DaemonCore;
  let now = NOW;
  const view = new FleetView(ctx, core, () => now);
  return { view, store, polls, advance: (ms: number) => (now += ms) };
}

describe('fleet view (the fleet page\'s reads)', () => {
  it('the glance: host states, owners, SA age and generation, drops by reason', async () => {
    const { view } = await fleet(70);
    const g = await view.glance();
    assert.equal(g.nics, 70);
    assert.equal(g.failing, 10); // every 7th
    assert.deepEqual(g.hosts, { s0: 30, s3: 0, s5: 30, unknown: 10, owned_elsewhere: 0, other: 0 });
    assert.deepEqual(g.owners, { 'station-1': 49, 'station-2': 14, none: 7 }); // a lapsed lease is no owner
    assert.deepEqual(g.saAge, { '< 1 min': 28, '< 1 h': 0, '< 1 day': 28, '< 7 days': 0, older: 0, 'no SA': 14 });
    assert.deepEqual(g.saGeneration, { '1': 37, '2-9': 19, '10-99': 0, '100+': 0, 'no SA': 14 });
    assert.deepEqual(g.drops, { 'socket: short': 2, replay: 4, icv: 1 });
  });

  it('the list: natural order, search by id or address, filters, pages; bad parameters are E_USAGE', async () => {
    const { view } = await fleet(30);
    const q = (s: string) => view.list(new URLSearchParams(s));
    assert.deepEqual((await q('limit=3')).rows.map((r) => r.id), ['nic-1', 'nic-2', 'nic-3']);
    assert.deepEqual((await q('q=nic-1')).rows.map((r) => r.id), ['nic-1', 'nic-10', 'nic-11', 'nic-12', 'nic-13', 'nic-14', 'nic-15', 'nic-16', 'nic-17', 'nic-18', 'nic-19']);
    assert.deepEqual((await q('q=127.0.0.22')).rows.map((r) => r.id), ['nic-22']);
    assert.equal((await q('host=unknown')).total, 4);
    assert.equal((await q('problem=1')).total, 4);
    assert.equal((await q('owner=none')).total, 3);
    assert.equal((await q('owner=station-2&host=s5')).total, 5); // 4, 8, 12, 16, 24
    const p = await q('offset=25&limit=10');
    assert.deepEqual([p.total, p.offset, p.rows.length, p.rows[0].id], [30, 25, 5, 'nic-26']);
    assert.equal(p.rows[0].saAgeMs, 7_200_000);
    for (const bad of ['limit=0', 'limit=501', 'offset=x', 'host=s9']) await assert.rejects(q(bad), { code: 'E_USAGE' }, bad);
  });

  it('10,000 NICs: a filtered page in a few ms once the snapshot is built', async function () {
    this.timeout(60_000);
    const { view } = await fleet(10_000);
    await view.list(new URLSearchParams());
    const t0 = performance.now();
    const r = await view.list(new URLSearchParams('q=nic-99&host=s0&limit=100'));
    const ms = performance.now() - t0;
    assert.equal(r.total, 49); // the odd ones of nic-99, nic-990..999, nic-9900..9999 (56), less the 7 multiples of 7
    assert.ok(ms < 50, `${ms.toFixed(1)} ms`);
  });

  it('one NIC: SAs newest first without keys, command log and audit, lease; unknown is E_NOT_FOUND', async () => {
    const { view } = await fleet(3);
    const n = await view.nic('nic-3');
    assert.deepEqual((n.sas as { generation: number; state: string }[]).map((s) => [s.generation, s.state]), [[2, 'active'], [1, 'previous']]);
    assert.ok(!/"(enc|ah)Key"|psk/i.test(JSON.stringify(n)), 'no key material');
    assert.deepEqual(n.audit, { ok: true, entries: 0, head: null, firstBadIndex: null, problem: null });
    assert.equal((n.lease as { owner: string }).owner, 'station-1');
    await assert.rejects(view.nic('nic-9'), { code: 'E_NOT_FOUND' });
  });

  it('the last minute: verbs by outcome, poll failures, alerts; a second older than 60 s drops out', async () => {
    const { view, polls, advance } = await fleet(1);
    view.samplePolls(); // the daemon's start: the core's totals so far are not the last minute's
    polls.set('timeout', 8); // four more failed polls
    view.samplePolls();
    view.recordVerb('ok');
    view.recordVerb('timeout');
    advance(1000);
    view.recordVerb('ok');
    let g = await view.glance();
    assert.deepEqual(g.lastMinute, { commands: 3, failed: 1, pollsFailed: 4, alerts: 0 });
    advance(61_000);
    view.recordVerb('ok');
    g = await view.glance();
    assert.deepEqual(g.lastMinute, { commands: 1, failed: 0, pollsFailed: 0, alerts: 0 });
  });

  it('host groups as the metrics name them; loopback Host names only', () => {
    assert.deepEqual(['S0', 'S3', 'S5', 'unknown (last S0)', 'owned elsewhere', 'state 7'].map(hostGroup), ['s0', 's3', 's5', 'unknown', 'owned_elsewhere', 'other']);
    for (const h of ['127.0.0.1:8664', '127.0.182.1', 'localhost:8664', '[::1]:8664']) assert.ok(loopbackHost(h), h);
    for (const h of [undefined, '', 'evil.example', 'evil.example:8664', '127.0.0.1.evil.example', '10.0.0.1:8664', '127.0.0.1x']) assert.ok(!loopbackHost(h), String(h));
  });
});
