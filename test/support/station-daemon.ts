/**
 * The station side of the real-process lab: `mgmt-station serve` as a child process of a Lab (same store,
 * cluster key and emulator), its control API, and read-only looks at the lab's SQLite store. Every daemon
 * started here is killed by stopAllStations() (call it in after/afterEach), and every wait is bounded.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { freshFirstAddress, isRoot, type Lab, type StationProcess } from './lab.js';
import { announceFile, announcedStore } from '../../mgmt-station/announce.js';
import { openStore } from '../../mgmt-station/store/open-store.js';
import { loadClusterKey } from '../../mgmt-station/store/cluster-key.js';
import type { Store } from '../../mgmt-station/store/store.js';

const running = new Set<StationProcess>();

/** A station daemon of the lab: Lab.startStation's process (its control API, signals, output). */
export type StationDaemon = StationProcess;

export const StationDaemon = {
  /**
   * `mgmt-station serve --json ARGS` with the lab's --store/--cluster-key/--emulator (Lab.startStation); the
   * station id is taken from `--id` in ARGS (default station-1). Resolves on the ready line.
   */
  async start(lab: Lab, args: string[] = [], timeoutMs = 15000): Promise<StationProcess> {
    const i = args.indexOf('--id');
    const id = i >= 0 ? args[i + 1] : 'station-1';
    const rest = i >= 0 ? [...args.slice(0, i), ...args.slice(i + 2)] : args;
    const d = await lab.startStation(id, rest, { timeoutMs });
    running.add(d);
    d.child.once('exit', () => running.delete(d));
    return d;
  },
};

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

/**
 * Run `f` on the lab's store opened as a station opens it (with the lab's cluster key): for a test that changes
 * what only a station may change (sealed rows), through the store's own API.
 */
export async function withStore<T>(lab: Lab, f: (store: Store) => Promise<T>): Promise<T> {
  const store = await openStore(lab.store, loadClusterKey({ file: lab.keyFile }));
  try {
    return await f(store);
  } finally {
    await store.close();
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

/** The announce file of the lab's daemon of station `id` (mgmt-station/daemon.ts announceFile). */
export function announceFileOf(lab: Lab, id = 'station-1'): string {
  return announceFile(lab.store, id);
}

/**
 * Announce a stand-in daemon of station `id` on the lab's store at `control`, with this test process's pid (alive),
 * as a running daemon would (`extra`: more fields, e.g. timeoutMs); returns the file's path.
 */
export function announceStandIn(lab: Lab, control: string, id = 'station-1', extra: object = {}): string {
  const file = announceFileOf(lab, id);
  writeFileSync(file, JSON.stringify({ pid: process.pid, control, id, store: announcedStore(lab.store), ...extra }) + '\n');
  return file;
}
