/**
 * Station scale (issue 16): one `mgmt-station serve` daemon managing N NICs of real `nic-emulator` processes, driven
 * end to end through the CLI as a user would: `mgmt-station enroll all` (forwarded to the daemon), `refresh all`,
 * then the daemon's steady state (its poll round at the default 5 s interval) read from /proc.
 *
 *   enroll / refresh   spawn of the CLI to its exit, per emulator for enroll (each emulator's `all`), NICs per second
 *   RSS per NIC        (daemon VmRSS after the refresh and two poll rounds - its VmRSS just after it was ready) / N
 *   heap used per NIC  the same difference of the V8 heap used that the daemon's /metrics reports
 *                      (nodejs_heap_size_used_bytes: live objects and garbage not yet collected), beside the RSS
 *   steady-state CPU   the daemon's utime + stime over three poll intervals after that, % of one core
 *   CPU per NIC        the daemon's and the emulators' utime + stime during each verb (/proc), ms per NIC enrolled or
 *                      refreshed: what the processes spend, apart from the machine's load (the wall time is not)
 *
 * The emulators: an enrolled NIC holds four file descriptors in today's emulator (issue 16), so one process holds at
 * most about RLIMIT_NOFILE / 4 enrolled NICs. With `nic-emulator start --id-prefix` (NIC ids unique across
 * emulators) the fleet is split across as many emulators as the limit needs, each on its own /16 of loopback
 * addresses (127.110.0.0/16 ...); without it one emulator holds what fits and the result says so (`limitedBy`), and
 * the targets, set for 10,000 NICs, are then not judged. The processes are not pinned to CPUs (bench --pin is for
 * the single-responder latency sections).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { currentPinning, fdLimit, memoryBackedBase, setPinning, openFds, rssKiB, spawnChild, startEmulator, stopChild, tempDir, EMULATOR_CLI, type Emulator } from './processes.js';
import { figure, type Figure } from './stats.js';
import { batchUdpUnavailable } from '../lib/batch-udp.js';

const STATION_CLI = resolve(import.meta.dirname, '../mgmt-station/cli.js');
/** File descriptors an enrolled NIC holds in the emulator (623, 664, its IKE port, its EEPROM file while it writes). */
const FDS_PER_ENROLLED_NIC = 4;
/** The daemon's default poll interval (mgmt-station serve --poll-interval). */
const POLL_INTERVAL_MS = 5000;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface FleetVerbFigures {
  seconds: Figure;
  perSecond: Figure;
  done: number;
  failedByCode: Record<string, number>;
  /** utime + stime during the verb per NIC it did: the station daemon's, and the emulators' together. */
  daemonCpuPerNic: Figure;
  emulatorCpuPerNic: Figure;
}

export interface StationScaleResult {
  requested: number;
  nics: number;
  emulators: number;
  limitedBy?: string;
  enroll: FleetVerbFigures;
  refresh: FleetVerbFigures;
  baselineRss: Figure;
  rssPerNic: Figure;
  /** The daemon's V8 heap used (its /metrics), after the refresh minus when ready, per NIC; null if /metrics did not answer. */
  heapUsedPerNic: Figure | null;
  steadyCpu: Figure;
  /** NICs whose last poll failed, as `mgmt-station status` says after the steady-state window. */
  pollErrors: number;
  stationFds: number;
  commands: { enroll: string; refresh: string };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime + stime of a process in clock ticks (/proc/PID/stat fields 14 and 15; 100 ticks a second on Linux). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Run the station CLI to its exit: its stdout parsed as JSON, and the wall time. */
function stationCli(args: string[], cwd: string, timeoutMs: number): Promise<{ json: any; seconds: number; stderr: string }> {
  const t0 = performance.now();
  const c = spawnChild(process.execPath, [STATION_CLI, ...args], { cwd, env: { ...process.env, LIFELINE_STORE: '' } });
  let out = '';
  let err = '';
  c.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  c.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-20000)));
  return new Promise((resolveRun, reject) => {
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('exit', (code, sig) => {
      clearTimeout(t);
      const seconds = (performance.now() - t0) / 1000;
      try {
        resolveRun({ json: JSON.parse(out), seconds, stderr: err });
      } catch {
        reject(new Error(`mgmt-station ${args[0]} ${args[1] ?? ''} exited ${code ?? sig} without JSON: ${err.trim().split('\n').slice(-3).join(' | ')}`));
      }
    });
  });
}

/** The station daemon, spawned and ready. */
async function startStation(dir: string, store: string, key: string): Promise<{ pid: number; stop: () => Promise<void> }> {
  const c = spawnChild(process.execPath, [STATION_CLI, 'serve', '--store', store, '--cluster-key', key, '--control', '127.0.185.1:0', '--listen', '127.0.185.1:0', '--json', '--log-format', 'json'], { cwd: dir, env: { ...process.env, LIFELINE_STORE: '' } });
  let err = '';
  c.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-20000)));
  const ready = await new Promise<{ pid: number }>((res, rej) => {
    let out = '';
    const t = setTimeout(() => rej(new Error(`station daemon not ready in 30 s: ${err.slice(-800)}`)), 30000);
    c.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) return;
      clearTimeout(t);
      c.stdout!.resume();
      res(JSON.parse(line) as { pid: number });
    });
    c.once('exit', (code) => rej(new Error(`station daemon exited (${code}) before it was ready: ${err.slice(-800)}`)));
  });
  return { pid: ready.pid, stop: () => stopChild(c, 10000) };
}

/**
 * The V8 heap used of the daemon whose SQLite store is in `dir`, in KiB, as its /metrics reports it (the scrape
 * token is beside its announce file, mgmt-station/announce.ts); null if it cannot be read.
 */
async function daemonHeapUsedKiB(dir: string): Promise<number | null> {
  try {
    const files = readdirSync(dir);
    const announce = files.find((f) => f.endsWith('.daemon.json'));
    const tokenFile = files.find((f) => f.endsWith('.metrics-token'));
    if (!announce || !tokenFile) return null;
    const control = (JSON.parse(readFileSync(join(dir, announce), 'utf8')) as { control: string }).control;
    const token = readFileSync(join(dir, tokenFile), 'utf8').trim();
    const r = await fetch(`http://${control}/metrics`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10000) });
    const m = /^nodejs_heap_size_used_bytes (\S+)$/m.exec(await r.text());
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** utime + stime of the daemon and of the emulators, in clock ticks, at one moment (for CPU per NIC of a verb). */
interface CpuMark { daemon: number; emulators: number }

function verbFigures(what: string, n: number, runs: { json: any; seconds: number }[], cpu: { daemon: number; emulators: number }): FleetVerbFigures {
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  const failedByCode: Record<string, number> = {};
  let done = 0;
  for (const r of runs) {
    done += Number(r.json.done ?? 0);
    for (const [c, k] of Object.entries((r.json.failedByCode ?? {}) as Record<string, number>)) failedByCode[c] = (failedByCode[c] ?? 0) + k;
  }
  return {
    seconds: figure(seconds, 's', `mgmt-station ${what} of ${n} NICs through the daemon, spawn of the CLI to its exit`),
    perSecond: figure(done / seconds, 'NICs/s', `NICs ${what}ed per second of that wall time`),
    done,
    failedByCode,
    daemonCpuPerNic: figure((cpu.daemon * 10) / Math.max(1, done), 'ms/NIC', `station daemon utime+stime (/proc) during ${what} all, per NIC done`),
    emulatorCpuPerNic: figure((cpu.emulators * 10) / Math.max(1, done), 'ms/NIC', `nic-emulator utime+stime (/proc) during ${what} all, per NIC done`),
  };
}

export async function measureStationScale(requested: number, log: (s: string) => void): Promise<StationScaleResult> {
  const limit = fdLimit();
  // As root with batched UDP, a fleet of 1,000 NICs or more shares one socket per port (nic-emulator/shared-ports.ts):
  // no descriptor per NIC, so one emulator holds the whole fleet (and must: a second would find the ports taken).
  const shared = isRoot && batchUdpUnavailable() === null && requested >= 1000;
  const perEmulator = shared ? requested : Math.floor((limit.hard - 200) / FDS_PER_ENROLLED_NIC / 100) * 100;
  const help = spawnSync(process.execPath, [EMULATOR_CLI, 'start', '--help'], { encoding: 'utf8' }).stdout ?? '';
  const prefixes = help.includes('--id-prefix');
  let nics = requested;
  let emulators = 1;
  let limitedBy: string | undefined;
  if (requested > perEmulator) {
    if (prefixes && isRoot) emulators = Math.ceil(requested / perEmulator);
    else {
      nics = perEmulator;
      limitedBy = `RLIMIT_NOFILE ${limit.hard}: an enrolled NIC holds ${FDS_PER_ENROLLED_NIC} fds in the emulator, so one emulator holds about ${perEmulator}, and ` +
        (isRoot ? 'nic-emulator has no --id-prefix yet (NIC ids would collide across emulators)' : 'port-per-NIC (not root) runs one emulator') + `: ${nics} NICs measured`;
      log(`  ${requested} NICs do not fit one emulator; measuring ${nics}`);
    }
  }
  const dir = tempDir('station-scale', memoryBackedBase().dir);
  const store = `sqlite:${join(dir, 'station.db')}`;
  const key = join(dir, 'cluster.key');
  const psk = join(dir, 'psk.hex');
  writeFileSync(psk, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  const emus: Emulator[] = [];
  let station: Awaited<ReturnType<typeof startStation>> | null = null;
  // Station, emulators and CLI float over the CPUs (a station and its NICs' hosts are not one responder to pin).
  const pinned = currentPinning();
  setPinning('none');
  try {
    for (let i = 0; i < emulators; i++) {
      const count = Math.floor(nics / emulators) + (i < nics % emulators ? 1 : 0);
      const addressing = isRoot ? ['--first-address', `127.${110 + i}.0.1`] : ['--port-base', String(Math.max(1100, 32700 - 3 * count))];
      const args = ['--nics', String(count), '--data-dir', join(dir, `nics-${i}`), ...addressing, ...(emulators > 1 ? ['--id-prefix', `e${i + 1}-`] : [])];
      log(`  emulator ${i + 1}/${emulators}: ${count} NICs`);
      const e = await startEmulator(args, 120000);
      if (e.ready.running !== count) throw new Error(`only ${e.ready.running} of ${count} NICs started: ${e.stderr().slice(-500)}`);
      emus.push(e);
    }
    station = await startStation(dir, store, key);
    await sleep(1000);
    const baseline = rssKiB(station.pid);
    const baselineHeap = await daemonHeapUsedKiB(dir);
    const common = ['--store', store, '--cluster-key', key, '--json'];
    const verbTimeout = 120000 + nics * 20;
    const daemonPid = station.pid;
    const mark = (): CpuMark => ({ daemon: cpuTicks(daemonPid), emulators: emus.reduce((a, e) => a + cpuTicks(e.child.pid!), 0) });
    const since = (m: CpuMark): CpuMark => { const n = mark(); return { daemon: n.daemon - m.daemon, emulators: n.emulators - m.emulators }; };
    log(`  enroll all: ${nics} NICs through the daemon`);
    const enrolls = [];
    const m0 = mark();
    for (const e of emus) enrolls.push(await stationCli(['enroll', 'all', '--psk-file', psk, '--emulator', e.ready.control, ...common], dir, verbTimeout));
    const enroll = verbFigures('enroll', nics, enrolls, since(m0));
    log(`  refresh all`);
    const m1 = mark();
    const refreshRun = await stationCli(['refresh', 'all', ...common], dir, verbTimeout);
    const refresh = verbFigures('refresh', nics, [refreshRun], since(m1));
    // Two poll rounds: every NIC polled at least once since the refresh, the heap settled.
    await sleep(2 * POLL_INTERVAL_MS);
    const rss = rssKiB(station.pid);
    const heap = await daemonHeapUsedKiB(dir);
    const window = 3 * POLL_INTERVAL_MS;
    log(`  steady state: ${window / 1000} s of polling`);
    const c0 = cpuTicks(station.pid);
    const t0 = performance.now();
    await sleep(window);
    const cpu = ((cpuTicks(station.pid) - c0) / 100 / ((performance.now() - t0) / 1000)) * 100;
    const status = (await stationCli(['status', ...common], dir, 30000)).json as { nics?: { lastError: string | null }[] };
    const pollErrors = (status.nics ?? []).filter((x) => x.lastError).length;
    const fds = openFds(station.pid);
    const wl = `${nics} NICs in ${emulators} nic-emulator process(es), ${isRoot ? 'address-per-NIC' : 'port-per-NIC'}, SQLite store on tmpfs`;
    return {
      requested, nics, emulators, ...(limitedBy ? { limitedBy } : {}),
      enroll, refresh,
      baselineRss: figure(baseline / 1024, 'MiB', 'the daemon just after its ready line, no NIC'),
      rssPerNic: figure((rss - baseline) / nics, 'KiB/NIC', `(daemon VmRSS after refresh all and two poll rounds - baseline) / NICs; ${wl}`),
      heapUsedPerNic: heap === null || baselineHeap === null ? null
        : figure((heap - baselineHeap) / nics, 'KiB/NIC', `(daemon V8 heap used, nodejs_heap_size_used_bytes of its /metrics, at the same moments as the RSS) / NICs: live objects and garbage not yet collected; the rest of the RSS per NIC is V8's heap headroom and memory outside the heap (OpenSSL, SQLite)`),
      steadyCpu: figure(cpu, '% of a core', `daemon utime+stime over ${window / 1000} s of its default ${POLL_INTERVAL_MS} ms poll round (System State to every NIC); ${wl}`),
      pollErrors,
      stationFds: fds,
      commands: { enroll: 'mgmt-station enroll all --psk-file FILE --emulator HOST:PORT --json', refresh: 'mgmt-station refresh all --json' },
    };
  } finally {
    await station?.stop();
    for (const e of emus) await stopChild(e.child, 15000);
    setPinning(pinned);
  }
}
