/**
 * SQLite backend (better-sqlite3): the default store, for one or several stations on one host.
 *
 * WAL mode (readers never block the writer; several processes may share the file), busy_timeout so a
 * writer waits for another process's write lock instead of failing, synchronous=FULL so a command
 * reported done survives power loss (DESIGN §5 "replicate before acknowledging"). Write transactions are
 * BEGIN IMMEDIATE: the write lock is taken before the first read, so read-check-write sequences (lease
 * takeover, fencing, monotonic checkpoints) cannot interleave between processes.
 * A new database file is created with mode 0600; SQLite gives its -wal and -shm files the same mode. An existing one
 * that others may read (made by an older version, or copied) is narrowed to 0600 when opened, its -wal and -shm files
 * too; a 0-byte file is no store (SQLite would take it for a new, empty one): E_STORE.
 */
import Database from 'better-sqlite3';
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { LifelineError } from '../../common/errors.js';
import { restrictFileMode } from '../../lib/secret-file.js';
import type { ClusterKey } from './cluster-key.js';
import { bindable, storeError, type Row, type SqlDriver, type SqlOp, type Tx } from './sql-driver.js';
import { SqlStore, type SqlStoreOptions } from './sql-store.js';

export interface SqliteStoreOptions extends SqlStoreOptions {
  /** How long a writer waits for another connection's lock (default 5000 ms). */
  busyTimeoutMs?: number;
  /** PRAGMA synchronous (default 'FULL'). */
  synchronous?: 'FULL' | 'NORMAL';
}

export class SqliteDriver implements SqlDriver {
  readonly kind = 'sqlite' as const;
  readonly forUpdate = '';
  readonly url: string;
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.url = 'sqlite:' + path;
    try {
      if (path !== ':memory:' && !existsSync(path)) closeSync(openSync(path, 'a', 0o600));
      else if (path !== ':memory:') {
        if (statSync(path).isFile() && statSync(path).size === 0) {
          throw new LifelineError('E_STORE', `${this.url}: the store file is 0 bytes (truncated?): restore it from a backup, or delete it to start a new store`);
        }
        for (const f of [path, `${path}-wal`, `${path}-shm`]) restrictFileMode(f); // the store holds wrapped keys and the command log
      }
      this.#db = new Database(path);
      this.#db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma(`synchronous = ${opts.synchronous ?? 'FULL'}`);
    } catch (e) {
      throw storeError(this.url, e);
    }
  }

  prelude(): SqlOp[] {
    return [];
  }

  transaction<T>(mode: 'read' | 'write', body: () => Tx<T>): Promise<T> {
    // Runs to completion synchronously: see sql-driver.ts for why no await may happen in between.
    const db = this.#db;
    try {
      db.exec(mode === 'write' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      try {
        const it = body();
        let step = it.next();
        while (!step.done) step = it.next(this.#run(step.value));
        db.exec('COMMIT');
        return Promise.resolve(step.value);
      } catch (e) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw e;
      }
    } catch (e) {
      return Promise.reject(storeError(this.url, e));
    }
  }

  #run(op: SqlOp): Row[] {
    let st = this.#statements.get(op.sql);
    if (!st) {
      st = this.#db.prepare(op.sql);
      this.#statements.set(op.sql, st);
    }
    const params = op.params.map(bindable);
    if (st.reader) return st.all(...params) as Row[];
    st.run(...params);
    return [];
  }

  close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }
}

/** Open (creating if needed) the SQLite store at `path` (':memory:' for a private in-memory store). */
export function openSqliteStore(path: string, key: ClusterKey, opts: SqliteStoreOptions = {}): Promise<SqlStore> {
  let driver: SqliteDriver;
  try {
    driver = new SqliteDriver(path, opts);
  } catch (e) {
    return Promise.reject(e);
  }
  return SqlStore.open(driver, key, opts);
}
