/**
 * `npm run bench -- --only ipmi-lanplus` (issue 18): IPMI 2.0 lanplus on Lifeline's emulated NICs against OpenIPMI's
 * ipmi_sim, and lanplus on a 10,000-NIC fleet.
 *
 *  1. Wall time of `ipmitool -I lanplus ... chassis power status` from spawn to exit (process start included), the
 *     tools' real workload: a session set-up (Get Channel Authentication Capabilities, Get Channel Cipher Suites when
 *     asked, Open Session, RAKP 1-4), Set Session Privilege Level, Get Chassis Status, Close Session. Interleaved
 *     runs (Lifeline and ipmi_sim alternate, the order flipping every round) so both see the same machine load.
 *     ipmitool -C 3 on both (the target compares these); -C 17 on Lifeline, and tried once on ipmi_sim: OpenIPMI
 *     2.0.33's lanserv has no HMAC-SHA256, so it refuses suite 17 ("invalid authentication algorithm").
 *     Before them: one run against each responder fresh from its start (`firstRun`, informational), then the same
 *     warm-up for every responder: `warmupSessions` sessions of ipmitool's messages from the spec console. A
 *     long-running BMC has answered many sessions; Lifeline's JavaScript is compiled by use, and without the warm-up
 *     the runs measured V8's tiering (on a loaded machine an unwarmed emulator spent 3-4 ms of CPU per ipmitool run, a warmed one 1.6-2.4).
 *     The responder's CPU time per run (/proc/PID/task/TID/schedstat, before and after each run) is reported beside.
 *  2. Session set-ups per second: four consoles over UDP (the spec-written console of test/support, the client the
 *     responder's own tests use), each looping Open Session, RAKP 1/2, RAKP 3/4, Close Session; interleaved rounds.
 *     Beside it the responder's CPU time per set-up and the consoles' (the bench process's). Neither side is
 *     saturated by four consoles (each is busy a third to a half of the time): the rate is set by the round trips, and four
 *     is Lifeline's active-session limit, so more consoles would measure refusals, not set-ups.
 *  3. Memory per NIC with lanplus enabled: one emulator process with N NICs and `--ipmi-user`, VmRSS after ready
 *     (lanplus on, no responder made yet: a NIC makes it on its first IPMI datagram) and again after one session
 *     set-up and Close Session on every NIC; the same N without lanplus for the difference; a 1-NIC process is the
 *     baseline subtracted. N is 10,000 unless RLIMIT_NOFILE cannot hold it (then the largest that fits, noted).
 */
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { startEmulator, stopChild, rssKiB, tempDir, memoryBackedBase, openFds, fdLimit, type Emulator } from './processes.js';
import { findIpmiSim, startIpmiSim, type IpmiSim } from './ipmi-sim.js';
import { figure, summarize, type Figure } from './stats.js';
import { assignAddresses } from '../nic-emulator/addressing.js';
// The console the responder's tests are written against (IPMI v2.0 spec, no code shared with the BMC side).
import { IpmiTestConsole } from '../test/support/ipmi-test-console.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const USER = 'bench';
const PASSWORD = 'bench-lanplus-pw';

export interface LanplusPlan { rounds: number; warmupSessions: number; setupSeconds: number; setupRounds: number; fleetNics: number }

interface Target { name: string; address: string; port: number }

export interface ToolWall {
  p50: Figure; mean: Figure; min: Figure; max: Figure; failures: number; runs: number;
  /** The responder's CPU time (all its threads) per run, summed over the runs: what answering one ipmitool costs it. */
  responderCpu: Figure;
}

export interface LanplusResult {
  lifeline: {
    target: string; firstRun: Figure; c3: ToolWall; c17: ToolWall;
    setupsPerSecond: { c3: Figure; c17: Figure }; cpuPerSetup: { c3: Figure; c17: Figure }; clientCpuPerSetup: { c3: Figure; c17: Figure };
  };
  ipmiSim: {
    target: string; firstRun: Figure; c3: ToolWall; c17: string;
    setupsPerSecond: { c3: Figure }; cpuPerSetup: { c3: Figure }; clientCpuPerSetup: { c3: Figure };
  } | { skipped: string };
  /** Lifeline / ipmi_sim, ipmitool -C 3 wall time p50 (the target: <= 1). */
  wallRatioC3?: Figure;
  /** Lifeline / ipmi_sim, responder CPU per ipmitool -C 3 run. */
  toolCpuRatioC3?: Figure;
  /** Lifeline / ipmi_sim, session set-ups per second with 4 consoles (suite 3; the target: >= 1). */
  setupRatioC3?: Figure;
  /** Lifeline / ipmi_sim, responder CPU per session set-up (suite 3; informational). */
  setupCpuRatioC3?: Figure;
  fleet: LanplusFleet | { error: string };
}

export interface LanplusFleet {
  nics: number;
  limitedBy?: string;
  rssPerNicLanplus: Figure;
  rssPerNicAfterSessions: Figure;
  rssPerNicPlain: Figure;
  lanplusExtraPerNic: Figure;
  setupsAcrossFleet: Figure;
}

/** Runs `ipmitool ... chassis power status` once: wall ms from spawn to exit, and whether it printed the answer. */
function ipmitoolOnce(t: Target, suite: 3 | 17): Promise<{ ms: number; ok: boolean; stderr: string }> {
  const args = ['-I', 'lanplus', '-H', t.address, '-p', String(t.port), '-U', USER, '-P', PASSWORD, '-C', String(suite), 'chassis', 'power', 'status'];
  return new Promise((resolve) => {
    const t0 = performance.now();
    const c = spawn('ipmitool', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOME: tmpdir() } });
    let out = '';
    let err = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const kill = setTimeout(() => c.kill('SIGKILL'), 15_000);
    c.once('exit', (code) => {
      const ms = performance.now() - t0;
      clearTimeout(kill);
      resolve({ ms, ok: code === 0 && /Chassis Power is (on|off)/.test(out), stderr: err.trim() });
    });
    c.once('error', (e) => {
      clearTimeout(kill);
      resolve({ ms: performance.now() - t0, ok: false, stderr: e.message });
    });
  });
}

function wall(samples: number[], failures: number, cpuNs: number, what: string): ToolWall {
  const s = summarize(samples.length ? samples : [NaN]);
  const runs = samples.length + failures;
  return {
    p50: figure(s.p50, 'ms', `${what}; p50 of ${samples.length} runs`),
    mean: figure(s.mean, 'ms', what),
    min: figure(s.min, 'ms', what),
    max: figure(s.max, 'ms', what),
    failures,
    runs,
    responderCpu: figure(cpuNs / 1000 / runs, 'µs/run', `${what}; the responder's CPU time per run (user + system, all its threads, /proc/PID/task/*/schedstat, read before and after each run)`),
  };
}

/**
 * CPU time a process has run, all its threads, in ns: the first field of /proc/PID/task/TID/schedstat
 * (sum_exec_runtime, exact, where /proc/PID/stat counts 10 ms ticks: an ipmitool run costs a responder about 1 ms).
 */
export function cpuNs(pid: number): number {
  let sum = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      /* the thread ended between the listing and the read */
    }
  }
  return sum;
}

/** A console on its own socket: Open Session .. RAKP 4, then Close Session; resolves true when all of it worked. */
class SetupConsole {
  private waiting: ((d: Uint8Array | null) => void) | null = null;
  private constructor(private readonly s: dgram.Socket, public to: Target, private readonly suite: 3 | 17) {
    s.on('message', (m) => {
      const w = this.waiting;
      this.waiting = null;
      w?.(new Uint8Array(m));
    });
  }

  static async open(to: Target, suite: 3 | 17): Promise<SetupConsole> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    return new SetupConsole(s, to, suite);
  }

  private ask(d: Uint8Array): Promise<Uint8Array | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting = null;
        resolve(null);
      }, 1000);
      this.waiting = (m) => {
        clearTimeout(t);
        resolve(m);
      };
      this.s.send(d, this.to.port, this.to.address);
    });
  }

  /** Open Session, RAKP 1/2, RAKP 3/4, every HMAC checked: the console's session id (4 bytes), or null. */
  private async handshake(c: IpmiTestConsole): Promise<Uint8Array | null> {
    const os = await this.ask(c.openSession());
    if (!os || c.onOpenSession(os).status !== 0) return null;
    const r2 = await this.ask(c.rakp1());
    if (!r2 || !c.onRakp2(r2).hmacOk) return null;
    const r4 = await this.ask(c.rakp3());
    if (!r4 || !c.onRakp4(r4).icvOk) return null;
    return Uint8Array.of(c.sidC & 0xff, (c.sidC >>> 8) & 0xff, (c.sidC >>> 16) & 0xff, c.sidC >>> 24);
  }

  async setup(): Promise<boolean> {
    const c = new IpmiTestConsole({ suite: this.suite, user: USER, password: PASSWORD, random: (n) => new Uint8Array(randomBytes(n)) });
    try {
      const sid = await this.handshake(c);
      if (!sid) return false;
      const closed = await this.ask(c.request(0x06, 0x3c, sid));
      return !!closed && c.onResponse(closed).cc === 0;
    } catch {
      return false;
    }
  }

  /**
   * The messages of `ipmitool -I lanplus ... chassis power status`, in its order: Get Channel Authentication
   * Capabilities, Open Session, RAKP 1-4, Set Session Privilege Level (ADMINISTRATOR), Get Chassis Status, Close
   * Session. The warm-up: the same for every responder.
   */
  async toolSession(): Promise<boolean> {
    const c = new IpmiTestConsole({ suite: this.suite, user: USER, password: PASSWORD, random: (n) => new Uint8Array(randomBytes(n)) });
    try {
      if (!(await this.ask(c.gcac()))) return false;
      const sid = await this.handshake(c);
      if (!sid) return false;
      for (const [netFn, cmd, data] of [[0x06, 0x3b, [0x04]], [0x00, 0x01, []], [0x06, 0x3c, [...sid]]] as [number, number, number[]][]) {
        const a = await this.ask(c.request(netFn, cmd, data));
        if (!a || c.onResponse(a).cc !== 0) return false;
      }
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    return new Promise((r) => this.s.close(() => r()));
  }
}

/**
 * Set-ups completed per second by `consoles` consoles looping for `seconds`; the responder's CPU time (`pid`) and
 * the bench's own (the consoles') over the same time.
 */
async function setupsPerSecond(t: Target, pid: number, suite: 3 | 17, seconds: number, consoles = 4): Promise<{ done: number; failed: number; seconds: number; cpuNs: number; clientUs: number }> {
  const cs = await Promise.all(Array.from({ length: consoles }, () => SetupConsole.open(t, suite)));
  let done = 0;
  let failed = 0;
  const c0 = cpuNs(pid);
  const u0 = process.cpuUsage();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(cs.map(async (c) => {
    while (performance.now() < end) {
      if (await c.setup()) done++;
      else failed++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuNs(pid) - c0;
  const u = process.cpuUsage(u0);
  await Promise.all(cs.map((c) => c.close()));
  return { done, failed, seconds: elapsed, cpuNs: cpu, clientUs: u.user + u.system };
}

/** The warm-up of a responder: `sessions` ipmitool-like sessions from one console; returns how many failed. */
async function warmUp(t: Target, suite: 3 | 17, sessions: number): Promise<number> {
  const c = await SetupConsole.open(t, suite);
  let failed = 0;
  try {
    for (let i = 0; i < sessions; i++) if (!(await c.toolSession())) failed++;
  } finally {
    await c.close();
  }
  return failed;
}

/** Where the emulator's NICs listen (nic-emulator/addressing.ts decides; `nic(i)` is NIC i + 1's clear port). */
function placement(salt: number, nics: number): { args: string[]; nic: (i: number) => Target } {
  const firstAddress = isRoot ? `127.${150 + ((process.pid + salt) % 40)}.0.1` : '127.0.0.1';
  // Port-per-NIC below the ephemeral range (32768+), so no client socket holds one of the ports.
  const portBase = isRoot ? null : Math.max(1100, 32700 - 3 * nics - 3 * (salt % 8));
  const addrs = assignAddresses({ nics, firstAddress, portBase });
  return {
    args: portBase === null ? ['--first-address', firstAddress] : ['--port-base', String(portBase)],
    nic: (i) => ({ name: 'Lifeline', address: addrs[i].address, port: addrs[i].clearPort }),
  };
}

export async function measureLanplus(plan: LanplusPlan, log: (s: string) => void): Promise<LanplusResult> {
  const place = placement(7, 1);
  const emu = await startEmulator(['--nics', '1', '--ipmi-user', `${USER}:${PASSWORD}`, '--data-dir', tempDir('lanplus'), ...place.args], 20_000);
  const lifeline = place.nic(0);
  let sim: IpmiSim | null = null;
  let skipped: string | null = null;
  const bin = findIpmiSim();
  if (!bin) skipped = 'ipmi_sim not installed (Debian: apt-get install openipmi)';
  try {
    if (bin) {
      sim = await startIpmiSim(bin, '127.0.0.1', 5000, [`user 2 true "${USER}" "${PASSWORD}" admin 10 none md5 straight`]);
    }
    const simTarget: Target | null = sim ? { name: 'ipmi_sim', address: sim.address, port: sim.port } : null;
    const pidOf = (t: Target) => (t === lifeline ? emu.ready.pid : sim!.child.pid!);
    const lc3: number[] = [];
    const lc17: number[] = [];
    const sc3: number[] = [];
    const fails = { lc3: 0, lc17: 0, sc3: 0 };
    const cpu = { lc3: 0, lc17: 0, sc3: 0 };
    const failText: string[] = [];
    // The first run against a responder that has answered nothing yet (after one `ipmitool -V`, so the tool's own
    // pages are in the cache for both): informational, what the first command after a start costs.
    await new Promise<void>((r) => spawn('ipmitool', ['-V'], { stdio: 'ignore' }).once('exit', () => r()).once('error', () => r()));
    const firstLifeline = await ipmitoolOnce(lifeline, 3);
    const firstSim = simTarget ? await ipmitoolOnce(simTarget, 3) : null;
    // Warm-up, the same for every responder and not counted: `warmupSessions` sessions of ipmitool's messages from
    // the spec console (a long-running BMC has answered many; Lifeline's JavaScript is compiled by use), then one
    // ipmitool run of each kind.
    log(`  warm-up: ${plan.warmupSessions} ipmitool-like sessions per target and suite, then one ipmitool run each`);
    const warmFails: string[] = [];
    for (const [t, s] of [[lifeline, 3], [lifeline, 17], ...(simTarget ? [[simTarget, 3]] : [])] as [Target, 3 | 17][]) {
      const f = await warmUp(t, s, plan.warmupSessions);
      if (f) warmFails.push(`${t.name} -C ${s}: ${f} of ${plan.warmupSessions} failed`);
      await ipmitoolOnce(t, s);
    }
    if (warmFails.length) log(`  warm-up sessions that failed: ${warmFails.join(', ')}`);
    log(`  ipmitool -I lanplus chassis power status: ${plan.rounds} interleaved rounds (Lifeline -C 3, -C 17${simTarget ? '; ipmi_sim -C 3' : ''})`);
    for (let r = 0; r < plan.rounds; r++) {
      const order: [Target, 3 | 17, number[], keyof typeof fails][] = [[lifeline, 3, lc3, 'lc3'], [lifeline, 17, lc17, 'lc17']];
      if (simTarget) order.push([simTarget, 3, sc3, 'sc3']);
      if (r % 2 === 1) order.reverse();
      for (const [t, s, samples, k] of order) {
        const c0 = cpuNs(pidOf(t));
        const x = await ipmitoolOnce(t, s);
        cpu[k] += cpuNs(pidOf(t)) - c0;
        if (x.ok) samples.push(x.ms);
        else {
          fails[k]++;
          if (failText.length < 3) failText.push(`${t.name} -C ${s}: ${x.stderr.split('\n').at(-1)}`);
        }
      }
    }
    if (failText.length) log(`  failed runs: ${failText.join(' | ')}`);
    let simC17 = 'not tried';
    if (simTarget) {
      const x = await ipmitoolOnce(simTarget, 17);
      simC17 = x.ok ? 'accepted' : `refused: ${x.stderr.split('\n').filter(Boolean)[0] ?? 'no answer'}`;
    }

    log(`  session set-ups per second: 4 consoles, ${plan.setupRounds} interleaved rounds of ${plan.setupSeconds} s`);
    const setups = { lc3: { done: 0, s: 0, cpuNs: 0, clientUs: 0 }, lc17: { done: 0, s: 0, cpuNs: 0, clientUs: 0 }, sc3: { done: 0, s: 0, cpuNs: 0, clientUs: 0 } };
    const setupFails: string[] = [];
    for (let r = 0; r < plan.setupRounds; r++) {
      const order: [Target, 3 | 17, keyof typeof setups][] = [[lifeline, 3, 'lc3'], [lifeline, 17, 'lc17']];
      if (simTarget) order.push([simTarget, 3, 'sc3']);
      if (r % 2 === 1) order.reverse();
      for (const [t, s, k] of order) {
        const x = await setupsPerSecond(t, pidOf(t), s, plan.setupSeconds);
        setups[k].done += x.done;
        setups[k].s += x.seconds;
        setups[k].cpuNs += x.cpuNs;
        setups[k].clientUs += x.clientUs;
        if (x.failed) setupFails.push(`${t.name} -C ${s}: ${x.failed} failed`);
      }
    }
    if (setupFails.length) log(`  set-ups that failed: ${setupFails.join(', ')}`);
    const rate = (k: keyof typeof setups) => setups[k].done / setups[k].s;
    const cpuPer = (k: keyof typeof setups) => setups[k].cpuNs / 1000 / setups[k].done;
    const clientPer = (k: keyof typeof setups) => setups[k].clientUs / setups[k].done;
    const toolWhat = (who: string, s: number) => `ipmitool -I lanplus -C ${s} chassis power status against ${who}, spawn to exit (process start included), interleaved, after the warm-up`;
    const setupWhat = (who: string, s: number) => `session set-ups against ${who}, suite ${s}: 4 consoles over UDP each looping Open Session, RAKP 1-4, Close Session`;
    const cpuWhat = (who: string, s: number) => `${setupWhat(who, s)}; the responder's CPU time (user + system, all its threads, /proc/PID/task/*/schedstat) per completed set-up`;
    const clientWhat = (who: string, s: number) => `${setupWhat(who, s)}; the consoles' CPU time (the bench process, process.cpuUsage) per completed set-up`;
    const firstWhat = (who: string) => `the first ipmitool -I lanplus -C 3 chassis power status against ${who} after its start (nothing answered before), spawn to exit; informational`;

    const lifelineOut = {
      target: `${lifeline.address}:${lifeline.port} (nic-emulator, 1 NIC)`,
      firstRun: figure(firstLifeline.ok ? firstLifeline.ms : NaN, 'ms', firstWhat('Lifeline')),
      c3: wall(lc3, fails.lc3, cpu.lc3, toolWhat('Lifeline', 3)),
      c17: wall(lc17, fails.lc17, cpu.lc17, toolWhat('Lifeline', 17)),
      setupsPerSecond: { c3: figure(rate('lc3'), 'per s', setupWhat('Lifeline', 3)), c17: figure(rate('lc17'), 'per s', setupWhat('Lifeline', 17)) },
      cpuPerSetup: { c3: figure(cpuPer('lc3'), 'µs/set-up', cpuWhat('Lifeline', 3)), c17: figure(cpuPer('lc17'), 'µs/set-up', cpuWhat('Lifeline', 17)) },
      clientCpuPerSetup: { c3: figure(clientPer('lc3'), 'µs/set-up', clientWhat('Lifeline', 3)), c17: figure(clientPer('lc17'), 'µs/set-up', clientWhat('Lifeline', 17)) },
    };
    const out: LanplusResult = { lifeline: lifelineOut, ipmiSim: { skipped: skipped ?? 'not started' }, fleet: { error: 'not measured' } };
    if (simTarget) {
      const simOut = {
        target: `${simTarget.address}:${simTarget.port} (OpenIPMI ipmi_sim)`,
        firstRun: figure(firstSim?.ok ? firstSim.ms : NaN, 'ms', firstWhat('ipmi_sim')),
        c3: wall(sc3, fails.sc3, cpu.sc3, toolWhat('ipmi_sim', 3)),
        c17: simC17,
        setupsPerSecond: { c3: figure(rate('sc3'), 'per s', setupWhat('ipmi_sim', 3)) },
        cpuPerSetup: { c3: figure(cpuPer('sc3'), 'µs/set-up', cpuWhat('ipmi_sim', 3)) },
        clientCpuPerSetup: { c3: figure(clientPer('sc3'), 'µs/set-up', clientWhat('ipmi_sim', 3)) },
      };
      out.ipmiSim = simOut;
      out.wallRatioC3 = figure(lifelineOut.c3.p50.value / simOut.c3.p50.value, 'ratio', 'ipmitool -C 3 chassis power status wall time p50, Lifeline / ipmi_sim, same runs interleaved');
      out.toolCpuRatioC3 = figure(lifelineOut.c3.responderCpu.value / simOut.c3.responderCpu.value, 'ratio', 'responder CPU per ipmitool -C 3 chassis power status run, Lifeline / ipmi_sim, same runs interleaved');
      out.setupRatioC3 = figure(rate('lc3') / rate('sc3'), 'ratio', 'session set-ups per second (suite 3, 4 consoles), Lifeline / ipmi_sim');
      out.setupCpuRatioC3 = figure(cpuPer('lc3') / cpuPer('sc3'), 'ratio', "responder CPU per session set-up (suite 3, 4 consoles), Lifeline / ipmi_sim, same rounds interleaved");
    }
    // The 1-NIC emulator is done: a fleet of 1,000+ NICs binds 0.0.0.0:623 (shared sockets), which its 127.x:623 would block.
    await stopChild(emu.child);
    out.fleet = await measureLanplusFleet(plan.fleetNics, log).catch((e: Error) => ({ error: e.message }));
    return out;
  } finally {
    await sim?.stop();
    await stopChild(emu.child);
  }
}

/** Memory per NIC with lanplus on (see the file comment, 3). */
async function measureLanplusFleet(requested: number, log: (s: string) => void): Promise<LanplusFleet> {
  const limit = fdLimit();
  const store = memoryBackedBase();
  const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const users = ['--ipmi-user', `${USER}:${PASSWORD}`];
  const start = async (n: number, lanplus: boolean, salt: number): Promise<{ emu: Emulator; nic: (i: number) => Target }> => {
    const place = placement(salt, n);
    const emu = await startEmulator(['--nics', String(n), '--data-dir', tempDir(`lanplus-fleet-${n}`, store.dir), ...(lanplus ? users : []), ...place.args], 90_000);
    if (emu.ready.running !== n) {
      await stopChild(emu.child);
      throw new Error(`only ${emu.ready.running} of ${n} NICs started: ${emu.stderr().slice(-300)}`);
    }
    await settle(700);
    return { emu, nic: place.nic };
  };
  log('  fleet: 1-NIC baseline with lanplus');
  const base = await start(1, true, 11);
  const baseRss = rssKiB(base.emu.ready.pid);
  const baseFds = openFds(base.emu.ready.pid);
  await stopChild(base.emu.child);
  let n = requested;
  let limitedBy: string | undefined;
  // One file descriptor per NIC: its clear socket (no SA: no 664; not enrolled: no IKE port; EEPROM files closed).
  if (baseFds + n + 64 > limit.hard) {
    n = Math.max(2, Math.floor((limit.hard - baseFds - 64) / 500) * 500);
    limitedBy = `RLIMIT_NOFILE hard limit ${limit.hard}: measured ${n} NICs`;
  }
  log(`  fleet: ${n} NICs without lanplus`);
  const plain = await start(n, false, 13);
  const plainRss = rssKiB(plain.emu.ready.pid);
  await stopChild(plain.emu.child, 15_000);
  log(`  fleet: ${n} NICs with lanplus, then a session set-up and Close Session on every NIC`);
  const fleet = await start(n, true, 17);
  try {
    const idleRss = rssKiB(fleet.emu.ready.pid);
    let next = 0;
    let failed = 0;
    const t0 = performance.now();
    const workers = await Promise.all(Array.from({ length: 32 }, () => SetupConsole.open(fleet.nic(0), 17)));
    await Promise.all(workers.map(async (w) => {
      for (let i = next++; i < n; i = next++) {
        w.to = fleet.nic(i);
        if (!(await w.setup())) failed++;
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    await Promise.all(workers.map((w) => w.close()));
    if (failed > n / 100) throw new Error(`${failed} of ${n} set-ups across the fleet failed`);
    await settle(700);
    const afterRss = rssKiB(fleet.emu.ready.pid);
    const per = (rss: number) => (rss - baseRss) / (n - 1);
    const wl = `${n} NICs in one nic-emulator process (${isRoot ? 'address-per-NIC' : 'port-per-NIC'}, EEPROM files on ${store.kind}), (VmRSS(N) - VmRSS(1 NIC)) / (N - 1)`;
    return {
      nics: n,
      ...(limitedBy ? { limitedBy } : {}),
      rssPerNicLanplus: figure(per(idleRss), 'KiB/NIC', `${wl}; --ipmi-user, after start (lanplus on, no IPMI traffic yet)`),
      rssPerNicAfterSessions: figure(per(afterRss), 'KiB/NIC', `${wl}; --ipmi-user, after one suite-17 session set-up and Close Session on every NIC (each NIC's responder made)`),
      rssPerNicPlain: figure(per(plainRss), 'KiB/NIC', `${wl}; without --ipmi-user, after start`),
      lanplusExtraPerNic: figure(per(afterRss) - per(plainRss), 'KiB/NIC', 'after a session on every NIC, minus the same fleet without lanplus'),
      setupsAcrossFleet: figure((n - failed) / seconds, 'per s', `session set-up + Close Session on each of ${n} NICs, 32 consoles in flight, suite 17 (${failed} failed)`),
    };
  } finally {
    await stopChild(fleet.emu.child, 15_000);
  }
}
