/**
 * What the store contract suite (../store-contract.test.ts) runs on: the backends, each giving every test a new
 * empty place for its store, and the fixtures the cases share.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { SaPair } from '../../../wire/sa.js';
import { ClusterKey } from '../../../mgmt-station/store/cluster-key.js';
import { openStore } from '../../../mgmt-station/store/open-store.js';
import { MemoryStore } from '../../../mgmt-station/store/memory-store.js';
import type { Fence, IkeSaSnapshot, NicRecord, SqlStoreKind, Store } from '../../../mgmt-station/store/store.js';
import { postgresUnavailable, startPostgres, type PostgresServer } from '../../support/postgres-server.js';
import { memoryTamper, sqlTamper, type Tamper } from './tamper.js';

// --- backends ----------------------------------------------------------------------------------------

/** Where one test's store lives: a new SQLite file, a new PostgreSQL schema, a new MemoryStore. */
export interface Place {
  url: string;
  /** A new connection to the store there, as a station opens it. */
  open(key: ClusterKey): Promise<Store>;
  /** Edit rows behind the store's back (contract/tamper.ts). */
  tamper: Tamper;
  /**
   * SQL backends only: run SQL on a raw connection, behind the store's back (an attacker or a DBA with write
   * access). `schema`: the PostgreSQL schema the place's tables live in.
   */
  sql?: { kind: SqlStoreKind; schema?: string; query(text: string, params?: unknown[]): Promise<Record<string, unknown>[]> };
}

/** Run raw SQL at a place that has it (a case that needs it skips a place without: sqlOnly). */
export async function exec(p: Place, text: string, params?: unknown[]): Promise<void> {
  await p.sql!.query(text, params);
}

/**
 * Skip a case that needs raw SQL, at the memory backend, saying why (`why`: what it checks that the memory
 * backend has no counterpart of, and where the same property is covered if it is).
 */
export function sqlOnly(ctx: Mocha.Context, p: Place, why: string): asserts p is Place & { sql: NonNullable<Place['sql']> } {
  if (!p.sql) {
    ctx.test!.title += ` [skipped for memory: ${why}]`;
    ctx.skip();
  }
}

const openSql = (url: string) => (key: ClusterKey): Promise<Store> => openStore(url, key, { synchronous: 'NORMAL' });

export interface Backend {
  name: string;
  unavailable(): string | null;
  start(): Promise<void>;
  stop(): Promise<void>;
  fresh(): Promise<Place>;
}

export function sqliteBackend(): Backend {
  let dir = '';
  let n = 0;
  return {
    name: 'SQLite',
    unavailable: () => null,
    start: async () => {
      dir = mkdtempSync(join(tmpdir(), 'lifeline-store-'));
    },
    stop: async () => rmSync(dir, { recursive: true, force: true }),
    fresh: async () => {
      const file = join(dir, `s${++n}.db`);
      const query = async (text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> => {
        const db = new Database(file);
        try {
          db.pragma('busy_timeout = 5000');
          const st = db.prepare(text.replace(/\$\d+/g, '?'));
          if (st.reader) return st.all(...params) as Record<string, unknown>[];
          st.run(...params);
          return [];
        } finally {
          db.close();
        }
      };
      return { url: 'sqlite:' + file, open: openSql('sqlite:' + file), tamper: sqlTamper(query), sql: { kind: 'sqlite', query } };
    },
  };
}

export function postgresBackend(): Backend {
  let server: PostgresServer | null = null;
  let n = 0;
  return {
    name: 'PostgreSQL',
    unavailable: postgresUnavailable,
    start: async () => {
      server = await startPostgres();
    },
    stop: async () => {
      await server?.stop();
      server = null;
    },
    fresh: async () => {
      const schema = `t${++n}_${process.pid}`;
      const query = async (text: string, params: unknown[] = []): Promise<Record<string, unknown>[]> => {
        const c = new pg.Client({ connectionString: server!.url(), options: `-c search_path=${schema}` });
        await c.connect();
        try {
          return (await c.query(text, params)).rows as Record<string, unknown>[];
        } finally {
          await c.end();
        }
      };
      return { url: server!.url(schema), open: openSql(server!.url(schema)), tamper: sqlTamper(query), sql: { kind: 'postgres', schema, query } };
    },
  };
}

/**
 * The in-memory store (mgmt-station/store/memory-store.ts): each place is a new MemoryStore, the "database";
 * every open is a new connection to it, and tampering goes through its `raw` tables.
 */
export function memoryBackend(): Backend {
  return {
    name: 'memory',
    unavailable: () => null,
    start: async () => {},
    stop: async () => {},
    fresh: async () => {
      const db = new MemoryStore(KEY);
      return { url: db.url, open: async (key) => db.connect(key), tamper: memoryTamper(db) };
    },
  };
}

// --- fixtures -----------------------------------------------------------------------------------------

export const KEY = ClusterKey.fromBytes(new Uint8Array(randomBytes(32)), 'test');
export const OTHER_KEY = ClusterKey.fromBytes(new Uint8Array(randomBytes(32)), 'test (other cluster)');
export const T0 = 1_700_000_000_000;
export const TTL = 500;

export function nic(id: string, over: Partial<NicRecord> = {}): NicRecord {
  return {
    id, address: '127.0.1.1', securePort: 664, clearPort: 623, ikePort: 500,
    psk: new Uint8Array(randomBytes(32)), enrolledAt: T0, meta: { rack: 'A3' }, ...over,
  };
}

export let nextSpi = 0x1000;
export function pair(generation: number, over: Partial<SaPair> = {}): SaPair {
  const dir = () => ({ spi: ++nextSpi, encKey: new Uint8Array(randomBytes(36)), ahSpi: ++nextSpi, ahKey: new Uint8Array(randomBytes(32)) });
  return { generation, transform: 'aes-gcm-16', esn: false, policy: 'esp+ah', toNic: dir(), fromNic: dir(), origin: 'ike', ...over };
}

export function ike(): IkeSaSnapshot {
  const k = (n: number) => new Uint8Array(randomBytes(n));
  return {
    spiI: k(8), spiR: k(8), initiator: true, skD: k(32), skAi: k(0), skAr: k(0), skEi: k(36), skEr: k(36),
    skPi: k(32), skPr: k(32), nextRequestId: 3, nextPeerRequestId: 1,
    transforms: { encr: 20, encrKeyBits: 256, prf: 5, integ: 0, dh: 31 },
  };
}

export async function rejectsWith(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error & { code?: string }) => {
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (re) assert.match(e.message, re);
    return true;
  });
}

/** What a case module (contract/*-cases.ts) gets from the suite: the current test's place and store. */
export interface Contract {
  readonly backend: Backend;
  /** The place of the current test's store (new for every test). */
  readonly place: Place;
  /** A connection to it, opened for the current test. */
  readonly store: Store;
  /** Another connection at `p`, closed after the test. */
  openAt(p: Place, key?: ClusterKey): Promise<Store>;
  /** An enrolled NIC leased to station `st`; returns the fence. */
  owned(s: Store, id: string, st?: string, now?: number): Promise<Fence>;
}
