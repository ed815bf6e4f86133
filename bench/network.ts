/**
 * Round trips over real UDP on loopback: an emulated NIC in a `nic-emulator` child process (clear
 * Presence Ping on its 623 port, secure System State on its 664 port), and OpenIPMI's ipmi_sim for the
 * same Presence Ping workload. The bench process is the client, so on a 2-core machine the responder and the
 * client each have a core: a Node dgram socket for the sequential round trips (it polls for its answer as the
 * station does), and for the in-flight workloads the batched load generator of bench/batch-load.ts (or, with
 * `--load-client dgram`, the same dgram socket). The bench's client is minimal (a request is sealed before its
 * clock starts); beside it, mgmt-station's own code reads System State from a second NIC of the same emulator
 * (bench/station-load.ts), sequentially only, as an informational figure.
 *
 * The workloads run in interleaved rounds (clear, secure, station, ..., ipmi_sim, clear, secure, ...) and each
 * figure pools its rounds: on a shared machine the load changes from second to second, and interleaving
 * makes every ratio compare figures taken under the same conditions.
 */
import type dgram from 'node:dgram';
import { ControlClient } from '../lib/control-client.js';
import { saToJson } from '../lib/sa-json.js';
import { openClient, sequential, window, type Probe, type Target, type WindowResult } from './udp-load.js';
import { AnswerPoll } from '../lib/answer-poll.js';
import { presencePingProbe, randomSaPair, secureStateProbe } from './probes.js';
import { syncWithNic } from '../lib/sync-client.js';
import { startEmulator, stopChild, rssKiB, tempDir, spawnChild, type Emulator } from './processes.js';
import type { ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { findIpmiSim, startIpmiSim, type IpmiSim } from './ipmi-sim.js';
import { figure, summarize, type Figure } from './stats.js';
import { openStationLoad, type StationLoad } from './station-load.js';
import { openBatchClient, type BatchClient } from './batch-load.js';

export interface LoadPlan {
  rounds: number; pings: number; warmup: number; inFlight: number; seconds: number; warmupSeconds: number;
  /** How long the client polls for an answer after each send, as the station does (lib/answer-poll.ts); 0: it sleeps. */
  clientPollUs: number;
  /** The in-flight workloads' client: `batch` (bench/batch-load.ts, not the bottleneck) or the dgram client of udp-load.ts. */
  loadClient: 'batch' | 'dgram';
  /** The `net` emulators' socket layer (nic-emulator --udp-io). */
  nicUdpIo: 'batch' | 'dgram';
}

export interface RoundTrip {
  p50: Figure; p99: Figure; mean: Figure; lost: number; throughput: Figure; loadedP50: Figure; windowLost: number; roundP50s: number[]; roundThroughputs: number[];
  /** CPU time of the responder process per request (user + system, /proc/PID/stat), sequential and in flight. */
  responderCpu: { sequential: Figure; inFlight: Figure } | null;
  /** CPU time of the bench's own client per request with requests in flight (process.cpuUsage). */
  clientCpuInFlight: Figure;
}

export interface NicPlacement { mode: 'address-per-NIC' | 'port-per-NIC'; args: string[]; clear: Target; secure: Target }

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A fresh 127.x.y.1 as root (standard ports 623/664, as rmcpping needs), else a port-per-NIC base. */
export function placeOneNic(): NicPlacement {
  if (isRoot) {
    const a = `127.${100 + (process.pid % 100)}.${1 + Math.floor(Math.random() * 250)}.1`;
    return { mode: 'address-per-NIC', args: ['--first-address', a], clear: { address: a, port: 623 }, secure: { address: a, port: 664 } };
  }
  const base = 20000 + 3 * Math.floor(Math.random() * 3000);
  return { mode: 'port-per-NIC', args: ['--port-base', String(base)], clear: { address: '127.0.0.1', port: base }, secure: { address: '127.0.0.1', port: base + 1 } };
}

/** System State read by the station's own code (bench/station-load.ts), sequential only, in the same rounds. */
export interface StationRoundTrip {
  p50: Figure; p99: Figure; mean: Figure; lost: number; roundP50s: number[];
  /** Its p50 over the clear Presence Ping's and over the bench client's secure System State's, same run. */
  overClearP50: Figure; overBenchClientP50: Figure;
}

export interface NicNetworkResult {
  placement: string; clear: RoundTrip; secure: RoundTrip; secureOverClearP50: Figure; emulatorRss: Figure; nicDropped: Record<string, number>;
  /** The secure System State round trip through mgmt-station's own code path, against the same emulator. */
  station: StationRoundTrip | { error: string };
  /** The same clear workload against a second emulator that never busy-polls (--busy-poll-us 0): what polling buys. */
  clearSleeping: RoundTrip | { error: string };
}

export type IpmiSimResult = { skipped: string } | { address: string; clear: RoundTrip; rss: Figure };

export interface NodeFloorResult { clear: RoundTrip; note: string }

export interface NetworkResult { lifeline: NicNetworkResult; ipmiSim: IpmiSimResult; nodeFloor: NodeFloorResult | { error: string } }

/** The bare Node responder (bench/echo-responder.ts) as a child process; resolves with its port. */
async function startEchoResponder(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnChild(process.execPath, [resolve(import.meta.dirname, 'echo-responder.js'), '127.0.0.1']);
  const port = await new Promise<number>((ok, fail) => {
    const t = setTimeout(() => fail(new Error('echo responder not ready in 5 s')), 5000);
    child.stdout!.setEncoding('utf8').once('data', (d: string) => {
      clearTimeout(t);
      ok(Number(d.trim()));
    });
    child.once('exit', (c) => fail(new Error(`echo responder exited (${c})`)));
  });
  return { child, port };
}

interface Workload {
  name: string; describe: string;
  /** `warmup` unrecorded, then `count` recorded round trips one at a time (latencies in µs). */
  sequential(count: number, warmup: number): Promise<{ samples: number[]; lost: number }>;
  /** Requests in flight for `durationMs` after `warmupMs`; null: the workload has no in-flight part. */
  window: ((durationMs: number, warmupMs: number) => Promise<WindowResult>) | null;
  seq: number[][]; win: { completed: number; seconds: number; lost: number; lat: number[] }[]; lost: number;
  /** The responder's pid, for its CPU time; CPU ms and requests, sequential and in flight. */
  pid: number | null; cpu: { seqMs: number; seqN: number; winMs: number; winN: number; clientWinUs: number };
}

/** User + system CPU time of a process and all its threads, in ms (/proc/PID/stat fields 14 and 15). */
function cpuMs(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}
const CLOCK_TICKS = 100; // sysconf(_SC_CLK_TCK) on Linux

/** One in-flight round's length, in s; rounded to the ms for the log and the workload text (4.8 / 12 is 0.39999999999999997 in floating point). */
function roundSeconds(plan: LoadPlan): number {
  return Math.round((plan.seconds / plan.rounds) * 1000) / 1000;
}

const LOAD_CLIENT_TEXT: Record<LoadPlan['loadClient'], string> = {
  batch: 'batched load generator on loopback (bench/batch-load.ts: recvmmsg/sendmmsg, polling)',
  dgram: 'Node dgram client on loopback (--load-client dgram)',
};

function roundTrip(w: Workload, plan: LoadPlan): RoundTrip {
  const all = w.seq.flat();
  const s = summarize(all);
  const lat = summarize(w.win.flatMap((x) => x.lat));
  const completed = w.win.reduce((a, x) => a + x.completed, 0);
  const seconds = w.win.reduce((a, x) => a + x.seconds, 0);
  const seqWl = `${w.describe}: ${plan.rounds} rounds x ${Math.ceil(plan.pings / plan.rounds)} sequential requests (after ${plan.warmup} warm-up), interleaved with the other workloads, pooled; Node dgram client on loopback`;
  const winWl = `${w.describe}: ${plan.inFlight} requests in flight, ${plan.rounds} rounds x ${roundSeconds(plan)} s (each after ${plan.warmupSeconds} s warm-up), interleaved, pooled; ${LOAD_CLIENT_TEXT[plan.loadClient]}`;
  return {
    p50: figure(s.p50, 'µs', seqWl),
    p99: figure(s.p99, 'µs', seqWl),
    mean: figure(s.mean, 'µs', seqWl),
    lost: w.lost,
    throughput: figure(completed / seconds, 'requests/s', winWl),
    loadedP50: figure(lat.p50, 'µs', `${winWl}; round trip under that load (1 in 8 sampled)`),
    windowLost: w.win.reduce((a, x) => a + x.lost, 0),
    roundP50s: w.seq.map((x) => Math.round(summarize(x).p50 * 10) / 10),
    roundThroughputs: w.win.map((x) => Math.round(x.completed / x.seconds)),
    clientCpuInFlight: figure(w.cpu.clientWinUs / Math.max(1, w.cpu.winN), 'µs/request', `${winWl}; CPU of the bench process (the client) per request sent, warm-up included`),
    responderCpu: w.pid === null || !(w.cpu.seqN > 0 && w.cpu.winN > 0) || Number.isNaN(w.cpu.seqMs + w.cpu.winMs)
      ? null
      : {
          sequential: figure((w.cpu.seqMs * 1000) / w.cpu.seqN, 'µs/request', `${seqWl}; responder CPU (user + system, all threads, /proc/PID/stat) per request, 10 ms ticks`),
          inFlight: figure((w.cpu.winMs * 1000) / w.cpu.winN, 'µs/request', `${winWl}; responder CPU per request, warm-up included in both time and count`),
        },
  };
}

function stationRoundTrip(w: Workload, plan: LoadPlan, clear: RoundTrip, secure: RoundTrip): StationRoundTrip {
  const s = summarize(w.seq.flat());
  const wl = `${w.describe}: ${plan.rounds} rounds x ${Math.ceil(plan.pings / plan.rounds)} sequential reads (after ${plan.warmup} warm-up), interleaved with the other workloads, pooled; from the call of NicSession.read to its result`;
  return {
    p50: figure(s.p50, 'µs', wl),
    p99: figure(s.p99, 'µs', wl),
    mean: figure(s.mean, 'µs', wl),
    lost: w.lost,
    roundP50s: w.seq.map((x) => Math.round(summarize(x).p50 * 10) / 10),
    overClearP50: figure(s.p50 / clear.p50.value, 'ratio', 'station System State p50 / clear Presence Ping p50 (bench client), same emulator, interleaved rounds; informational, the target uses the bench client'),
    overBenchClientP50: figure(s.p50 / secure.p50.value, 'ratio', "station System State p50 / the bench client's secure System State p50: what the station's code adds to the bench client's minimal one"),
  };
}

async function interleave(ws: Workload[], plan: LoadPlan, log: (s: string) => void): Promise<void> {
  const per = Math.ceil(plan.pings / plan.rounds);
  for (const w of ws) await w.sequential(0, plan.warmup);
  log(`  sequential: ${plan.rounds} rounds x ${per} requests x [${ws.map((w) => w.name).join(', ')}]`);
  for (let r = 0; r < plan.rounds; r++) {
    for (const w of ws) {
      const c0 = w.pid === null ? 0 : cpuMs(w.pid);
      const s = await w.sequential(per, 50);
      if (w.pid !== null) {
        w.cpu.seqMs += cpuMs(w.pid) - c0;
        w.cpu.seqN += per + 50;
      }
      w.seq.push(s.samples);
      w.lost += s.lost;
    }
  }
  const loaded = ws.filter((w) => w.window !== null);
  log(`  ${plan.inFlight} in flight: ${plan.rounds} rounds x ${roundSeconds(plan)} s x [${loaded.map((w) => w.name).join(', ')}]`);
  for (let r = 0; r < plan.rounds; r++) {
    for (const w of loaded) {
      const c0 = w.pid === null ? 0 : cpuMs(w.pid);
      const u0 = process.cpuUsage();
      const x = await w.window!(roundSeconds(plan) * 1000, plan.warmupSeconds * 1000);
      const u = process.cpuUsage(u0);
      w.cpu.clientWinUs += u.user + u.system;
      if (w.pid !== null) w.cpu.winMs += cpuMs(w.pid) - c0;
      w.cpu.winN += x.sent;
      w.win.push({ completed: x.completed, seconds: x.seconds, lost: x.lost, lat: x.samples });
    }
  }
}

/** Clear Presence Ping and secure System State against one NIC, and Presence Ping against ipmi_sim. */
export async function measureNetwork(plan: LoadPlan, withIpmiSim: boolean, log: (s: string) => void): Promise<NetworkResult> {
  let place: NicPlacement;
  let emu: Emulator | null = null;
  let emuSleeping: Emulator | null = null;
  let sim: IpmiSim | null = null;
  let echo: { child: ChildProcess; port: number } | null = null;
  let station: StationLoad | null = null;
  const socks: dgram.Socket[] = [];
  const batchClients: BatchClient[] = [];
  try {
    // A fresh address (or port base) can be taken by another lab on the same machine: try a few.
    const startOne = async (nics: number, extra: string[]): Promise<{ emu: Emulator; place: NicPlacement }> => {
      for (let attempt = 1; ; attempt++) {
        const p = placeOneNic();
        try {
          const args = ['--nics', String(nics), '--data-dir', tempDir('nic'), '--udp-io', plan.nicUdpIo, ...p.args, ...extra];
          return { emu: await startEmulator(args, 20000), place: p };
        } catch (e) {
          if (attempt >= 3 || !/in use/i.test((e as Error).message)) throw e;
        }
      }
    };
    // nic-1 for the bench's client, nic-2 for the station's own code (bench/station-load.ts).
    ({ emu, place } = await startOne(2, []));
    const control = ControlClient.parse(emu.ready.control);
    const sa = randomSaPair('esp', 'aes-gcm-16');
    const { generation } = await control.post<{ generation: number }>('/v1/nics/nic-1/sa', { sa: saToJson(sa) });
    // The client's own sync epoch at the NIC (wire/sync-frame.ts), as a station gets one before it sends.
    const synced = await syncWithNic({ ...sa, generation }, place.secure);
    const poll = new AnswerPoll(plan.clientPollUs);
    const mk = async (name: string, describe: string, to: Target, pid: number | null | undefined, makeProbe: (local: Target) => Probe): Promise<Workload> => {
      const sock = await openClient('127.0.0.1', to);
      socks.push(sock);
      const a = sock.address();
      // One probe for both clients: the secure one's SA endpoint keeps one sequence of outbound numbers. (Its
      // inner UDP source port is the dgram socket's; the NIC answers to the outer source, as DESIGN §2.2 says.)
      const probe = makeProbe({ address: a.address, port: a.port });
      let batch: BatchClient | null = null;
      if (plan.loadClient === 'batch') batchClients.push((batch = openBatchClient('127.0.0.1')));
      return {
        name, describe,
        sequential: (count, warmup) => sequential(sock, to, probe, count, warmup, poll),
        window: batch
          ? async (durationMs, warmupMs) => batch.window(to, probe, plan.inFlight, durationMs, warmupMs)
          : (durationMs, warmupMs) => window(sock, to, probe, plan.inFlight, durationMs, warmupMs, poll),
        seq: [], win: [], lost: 0, pid: pid ?? null, cpu: { seqMs: 0, seqN: 0, winMs: 0, winN: 0, clientWinUs: 0 },
      };
    };
    const ws: Workload[] = [
      await mk('lifeline-clear', `ASF Presence Ping -> Pong (UDP 623, 12 -> 28 bytes), one emulated NIC (--udp-io ${plan.nicUdpIo})`, place.clear, emu.ready.pid, () => presencePingProbe()),
      await mk('lifeline-secure', `ESP System State Request -> Response (UDP 664, AES-GCM-16, station SaEndpoint), one emulated NIC (--udp-io ${plan.nicUdpIo})`, place.secure, emu.ready.pid,
        (local) => secureStateProbe({ ...sa, generation }, local, place.secure, synced)),
    ];
    let stationError: string | null = null;
    try {
      station = await openStationLoad(control, 'nic-2', plan.clientPollUs);
      ws.push({
        name: 'lifeline-station', describe: `System State Request -> Response through mgmt-station's own code (StationContext, NicSession, UdpMux, SQLite store; --busy-poll-us ${plan.clientPollUs}), nic-2 of the same emulator, manual SA esp aes-gcm-16`,
        sequential: station.sequential, window: null, seq: [], win: [], lost: 0, pid: null, cpu: { seqMs: 0, seqN: 0, winMs: 0, winN: 0, clientWinUs: 0 },
      });
    } catch (e) {
      stationError = (e as Error).message;
    }
    let sleepingError: string | null = null;
    try {
      const second = await startOne(1, ['--busy-poll-us', '0']);
      emuSleeping = second.emu;
      ws.push(await mk('lifeline-sleeping', 'ASF Presence Ping -> Pong, one emulated NIC in a second emulator that never busy-polls (--busy-poll-us 0)', second.place.clear, emuSleeping.ready.pid, () => presencePingProbe()));
    } catch (e) {
      sleepingError = (e as Error).message;
    }
    let skipped: string | null = null;
    const bin = findIpmiSim();
    if (!withIpmiSim) skipped = 'not requested (--only)';
    else if (!bin) skipped = 'ipmi_sim not installed (Debian package openipmi); Lifeline/ipmi_sim ratios not measured';
    else {
      sim = await startIpmiSim(bin, '127.0.0.1');
      ws.push(await mk('ipmi_sim', 'ASF Presence Ping -> Pong (UDP, 12 -> 28 bytes), OpenIPMI ipmi_sim with one BMC', { address: sim.address, port: sim.port }, sim.child.pid, () => presencePingProbe()));
    }
    let echoError: string | null = null;
    try {
      echo = await startEchoResponder();
      ws.push(await mk('node-floor', 'ASF Presence Ping -> fixed Pong from a bare Node dgram responder (bench/echo-responder.ts), the Node floor', { address: '127.0.0.1', port: echo.port }, echo.child.pid, () => presencePingProbe()));
    } catch (e) {
      echoError = (e as Error).message;
    }
    await interleave(ws, plan, log);
    const status = await control.get<{ counters: { dropped: Record<string, number> } }>('/v1/nics/nic-1');
    const nicDropped = Object.fromEntries(Object.entries(status.counters.dropped).filter(([, v]) => v > 0));
    const [clear, secure] = [roundTrip(ws[0], plan), roundTrip(ws[1], plan)];
    const lifeline: NicNetworkResult = {
      placement: `${place.mode} ${place.clear.address}:${place.clear.port}`,
      clear,
      secure,
      secureOverClearP50: figure(secure.p50.value / clear.p50.value, 'ratio', 'secure System State p50 / clear Presence Ping p50, same emulator process, interleaved rounds of the same run'),
      emulatorRss: figure(rssKiB(emu.ready.pid) / 1024, 'MiB', "VmRSS of the emulator process (2 NICs: the bench client's and the station's) after the load"),
      nicDropped,
      station: ((w) => (w ? stationRoundTrip(w, plan, clear, secure) : { error: stationError ?? 'not run' }))(ws.find((w) => w.name === 'lifeline-station')),
      clearSleeping: ((w) => (w ? roundTrip(w, plan) : { error: sleepingError ?? 'not run' }))(ws.find((w) => w.name === 'lifeline-sleeping')),
    };
    const simWl = ws.find((w) => w.name === 'ipmi_sim');
    const ipmiSim: IpmiSimResult = sim && simWl
      ? { address: `${sim.address}:${sim.port}`, clear: roundTrip(simWl, plan), rss: figure(rssKiB(sim.child.pid!) / 1024, 'MiB', 'VmRSS of ipmi_sim after the load') }
      : { skipped: skipped! };
    const floor = ws.find((w) => w.name === 'node-floor');
    const nodeFloor = floor
      ? { clear: roundTrip(floor, plan), note: 'reference only: the smallest Node dgram responder, same clients and rounds; what a node:dgram responder cannot go below (the emulator on --udp-io dgram adds its own figure minus this one; batched UDP goes below it)' }
      : { error: echoError ?? 'not run' };
    return { lifeline, ipmiSim, nodeFloor };
  } finally {
    if (echo) await stopChild(echo.child, 1000);
    for (const s of socks) s.close();
    for (const b of batchClients) b.close();
    if (station) await station.close();
    if (sim) await sim.stop();
    if (emuSleeping) await stopChild(emuSleeping.child);
    if (emu) await stopChild(emu.child);
  }
}
