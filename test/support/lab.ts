/**
 * Real-process lab for end-to-end tests: starts `nic-emulator` as a child process on loopback, runs
 * `mgmt-station` verbs as child processes, and tears everything down. Every process is killed in cleanup()
 * and every wait is bounded, so a stuck test cannot hang CI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ControlClient } from '../../lib/control-client.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const EMULATOR = join(ROOT, 'bin/nic-emulator.js');
export const STATION = join(ROOT, 'bin/mgmt-station.js');

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

let subnet = 40 + (process.pid % 150);
/** A fresh 127.x.y.1 per lab, so tests never collide with each other or with a running `npm start` lab. */
export function freshFirstAddress(): string {
  subnet = subnet >= 250 ? 40 : subnet + 1;
  return `127.${(process.pid >> 3) % 200 + 20}.${subnet}.1`;
}

export interface Ready { ready: true; pid: number; nics: number; running: number; failed: number; first: string; last: string; control: string; startMs: number }

export interface RunResult { code: number | null; stdout: string; stderr: string; json?: any }

export class Lab {
  readonly dir: string;
  emulator: ChildProcess | null = null;
  ready: Ready | null = null;
  control!: ControlClient;
  emulatorStderr = '';
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

  /** Run a CLI (station by default) to completion, bounded in time. */
  run(args: string[], opts: { bin?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
    const bin = opts.bin ?? STATION;
    const full = bin === STATION ? [...args, '--store', this.store, '--cluster-key', this.keyFile, '--emulator', this.ready?.control ?? '127.0.0.1:1'] : args;
    return new Promise((resolve, reject) => {
      const c = spawn(process.execPath, [bin, ...full], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
      this.children.add(c);
      let stdout = '';
      let stderr = '';
      c.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      c.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const t = setTimeout(() => {
        c.kill('SIGKILL');
        reject(new Error(`${bin} ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 20000} ms; stderr: ${stderr}`));
      }, opts.timeoutMs ?? 20000);
      c.once('exit', (code) => {
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
      });
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

export async function waitFor<T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 5000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
