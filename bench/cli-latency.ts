/**
 * CLI latency (issue 17: "a script that power-cycles 100 NICs one by one spends half a minute starting Node modules
 * it does not use"): the wall time of `mgmt-station state nic-1` as a user types it (bin/mgmt-station.js, a new
 * process each time) through a running station daemon, against `node -e 0` (Node's own start-up, the floor) in
 * interleaved rounds on the same machine. Informational beside them: the same verb with `--no-daemon` (the CLI opens
 * the store, its UDP socket and a session itself). One emulator with one enrolled NIC and one daemon.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { spawnChild, startEmulator, stopChild, tempDir } from './processes.js';
import { figure, percentile, type Figure } from './stats.js';

/** The executable a user runs (it imports dist/mgmt-station/cli.js), from dist/bench. */
const STATION_BIN = resolve(import.meta.dirname, '../../bin/mgmt-station.js');

export interface CliLatencyResult {
  rounds: number;
  viaDaemon: { p50: Figure; p90: Figure };
  nodeFloor: { p50: Figure; p90: Figure };
  noDaemon: { p50: Figure; p90: Figure };
  /** state via the daemon p50 / node -e 0 p50. */
  overNodeP50: Figure;
}

function wallMs(args: string[], cwd: string): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 20000 });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim()}`);
  return ms;
}

function startDaemon(dir: string, common: string[]): Promise<ChildProcess> {
  const child = spawnChild(process.execPath, [STATION_BIN, 'serve', '--json', '--poll-interval', '5000', '--control', '127.0.0.1:0', ...common], { cwd: dir });
  return new Promise((res, rej) => {
    let out = '';
    const t = setTimeout(() => rej(new Error('station daemon not ready within 15 s')), 15000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
      if (out.includes('\n')) {
        clearTimeout(t);
        res(child);
      }
    });
    child.once('exit', (code) => rej(new Error(`station daemon exited (${code}) before it was ready`)));
  });
}

export async function measureCliLatency(rounds: number, log: (s: string) => void): Promise<CliLatencyResult> {
  const dir = tempDir('cli-latency');
  const root = process.getuid?.() === 0;
  const emu = await startEmulator(['--nics', '1', '--data-dir', join(dir, 'nics'), '--boot-delay', '300', ...(root ? ['--first-address', `127.${60 + (process.pid % 100)}.78.1`] : ['--port-base', String(44000 + (process.pid % 500) * 3)])], 15000);
  let daemon: ChildProcess | null = null;
  try {
    const common = ['--store', `sqlite:${join(dir, 'station.db')}`, '--cluster-key', join(dir, 'cluster.key')];
    writeFileSync(join(dir, 'psk.hex'), randomBytes(32).toString('hex'));
    const e = spawnSync(process.execPath, [STATION_BIN, 'enroll', 'nic-1', '--psk-file', join(dir, 'psk.hex'), '--emulator', emu.ready.control, ...common], { cwd: dir, encoding: 'utf8', timeout: 20000 });
    if (e.status !== 0) throw new Error(`enroll failed: ${e.stderr}`);
    daemon = await startDaemon(dir, common);
    const state = [STATION_BIN, 'state', 'nic-1', ...common];
    // Warm the page cache and the daemon's session once each.
    wallMs(state, dir);
    wallMs(['-e', '0'], dir);
    const via: number[] = [];
    const floor: number[] = [];
    const local: number[] = [];
    for (let i = 0; i < rounds; i++) {
      via.push(wallMs(state, dir));
      floor.push(wallMs(['-e', '0'], dir));
      local.push(wallMs([...state, '--no-daemon'], dir));
      if (i % 10 === 9) log(`  cli-latency round ${i + 1}/${rounds}: state via daemon ${Math.round(via[i])} ms, node -e 0 ${Math.round(floor[i])} ms, --no-daemon ${Math.round(local[i])} ms`);
    }
    const pair = (xs: number[], what: string) => ({
      p50: figure(percentile(xs, 50), 'ms', `${what}, wall from spawn to exit, ${rounds} interleaved rounds`),
      p90: figure(percentile(xs, 90), 'ms', `${what}, p90`),
    });
    const viaDaemon = pair(via, "mgmt-station state nic-1 through the running daemon (bin/mgmt-station.js)");
    const nodeFloor = pair(floor, 'node -e 0');
    return {
      rounds,
      viaDaemon,
      nodeFloor,
      noDaemon: pair(local, 'mgmt-station state nic-1 --no-daemon (store, socket and session in the CLI); informational'),
      overNodeP50: figure(viaDaemon.p50.value / nodeFloor.p50.value, 'ratio', 'state via the daemon p50 / node -e 0 p50, same rounds'),
    };
  } finally {
    if (daemon) await stopChild(daemon, 3000);
    await stopChild(emu.child, 3000);
  }
}
