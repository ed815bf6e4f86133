/**
 * The fleet page's load (docs/FLEET-PAGE.md; issue 17: "first paint ≤ 1 s for 10,000 NICs"). The station cannot yet
 * enroll 10,000 NICs quickly (issue 16), so the workload seeds a store with the rows 10,000 enrolled NICs leave —
 * NIC records, leases, an active SA each (a previous one for a third), a few alerts — through the store's API, and
 * serves the page from `mgmt-station serve` on that store. The leases belong to three other stations of the cluster
 * (live for an hour), so the daemon polls no NIC (none exists on the network): the page shows them "owned
 * elsewhere", and what is measured is the page and its reads, not polls timing out. Headless Chromium (Debian's,
 * playwright-core) loads the page in a fresh context each time: first paint and the time until the NIC list's first
 * page is rendered (the page's own performance mark), from navigation start. The same runs against a 10-NIC store
 * in the same run are the peer: the ratio says what 10,000 NICs cost the page.
 */
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { openStore } from '../mgmt-station/store/open-store.js';
import { createClusterKeyFile } from '../mgmt-station/store/cluster-key.js';
import type { SaPair } from '../wire/sa.js';
import { spawnReady } from '../lib/spawn-ready.js';
import { figure, percentile, type Figure } from './stats.js';
import { memoryBackedBase, stopChild, tempDir } from './processes.js';

const STATION_CLI = resolve(import.meta.dirname, '../mgmt-station/cli.js');
/** The bench's addresses for the daemon: its page (control API) and its secure socket. */
const CONTROL_HOST = '127.0.182.1';
const CONTROL_PORT = 18240;
const LISTEN = '127.0.182.1:18241';
const OWNERS = ['station-2', 'station-3', 'station-4'];

export interface PageLoad { nics: number; seedSeconds: Figure; firstPaint: { cold: Figure; p50: Figure; max: Figure }; listRendered: { cold: Figure; p50: Figure; max: Figure }; glanceMs: Figure }
export interface FleetPageResult { runs: number; large: PageLoad; small: PageLoad; listRatio: Figure; firstPaintRatio: Figure }

let spi = 0x100;
function pair(generation: number): SaPair {
  const dir = () => ({ spi: ++spi, encKey: new Uint8Array(randomBytes(20)), ahSpi: 0, ahKey: new Uint8Array(0) });
  return { generation, transform: 'aes-gcm-16', esn: false, policy: 'esp', toNic: dir(), fromNic: dir(), origin: 'ike' };
}

/**
 * A store in `dir` with `n` NICs as enrolled NICs leave it (see the file comment); returns its URL and key file.
 * Exported for scripts/screenshots.ts.
 */
export async function seedStore(dir: string, n: number, log: (s: string) => void = () => undefined): Promise<{ store: string; keyFile: string; seconds: number }> {
  const keyFile = join(dir, 'cluster.key');
  const key = createClusterKeyFile(keyFile);
  const url = `sqlite:${join(dir, 'station.db')}`;
  const store = await openStore(url, key);
  const t0 = performance.now();
  const now = Date.now();
  try {
    for (let i = 1; i <= n; i++) {
      const id = `nic-${i}`;
      const owner = OWNERS[i % OWNERS.length];
      await store.addNicIfAbsent({ id, address: `127.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, securePort: 664, clearPort: 623, ikePort: 500, psk: new Uint8Array(randomBytes(32)), enrolledAt: now - 86_400_000, meta: { enrolled: true } });
      const l = await store.acquireLease(id, owner, now, 3_600_000);
      if (!l.acquired) throw new Error(`seeding ${id}: lease not acquired`);
      const fence = { station: owner, epoch: l.lease.epoch };
      const generations = i % 3 === 0 ? [1, 2] : [1];
      for (const g of generations) {
        // Ages spread over a day, so the glance's SA-age buckets are not all one.
        const at = now - ((i * 7919) % 86_400_000);
        await store.putSa(id, { pair: pair(g), state: 'pending', ike: null }, at, fence);
        await store.activateSa(id, g, at, fence);
      }
      if (i % 500 === 0) {
        await store.addAlert(id, owner, { alertId: randomBytes(8).toString('hex'), receivedAt: now - i, event: 'os-hang', severity: 0x10, specific: 0, petSequence: 1, petTime: null, pet: '00'.repeat(47), via: 'secure' });
        if (i % 2000 === 0) log(`seeded ${i}/${n} NICs`);
      }
    }
  } finally {
    await store.close();
  }
  return { store: url, keyFile, seconds: (performance.now() - t0) / 1000 };
}

/** `mgmt-station serve` on a seeded store; resolves its child and the page's address. */
export async function serveStore(dir: string, store: string, keyFile: string, port = CONTROL_PORT): Promise<{ child: ChildProcess; url: string; token: string }> {
  const { child, ready } = await spawnReady<{ control: string; announce: string }>(STATION_CLI, [
    'serve', '--json', '--id', 'station-1', '--store', store, '--cluster-key', keyFile, '--control', `${CONTROL_HOST}:${port}`,
    '--listen', LISTEN, '--poll-interval', '5000', '--emulator', '127.0.0.1:1',
  ], 'mgmt-station serve', { cwd: dir, timeoutMs: 120_000, stdio: ['ignore', 'pipe', 'ignore'] });
  // Not one of processes.ts's children (spawnReady made it): killed on the bench's exit all the same (watchdog, signals).
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  const { readFileSync } = await import('node:fs');
  const token = String((JSON.parse(readFileSync(ready.announce, 'utf8')) as { token: string }).token);
  return { child, url: `http://${ready.control}/`, token };
}

async function measureOne(n: number, runs: number, log: (s: string) => void): Promise<PageLoad> {
  // tmpfs: the store's commits cost no disk flush, so seeding 10,000 NICs takes seconds, not minutes.
  const dir = tempDir(`fleet-page-${n}`, memoryBackedBase().dir);
  log(`fleet page: seeding a store with ${n} NICs`);
  const seeded = await seedStore(dir, n, log);
  const d = await serveStore(dir, seeded.store, seeded.keyFile);
  const { launchChromium } = await import('../lib/chromium.js');
  const browser = await launchChromium();
  const what = `page load of ${n} NICs, Chromium headless, fresh context each`;
  try {
    const paints: number[] = [];
    const lists: number[] = [];
    for (let r = 0; r < runs + 1; r++) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(d.url, { timeout: 30_000 });
      await page.waitForFunction(() => performance.getEntriesByName('lifeline-list-rendered').length > 0, undefined, { timeout: 30_000 });
      const t = await page.evaluate(() => ({
        paint: performance.getEntriesByName('first-paint')[0]?.startTime ?? performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN,
        list: performance.getEntriesByName('lifeline-list-rendered')[0].startTime,
      }));
      paints.push(t.paint);
      lists.push(t.list);
      await ctx.close();
    }
    // The glance's JSON as the page reads it, on a warm daemon.
    const g0 = performance.now();
    const glances = 20;
    for (let i = 0; i < glances; i++) await (await fetch(`${d.url}v1/fleet`)).json();
    const glanceMs = (performance.now() - g0) / glances;
    const warmPaint = paints.slice(1);
    const warmList = lists.slice(1);
    return {
      nics: n, seedSeconds: figure(seeded.seconds, 's', `seeding ${n} NICs through the store API (SQLite)`),
      firstPaint: { cold: figure(paints[0], 'ms', `${what}: the first load after the daemon started`), p50: figure(percentile(warmPaint, 50), 'ms', `${what}: p50 of ${runs}`), max: figure(Math.max(...warmPaint), 'ms', `${what}: max of ${runs}`) },
      listRendered: { cold: figure(lists[0], 'ms', `${what}: the first load after the daemon started`), p50: figure(percentile(warmList, 50), 'ms', `${what}: p50 of ${runs}`), max: figure(Math.max(...warmList), 'ms', `${what}: max of ${runs}`) },
      glanceMs: figure(glanceMs, 'ms', `GET /v1/fleet, mean of ${glances} (the snapshot is rebuilt at most once a second)`),
    };
  } finally {
    await browser.close();
    await stopChild(d.child);
  }
}

export async function measureFleetPage(plan: { nics: number; runs: number }, log: (s: string) => void): Promise<FleetPageResult> {
  const small = await measureOne(10, plan.runs, log);
  const large = await measureOne(plan.nics, plan.runs, log);
  return {
    runs: plan.runs, large, small,
    listRatio: figure(large.listRendered.p50.value / small.listRendered.p50.value, 'ratio', `list rendered p50, ${plan.nics} NICs / 10 NICs`),
    firstPaintRatio: figure(large.firstPaint.p50.value / small.firstPaint.p50.value, 'ratio', `first paint p50, ${plan.nics} NICs / 10 NICs`),
  };
}
