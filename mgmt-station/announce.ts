/**
 * Where a station daemon announces itself, and how the CLI reads it. Kept apart from daemon.ts so that a CLI verb
 * forwarded to a running daemon loads none of the daemon's, the store's or the protocol's modules (issue 17: a verb
 * in ≤ 150 ms; `npm run bench -- --only cli-latency`).
 */
import { readFileSync, realpathSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { redactedStoreUrl, sqlitePathOf } from './store/store-url.js';

/**
 * A store URL as the announce file names it: an SQLite store by its absolute path (sqlite:var/x.db and
 * sqlite:/abs/var/x.db are one store), any other URL as given with its password masked (it is written to a file).
 */
export function announcedStore(storeUrl: string): string {
  const path = sqlitePathOf(storeUrl);
  if (path !== null && path !== ':memory:') {
    const file = resolvePath(path);
    // The directory without symlinks, so that every path to the same file names the same daemon.
    let dir = dirname(file);
    try {
      dir = realpathSync(dir);
    } catch {
      /* not there yet: the store will be created, nobody can run on it */
    }
    return `sqlite:${join(dir, basename(file))}`;
  }
  return redactedStoreUrl(storeUrl);
}

/**
 * Where the daemon of station `id` on `storeUrl` announces itself: beside an SQLite store, else under ./var, named
 * by the station id and a hash of the store (announcedStore), so that two stores in one directory, or two
 * PostgreSQL databases, each have their own daemon per station id.
 */
export function announceFile(storeUrl: string, id: string): string {
  const store = announcedStore(storeUrl);
  const file = sqlitePathOf(store);
  const dir = file !== null && file !== ':memory:' ? dirname(file) : resolvePath('var');
  const hash = createHash('sha256').update(store).digest('hex').slice(0, 12);
  return join(dir, `station-${id}.${hash}.daemon.json`);
}

/** Where the daemon writes its scrape-only credential for /metrics: beside its announce file (daemon.ts). */
export function metricsTokenFile(announce: string): string {
  return announce.replace(/\.daemon\.json$/, '') + '.metrics-token';
}

/**
 * What a running daemon wrote in its announce file (daemon.ts start()); `timeoutMs` is its --timeout, `token` the
 * credential its control API wants (the file is 0600: only its user reads it).
 */
export interface Announced { pid: number; control: string; store?: string; timeoutMs?: number; token?: string }

/** The daemon announced in `file`, if its process is alive and it serves `store` (announcedStore). */
export function announcedDaemon(file: string, store: string): Announced | null {
  try {
    const d = JSON.parse(readFileSync(file, 'utf8')) as Announced;
    if (d.store !== store) return null; // another store's daemon (or a file from an older version): not ours
    process.kill(d.pid, 0); // throws if the process is gone (a killed daemon leaves its file behind)
    return d;
  } catch {
    return null;
  }
}
