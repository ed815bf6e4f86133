/**
 * PostgreSQL backend (pg): the store for stations on several hosts (DESIGN §5).
 *
 * URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME&...]. The tables live in their own
 * PostgreSQL schema (default 'lifeline'), created idempotently under a transaction-scoped advisory lock
 * so two stations starting at once do not race on CREATE ... IF NOT EXISTS. Other query parameters are
 * passed to pg unchanged.
 *
 * Transactions run at READ COMMITTED; fenced writes lock the NIC's lease row with SELECT ... FOR UPDATE
 * (sql-store.ts), which serialises a takeover against every write of the old owner. Read transactions
 * are REPEATABLE READ READ ONLY, so an audit sees the log and its head from one snapshot.
 * lock_timeout bounds how long a statement waits for a row lock held by a stuck station, and
 * idle_in_transaction_session_timeout how long a station stopped inside a transaction (SIGSTOP, a debugger, a host
 * that froze) keeps its locks: PostgreSQL then ends its session, the locks go (its lease row among them, so another
 * station can take its NICs over once its lease lapsed), and the stopped station, when it goes on, finds its
 * transaction gone (E_STORE) and nothing of it written.
 */
import pg from 'pg';
import { UsageError } from '../../common/errors.js';
import type { ClusterKey } from './cluster-key.js';
import { bindable, currentLane, sql, storeError, type Row, type SqlDriver, type SqlOp, type Tx } from './sql-driver.js';
import { SqlStore, type SqlStoreOptions } from './sql-store.js';
import { redactedStoreUrl } from './store-url.js';

export interface PostgresStoreOptions extends SqlStoreOptions {
  /** Pool size (default 4). */
  maxConnections?: number;
  /** Connections for users' verbs (sql-driver.ts asUserVerb), besides the pool (default 2). */
  verbConnections?: number;
  /** Connect timeout (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Longest wait for a row lock before the statement fails (default 10000 ms). */
  lockTimeoutMs?: number;
  /** Longest pause inside a transaction before PostgreSQL ends the session and frees its locks (default 1000 ms). */
  idleInTransactionTimeoutMs?: number;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Arbitrary constant key for pg_advisory_xact_lock: "schema setup in progress". */
const SCHEMA_LOCK_KEY = 0x4c494645; // 'LIFE'

export class PostgresDriver implements SqlDriver {
  readonly kind = 'postgres' as const;
  readonly forUpdate = ' FOR UPDATE';
  readonly url: string;
  readonly schema: string;
  readonly #pool: pg.Pool;
  /** One connection for the member row only (transaction lane 'liveness'). */
  readonly #livePool: pg.Pool;
  /** Users' verbs (sql-driver.ts asUserVerb): connections opened on first use, never shared with background polls. */
  readonly #verbPool: pg.Pool;

  constructor(url: string, opts: PostgresStoreOptions = {}) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError('E_USAGE', `not a PostgreSQL URL: ${JSON.stringify(url)}; expected postgres://USER@HOST:PORT/DATABASE`);
    }
    if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
      throw new UsageError('E_USAGE', `not a PostgreSQL URL: ${JSON.stringify(url)}; expected postgres://USER@HOST:PORT/DATABASE`);
    }
    this.schema = parsed.searchParams.get('schema') ?? 'lifeline';
    if (!SCHEMA_NAME.test(this.schema)) {
      throw new UsageError('E_USAGE', `schema must be a lower-case SQL identifier, got ${JSON.stringify(this.schema)}`);
    }
    parsed.searchParams.delete('schema');
    this.url = redactedStoreUrl(url);
    const lockTimeout = Math.max(0, Math.floor(opts.lockTimeoutMs ?? 10000));
    // Between two statements of a transaction a station only computes: a second of silence means it stopped.
    const idleTimeout = Math.max(0, Math.floor(opts.idleInTransactionTimeoutMs ?? 1000));
    this.#pool = new pg.Pool({
      connectionString: parsed.toString(),
      max: opts.maxConnections ?? 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 10000,
      options: `-c search_path=${this.schema} -c lock_timeout=${lockTimeout} -c idle_in_transaction_session_timeout=${idleTimeout}`,
    });
    this.#livePool = new pg.Pool({
      connectionString: parsed.toString(),
      max: 1,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 0,
      options: `-c search_path=${this.schema} -c lock_timeout=${lockTimeout} -c idle_in_transaction_session_timeout=${idleTimeout}`,
    });
    this.#verbPool = new pg.Pool({
      connectionString: parsed.toString(),
      max: opts.verbConnections ?? 2,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      idleTimeoutMillis: 10000,
      options: `-c search_path=${this.schema} -c lock_timeout=${lockTimeout} -c idle_in_transaction_session_timeout=${idleTimeout}`,
    });
    // An idle client whose server went away emits 'error' on the pool; the next query reports it.
    this.#pool.on('error', () => {});
    this.#livePool.on('error', () => {});
    this.#verbPool.on('error', () => {});
  }

  /** Statements run before the tables are created: the schema, under the setup lock. */
  prelude(): SqlOp[] {
    return [sql(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`), sql(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`)];
  }

  async transaction<T>(mode: 'read' | 'write', body: () => Tx<T>, lane?: 'liveness'): Promise<T> {
    let client: pg.PoolClient;
    try {
      const pool = lane === 'liveness' ? this.#livePool : currentLane() === 'verb' ? this.#verbPool : this.#pool;
      client = await pool.connect();
    } catch (e) {
      throw storeError(this.url, e);
    }
    let broken = false;
    // The server may end this session while it is checked out (idle_in_transaction_session_timeout): the client then
    // emits 'error', which must not go unhandled; the next query fails and the client is discarded.
    const onError = () => (broken = true);
    client.on('error', onError);
    try {
      await client.query(mode === 'write' ? 'BEGIN' : 'BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const it = body();
      let step = it.next();
      while (!step.done) {
        const res = await client.query(numbered(step.value.sql), step.value.params.map(bindable));
        step = it.next((res.rows ?? []) as Row[]);
      }
      await client.query('COMMIT');
      return step.value;
    } catch (e) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw mapError(this.url, e);
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    for (const p of [this.#livePool, this.#verbPool, this.#pool]) if (!p.ended && !p.ending) await p.end();
  }
}

/** '?' placeholders -> $1, $2, ... (no SQL text in this store contains a literal '?'). */
function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => '$' + ++n);
}

function mapError(url: string, e: unknown): Error {
  const pgErr = e as { code?: string; constraint?: string };
  if (pgErr?.code === '23505' && pgErr.constraint === 'sas_inbound_spi') {
    return new UsageError('E_SPI_IN_USE', 'that inbound SPI was just taken by another SA; choose another SPI');
  }
  return storeError(url, e);
}

export async function openPostgresStore(url: string, key: ClusterKey, opts: PostgresStoreOptions = {}): Promise<SqlStore> {
  return SqlStore.open(new PostgresDriver(url, opts), key, opts);
}
