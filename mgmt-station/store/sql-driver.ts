/**
 * What the two SQL backends have in common, so the store logic is written once (sql-store.ts).
 *
 * A transaction body is a generator that yields SQL operations and receives their rows:
 *
 *   function* body(): Tx<number> { const rows = yield sql('SELECT epoch FROM leases WHERE nic = ?', nic); ... }
 *
 * The SQLite driver runs it synchronously inside BEGIN IMMEDIATE (better-sqlite3 is synchronous, and a
 * body that awaited between statements would let a second connection of the same process block the
 * event loop on SQLite's busy handler while the first one waits for that loop: a deadlock). The
 * PostgreSQL driver runs the same body with an await per statement on one pooled connection. Placeholders
 * are written '?' and numbered for PostgreSQL by the driver; no SQL text here contains a literal '?'.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { LifelineError, UsageError } from '../../common/errors.js';
import type { SqlStoreKind } from './store.js';

/**
 * A user's verb under way (DaemonCore.read/command): its store transactions, and those of everything it awaits that
 * it started itself (the session it opens, the sync, the command log), run on the driver's 'verb' lane, connections
 * of their own where the driver has a pool, so a user's `state` to a NIC a station has just taken over does not wait
 * behind the background polls that open the sessions of thousands of taken-over NICs (issue 16, criterion 3).
 */
const verbContext = new AsyncLocalStorage<true>();

/** Run `f` as a user's verb: see verbContext. */
export function asUserVerb<T>(f: () => Promise<T>): Promise<T> {
  return verbContext.run(true, f);
}

/** The lane a transaction started now runs on: 'verb' inside asUserVerb, else the default (undefined). */
export function currentLane(): 'verb' | undefined {
  return verbContext.getStore() === true ? 'verb' : undefined;
}

export type SqlValue = string | number | Uint8Array | null;
export type Row = Record<string, unknown>;

export interface SqlOp {
  readonly sql: string;
  readonly params: readonly SqlValue[];
}

/** A transaction body: yields statements, receives each statement's rows ([] if it returns none). */
export type Tx<T> = Generator<SqlOp, T, Row[]>;

export function sql(text: string, ...params: SqlValue[]): SqlOp {
  return { sql: text, params };
}

export interface SqlDriver {
  readonly kind: SqlStoreKind;
  /** Row lock suffix for SELECT: ' FOR UPDATE' on PostgreSQL, '' on SQLite (BEGIN IMMEDIATE locks the file). */
  readonly forUpdate: string;
  /** Redacted URL for messages. */
  readonly url: string;
  /** Statements to run before creating the tables (PostgreSQL: schema and setup lock). */
  prelude(): SqlOp[];
  /**
   * Run `body` in one transaction: 'write' takes the write lock up front; 'read' sees one snapshot. `lane`
   * 'liveness': a station's member row (Store.renewMember), on a connection of its own where the driver has a pool,
   * so it never waits behind the station's other work: a busy station is not a dead one. With no lane given, a
   * transaction started inside asUserVerb runs on the 'verb' lane (currentLane), likewise on connections of its own.
   */
  transaction<T>(mode: 'read' | 'write', body: () => Tx<T>, lane?: 'liveness'): Promise<T>;
  close(): Promise<void>;
}

/** Coded errors pass through; driver errors become E_STORE naming the store. */
export function storeError(url: string, e: unknown): LifelineError {
  if (e instanceof LifelineError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const err = new UsageError('E_STORE', `store ${url}: ${msg}`);
  (err as Error & { cause?: unknown }).cause = e;
  return err;
}

/** Values as the drivers accept them: Buffers for bytes. */
export function bindable(v: SqlValue): string | number | Buffer | null {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return v;
}
