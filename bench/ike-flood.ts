/**
 * IKE_SA_INIT flood (issue 15, `dos` section; test/e2e/ike-flood.test.ts runs the same): one emulated NIC enrolled
 * over IKEv2, then `mgmt-station refresh nic-1 --no-daemon` one after another — each a new IKE SA (IKE_SA_INIT,
 * IKE_AUTH, commit), what CLI refreshes, enrolments and a restarted daemon need — first without a flood, then while
 * this process sends well-formed IKE_SA_INIT requests (valid KE, fresh SPIi each) to the NIC's IKE port at `rate`
 * per second from `sources` addresses that hold no IKE state (127.x.y.z: what a spoofing attacker's answers reach is
 * nobody's business here; they come back to sockets that never read IKE). Reported: refreshes that succeeded with
 * and without the flood and their times, the emulator's CPU (from /proc/PID/stat) and RSS during the flood and
 * before it, a clear Presence Ping's round trip before and during the flood (does the emulator stay responsive),
 * and the host agent's own counters (DH computations, cookies sent, drops by reason).
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes, randomFillSync } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ControlClient } from '../lib/control-client.js';
import { DH_CURVE25519, EXCHANGE, PAYLOAD } from '../protocol/ike/constants.js';
import { x25519PublicKey } from '../protocol/ike/ike-crypto.js';
import { encodeMessage } from '../protocol/ike/ike-message.js';
import { encodeKe, encodeNonce } from '../protocol/ike/ike-payloads.js';
import { ikeOffer } from '../protocol/ike/proposals.js';
import { encodeSa } from '../protocol/ike/sa-payload.js';
import { presencePingProbe } from './probes.js';
import { rssKiB, startEmulator, stopChild, tempDir, type Emulator } from './processes.js';
import { figure, percentile, type Figure } from './stats.js';

const STATION_CLI = resolve(import.meta.dirname, '../mgmt-station/cli.js');

export interface IkeFloodPlan {
  /** Spoofed IKE_SA_INIT per second. */
  rate: number;
  /** Refreshes under the flood (the target: all but one succeed). */
  refreshes: number;
  /** Refreshes before the flood, for the times without it. */
  baselineRefreshes: number;
  /** Source addresses the flood comes from. */
  sources: number;
  /** Each refresh's --timeout. */
  refreshTimeoutMs: number;
}

export const DEFAULT_FLOOD_PLAN: IkeFloodPlan = { rate: 3000, refreshes: 20, baselineRefreshes: 5, sources: 16, refreshTimeoutMs: 10_000 };

export interface IkeFloodResult {
  plan: IkeFloodPlan;
  flood: { sent: number; seconds: Figure; achievedRate: Figure };
  refreshes: { attempted: number; succeeded: number; failures: string[]; p50: Figure; max: Figure };
  baseline: { attempted: number; succeeded: number; p50: Figure };
  /** Refresh p50 under the flood / without it, same run. */
  refreshP50Ratio: Figure;
  emulator: { cpuDuringFlood: Figure; cpuWithoutFlood: Figure; rssBefore: Figure; rssPeak: Figure; rssGrowth: Figure };
  ping: { p50Before: Figure; p50During: Figure; ratio: Figure; lostDuring: number };
  hostAgent: { dhComputations: number; cookiesSent: number; halfOpenExpired: number; halfOpenEvicted: number; drops: Record<string, number> };
}

const CLK_TCK = ((): number => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** A CPU meter over a window: % of one core the process used. */
function cpuMeter(pid: number): () => number {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  return () => ((cpuSeconds(pid) - c0) / ((performance.now() - t0) / 1000)) * 100;
}

function run(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((res) => {
    execFile(process.execPath, [STATION_CLI, ...args], { timeout: timeoutMs, encoding: 'utf8' }, (e, stdout, stderr) => {
      res({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

/** Well-formed IKE_SA_INIT requests (valid X25519 KE, so only a cookie check stops a DH); SPIi replaced per send. */
function initPool(n: number): Buffer[] {
  const pool: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const payloads = [encodeSa(ikeOffer()), encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(new Uint8Array(randomBytes(32)))), encodeNonce(new Uint8Array(randomBytes(32)))];
    const m = encodeMessage({ spiI: new Uint8Array(randomBytes(8)), spiR: new Uint8Array(8), exchange: EXCHANGE.IKE_SA_INIT, initiator: true, response: false, messageId: 0 }, payloads);
    pool.push(Buffer.from(m));
  }
  return pool;
}

/** Sends `rate` IKE_SA_INIT/s to `to` from `sources` sockets until stopped. */
async function startFlood(rate: number, sources: number, to: { address: string; port: number }): Promise<{ stop: () => Promise<{ sent: number; seconds: number }> }> {
  const pool = initPool(256);
  const base = 60 + (process.pid % 150);
  const socks: dgram.Socket[] = [];
  for (let i = 0; i < sources; i++) {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r, j) => {
      s.once('error', j);
      s.bind({ address: `127.${base}.${200 + (i >> 8)}.${(i & 0xff) + 1}`, port: 0 }, () => r());
    });
    s.on('message', () => undefined); // the cookies come back here: an attacker that spoofs never sees them
    socks.push(s);
  }
  let sent = 0;
  const t0 = performance.now();
  const tick = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate) - sent;
    for (let k = 0; k < due; k++) {
      const m = pool[sent % pool.length];
      randomFillSync(m, 0, 8); // a fresh SPIi: a new IKE SA each time (§2.6 cookies are per SPIi, Ni and address)
      socks[sent % socks.length].send(m, to.port, to.address);
      sent++;
    }
  }, 4);
  return {
    stop: async () => {
      clearInterval(tick);
      const seconds = (performance.now() - t0) / 1000;
      await Promise.all(socks.map((s) => new Promise<void>((r) => s.close(() => r()))));
      return { sent, seconds };
    },
  };
}

/** Clear Presence Pings every `everyMs` to the NIC's clear port; round trips in µs. */
async function pinger(to: { address: string; port: number }, everyMs: number): Promise<{ stop: () => Promise<{ rtts: number[]; lost: number }> }> {
  const probe = presencePingProbe();
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind({ address: '127.0.0.1', port: 0 }, () => r()));
  const sentAt = new Map<number, number>();
  const rtts: number[] = [];
  let tag = 0;
  s.on('message', (b) => {
    const t = probe.answerTag(new Uint8Array(b.buffer, b.byteOffset, b.byteLength));
    const at = sentAt.get(t);
    if (at === undefined) return;
    sentAt.delete(t);
    rtts.push((performance.now() - at) * 1000);
  });
  const timer = setInterval(() => {
    tag = (tag + 1) & 0xff;
    sentAt.set(tag, performance.now());
    s.send(probe.request(tag), to.port, to.address);
  }, everyMs);
  return {
    stop: async () => {
      clearInterval(timer);
      await new Promise((r) => setTimeout(r, 200));
      const lost = sentAt.size;
      await new Promise<void>((r) => s.close(() => r()));
      return { rtts, lost };
    },
  };
}

export async function measureIkeFlood(plan: IkeFloodPlan, log: (s: string) => void): Promise<IkeFloodResult> {
  const dir = tempDir('ike-flood');
  const root = process.getuid?.() === 0;
  const emu: Emulator = await startEmulator(['--nics', '1', '--data-dir', join(dir, 'nics'), '--boot-delay', '300', ...(root ? ['--first-address', `127.${60 + (process.pid % 100)}.88.1`] : ['--port-base', String(43000 + (process.pid % 500) * 3)])], 15000);
  const ctl = ControlClient.parse(emu.ready.control);
  const pid = emu.ready.pid;
  try {
    const common = ['--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key'), '--emulator', emu.ready.control, '--no-daemon'];
    writeFileSync(join(dir, 'psk.hex'), randomBytes(32).toString('hex'), { mode: 0o600 });
    const e = await run(['enroll', 'nic-1', '--psk-file', join(dir, 'psk.hex'), ...common], 20_000);
    if (e.code !== 0) throw new Error(`enroll failed: ${e.stderr.trim()}`);
    const nic = (await ctl.get('/v1/nics/nic-1')) as { address: string; ports: { clear: number; ike: number } };
    const ike = { address: nic.address, port: nic.ports.ike };
    const clear = { address: nic.address, port: nic.ports.clear };
    const refresh = () => run(['refresh', 'nic-1', '--json', '--timeout', String(plan.refreshTimeoutMs), ...common], plan.refreshTimeoutMs + 10_000);

    // Without the flood: refresh times, the emulator's CPU while refreshing, a ping's round trip.
    log(`dos: ${plan.baselineRefreshes} refreshes (each a new IKE SA) without a flood`);
    const rssBefore = rssKiB(pid);
    let ping = await pinger(clear, 20);
    const quietCpu = cpuMeter(pid);
    const baseTimes: number[] = [];
    let baseOk = 0;
    for (let i = 0; i < plan.baselineRefreshes; i++) {
      const r = await refresh();
      if (r.code === 0) {
        baseOk++;
        baseTimes.push(r.ms);
      }
    }
    const cpuWithoutFlood = quietCpu();
    const before = await ping.stop();

    // The flood, and the same refreshes under it.
    log(`dos: ${plan.rate} spoofed IKE_SA_INIT/s from ${plan.sources} addresses; ${plan.refreshes} refreshes under it`);
    const flood = await startFlood(plan.rate, plan.sources, ike);
    await new Promise((r) => setTimeout(r, 1000)); // the flood is on before the first refresh starts
    ping = await pinger(clear, 20);
    const floodCpu = cpuMeter(pid);
    let rssPeak = rssKiB(pid);
    const rssTimer = setInterval(() => {
      try {
        rssPeak = Math.max(rssPeak, rssKiB(pid));
      } catch {
        /* the emulator died: the refreshes say so */
      }
    }, 200);
    const times: number[] = [];
    const failures: string[] = [];
    for (let i = 0; i < plan.refreshes; i++) {
      const r = await refresh();
      if (r.code === 0) times.push(r.ms);
      else failures.push(`exit ${r.code}: ${r.stderr.trim().split('\n').pop()}`);
    }
    const cpuDuringFlood = floodCpu();
    clearInterval(rssTimer);
    const during = await ping.stop();
    const f = await flood.stop();
    const st = (await ctl.get('/v1/nics/nic-1')) as { hostAgent: { drops: Record<string, number>; flood: { dhComputations: number; cookiesSent: number; halfOpenExpired: number; halfOpenEvicted: number } } };
    const p50 = (xs: number[]) => (xs.length ? percentile(xs, 50) : NaN);
    const pingBefore = p50(before.rtts);
    const pingDuring = p50(during.rtts);
    const work = `${plan.rate} spoofed IKE_SA_INIT/s from ${plan.sources} addresses, mgmt-station refresh --no-daemon one after another (a new IKE SA each)`;
    return {
      plan,
      flood: { sent: f.sent, seconds: figure(f.seconds, 's', 'flood duration'), achievedRate: figure(f.sent / f.seconds, 'per s', 'IKE_SA_INIT sent per second') },
      refreshes: { attempted: plan.refreshes, succeeded: times.length, failures, p50: figure(p50(times), 'ms', work), max: figure(times.length ? Math.max(...times) : NaN, 'ms', work) },
      baseline: { attempted: plan.baselineRefreshes, succeeded: baseOk, p50: figure(p50(baseTimes), 'ms', 'the same refreshes without a flood') },
      refreshP50Ratio: figure(p50(times) / p50(baseTimes), 'ratio', 'refresh p50 under the flood / without it, same run'),
      emulator: {
        cpuDuringFlood: figure(cpuDuringFlood, '% of a core', `emulator (1 NIC) during the flood and the refreshes; ${work}`),
        cpuWithoutFlood: figure(cpuWithoutFlood, '% of a core', 'emulator during the refreshes without a flood'),
        rssBefore: figure(rssBefore / 1024, 'MiB', 'emulator RSS before the flood'),
        rssPeak: figure(rssPeak / 1024, 'MiB', 'emulator RSS, highest sample (every 200 ms) during the flood'),
        rssGrowth: figure((rssPeak - rssBefore) / 1024, 'MiB', 'RSS peak during the flood - RSS before it'),
      },
      ping: {
        p50Before: figure(pingBefore, 'µs', 'clear Presence Ping every 20 ms, without a flood'),
        p50During: figure(pingDuring, 'µs', 'clear Presence Ping every 20 ms, during the flood'),
        ratio: figure(pingDuring / pingBefore, 'ratio', 'clear Presence Ping p50 during the flood / before it, same run'),
        lostDuring: during.lost,
      },
      hostAgent: { ...st.hostAgent.flood, drops: st.hostAgent.drops },
    };
  } finally {
    await stopChild(emu.child);
  }
}
