/**
 * What every station command needs, in a process: the store (opened with the cluster key), the station's identity,
 * its UDP socket, real time, timers and randomness — around the station's decisions (core/station.ts), which get
 * all of these injected (core/env.ts).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { openStore } from './store/open-store.js';
import { SqliteDriver } from './store/sqlite-store.js';
import { PostgresDriver } from './store/postgres-store.js';
import { sql } from './store/sql-driver.js';
import { sqlitePathOf } from './store/store-url.js';
import { loadClusterKey, createClusterKeyFile, CLUSTER_KEY_ENV, type ClusterKey } from './store/cluster-key.js';
import type { Store } from './store/store.js';
import { UdpMux } from './udp-mux.js';
import { randomBytes } from 'node:crypto';
import { LifelineError } from '../common/errors.js';
import type { SaPair } from '../wire/sa.js';
import { saToJson } from '../lib/sa-json.js';
import type { ControlClient } from '../lib/control-client.js';
import { StationCore, type EmulatorControl, type EmulatorNic } from './core/station.js';
import type { StationEnv } from './core/env.js';
import { openSharedIkeSocket } from './ike-mux.js';

export interface ContextOptions {
  store: string;
  keyFile: string;
  stationId: string;
  leaseMs: number;
  /**
   * May create what does not exist yet (enroll, sa manual, serve): an SQLite store file (and its directory), and
   * the cluster key file if neither it nor LIFELINE_CLUSTER_KEY exists, only while the store records no cluster
   * key (a new store). Other verbs need an existing store (E_STORE) and key (E_KEYFILE).
   */
  create: boolean;
  bind?: string;
  /** UDP port of the station's secure socket (heartbeats and owner notices name it); 0 = any. */
  port?: number;
  /** µs to poll for a NIC's answer after sending a request (lib/answer-poll.ts); the default when absent, 0 = never. */
  busyPollUs?: number;
  /** serve --ike-rekey-interval: a held IKE SA is rekeyed at the first refresh after this long (ms). */
  ikeRekeyMs?: number;
}

/**
 * The cluster key id an existing store records (store_meta 'cluster_key_id', written when it was first opened),
 * or null when it records none (its tables are not there yet).
 */
async function storeClusterKeyId(url: string, sqlitePath: string | null): Promise<string | null> {
  const db = sqlitePath !== null ? new SqliteDriver(sqlitePath) : new PostgresDriver(url);
  try {
    return await db.transaction('read', function* () {
      const [t] = yield db.kind === 'sqlite'
        ? sql(`SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'`)
        : sql(`SELECT count(*) AS n FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'store_meta'`);
      if (Number(t.n) === 0) return null;
      const [row] = yield sql('SELECT v FROM store_meta WHERE k = ?', 'cluster_key_id');
      return row ? String(row.v) : null;
    });
  } finally {
    await db.close();
  }
}

export class StationContext extends StationCore {
  private mux: UdpMux | null = null;
  private muxOpening: Promise<UdpMux> | null = null;

  private constructor(store: Store, readonly key: ClusterKey, readonly options: ContextOptions) {
    super({ stationId: options.stationId, leaseMs: options.leaseMs, store, env: processEnv, port: () => this.udp(), bind: options.bind, ikeRekeyMs: options.ikeRekeyMs });
  }

  static async open(o: ContextOptions): Promise<StationContext> {
    // The SQLite file as openStore reads the URL (sqlite:PATH, sqlite:///abs); null for PostgreSQL.
    const sqlitePath = sqlitePathOf(o.store);
    const storeExists = sqlitePath === null || sqlitePath === ':memory:' || existsSync(sqlitePath);
    if (!storeExists && !o.create) {
      throw new LifelineError('E_STORE', `no store at ${sqlitePath}: check --store (only enroll, sa manual and serve create a store)`);
    }
    let key: ClusterKey;
    if (!process.env[CLUSTER_KEY_ENV] && !existsSync(o.keyFile)) {
      if (!o.create) throw new LifelineError('E_KEYFILE', `no cluster key: neither ${o.keyFile} nor ${CLUSTER_KEY_ENV} exists; check --cluster-key`);
      // A store that already wraps keys under a cluster key needs that key: a new one would be a typo's orphan.
      const expected = storeExists ? await storeClusterKeyId(o.store, sqlitePath) : null;
      if (expected !== null) {
        throw new LifelineError('E_KEYFILE', `cluster key file ${o.keyFile} does not exist, and store ${o.store} holds keys wrapped under cluster key ${expected}: pass that key (--cluster-key FILE or ${CLUSTER_KEY_ENV}); a new key is created only with a new store`);
      }
      mkdirSync(dirname(o.keyFile), { recursive: true, mode: 0o700 }); // a directory made for secrets: 0700
      key = createClusterKeyFile(o.keyFile);
      process.stderr.write(`mgmt-station: created cluster key ${o.keyFile} (0600); every station of this cluster needs it\n`);
    } else {
      if (existsSync(o.keyFile) && statSync(o.keyFile).isDirectory()) {
        throw new LifelineError('E_KEYFILE', `cluster key file ${o.keyFile} is a directory; pass the key file itself (--cluster-key FILE)`);
      }
      key = loadClusterKey({ file: existsSync(o.keyFile) ? o.keyFile : undefined });
    }
    if (sqlitePath !== null && !storeExists) mkdirSync(dirname(sqlitePath) || '.', { recursive: true, mode: 0o700 });
    const store = await openStore(o.store, key);
    return new StationContext(store, key, o);
  }

  async udp(): Promise<UdpMux> {
    if (this.mux) return this.mux;
    this.muxOpening ??= UdpMux.open(this.options.bind ?? '127.0.0.1', this.options.port ?? 0, this.options.busyPollUs).then((m) => (this.mux = m));
    return this.muxOpening;
  }

  /** How polling for NICs' answers went (lib/answer-poll.ts), once the station's socket is open. */
  answerPoll(): ReturnType<UdpMux['poll']['stats']> | null {
    return this.mux?.poll.stats() ?? null;
  }

  /** What this process dropped, by reason: datagrams on its socket nobody holds an SA for, and per NIC session. */
  drops(): { socket: Record<string, number>; nics: Record<string, Record<string, number>> } {
    return { socket: { ...(this.mux?.dropped ?? {}) }, nics: this.sessionDrops() };
  }

  override async close(): Promise<void> {
    await super.close();
    await this.mux?.close();
    this.mux = null;
    await this.store.close();
  }
}

/** Real time, timers, randomness and the IKE socket for the station's core. */
export const processEnv: StationEnv = {
  now: () => Date.now(),
  mono: () => performance.now(),
  after: (ms, f) => {
    const t = setTimeout(f, Math.max(0, ms));
    return { cancel: () => clearTimeout(t) };
  },
  random: (n) => new Uint8Array(randomBytes(n)),
  // One socket per local address for every NIC's key exchange, dispatched by IKE SPI (ike-mux.ts).
  openIkeSocket: openSharedIkeSocket,
};

/** The emulator's control API as the station's core uses it (lib/control-client.ts). */
export function emulatorControl(emu: ControlClient): EmulatorControl {
  return {
    name: `${emu.host}:${emu.port}`,
    nic: (id) => emu.get<EmulatorNic>(`/v1/nics/${encodeURIComponent(id)}`),
    setTrustAnchor: async (id, psk) => {
      await emu.post(`/v1/nics/${encodeURIComponent(id)}/trust-anchor`, { psk: Buffer.from(psk).toString('hex') });
    },
    installSa: (id, sa: SaPair) => emu.post<{ generation: number }>(`/v1/nics/${encodeURIComponent(id)}/sa`, { sa: saToJson(sa) }),
  };
}
