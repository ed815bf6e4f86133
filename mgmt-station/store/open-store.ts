/**
 * Open a store by URL (DESIGN §5): `sqlite:PATH` (the default, several stations on one host; PATH may be
 * relative, `sqlite::memory:` is a private in-memory store) or `postgres://...` / `postgresql://...`
 * (stations on several hosts). The cluster key must be the one the store's keys are wrapped under.
 */
import { UsageError } from '../../common/errors.js';
import type { ClusterKey } from './cluster-key.js';
import { openPostgresStore, type PostgresStoreOptions } from './postgres-store.js';
import { openSqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { Store } from './store.js';
import { sqlitePathOf } from './store-url.js';

export type OpenStoreOptions = SqliteStoreOptions & PostgresStoreOptions;

export function openStore(url: string, clusterKey: ClusterKey, opts: OpenStoreOptions = {}): Promise<Store> {
  const path = sqlitePathOf(url);
  if (path !== null) {
    if (path.length === 0) return Promise.reject(usage(url));
    return openSqliteStore(path, clusterKey, opts);
  }
  if (typeof url === 'string' && /^postgres(ql)?:\/\//.test(url)) {
    return openPostgresStore(url, clusterKey, opts);
  }
  return Promise.reject(usage(url));
}

function usage(url: unknown): UsageError {
  return new UsageError(
    'E_USAGE',
    `unknown store URL ${JSON.stringify(url)}: use sqlite:FILE (e.g. sqlite:var/station.db) or postgres://USER@HOST:PORT/DATABASE`,
  );
}
