/**
 * Child processes of the bench (nic-emulator, ipmi_sim) and what the bench reads about them from /proc.
 * Every child is registered; `killAll()` runs in `finally`, on SIGINT/SIGTERM and on exit, so the bench
 * never leaves a process running.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The compiled emulator CLI next to the compiled bench (dist/bench -> dist/nic-emulator). */
export const EMULATOR_CLI = resolve(import.meta.dirname, '../nic-emulator/cli.js');

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/**
 * CPU placement. On this VM a wake-up across vCPUs costs ~80 µs (an IPI to a halted vCPU) against ~25 µs on
 * the same vCPU, and the scheduler co-locates a single-threaded C responder with its client more readily than
 * a Node process: left to chance, placement decides the comparison. So the bench pins every responder
 * (emulator, ipmi_sim, the reference responder) to one CPU and itself to another (`split`, the default: like
 * two hosts), or all to one CPU (`same`), or not at all (`none`). Needs `taskset` (util-linux).
 */
export type Pinning = 'split' | 'same' | 'none';
let pinning: Pinning = 'none';

export function setPinning(p: Pinning): Pinning {
  if (p !== 'none' && spawnSync('taskset', ['-pc', p === 'split' ? '0' : '0', String(process.pid)], { stdio: 'ignore' }).status !== 0) {
    pinning = 'none';
    return pinning;
  }
  pinning = p;
  return pinning;
}

/** The placement in force (setPinning). */
export function currentPinning(): Pinning {
  return pinning;
}

export function spawnChild(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const pinned = pinning === 'none' ? [cmd, args] as const : (['taskset', ['-c', pinning === 'split' ? '1' : '0', cmd, ...args]] as const);
  const c = spawn(pinned[0], [...pinned[1]], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** SIGKILL every child still running (synchronous: safe in 'exit' handlers). */
export function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  children.clear();
}

/** SIGKILL every child and wait (at most `timeoutMs`) until each has been reaped, so none is left a zombie. */
// Whoever imports these helpers (the bench, or a script of one's own) leaves no child behind when it exits.
process.once('exit', killAll);

export async function killAllAndWait(timeoutMs = 2000): Promise<void> {
  const live = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  const gone = Promise.all(live.map((c) => new Promise<void>((r) => c.once('exit', () => r()))));
  killAll();
  await Promise.race([gone, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
}

/** A scratch directory, removed by removeTempDirs(). `base` defaults to the OS temp directory. */
export function tempDir(name: string, base = tmpdir()): string {
  const d = mkdtempSync(join(base, `lifeline-bench-${name}-`));
  tempDirs.add(d);
  return d;
}

/**
 * tmpfs when the machine has one: fleet EEPROM files live there, so start-up figures measure the
 * emulator rather than the disk's journal (creating files on a busy ext4 costs 0.04-0.7 ms each here).
 */
export function memoryBackedBase(): { dir: string; kind: string } {
  return existsSync('/dev/shm') ? { dir: '/dev/shm', kind: 'tmpfs /dev/shm' } : { dir: tmpdir(), kind: `${tmpdir()} (no /dev/shm)` };
}

export function removeTempDirs(): void {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/** Ask a child to stop (SIGTERM), then SIGKILL it after `graceMs`; resolves when it is gone. */
export function stopChild(c: ChildProcess, graceMs = 5000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

/** Resident set size of a process, from /proc/PID/status VmRSS, in KiB. */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]);
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** This process's RLIMIT_NOFILE (children inherit it; Node raises its own soft limit to the hard one). */
export function fdLimit(): { soft: number; hard: number } {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (s: string | undefined) => (s === undefined || s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

export interface EmulatorReady { ready: true; pid: number; nics: number; running: number; failed: number; booting?: number; first: string; last: string; control: string; startMs: number }

/**
 * `wallMs`: spawn to the ready line, and with lazy boot (nic-emulator/fleet.ts) on to every NIC booted (`/v1/health`
 * booting 0; `ready.running` and `ready.failed` are then the booted fleet's); `readyMs`: spawn to the ready line.
 */
export interface Emulator { child: ChildProcess; ready: EmulatorReady; wallMs: number; readyMs: number; stderr: () => string }

/**
 * Start `nic-emulator start --json ...` and wait for its ready line, then (unless `waitBooted` is false) until every
 * NIC has booted: a fleet on shared sockets boots its NICs after the ready line (lazy boot), and the sections that
 * measure a started fleet (its RSS, its start-up, what it runs) mean the booted one.
 */
export async function startEmulator(args: string[], timeoutMs: number, opts: { waitBooted?: boolean } = {}): Promise<Emulator> {
  const t0 = performance.now();
  const emu = await readyLine(args, timeoutMs, t0);
  if (opts.waitBooted === false || !emu.ready.booting) return emu;
  try {
    for (;;) {
      const h = (await (await fetch(`http://${emu.ready.control}/v1/health`, { signal: AbortSignal.timeout(30_000) })).json()) as { running: number; failed: number; booting: number };
      if (h.booting === 0) {
        emu.ready = { ...emu.ready, running: h.running, failed: h.failed, booting: 0 };
        emu.wallMs = performance.now() - t0;
        return emu;
      }
      if (performance.now() - t0 > timeoutMs) throw new Error(`nic-emulator: ${h.booting} NICs still booting ${timeoutMs} ms after spawn`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (e) {
    await stopChild(emu.child);
    throw e;
  }
}

function readyLine(args: string[], timeoutMs: number, t0: number): Promise<Emulator> {
  const child = spawnChild(process.execPath, [EMULATOR_CLI, 'start', '--json', '--control', '127.0.0.1:0', '--log-level', 'warn', ...args]);
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
    if (err.length > 100000) err = err.slice(-50000);
  });
  return new Promise((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nic-emulator not ready within ${timeoutMs} ms; stderr: ${err.slice(-1500)}`));
    }, timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (!line) return;
      clearTimeout(timer);
      child.stdout!.removeAllListeners('data');
      child.stdout!.resume();
      const ms = performance.now() - t0;
      resolvePromise({ child, ready: JSON.parse(line) as EmulatorReady, wallMs: ms, readyMs: ms, stderr: () => err });
    });
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`nic-emulator exited (${code ?? sig}) before it was ready: ${err.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}
