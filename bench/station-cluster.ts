/**
 * A station cluster sharing one fleet (issue 16, criterion 3): k `mgmt-station serve` daemons on one PostgreSQL store
 * (Debian's binaries, a private server: test/support/postgres-server.ts) share N enrolled NICs of one `nic-emulator`.
 *
 * Set-up, in-process (a station could not enrol 100,000 NICs in a bench's time): each NIC's EEPROM image is keyed by
 * its own firmware as in fleet-enrolled.ts (installSa as `sa manual` does, setTrustAnchor as `enroll` does), and the
 * station's rows for it are written through the store API as a station writes them (the NIC record with its PSK, the
 * SA stored pending then made active: keys wrapped under the cluster key), under a lease the set-up then releases.
 * No key exchange runs in the measured part (refresh interval one day).
 *
 * Measured:
 *  1. k - 1 daemons start; time until every NIC is owned by its preferred one of them.
 *  2. The k-th daemon joins; time until every NIC is owned by its preferred station (rendezvous hashing, hand-overs
 *     at safe points: mgmt-station/core/daemon-core.ts), and the split then (max and min vs N/k; target within 10%).
 *  3. A client sends power commands (reset, power-cycle) through the owners' daemons to a sample of one station's
 *     NICs, retrying through whichever station the store names as owner; once each has had one acknowledged, that
 *     station is killed with SIGKILL while commands are in flight. Then: time until every NIC it owned is owned by a
 *     survivor (the store's leases), and time until a random sample of them (200) each answered a secure `state`
 *     through its new owner's daemon.
 *  4. Exactly once, from the NICs' execution logs (the emulator's /v1/nics/ID/exec-log): every acknowledged command
 *     ran once (lost = acknowledged but not in the log) and no command ran twice (doubled).
 */
import http from 'node:http';
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { assignAddresses } from '../nic-emulator/addressing.js';
import { createClusterKeyFile } from '../mgmt-station/store/cluster-key.js';
import { openStore } from '../mgmt-station/store/open-store.js';
import type { Lease, Store } from '../mgmt-station/store/store.js';
import { startPostgres, type PostgresServer } from '../test/support/postgres-server.js';
import { spawnChild, startEmulator, stopChild, rssKiB, tempDir, memoryBackedBase, type Emulator } from './processes.js';
import { figure, type Figure } from './stats.js';
import { enrolImage, saFor } from './fleet-enrolled.js';
import { preferenceOrder } from '../mgmt-station/core/rendezvous.js';

const STATION_CLI = resolve(import.meta.dirname, '../mgmt-station/cli.js');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface StationClusterOptions {
  nics: number;
  /** k (default 4): k - 1 start, the k-th joins, one is killed. */
  stations?: number;
  /** The emulator's first NIC address (address-per-NIC as root; port-per-NIC on 127.0.0.1 otherwise). */
  firstAddress: string;
  /** Port base for port-per-NIC when not root. */
  portBase?: number;
  /** The stations' addresses: `${stationNet}.K` (K = 1..k), their secure UDP on port 7000, their APIs on any port. */
  stationNet: string;
  /** PostgreSQL's port (default: any free one). */
  pgPort?: number;
  leaseMs?: number;
  pollMs?: number;
  /** NICs of the killed station that get commands, and NICs asked for `state` after the kill. */
  commandNics?: number;
  sample?: number;
  /** Where to append each daemon's stderr (its log lines), e.g. to look into a failed run; default: kept in memory only. */
  logDir?: string;
}

export interface StationClusterResult {
  nics: number;
  stations: number;
  leaseMs: number;
  pollMs: number;
  setupMs: Figure;
  firstOwnedMs: Figure;
  join: { balancedMs: Figure | null; owned: Record<string, number>; ideal: number; maxOverIdealPct: number; minUnderIdealPct: number };
  kill: {
    victim: string;
    victimNics: number;
    ownedBySurvivorsMs: Figure | null;
    sampleServedMs: Figure | null;
    sample: { asked: number; answered: number; failures: string[] };
    commands: { nics: number; sent: number; acked: number; inFlightAtKill: number; lost: number; doubled: number };
    ownedAfter: Record<string, number>;
  };
  rssKiBPerOwnedNic: Record<string, number>;
}

/** Run `f` over `items`, `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, f: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await f(items[next++]);
  }));
}

interface Daemon { id: string; child: ChildProcess; control: string; token: string; pid: number }

function request(control: string, method: 'GET' | 'POST', path: string, token: string | null, timeoutMs: number): Promise<any> {
  const [host, port] = control.split(':');
  return new Promise((res) => {
    const req = http.request({ host, port: Number(port), method, path, agent: false, timeout: timeoutMs, headers: token ? { authorization: `Bearer ${token}` } : {} }, (r) => {
      let t = '';
      r.setEncoding('utf8').on('data', (c: string) => (t += c)).on('end', () => {
        try {
          res(JSON.parse(t));
        } catch {
          res({ ok: false, error: { code: 'E_BENCH', message: `not JSON: ${t.slice(0, 80)}` } });
        }
      });
    });
    req.on('error', (e) => res({ ok: false, error: { code: 'E_CONNECT', message: e.message } }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

function startDaemon(dir: string, id: string, address: string, args: string[], logDir: string | undefined, readyMs: number): Promise<Daemon> {
  const child = spawnChild(process.execPath, [STATION_CLI, 'serve', '--json', '--id', id, '--listen', `${address}:7000`, '--control', `${address}:0`, '--sharing', 'balanced', ...args], { cwd: dir });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    if (logDir) appendFileSync(join(logDir, `${id}.log`), c);
    err += c;
    if (err.length > 20000) err = err.slice(-10000);
  });
  return new Promise((res, rej) => {
    let out = '';
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`station ${id} not ready in ${readyMs} ms: ${err.slice(-500)}`));
    }, readyMs);
    child.once('exit', (code) => rej(new Error(`station ${id} exited (${code}): ${err.slice(-500)}`)));
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return {}; } });
      const failed = lines.find((l) => l.ok === false || l.error);
      if (failed) {
        clearTimeout(t);
        child.kill('SIGKILL');
        rej(new Error(`station ${id}: ${JSON.stringify(failed)}`));
        return;
      }
      const ready = lines.find((l) => typeof l.control === 'string' && typeof l.announce === 'string') as { control: string; announce: string } | undefined;
      if (!ready) return;
      clearTimeout(t);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      try {
        res({ id, child, pid: child.pid!, control: ready.control, token: (JSON.parse(readFileSync(ready.announce, 'utf8')) as { token: string }).token });
      } catch (e) {
        rej(new Error(`station ${id}: its announce file ${ready.announce}: ${(e as Error).message}`));
      }
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Owned NICs per live owner (and the free or lapsed ones under ''), as the store says now. */
function ownership(leases: Lease[], now: number): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of leases) {
    const k = l.owner !== null && l.expiresAt > now ? l.owner : '';
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

export async function measureStationCluster(o: StationClusterOptions, log: (s: string) => void): Promise<StationClusterResult> {
  const n = o.nics;
  const k = o.stations ?? 4;
  const leaseMs = o.leaseMs ?? 3000;
  // Each NIC polled every 5 s (the daemon's default); with the 3 s lease, the daemons' rounds (takeovers) run every
  // second all the same (DaemonCore.roundIntervalMs). A 1 s poll of 100,000 NICs would be 100,000 polls a second.
  const pollMs = o.pollMs ?? 5000;
  const ids = Array.from({ length: k }, (_, i) => `station-${i + 1}`);
  const base = memoryBackedBase();
  const dir = tempDir(`station-cluster-${n}`, base.dir);
  const nicDir = join(dir, 'nics');
  mkdirSync(nicDir, { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, 'var'), { recursive: true, mode: 0o700 }); // the daemons' announce files (cwd var/ with a PostgreSQL store)
  const seed = randomBytes(32);
  const psk = new Uint8Array(randomBytes(32));
  const addrs = assignAddresses({ nics: n, firstAddress: isRoot ? o.firstAddress : '127.0.0.1', portBase: isRoot ? null : (o.portBase ?? 20000) });
  let pg: PostgresServer | null = null;
  let emu: Emulator | null = null;
  let store: Store | null = null;
  const daemons = new Map<string, Daemon>();
  try {
    const t0 = performance.now();
    log(`  ${n} EEPROM images keyed in-process; PostgreSQL; the station rows written through the store API`);
    const now = Date.now();
    let generation = 0;
    for (const a of addrs) generation = enrolImage(nicDir, a, saFor(seed, a.index), psk, now);
    pg = await startPostgres({ port: o.pgPort, startTimeoutMs: 30_000 });
    const url = pg.url();
    const keyFile = join(dir, 'cluster.key');
    const key = createClusterKeyFile(keyFile);
    emu = await startEmulator(['--nics', String(n), '--data-dir', nicDir, ...(isRoot ? ['--first-address', o.firstAddress] : ['--port-base', String(o.portBase ?? 20000)])], 120_000 + n * 2);
    if (emu.ready.ready !== true) throw new Error(`nic-emulator refused to start: ${JSON.stringify(emu.ready)}`);
    const ctl = emu.ready.control;
    store = await openStore(url, key, { maxConnections: 8 });
    const s = store;
    await pool(addrs, 32, async (a) => {
      await s.addNicIfAbsent({ id: a.id, address: a.address, securePort: a.securePort, clearPort: a.clearPort, ikePort: a.ikePort, psk, enrolledAt: now, meta: { emulator: ctl, enrolled: true, policy: 'esp' } });
    });
    const setupFences = await s.acquireLeases(addrs.map((a) => a.id), 'bench-setup', now, 3_600_000);
    await pool(addrs, 32, async (a) => {
      const r = setupFences.get(a.id);
      if (!r?.acquired) throw new Error(`${a.id}: set-up lease refused`);
      const fence = { station: 'bench-setup', epoch: r.lease.epoch };
      await s.putSa(a.id, { pair: { ...saFor(seed, a.index), generation }, state: 'pending', ike: null }, now, fence);
      await s.activateSa(a.id, generation, now, fence);
    });
    await s.releaseLeases(new Map(addrs.map((a) => [a.id, (setupFences.get(a.id) as { lease: Lease }).lease.epoch])), 'bench-setup', now - 3_600_000);
    const setupMs = performance.now() - t0;

    const args = ['--store', url, '--cluster-key', keyFile, '--emulator', ctl, '--lease-ms', String(leaseMs), '--poll-interval', String(pollMs), '--refresh-interval', '86400', '--max-down-time', '0', '--timeout', '3000', '--log-format', 'json'];
    const addressOf = (i: number) => `${o.stationNet}.${i + 1}`;
    const counts = async () => ownership(await s.listLeases(), Date.now());
    /** performance.now() when every NIC is owned by its preferred station among `members`, or null if not within `deadlineMs`. */
    const settled = async (what: string, members: string[], deadlineMs: number): Promise<number | null> => {
      const start = performance.now();
      while (performance.now() - start < deadlineMs) {
        const t = Date.now();
        const leases = await s.listLeases();
        if (leases.length === n && leases.every((l) => l.owner !== null && l.expiresAt > t && l.owner === preferenceOrder(l.nic, members)[0])) return performance.now();
        await sleep(100);
      }
      log(`  ${what}: not within ${deadlineMs} ms (${JSON.stringify(Object.fromEntries(await counts()))})`);
      return null;
    };

    // 1. k - 1 stations.
    log(`  ${k - 1} stations start`);
    const tStart = performance.now();
    // All at once (a daemon prints its ready line after its first poll round, which at scale is long): they register
    // within a poll interval of each other and split the fleet at once.
    const started = await Promise.allSettled(ids.slice(0, k - 1).map((id, i) => startDaemon(dir, id, addressOf(i), args, o.logDir, 60_000 + 30 * n)));
    for (const r of started) if (r.status === 'fulfilled') daemons.set(r.value.id, r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    const firstOwned = await settled('first ownership', ids.slice(0, k - 1), 60_000 + n);
    const firstOwnedMs = firstOwned === null ? null : firstOwned - tStart;

    // 2. The k-th joins.
    const ideal = n / k;
    log(`  station ${ids[k - 1]} joins`);
    const tJoin = performance.now();
    daemons.set(ids[k - 1], await startDaemon(dir, ids[k - 1], addressOf(k - 1), args, o.logDir, 60_000 + 30 * n));
    const balancedAt = await settled('hand-overs after the join', ids, 60_000 + n);
    const balancedMs = balancedAt === null ? null : balancedAt - tJoin;
    const afterJoin = await counts();
    const owned = Object.fromEntries(ids.map((id) => [id, afterJoin.get(id) ?? 0]));
    const rss: Record<string, number> = {};
    for (const d of daemons.values()) rss[d.id] = Math.round(rssKiB(d.pid) / Math.max(1, owned[d.id]) * 10) / 10;

    // 3. Commands in flight to one station's NICs, then kill -9 of it.
    const victim = ids[1];
    const victimNics = (await s.listLeases()).filter((l) => l.owner === victim).map((l) => l.nic);
    const shuffled = victimNics.map((id) => ({ id, r: Math.random() })).sort((a, b) => a.r - b.r).map((x) => x.id);
    const commandNics = shuffled.slice(0, Math.min(o.commandNics ?? 40, shuffled.length));
    const acked = new Map<string, Set<number>>(commandNics.map((id) => [id, new Set<number>()]));
    let sent = 0;
    let inFlight = 0;
    let stop = false;
    let killed = false;
    const ownerOf = async (nic: string): Promise<Daemon | undefined> => {
      const l = await s.getLease(nic);
      return l?.owner ? daemons.get(l.owner) : undefined;
    };
    const verbs = ['reset', 'power-cycle'];
    const client = Promise.all(commandNics.map(async (nic, j) => {
      for (let c = 0; !stop && c < 40; c++) {
        const d = await ownerOf(nic);
        if (!d || (killed && d.id === victim)) {
          await sleep(100);
          c--;
          continue;
        }
        sent++;
        inFlight++;
        const r = await request(d.control, 'POST', `/v1/nics/${nic}/${verbs[(c + j) % 2]}?timeout=3000`, d.token, 8000);
        inFlight--;
        if (r.ok && r.command?.index) acked.get(nic)!.add(r.command.index as number);
        await sleep(r.ok ? 20 : 100);
      }
    }));
    const warm = performance.now();
    while (performance.now() - warm < 20_000 && [...acked.values()].some((x) => x.size === 0)) await sleep(100);
    // Killed while commands are in flight: at least half of the command NICs await an answer (or 5 s have passed).
    const busy = performance.now();
    while (performance.now() - busy < 5000 && inFlight < Math.max(1, commandNics.length / 2)) await sleep(2);
    const inFlightAtKill = inFlight;
    log(`  kill -9 ${victim} (${victimNics.length} NICs; ${inFlightAtKill} commands in flight)`);
    const tKill = performance.now();
    daemons.get(victim)!.child.kill('SIGKILL');
    killed = true;
    const survivors = ids.filter((id) => id !== victim);
    const sample = shuffled.map((id) => ({ id, r: Math.random() })).sort((a, b) => a.r - b.r).slice(0, Math.min(o.sample ?? 200, shuffled.length)).map((x) => x.id);
    const victimSet = new Set(victimNics);
    const ownedBySurvivors = (async () => {
      while (performance.now() - tKill < 120_000) {
        const t = Date.now();
        const left = (await s.listLeases()).filter((l) => victimSet.has(l.nic) && !(l.owner !== null && survivors.includes(l.owner) && l.expiresAt > t)).length;
        if (left === 0) return performance.now() - tKill;
        await sleep(100);
      }
      return null;
    })();
    let answered = 0;
    const failures: string[] = [];
    let lastAnswer = 0;
    await pool(sample, 16, async (nic) => {
      let last = '';
      while (performance.now() - tKill < 60_000) {
        const d = await ownerOf(nic);
        if (d && d.id !== victim) {
          const r = await request(d.control, 'POST', `/v1/nics/${nic}/state?timeout=2000`, d.token, 5000);
          if (r.ok) {
            answered++;
            lastAnswer = Math.max(lastAnswer, performance.now() - tKill);
            return;
          }
          last = `${r.error?.code}: ${r.error?.message}`;
        }
        await sleep(100);
      }
      failures.push(`${nic}: ${last || 'no survivor owns it'}`);
    });
    const ownedMs = await ownedBySurvivors;
    stop = true;
    await client;
    const after = await counts();

    // 4. Exactly once, from the NICs' execution logs.
    let lost = 0;
    let doubled = 0;
    let ackedCount = 0;
    const wireKey = (index: number) => `${(index - 1) % 255}:${Math.floor((index - 1) / 255) % 256}`;
    for (const nic of commandNics) {
      const exec = (await request(ctl, 'GET', `/v1/nics/${nic}/exec-log`, null, 10_000)) as { rmcpSeq: number; tag: number }[];
      const seen = new Map<string, number>();
      for (const x of Array.isArray(exec) ? exec : []) seen.set(`${x.rmcpSeq}:${x.tag}`, (seen.get(`${x.rmcpSeq}:${x.tag}`) ?? 0) + 1);
      for (const i of acked.get(nic)!) {
        ackedCount++;
        if (!seen.has(wireKey(i))) lost++;
      }
      doubled += [...seen.values()].filter((c) => c > 1).length;
    }
    const wl = `${n} NICs, ${k} stations on PostgreSQL, lease ${leaseMs} ms, poll ${pollMs} ms`;
    const pct = (v: number) => Math.round(((v - ideal) / ideal) * 1000) / 10;
    return {
      nics: n,
      stations: k,
      leaseMs,
      pollMs,
      setupMs: figure(setupMs, 'ms', `${n} EEPROM images keyed in-process, PostgreSQL started, station rows written (bench process)`),
      firstOwnedMs: figure(firstOwnedMs ?? NaN, 'ms', `${wl}; ${k - 1} stations started at once: spawn to every NIC owned`),
      join: {
        balancedMs: balancedMs === null ? null : figure(balancedMs, 'ms', `${wl}; the ${k}th station joins: spawn to every NIC owned by its preferred station (rendezvous order over the ${k})`),
        owned, ideal,
        maxOverIdealPct: pct(Math.max(...Object.values(owned))),
        minUnderIdealPct: pct(Math.min(...Object.values(owned))),
      },
      kill: {
        victim,
        victimNics: victimNics.length,
        ownedBySurvivorsMs: ownedMs === null ? null : figure(ownedMs, 'ms', `${wl}; kill -9 of ${victim} to every one of its ${victimNics.length} NICs owned by a survivor (store's leases)`),
        sampleServedMs: answered === sample.length ? figure(lastAnswer, 'ms', `${wl}; kill -9 to the last of ${sample.length} random NICs of ${victim} answering a secure state through its new owner's daemon`) : null,
        sample: { asked: sample.length, answered, failures: failures.slice(0, 10) },
        commands: { nics: commandNics.length, sent, acked: ackedCount, inFlightAtKill, lost, doubled },
        ownedAfter: Object.fromEntries(survivors.map((id) => [id, after.get(id) ?? 0])),
      },
      rssKiBPerOwnedNic: rss,
    };
  } finally {
    for (const d of daemons.values()) await stopChild(d.child, 3000);
    if (emu) await stopChild(emu.child, 10_000);
    await store?.close().catch(() => undefined);
    await pg?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
