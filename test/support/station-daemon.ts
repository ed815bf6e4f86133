/**
 * The station side of the real-process lab: `mgmt-station serve` as a child process of a Lab (same store,
 * cluster key and emulator), its control API, and read-only looks at the lab's SQLite store. Every daemon
 * started here is killed by stopAllStations() (call it in after/afterEach), and every wait is bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ControlClient } from '../../lib/control-client.js';
import { STATION, freshFirstAddress, isRoot, type Lab } from './lab.js';

/** The line `serve --json` prints once it listens. */
export interface StationReady { ready: true; id: string; pid: number; control: string; store: string }

const running = new Set<StationDaemon>();

export class StationDaemon {
  stdout = '';
  stderr = '';
  readonly control: ControlClient;
  private constructor(readonly child: ChildProcess, readonly ready: StationReady) {
    this.control = ControlClient.parse(ready.control);
  }

  /**
   * `mgmt-station serve --json ARGS` with the lab's --store/--cluster-key/--emulator; resolves on the ready
   * line, rejects (and kills the process) if it exits first or is not ready within `timeoutMs`.
   */
  static async start(lab: Lab, args: string[] = [], timeoutMs = 15000): Promise<StationDaemon> {
    const argv = [STATION, 'serve', '--json', ...args, '--store', lab.store, '--cluster-key', lab.keyFile, '--emulator', lab.ready?.control ?? '127.0.0.1:1'];
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
    let ready: StationReady;
    try {
      ready = await new Promise<StationReady>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`mgmt-station serve not ready in ${timeoutMs} ms; stderr:\n${err}`)), timeoutMs);
        const onData = () => {
          const line = out.split('\n').find((l) => l.startsWith('{') && l.endsWith('}'));
          if (!line) return;
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          resolve(JSON.parse(line) as StationReady);
        };
        child.stdout!.on('data', onData);
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          reject(new Error(`mgmt-station serve exited (${code ?? signal}) before ready; stderr:\n${err}`));
        });
      });
    } catch (e) {
      child.kill('SIGKILL');
      throw e;
    }
    const d = new StationDaemon(child, ready);
    child.stdout!.on('data', (c: string) => (d.stdout += c));
    child.stderr!.on('data', (c: string) => (d.stderr += c));
    d.stderr = err;
    running.add(d);
    child.once('exit', () => running.delete(d));
    return d;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Send `signal` and wait (bounded) for the process to be gone; SIGKILL = the station dies on the spot. */
  async kill(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 5000): Promise<void> {
    const c = this.child;
    if (!this.alive) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
      c.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      c.kill(signal);
    });
  }

  /** GET /v1/status: { id, pid, nics: [{ id, lastRefresh, host, lastError, refreshes, busy }] }. */
  status(): Promise<{ id: string; pid: number; nics: { id: string; host: string; lastError: string | null; refreshes: number; busy: boolean }[] }> {
    return this.control.get('/v1/status');
  }

  /** POST /v1/nics/:nic/:verb, the request the CLI forwards; rejects with the daemon's coded error. */
  verb(nic: string, verb: string): Promise<any> {
    return this.control.post(`/v1/nics/${encodeURIComponent(nic)}/${verb}`);
  }
}

/** Kill every daemon this process started and has not seen exit (for after hooks). */
export async function stopAllStations(): Promise<void> {
  await Promise.all([...running].map((d) => d.kill('SIGKILL')));
}

/** The lab's SQLite file (the store is `sqlite:FILE`). */
export function storeFile(lab: Lab): string {
  return lab.store.slice('sqlite:'.length);
}

/** Run `f` on the lab's SQLite store opened directly (no cluster key: what an attacker with the file sees). */
export function withStoreDb<T>(lab: Lab, f: (db: Database.Database) => T, readonly = true): T {
  const db = new Database(storeFile(lab), { readonly, fileMustExist: true });
  try {
    return f(db);
  } finally {
    db.close();
  }
}

/** A fresh pre-shared key file (64 hex digits, as `enroll --psk-file` wants); returns its path and bytes. */
export function writePskFile(lab: Lab, name = 'psk.hex'): { file: string; psk: Buffer } {
  const psk = randomBytes(32);
  const file = join(lab.dir, name);
  writeFileSync(file, psk.toString('hex') + '\n', { mode: 0o600 });
  return { file, psk };
}

/** The NIC's SA slots as the emulator reports them (GET /v1/nics/:id -> sa). */
export interface NicSaSummary {
  active: { generation: number; toNicSpi: number; fromNicSpi: number } | null;
  previous: { generation: number; toNicSpi: number; fromNicSpi: number } | null;
  pending: { generation: number; toNicSpi: number; fromNicSpi: number } | null;
  lastAuthenticated: number | null;
}

export async function nicSa(lab: Lab, nic: string): Promise<NicSaSummary> {
  return (await lab.nic(nic)).sa as NicSaSummary;
}

/**
 * Explicit addressing flags for Lab.startEmulator, so a test can restart the emulator on the same addresses
 * (stopEmulator + startEmulator with the same flags): address-per-NIC as root, port-per-NIC otherwise.
 */
export function fixedAddressing(): string[] {
  return isRoot ? ['--first-address', freshFirstAddress()] : ['--port-base', String(20000 + ((process.pid * 13) % 30000))];
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
