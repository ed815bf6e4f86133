/**
 * Real-process lab for end-to-end tests: starts `nic-emulator` as a child process on loopback, runs
 * `mgmt-station` verbs as child processes, and tears everything down. Every process is killed in cleanup()
 * and every wait is bounded, so a stuck test cannot hang CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ControlClient } from '../../lib/control-client.js';

/** The repository root: the nearest directory above this file with bin/nic-emulator.js (dist/ or a .build/ copy). */
export const ROOT = findRoot(import.meta.dirname);

function findRoot(from: string): string {
  for (let d = from; ; d = dirname(d)) {
    if (existsSync(join(d, 'bin', 'nic-emulator.js')) && existsSync(join(d, 'package.json'))) return d;
    if (dirname(d) === d) return resolve(import.meta.dirname, '../../..');
  }
}
export const EMULATOR = join(ROOT, 'bin/nic-emulator.js');
export const STATION = join(ROOT, 'bin/mgmt-station.js');

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

let subnet = 40 + (process.pid % 150);
/** A fresh 127.x.y.1 per lab, so tests never collide with each other or with a running `npm start` lab. */
export function freshFirstAddress(): string {
  subnet = subnet >= 250 ? 40 : subnet + 1;
  return `127.${(process.pid >> 3) % 200 + 20}.${subnet}.1`;
}

export interface Ready { ready: true; pid: number; nics: number; running: number; failed: number; booting?: number; first: string; last: string; control: string; startMs: number }

export interface RunResult { code: number | null; stdout: string; stderr: string; json?: any }

export class Lab {
  readonly dir: string;
  emulator: ChildProcess | null = null;
  ready: Ready | null = null;
  control!: ControlClient;
  emulatorStderr = '';
  /** The flags of the last start, addressing included: restartEmulator() reuses them. */
  startArgs: string[] = [];
  private children = new Set<ChildProcess>();

  constructor(readonly name = 'lab') {
    this.dir = mkdtempSync(join(tmpdir(), `lifeline-${name}-`));
  }

  get store(): string {
    return `sqlite:${join(this.dir, 'station.db')}`;
  }

  get keyFile(): string {
    return join(this.dir, 'cluster.key');
  }

  /** Start the emulator; resolves on its ready line. Default: address-per-NIC as root, else port-per-NIC. */
  async startEmulator(args: string[] = [], timeoutMs = 20000): Promise<Ready> {
    const addressing = args.some((a) => a === '--port-base' || a === '--first-address')
      ? []
      : isRoot
        ? ['--first-address', freshFirstAddress()]
        : ['--port-base', String(20000 + ((process.pid * 7) % 30000))];
    this.startArgs = [...addressing, ...args];
    const child = spawn(process.execPath, [EMULATOR, 'start', '--json', '--control', '127.0.0.1:0', '--data-dir', join(this.dir, 'nics'), '--boot-delay', '300', ...addressing, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.emulator = child;
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.emulatorStderr += c;
      if (this.emulatorStderr.length > 200000) this.emulatorStderr = this.emulatorStderr.slice(-100000);
    });
    const ready = await new Promise<Ready>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`emulator not ready in ${timeoutMs} ms; stderr:\n${this.emulatorStderr.slice(-2000)}`)), timeoutMs);
      child.stdout!.setEncoding('utf8').on('data', (c: string) => {
        out += c;
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`emulator exited with ${code} before ready; stderr:\n${this.emulatorStderr.slice(-2000)}`));
      });
    });
    this.ready = ready;
    this.control = ControlClient.parse(ready.control);
    // Lazy boot (nic-emulator/fleet.ts: fleets on shared sockets of 1,000 NICs or more, or --lazy-boot on): the NICs
    // boot after the ready line. Tests mean a started fleet, so wait until every NIC has booted; `ready` stays the
    // line as printed (its `booting` counts the NICs not booted then).
    if (ready.booting) {
      await waitFor('every NIC booted', async () => (await this.control.get<{ booting: number }>('/v1/health')).booting === 0, timeoutMs);
    }
    return ready;
  }

  /** Kill the emulator with a real signal and wait for it to exit. */
  async stopEmulator(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.emulator;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        c.kill('SIGKILL');
      }, 5000);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill(signal);
    });
    this.emulator = null;
  }

  /**
   * Stop the emulator with `signal` (SIGTERM: clean shutdown; SIGKILL: as if the process died) and start it
   * again on the same data directory, addresses and flags: every NIC resumes from its EEPROM file.
   */
  async restartEmulator(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20000): Promise<Ready> {
    const args = this.startArgs;
    await this.stopEmulator(signal);
    return this.startEmulator(args, timeoutMs);
  }

  /** True while the emulator process is alive. */
  get emulatorAlive(): boolean {
    const c = this.emulator;
    return c !== null && c.exitCode === null && c.signalCode === null;
  }

  /** Run `nic-emulator ARGS --control <this lab's control API>` to completion. */
  emulatorCli(args: string[], timeoutMs?: number): Promise<RunResult> {
    return this.run([...args, '--control', this.ready?.control ?? '127.0.0.1:1'], { bin: EMULATOR, timeoutMs });
  }

  /** Run any executable (e.g. FreeIPMI's rmcpping) to completion, bounded in time; killed in cleanup(). */
  exec(command: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    return this.spawnBounded(command, args, args, opts);
  }

  /**
   * Run a CLI (station by default) to completion, bounded in time. For the station, `store` and `keyFile`
   * replace the lab's (e.g. a PostgreSQL URL), and `cwd` runs it from another working directory.
   */
  run(args: string[], opts: { bin?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string; store?: string; keyFile?: string } = {}): Promise<RunResult> {
    const bin = opts.bin ?? STATION;
    const full = bin === STATION ? [...args, '--store', opts.store ?? this.store, '--cluster-key', opts.keyFile ?? this.keyFile, '--emulator', this.ready?.control ?? '127.0.0.1:1'] : args;
    return this.spawnBounded(process.execPath, [bin, ...full], args, opts);
  }

  /**
   * `mgmt-station serve --json --id ID ARGS` with the lab's emulator and (unless given in `opts`) its store and
   * cluster key; resolves on the daemon's ready line, rejects (and kills it) if it exits first or is not ready in
   * time. The process is killed in cleanup().
   */
  async startStation(id: string, args: string[] = [], opts: { cwd?: string; store?: string; keyFile?: string; timeoutMs?: number } = {}): Promise<StationProcess> {
    const timeoutMs = opts.timeoutMs ?? 15000;
    // The lab's cluster tests are about a primary and its backups: first-come sharing unless the test names one
    // (balanced sharing, rendezvous and hand-overs: test/e2e/station-cluster.test.ts).
    const sharing = args.includes('--sharing') ? [] : ['--sharing', 'first-come'];
    const argv = [STATION, 'serve', '--json', '--id', id, ...(args.includes('--control') ? [] : ['--control', '127.0.0.1:0']), ...sharing, ...args, '--store', opts.store ?? this.store, '--cluster-key', opts.keyFile ?? this.keyFile, '--emulator', this.ready?.control ?? '127.0.0.1:1'];
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    const st = new StationProcess(id, child, opts.cwd ?? process.cwd());
    const ready = await new Promise<StationReady>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`station ${id} not ready in ${timeoutMs} ms; stderr:\n${st.stderr.slice(-2000)}`)), timeoutMs);
      const onData = () => {
        const line = st.stdout.split('\n').find((l) => l.startsWith('{') && l.endsWith('}'));
        if (!line) return;
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        const r = JSON.parse(line) as StationReady | { ok: false; error: { code: string; message: string } };
        if ('ready' in r && r.ready === true) resolve(r);
        else reject(new Error(`station ${id} did not start: ${line}`));
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`station ${id} exited (${code ?? signal}) before ready; stderr:\n${st.stderr.slice(-2000)}`));
      });
    }).catch((e) => {
      child.kill('SIGKILL');
      throw e;
    });
    st.setReady(ready);
    return st;
  }

  private spawnBounded(command: string, argv: string[], args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<RunResult> {
    const bin = command === process.execPath ? argv[0] : command;
    return new Promise((resolve, reject) => {
      const c = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env }, cwd: opts.cwd });
      this.children.add(c);
      let stdout = '';
      let stderr = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const t = setTimeout(() => {
        c.kill('SIGKILL');
        reject(new Error(`${bin} ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 20000} ms; stderr: ${stderr}`));
      }, opts.timeoutMs ?? 20000);
      c.once('error', (e) => {
        clearTimeout(t);
        this.children.delete(c);
        reject(new Error(`cannot run ${bin}: ${e.message}`));
      });
      // Output is complete on 'close' (stdio drained), which can lag 'exit'; a grandchild holding the pipes
      // open must not hang the test, so 'exit' finishes after a grace period anyway.
      let done = false;
      const finish = (code: number | null) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        this.children.delete(c);
        let json: any;
        if (args.includes('--json')) {
          try {
            json = JSON.parse(stdout);
          } catch {
            /* not JSON */
          }
        }
        resolve({ code, stdout, stderr, json });
      };
      c.once('close', (code) => finish(code));
      c.once('exit', (code) => setTimeout(() => finish(code), 1000).unref());
    });
  }

  /** Run the station and expect success; returns parsed JSON. */
  async station(args: string[], timeoutMs?: number): Promise<any> {
    const r = await this.run([...args, '--json'], { timeoutMs });
    if (r.code !== 0) throw new Error(`mgmt-station ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    return r.json;
  }

  async nic(id: string): Promise<any> {
    return this.control.get(`/v1/nics/${id}`);
  }

  async host(id: string, event: string): Promise<any> {
    return this.control.post(`/v1/nics/${id}/host`, { event });
  }

  async cleanup(): Promise<void> {
    await this.stopEmulator('SIGKILL').catch(() => undefined);
    for (const c of this.children) c.kill('SIGKILL');
    this.children.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The line `mgmt-station serve --json` prints once it listens; `announce`: its announce file (0600, with its credential). */
export interface StationReady { ready: true; id: string; pid: number; control: string; store: string; announce: string }

/**
 * The credential of each station daemon the tests started, by its control address (HOST:PORT): its control API
 * answers 401 without it (mgmt-station/daemon.ts). Read from the daemon's announce file once it is ready.
 */
export const daemonTokens = new Map<string, string>();

/** The credential a daemon wrote into its announce file (null: none there, e.g. an older daemon or a stand-in). */
export function tokenOf(announce: string): string | null {
  try {
    return (JSON.parse(readFileSync(announce, 'utf8')) as { token?: string }).token ?? null;
  } catch {
    return null;
  }
}

/** A `mgmt-station serve` process started by Lab.startStation. */
export class StationProcess {
  stdout = '';
  stderr = '';
  ready!: StationReady;
  control!: ControlClient;

  constructor(readonly id: string, readonly child: ChildProcess, readonly cwd: string) {
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (this.stdout += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      this.stderr += c;
      if (this.stderr.length > 200000) this.stderr = this.stderr.slice(-100000);
    });
  }

  /** @internal Lab.startStation sets it once the ready line arrived. */
  setReady(r: StationReady): void {
    this.ready = r;
    this.control = ControlClient.parse(r.control);
    this.control.token = tokenOf(r.announce);
    if (this.control.token) daemonTokens.set(r.control, this.control.token);
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Send `signal`. SIGSTOP/SIGCONT return at once; any other signal waits (bounded, then SIGKILL) until the
   * process is gone: SIGKILL = the station dies on the spot, as with `kill -9`.
   */
  async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<void> {
    const c = this.child;
    if (!this.alive) return;
    if (signal === 'SIGSTOP' || signal === 'SIGCONT') {
      c.kill(signal);
      return;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill(signal);
    });
  }

  /** POST /v1/nics/:nic/:verb on the daemon's control API (what the CLI forwards); rejects with its coded error. */
  verb(nic: string, verb: string): Promise<any> {
    return this.control.post(`/v1/nics/${encodeURIComponent(nic)}/${verb}`);
  }

  /** GET /v1/status: { id, pid, heartbeats, busyPoll, nics: [{ id, lastRefresh, host, lastError, refreshes, busy }] }. */
  status(): Promise<{ id: string; pid: number; heartbeats: Record<string, number>; busyPoll: { maxUs: number; hits: number; misses: number; backoffs: number } | null; nics: { id: string; host: string; lastError: string | null; refreshes: number; busy: boolean }[] }> {
    return this.control.get('/v1/status');
  }
}

export async function waitFor<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 5000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
