/**
 * The store in memory: the same Store interface and rules as the SQL backends, for the deterministic simulator
 * (DESIGN §7) and for unit tests. No I/O, no clock (time is a parameter), no randomness (keys are kept in
 * memory, not wrapped). The command log, its head, sequence checkpoints and sync epochs carry exactly the
 * hashes and MACs the SQL backends store (command-log.ts, row-mac.ts), so tampering and audits behave alike.
 *
 * Every method runs to completion without an await between its reads and its writes, and checks everything
 * before it writes anything, so each call is atomic as a transaction is: a call that throws changed nothing.
 *
 * The tables are "the database"; a MemoryStore is a connection to them. `connect()` opens another one on
 * the same tables (another station, or a station restarted), `close()` ends only this connection. Beyond the
 * Store interface the simulator gets `snapshot()`/`restore()` (a backup and its restore) and `raw` (the rows
 * someone with write access to the store but not the cluster key could edit).
 */
import { UsageError } from '../../common/errors.js';
import type { ClusterKey } from './cluster-key.js';
import { auditChain, foldCommands, LogSealer, resendAllowed, unsealed } from './command-log.js';
import { claimBlock, raiseCheckpoint, raiseSyncEpoch, readCheckpoint, readSyncEpoch } from './memory-checkpoints.js';
import { appendEntry, outcomeFields, readLog } from './memory-command-log.js';
import { activate, changeState, indexSpis, putSaRow } from './memory-sas.js';
import {
  copyBytes, copySa, copyTables, emptyTables, replaceTables,
  type MemoryDatabase, type MemoryNicRow, type MemoryStoreSnapshot, type MemoryTables, type RawTables,
} from './memory-tables.js';
import { RowMacs } from './row-mac.js';
import { checkFence, logAltered, notEnrolled, saRules } from './store-errors.js';
import type {
  AlertInput, AlertQuery, AlertRecord, AuditReport, CommandInput, CommandLogEntry, CommandOutcome, CommandRecord, CommandRef, Fence, Lease, LeaseResult, Member,
  NicRecord, NicSaState, SaInput, SaState, SaSummary, SeqCheckpoint, StationRecord, Store, StoredSa,
} from './store.js';
import * as v from './validate.js';
import { mutated } from '../../common/mutation.js';
import { assertAlert, assertAlertQuery } from './alert-rows.js';
import { ALERTS_KEPT, liveLease } from './store.js';

export type { MemoryStoreSnapshot, RawTables } from './memory-tables.js';

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly url = 'memory:';
  #db: MemoryDatabase;
  #seal: LogSealer;
  #macs: RowMacs;
  #closed = false;

  /** A new, empty store whose rows are sealed under `clusterKey`, and a first connection to it. */
  constructor(clusterKey: ClusterKey) {
    this.#db = { keyId: clusterKey.id, tables: emptyTables(), liveSpis: new Map() };
    this.#seal = new LogSealer(clusterKey);
    this.#macs = new RowMacs(clusterKey);
  }

  /** Another connection to the same tables; E_KEYFILE with another cluster's key (as SqlStore.open). */
  connect(clusterKey: ClusterKey): MemoryStore {
    if (clusterKey.id !== this.#db.keyId) {
      throw new UsageError(
        'E_KEYFILE',
        `store ${this.url} is sealed under cluster key ${this.#db.keyId}, but this station has key ${clusterKey.id}; use the cluster's key file`,
      );
    }
    const other = new MemoryStore(clusterKey);
    other.#db = this.#db;
    // Same key (checked above): the connections share what their sealers have verified.
    other.#seal = this.#seal;
    other.#macs = this.#macs;
    return other;
  }

  /** A deep copy of every table, MACs included: what a backup of the store holds at this moment. */
  snapshot(): MemoryStoreSnapshot {
    return { clusterKeyId: this.#db.keyId, ...copyTables(this.#db.tables) };
  }

  /**
   * Make the store a copy of `snap` (a restored backup), for every connection. The snapshot stays as it was
   * and can be restored again. E_KEYFILE for a snapshot of another cluster's store.
   */
  restore(snap: MemoryStoreSnapshot): void {
    if (snap.clusterKeyId !== this.#db.keyId) {
      throw new UsageError('E_KEYFILE', `snapshot of a store sealed under cluster key ${snap.clusterKeyId} cannot be restored into one under ${this.#db.keyId}`);
    }
    replaceTables(this.#db.tables, snap);
    indexSpis(this.#db);
  }

  /**
   * The live rows of the runtime tables, for a test or the simulator playing someone with write access to the
   * store but not the cluster key: delete a row, change a field, copy in an older row from a snapshot. Nothing
   * checks an edit here; the store finds it (or, for an older sealed row, cannot: see row-mac.ts).
   */
  get raw(): RawTables {
    const { commandLog, commandHeads, seqCheckpoints, syncEpochs, leases, members } = this.#db.tables;
    return { commandLog, commandHeads, seqCheckpoints, syncEpochs, leases, members };
  }

  /** Run one call: atomic because `body` is synchronous; its errors become a rejection, as SqlStore's do. */
  #call<T>(body: (t: MemoryTables) => T): Promise<T> {
    try {
      if (this.#closed) throw new UsageError('E_STORE', `store ${this.url}: this connection is closed; connect again`);
      return Promise.resolve(body(this.#db.tables));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #fenced(t: MemoryTables, nic: string, fence: Fence, what: string): Lease {
    return checkFence(nic, fence, t.leases.get(nic) ?? null, what);
  }

  // --- NICs -------------------------------------------------------------------------------------

  addNicIfAbsent(n: NicRecord): Promise<boolean> {
    return this.#call((t) => {
      v.assertNicRecord(n);
      if (t.nics.has(n.id)) return false;
      t.nics.set(n.id, nicRow(n));
      return true;
    });
  }

  updateNic(n: NicRecord, fence: Fence): Promise<void> {
    return this.#call((t) => {
      v.assertNicRecord(n);
      v.assertFence(fence);
      this.#fenced(t, n.id, fence, 'update its record');
      if (!t.nics.has(n.id)) throw notEnrolled(n.id);
      t.nics.set(n.id, nicRow(n));
    });
  }

  getNic(id: string): Promise<NicRecord | null> {
    return this.#call((t) => {
      v.assertName('nic id', id);
      const r = t.nics.get(id);
      return r ? nicRecord(r) : null;
    });
  }

  listNics(): Promise<NicRecord[]> {
    return this.#call((t) => [...t.nics.values()].sort((a, b) => byString(a.id, b.id)).map(nicRecord));
  }

  // --- SAs --------------------------------------------------------------------------------------

  putSa(nic: string, sa: SaInput, now: number, fence: Fence): Promise<void> {
    return this.#call(() => {
      v.assertName('nic id', nic);
      v.assertSaPair(sa?.pair);
      v.assertSaState(sa.state);
      if (sa.ike !== null) v.assertIke(sa.ike);
      v.assertTime('now', now);
      v.assertFence(fence);
      putSaRow(this.#db, nic, sa, now, fence);
    });
  }

  getSa(nic: string, generation: number): Promise<StoredSa | null> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertGeneration(generation);
      const s = t.sas.get(nic)?.get(generation);
      return s ? copySa(s) : null;
    });
  }

  listSas(nic: string, states?: readonly SaState[]): Promise<StoredSa[]> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      if (states !== undefined) for (const st of states) v.assertSaState(st);
      const all = [...(t.sas.get(nic)?.values() ?? [])];
      return (states === undefined ? all : all.filter((s) => states.includes(s.state))).sort((a, b) => a.pair.generation - b.pair.generation).map(copySa);
    });
  }

  listNicSaStates(nic: string): Promise<NicSaState[]> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      return [...(t.sas.get(nic)?.values() ?? [])]
        .sort((a, b) => a.pair.generation - b.pair.generation)
        .map((s) => ({ nic, generation: s.pair.generation, state: s.state, updatedAt: s.updatedAt, fromNicSpi: s.pair.fromNic.spi }));
    });
  }

  listSaStates(): Promise<SaSummary[]> {
    return this.#call((t) => {
      const out: SaSummary[] = [];
      for (const nic of [...t.sas.keys()].sort(byString)) {
        for (const s of [...t.sas.get(nic)!.values()].sort((a, b) => a.pair.generation - b.pair.generation)) {
          if (s.state !== 'retired') out.push({ nic, generation: s.pair.generation, state: s.state, updatedAt: s.updatedAt });
        }
      }
      return out;
    });
  }

  getActiveSa(nic: string): Promise<StoredSa | null> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      for (const s of t.sas.get(nic)?.values() ?? []) if (s.state === 'active') return copySa(s);
      return null;
    });
  }

  activeGenerations(): Promise<Map<string, number>> {
    return this.#call((t) => {
      const out = new Map<string, number>();
      for (const [nic, sas] of t.sas) for (const sa of sas.values()) if (sa.state === 'active') out.set(nic, sa.pair.generation);
      return out;
    });
  }

  findSaBySpi(spi: number): Promise<StoredSa | null> {
    return this.#call(() => {
      v.assertInt('spi', spi, 1, 0xfffffffe);
      const s = this.#db.liveSpis.get(spi);
      return s ? copySa(s) : null;
    });
  }

  activateSa(nic: string, generation: number, now: number, fence: Fence): Promise<void> {
    return this.#call(() => {
      v.assertName('nic id', nic);
      v.assertGeneration(generation);
      v.assertTime('now', now);
      v.assertFence(fence);
      activate(this.#db, nic, generation, now, fence);
    });
  }

  setSaState(nic: string, generation: number, state: Exclude<SaState, 'active'>, now: number, fence: Fence): Promise<void> {
    return this.#call(() => {
      v.assertName('nic id', nic);
      v.assertGeneration(generation);
      v.assertSaState(state);
      if ((state as SaState) === 'active') throw saRules.setActive();
      v.assertTime('now', now);
      v.assertFence(fence);
      changeState(this.#db, nic, generation, state, now, fence);
    });
  }

  // --- sequence checkpoints (DESIGN §2.6): sealed rows, memory-checkpoints.ts ----------------------

  reserveOutbound(nic: string, generation: number, upTo: bigint, now: number, fence: Fence): Promise<bigint> {
    return this.#call((t) => {
      v.assertU64('upTo', upTo);
      this.#seqArgs(nic, generation, now, fence);
      return raiseCheckpoint(t, this.#macs, nic, generation, 'outReserved', upTo, now, fence);
    });
  }

  claimOutbound(nic: string, generation: number, minNext: bigint, size: bigint, now: number, fence: Fence): Promise<bigint> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertGeneration(generation);
      v.assertU64('minNext', minNext);
      v.assertBlockSize(size);
      v.assertTime('now', now);
      v.assertFence(fence);
      return claimBlock(t, this.#macs, nic, generation, minNext, size, now, fence);
    });
  }

  recordInbound(nic: string, generation: number, highest: bigint, now: number, fence: Fence): Promise<bigint> {
    return this.#call((t) => {
      v.assertU64('highest', highest);
      this.#seqArgs(nic, generation, now, fence);
      return raiseCheckpoint(t, this.#macs, nic, generation, 'inHighest', highest, now, fence);
    });
  }

  #seqArgs(nic: string, generation: number, now: number, fence: Fence): void {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    v.assertTime('now', now);
    v.assertFence(fence);
  }

  getCheckpoint(nic: string, generation: number): Promise<SeqCheckpoint | null> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertGeneration(generation);
      return readCheckpoint(t, this.#macs, nic, generation);
    });
  }

  // --- ownership (DESIGN §5) --------------------------------------------------------------------

  acquireLease(nic: string, station: string, now: number, ttlMs: number): Promise<LeaseResult> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertName('station id', station);
      v.assertTime('now', now);
      v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
      if (!t.nics.has(nic)) throw notEnrolled(nic);
      return acquire(t, nic, station, now, ttlMs);
    });
  }

  acquireLeases(nics: readonly string[], station: string, now: number, ttlMs: number): Promise<Map<string, LeaseResult>> {
    return this.#call((t) => {
      for (const nic of nics) v.assertName('nic id', nic);
      v.assertName('station id', station);
      v.assertTime('now', now);
      v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
      const out = new Map<string, LeaseResult>();
      // In one step, as SQL's batches are one transaction each (and any interleaving of batches is one of these).
      for (const nic of [...new Set(nics)].sort(byString)) if (t.nics.has(nic)) out.set(nic, acquire(t, nic, station, now, ttlMs));
      return out;
    });
  }

  renewLease(nic: string, fence: Fence, now: number, ttlMs: number): Promise<Lease> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertFence(fence);
      v.assertTime('now', now);
      v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
      const cur = this.#fenced(t, nic, fence, 'renew its lease');
      const lease = { ...cur, expiresAt: now + ttlMs };
      t.leases.set(nic, lease);
      return { ...lease };
    });
  }

  releaseLease(nic: string, fence: Fence): Promise<void> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertFence(fence);
      const cur = this.#fenced(t, nic, fence, 'release its lease');
      t.leases.set(nic, { ...cur, owner: null, expiresAt: 0 });
    });
  }

  getLease(nic: string): Promise<Lease | null> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      const l = t.leases.get(nic);
      return l ? liveLease({ ...l }, t.members) : null;
    });
  }

  listLeases(): Promise<Lease[]> {
    return this.#call((t) => [...t.leases.values()].sort((a, b) => byString(a.nic, b.nic)).map((l) => liveLease({ ...l }, t.members)));
  }

  releaseLeases(nics: ReadonlyMap<string, number>, station: string, now: number): Promise<string[]> {
    return this.#call((t) => {
      for (const [nic, epoch] of nics) {
        v.assertName('nic id', nic);
        v.assertFence({ station, epoch });
      }
      v.assertTime('now', now);
      const released: string[] = [];
      for (const [nic, epoch] of nics) {
        const cur = t.leases.get(nic);
        if (!cur || cur.owner !== station || cur.epoch !== epoch) continue;
        t.leases.set(nic, { ...cur, owner: null, expiresAt: now });
        released.push(nic);
      }
      return released.sort(byString);
    });
  }

  // --- command log: memory-command-log.ts, the chain in command-log.ts -------------------------------

  appendCommand(nic: string, input: CommandInput, fence: Fence): Promise<CommandLogEntry> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertCommandInput(input);
      v.assertFence(fence);
      // Omitted wire identity (-1): assigned from the log index (wireIdentity()), as in SQL.
      return appendEntry(t, this.#seal, nic, fence, 'record a command', () => ({
        kind: 'command', ref: null, command: input.command, rmcpSeq: input.rmcpSeq ?? -1, asfTag: input.asfTag ?? -1,
        outcome: input.outcome, time: input.time, syncEpoch: input.syncEpoch ?? null,
      }));
    });
  }

  updateOutcome(nic: string, ref: CommandRef, outcome: CommandOutcome, time: number, fence: Fence, syncEpoch?: number): Promise<CommandLogEntry> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertCommandRef(ref);
      v.assertOutcome(outcome);
      v.assertTime('time', time);
      v.assertFence(fence);
      v.assertOutcomeEpoch(outcome, syncEpoch);
      return appendEntry(t, this.#seal, nic, fence, 'record a command outcome', (rows) => outcomeFields(rows, nic, ref, outcome, time, syncEpoch));
    });
  }

  updateOutcomeIf(nic: string, ref: CommandRef, outcome: 'sent' | 'failed', time: number, fence: Fence, expectEpoch: number, syncEpoch?: number): Promise<boolean> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertCommandRef(ref);
      v.assertTime('time', time);
      v.assertFence(fence);
      if (outcome !== 'sent' && outcome !== 'failed') throw new UsageError('E_USAGE', `updateOutcomeIf records 'sent' or 'failed', not ${JSON.stringify(outcome)}`);
      v.assertOutcomeEpoch(outcome, syncEpoch);
      v.assertSyncEpoch('expectEpoch', expectEpoch);
      checkFence(nic, fence, t.leases.get(nic) ?? null, 'record a command sent again');
      // Decided on a log that verifies: an edited row cannot make a command go out twice (sql-store.ts likewise).
      const rows = readLog(t, nic);
      const audit = auditChain(nic, rows, t.commandHeads.get(nic) ?? null, this.#seal);
      if (!audit.ok && !mutated('no-log-audit')) throw logAltered(nic, audit.problem);
      if (!resendAllowed(nic, rows, ref, expectEpoch)) return false;
      appendEntry(t, this.#seal, nic, fence, 'record a command sent again', (rows) => outcomeFields(rows, nic, ref, outcome, time, syncEpoch));
      return true;
    });
  }

  readCommandLog(nic: string): Promise<CommandLogEntry[]> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      return readLog(t, nic).map(unsealed);
    });
  }

  listCommands(nic: string): Promise<CommandRecord[]> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      return foldCommands(nic, readLog(t, nic));
    });
  }

  auditCommandLog(nic: string): Promise<AuditReport> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      const head = t.commandHeads.get(nic);
      return auditChain(nic, readLog(t, nic), head ? { ...head } : null, this.#seal);
    });
  }

  // --- NIC sync epochs (DESIGN §7): sealed rows, memory-checkpoints.ts -------------------------------

  getSyncEpoch(nic: string): Promise<number> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      return readSyncEpoch(t, this.#macs, nic);
    });
  }

  recordSyncEpoch(nic: string, epoch: number, now: number, fence: Fence): Promise<number> {
    return this.#call((t) => {
      v.assertName('nic id', nic);
      v.assertSyncEpoch('epoch', epoch);
      v.assertTime('now', now);
      v.assertFence(fence);
      return raiseSyncEpoch(t, this.#macs, nic, epoch, now, fence);
    });
  }

  // --- ASF alerts (docs/ALERTS.md) ---------------------------------------------------------------

  addAlert(nic: string, station: string, a: AlertInput): Promise<AlertRecord | null> {
    return this.#call((t) => {
      assertAlert(nic, station, a);
      let last = 0;
      const mine: number[] = [];
      for (const [id, r] of t.alerts) {
        if (r.nic === nic && r.alertId === a.alertId) return null;
        if (r.nic === nic) mine.push(id);
        last = Math.max(last, id);
      }
      // SQL's AUTOINCREMENT never hands out an id again: the counter survives deleted rows.
      const id = Math.max(last, this.#db.alertSeq ?? 0) + 1;
      this.#db.alertSeq = id;
      const row: AlertRecord = { id, nic, station, ...a };
      t.alerts.set(id, row);
      for (const old of mine.slice(0, Math.max(0, mine.length + 1 - ALERTS_KEPT))) t.alerts.delete(old);
      return { ...row };
    });
  }

  listAlerts(q: AlertQuery): Promise<AlertRecord[]> {
    return this.#call((t) => {
      assertAlertQuery(q);
      const rows = [...t.alerts.values()].filter((r) => (q.nic === undefined || r.nic === q.nic) && (q.afterId === undefined || r.id > q.afterId)).sort((a, b) => a.id - b.id);
      return (q.limit !== undefined ? rows.slice(-q.limit) : rows).map((r) => ({ ...r }));
    });
  }

  // --- cluster membership -----------------------------------------------------------------------

  touchStation(id: string, address: string, now: number): Promise<void> {
    return this.#call((t) => {
      v.assertName('station id', id);
      v.assertStationAddress(address);
      v.assertTime('now', now);
      t.stations.set(id, { id, address, lastSeen: now });
    });
  }

  listStations(): Promise<StationRecord[]> {
    return this.#call((t) => [...t.stations.values()].sort((a, b) => byString(a.id, b.id)).map((s) => ({ ...s })));
  }

  renewMember(station: string, now: number, ttlMs: number): Promise<Member[]> {
    return this.#call((t) => {
      v.assertName('station id', station);
      v.assertTime('now', now);
      v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
      t.members.set(station, now + ttlMs);
      return [...t.members].sort((a, b) => byString(a[0], b[0])).map(([s, e]) => ({ station: s, expiresAt: e }));
    });
  }

  leaveMembers(station: string): Promise<void> {
    return this.#call((t) => {
      v.assertName('station id', station);
      t.members.delete(station);
    });
  }

  /** Ends this connection only: the tables stay, for `connect()` and every other connection. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

function nicRow(n: NicRecord): MemoryNicRow {
  return {
    id: n.id, address: n.address, securePort: n.securePort, clearPort: n.clearPort, ikePort: n.ikePort,
    psk: copyBytes(n.psk), enrolledAt: n.enrolledAt, meta: JSON.stringify(n.meta ?? {}),
  };
}

function nicRecord(r: MemoryNicRow): NicRecord {
  return { ...r, psk: copyBytes(r.psk), meta: JSON.parse(r.meta) as Record<string, unknown> };
}

/** acquireLease's rules for one known NIC (acquireLease, acquireLeases). */
function acquire(t: MemoryTables, nic: string, station: string, now: number, ttlMs: number): LeaseResult {
  // As in SQL, the free row is created on first contact and stays, whatever the outcome.
  const row = t.leases.get(nic) ?? { nic, owner: null, epoch: 0, expiresAt: 0 };
  const cur = liveLease(row, t.members);
  const expiresAt = now + ttlMs;
  if (cur.owner === station) {
    const lease = { ...row, expiresAt };
    t.leases.set(nic, lease);
    return { acquired: true, lease: liveLease({ ...lease }, t.members), takeover: false, previousOwner: station };
  }
  if (cur.owner !== null && now < cur.expiresAt) {
    t.leases.set(nic, row);
    return { acquired: false, lease: { ...cur } };
  }
  // Free or expired: a new epoch; replacing the row purges the old owner's claim (fenced from now on).
  const lease: Lease = { nic, owner: station, epoch: cur.epoch + 1, expiresAt };
  t.leases.set(nic, lease);
  return { acquired: true, lease: liveLease({ ...lease }, t.members), takeover: cur.owner !== null, previousOwner: cur.owner };
}
