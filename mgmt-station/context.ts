/**
 * What every station command needs: the store (opened with the cluster key), the station's identity, its
 * UDP socket, and a lease on each NIC it talks to (DESIGN §5: one owner per NIC, fenced by epoch).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { openStore } from './store/open-store.js';
import { SqliteDriver } from './store/sqlite-store.js';
import { PostgresDriver } from './store/postgres-store.js';
import { sql } from './store/sql-driver.js';
import { sqlitePathOf } from './store/store-url.js';
import { loadClusterKey, createClusterKeyFile, CLUSTER_KEY_ENV, type ClusterKey } from './store/cluster-key.js';
import type { Fence, NicRecord, Store } from './store/store.js';
import { KeyExchange, type ExchangeResult } from './key-exchange.js';
import { UdpMux } from './udp-mux.js';
import { NicSession, type CommandKind } from './nic-session.js';
import { randomBytes } from 'node:crypto';
import { LifelineError } from '../common/errors.js';
import type { SaPair } from '../wire/sa.js';
import { saToJson } from '../lib/sa-json.js';
import type { ControlClient } from '../lib/control-client.js';

export const DEFAULT_STORE = 'sqlite:var/station.db';
export const DEFAULT_KEY_FILE = 'var/cluster.key';

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

export class StationContext {
  private mux: UdpMux | null = null;
  private sessions = new Map<string, NicSession>();
  private fences = new Map<string, Fence>();
  private exchanges = new Map<string, KeyExchange>();
  private opening = new Map<string, Promise<NicSession>>();
  /** Per NIC, the tail of the key exchanges and SA changes this process runs: one at a time (exclusiveKeying). */
  private keying = new Map<string, Promise<unknown>>();
  /** NICs this process took over from another station (their sessions start above the old owner's window). */
  readonly takeovers = new Set<string>();

  private constructor(readonly store: Store, readonly key: ClusterKey, readonly o: ContextOptions) {}

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
      mkdirSync(dirname(o.keyFile), { recursive: true });
      key = createClusterKeyFile(o.keyFile);
      process.stderr.write(`mgmt-station: created cluster key ${o.keyFile} (0600); every station of this cluster needs it\n`);
    } else {
      if (existsSync(o.keyFile) && statSync(o.keyFile).isDirectory()) {
        throw new LifelineError('E_KEYFILE', `cluster key file ${o.keyFile} is a directory; pass the key file itself (--cluster-key FILE)`);
      }
      key = loadClusterKey({ file: existsSync(o.keyFile) ? o.keyFile : undefined });
    }
    if (sqlitePath !== null && !storeExists) mkdirSync(dirname(sqlitePath) || '.', { recursive: true });
    const store = await openStore(o.store, key);
    return new StationContext(store, key, o);
  }

  now(): number {
    return Date.now();
  }

  async udp(): Promise<UdpMux> {
    if (!this.mux) this.mux = await UdpMux.open(this.o.bind ?? '127.0.0.1', this.o.port ?? 0, this.o.busyPollUs);
    return this.mux;
  }

  /** How polling for NICs' answers went (lib/answer-poll.ts), once the station's socket is open. */
  answerPoll(): ReturnType<UdpMux['poll']['stats']> | null {
    return this.mux?.poll.stats() ?? null;
  }

  /** What this process dropped, by reason: datagrams on its socket nobody holds an SA for, and per NIC session. */
  drops(): { socket: Record<string, number>; nics: Record<string, Record<string, number>> } {
    const nics: Record<string, Record<string, number>> = {};
    for (const [id, s] of this.sessions) nics[id] = { ...s.counters.dropped };
    return { socket: { ...(this.mux?.dropped ?? {}) }, nics };
  }

  /** Forget our own claim on a NIC (e.g. the lease could not be renewed). */
  dropSession(nic: string): void {
    this.sessions.get(nic)?.close();
    this.sessions.delete(nic);
    this.fences.delete(nic);
  }

  /** Take (or keep) this station's lease on the NIC; the fence guards every write that follows. */
  async fence(nic: string): Promise<Fence> {
    const r = await this.store.acquireLease(nic, this.o.stationId, this.now(), this.o.leaseMs);
    if (!r.acquired) {
      throw new LifelineError(
        'E_FENCED',
        `${nic} is owned by station '${r.lease.owner}' (epoch ${r.lease.epoch}) for another ${Math.max(0, r.lease.expiresAt - this.now())} ms; use that station (--id) or wait for its lease to lapse`,
      );
    }
    const f = { station: this.o.stationId, epoch: r.lease.epoch };
    const old = this.fences.get(nic);
    this.fences.set(nic, f);
    if (r.takeover) this.takeovers.add(nic);
    if (old && old.epoch !== f.epoch) {
      // We lost the NIC and got it back: our session's fence and sequence state are stale.
      this.sessions.get(nic)?.close();
      this.sessions.delete(nic);
    }
    return f;
  }

  /**
   * The secure session to a NIC, opened once per process (concurrent callers share the opening). Before it
   * serves anything, it finishes the commands that an earlier owner — another station, or an earlier process
   * of this one — logged as sent and never saw acknowledged (DESIGN §5): resent with their recorded identity,
   * the NIC answers them from its response cache or runs them now, and never a second time.
   */
  async session(nic: string): Promise<NicSession> {
    const have = this.sessions.get(nic);
    if (have) return have;
    let opening = this.opening.get(nic);
    if (!opening) {
      opening = (async () => {
        const openedAt = Date.now();
        const fence = await this.fence(nic);
        const s = await NicSession.open(nic, { store: this.store, mux: await this.udp(), fence, now: () => this.now(), takeover: this.takeovers.has(nic) });
        for (const c of await this.store.listCommands(nic)) {
          if (c.outcome !== 'sent' || c.time >= openedAt) continue;
          await s.completeCommand(c.index, c.command as CommandKind, c.rmcpSeq, c.asfTag, 2000);
        }
        this.sessions.set(nic, s);
        return s;
      })().finally(() => this.opening.delete(nic));
      this.opening.set(nic, opening);
    }
    return opening;
  }

  /**
   * Run `f` once every key exchange or SA change of `nic` this process started before has finished: one at a
   * time per NIC, in the order asked (DESIGN §2.5: the commit has one pending slot; two exchanges at once would
   * take each other's SA_READY). A refresh asked while one runs therefore waits for it and then runs its own.
   */
  exclusiveKeying<T>(nic: string, f: () => Promise<T>): Promise<T> {
    const run = (this.keying.get(nic) ?? Promise.resolve()).then(f);
    const tail = run.catch(() => undefined);
    this.keying.set(nic, tail);
    void tail.then(() => {
      if (this.keying.get(nic) === tail) this.keying.delete(nic);
    });
    return run;
  }

  /** Run an enrolment or a refresh for `nic` with this station's lease, after any other one of it (exclusiveKeying). */
  keyExchange(nic: NicRecord, kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    return this.exclusiveKeying(nic.id, () => this.keyExchangeExclusive(nic, kind, timeoutMs));
  }

  /** keyExchange for a caller that already holds `exclusiveKeying(nic.id)`. */
  async keyExchangeExclusive(nic: NicRecord, kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    const fence = await this.fence(nic.id);
    let kx = this.exchanges.get(nic.id);
    if (kx && !sameIkePeer(kx.nic, nic)) {
      // Re-enrolled since (a new PSK, or the host agent moved): the old driver would authenticate with the old key.
      this.exchanges.delete(nic.id);
      await kx.close();
      kx = undefined;
    }
    if (!kx) {
      kx = new KeyExchange(nic, { store: this.store, fence: () => this.fences.get(nic.id) ?? fence, now: () => this.now(), stationId: this.o.stationId, bind: this.o.bind });
      this.exchanges.set(nic.id, kx);
    }
    const r = kind === 'enroll' ? await kx.enroll(timeoutMs) : await kx.refresh(timeoutMs);
    // Use the new SA at once (protocol/README.md shell contract): the NIC then retires the previous SA, and
    // the next refresh cannot start before a packet under this one has been answered.
    const s = await this.session(nic.id);
    await s.reload();
    await s.read('presence-ping', 2000).catch(() => undefined);
    return r;
  }

  /**
   * `enroll NIC --psk-file F`: write the PSK into the NIC as its trust anchor (the administrator's step, DESIGN §3)
   * and record it, then IKE_SA_INIT + IKE_AUTH + the two-phase commit (DESIGN §2.4-2.5). The lease comes first: a
   * NIC another station owns keeps its trust anchor and its stored PSK (E_FENCED, nothing changed); a NIC the
   * store does not know has no lease yet, so it is recorded, then leased. One at a time with the NIC's other key
   * exchanges. Used by the CLI and, forwarded to it, by the daemon (so its driver then holds the new PSK).
   */
  async enroll(emu: ControlClient, nicId: string, psk: Uint8Array, timeoutMs: number): Promise<ExchangeResult> {
    const st = await emu.get<EmulatorNic>(`/v1/nics/${encodeURIComponent(nicId)}`);
    return this.exclusiveKeying(st.id, async () => {
      const record = (existing: NicRecord | null): NicRecord => ({
        id: st.id, address: st.address, securePort: st.ports.secure, clearPort: st.ports.clear, ikePort: st.ports.ike, psk,
        enrolledAt: this.now(), meta: { ...(existing?.meta ?? {}), ...nicMeta(emu, st), enrolled: true },
      });
      // A NIC new to the store must be there before it can be leased; inserted only if absent, so a station
      // that then loses the lease (E_FENCED) never replaces the winner's record. Only the holder writes it.
      await this.store.addNicIfAbsent(record(null));
      const fence = await this.fence(st.id);
      await emu.post(`/v1/nics/${encodeURIComponent(st.id)}/trust-anchor`, { psk: Buffer.from(psk).toString('hex') });
      const enrolled = record(await this.store.getNic(st.id));
      await this.store.updateNic(enrolled, fence);
      return this.keyExchangeExclusive(enrolled, 'enroll', timeoutMs);
    });
  }

  /**
   * `sa manual NIC` (RFC 4301 manual keying): install `sa` in the NIC through the emulator's control API (standing
   * in for the host driver), store it active under this station's lease, and move an open session to it (used at
   * once, so the NIC retires the SA before it). One at a time with the NIC's key exchanges.
   */
  async installManualSa(emu: ControlClient, nicId: string, sa: SaPair): Promise<{ nic: string; generation: number; policy: string; transform: string; toNicSpi: number; fromNicSpi: number }> {
    const st = await emu.get<EmulatorNic>(`/v1/nics/${encodeURIComponent(nicId)}`);
    return this.exclusiveKeying(st.id, async () => {
      const record = (existing: NicRecord | null): NicRecord => ({
        id: st.id, address: st.address, securePort: st.ports.secure, clearPort: st.ports.clear, ikePort: st.ports.ike,
        psk: existing?.psk ?? new Uint8Array(randomBytes(32)), enrolledAt: existing?.enrolledAt ?? this.now(),
        meta: { ...(existing?.meta ?? {}), ...nicMeta(emu, st) },
      });
      // As in enroll: a new NIC is inserted only if absent, then leased; only the lease holder updates it.
      await this.store.addNicIfAbsent(record(null));
      const fence = await this.fence(st.id);
      await this.store.updateNic(record(await this.store.getNic(st.id)), fence);
      const { generation } = await emu.post<{ generation: number }>(`/v1/nics/${encodeURIComponent(st.id)}/sa`, { sa: saToJson(sa) });
      await this.store.putSa(st.id, { pair: { ...sa, generation }, state: 'pending', ike: null }, this.now(), fence);
      await this.store.activateSa(st.id, generation, this.now(), fence);
      const s = this.sessions.get(st.id);
      if (s) {
        await s.reload();
        await s.read('presence-ping', 2000).catch(() => undefined);
      }
      return { nic: st.id, generation, policy: sa.policy, transform: sa.transform, toNicSpi: sa.toNic.spi, fromNicSpi: sa.fromNic.spi };
    });
  }

  /** The other station whose unexpired lease holds `nic`, or null (free, lapsed, or this station's). */
  async ownerElsewhere(nic: string): Promise<string | null> {
    const lease = await this.store.getLease(nic);
    return lease?.owner && lease.owner !== this.o.stationId && lease.expiresAt > this.now() ? lease.owner : null;
  }

  /**
   * Catch up with SA changes another process made in the store (a CLI run with --no-daemon, a station on another
   * host with our cluster key): if the store's active SA is not the one this process's session sends on, reload
   * the session from the store, so it does not go on sending under an SA the NIC has retired. A NIC whose
   * address or ports changed (re-enrolled) gets a new session. The key exchange driver is checked the same way
   * before each use (keyExchangeExclusive). Cheap when nothing changed: one read of the active SA.
   */
  async syncWithStore(nic: NicRecord): Promise<void> {
    const s = this.sessions.get(nic.id);
    if (!s) return;
    if (s.nic.address !== nic.address || s.nic.securePort !== nic.securePort) {
      this.dropSession(nic.id);
      return;
    }
    const active = await this.store.getActiveSa(nic.id);
    if ((active?.pair.generation ?? null) !== s.activeGeneration) await s.reload();
  }

  async close(): Promise<void> {
    for (const k of this.exchanges.values()) await k.close();
    this.exchanges.clear();
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
    await this.mux?.close();
    this.mux = null;
    await this.store.close();
  }
}

/** What the emulator's control API says of a NIC (GET /v1/nics/:id), as much as the station needs. */
interface EmulatorNic {
  id: string;
  address: string;
  ports: { clear: number; secure: number; ike: number };
  /** The NIC's SA database; null while it is not running. `checkpointBlock`: K of DESIGN §2.6. */
  sa?: { checkpointBlock?: number } | null;
}

/**
 * What enrolment and `sa manual` record of the NIC in its meta: the emulator it was reached through and the
 * NIC's inbound checkpoint block K (DESIGN §2.6), which the station's sequence jump after a NIC restart needs.
 */
function nicMeta(emu: ControlClient, st: EmulatorNic): Record<string, unknown> {
  const k = st.sa?.checkpointBlock;
  return { emulator: `${emu.host}:${emu.port}`, ...(Number.isSafeInteger(k) && k! >= 1 ? { checkpointBlock: k } : {}) };
}

/** Same host agent and same pre-shared key: a KeyExchange made for `a` can serve `b`. */
function sameIkePeer(a: NicRecord, b: NicRecord): boolean {
  return a.address === b.address && a.ikePort === b.ikePort && a.psk.length === b.psk.length && a.psk.every((x, i) => x === b.psk[i]);
}
