/**
 * The store logic, written once over SqlDriver (sql-driver.ts) for both backends.
 *
 * Locking: every fenced write first locks the NIC's lease row (PostgreSQL SELECT ... FOR UPDATE; SQLite
 * BEGIN IMMEDIATE holds the database write lock for the whole transaction), checks the caller's epoch,
 * then writes. A takeover needs the same row lock, so no write under an old epoch can land after a newer
 * epoch was granted, and two stations racing for one NIC are serialised: exactly one wins.
 *
 * The sealed runtime rows have their transaction bodies in sql-checkpoints.ts (sequence checkpoints, sync
 * epochs) and sql-command-log.ts (the command log); the rules themselves are shared with the memory backend
 * (command-log.ts, row-mac.ts, store-errors.ts, validate.ts).
 */
import { UsageError } from '../../common/errors.js';
import { ALERTS_KEPT } from './store.js';
import type { ClusterKey } from './cluster-key.js';
import { auditChain, foldCommands, LogSealer, resendAllowed, unsealed } from './command-log.js';
import { KeyWrapper } from './key-wrap.js';
import * as codec from './row-codec.js';
import { RowMacs } from './row-mac.js';
import { ensureSchema } from './schema.js';
import { claimBlock, raiseCheckpoint, raiseSyncEpoch, readCheckpoint, readSyncEpoch, type SeqColumn } from './sql-checkpoints.js';
import { appendEntry, outcomeFields, readLog, readLogAndHead } from './sql-command-log.js';
import { asUserVerb, sql, type Row, type SqlDriver, type SqlOp, type Tx } from './sql-driver.js';
import { logAltered, saRules, spiInUse } from './store-errors.js';
import type {
  AlertInput, AlertQuery, AlertRecord, AuditReport, CommandInput, CommandLogEntry, CommandOutcome, CommandRecord, CommandRef, Fence, Lease,
  LeaseResult, Member, NicRecord, NicSaState, SaInput, SaState, SaSummary, SeqCheckpoint, StationRecord, Store, StoredSa,
} from './store.js';
import { LEASE_BATCH } from './store.js';
import { fenced, liveLease, LIVE_LEASES, memberExpiries, pruneRetired, requireNic, saState } from './tx-steps.js';
import * as v from './validate.js';
import { mutated } from '../../common/mutation.js';
import { ALERT_COLUMNS, alertFromRow, alertParams, assertAlert, assertAlertQuery } from './alert-rows.js';

export interface SqlStoreOptions {
  /** Randomness for key-wrap nonces (default node:crypto). */
  random?: (n: number) => Uint8Array;
}

export class SqlStore implements Store {
  readonly kind;
  readonly url;
  readonly #db: SqlDriver;
  readonly #wrap: KeyWrapper;
  readonly #seal: LogSealer;
  readonly #macs: RowMacs;

  private constructor(db: SqlDriver, key: ClusterKey, opts: SqlStoreOptions) {
    this.#db = db;
    this.kind = db.kind;
    this.url = db.url;
    this.#wrap = new KeyWrapper(key, opts.random);
    this.#seal = new LogSealer(key);
    this.#macs = new RowMacs(key);
  }

  /** Create the schema if needed (upgrading an older one) and check the cluster key against the store's (E_KEYFILE). */
  static async open(db: SqlDriver, key: ClusterKey, opts: SqlStoreOptions = {}): Promise<SqlStore> {
    const store = new SqlStore(db, key, opts);
    const schemaKey = { id: key.id, macs: store.#macs };
    try {
      await db.transaction('write', () => ensureSchema(db.kind, db.url, schemaKey, db.prelude()));
    } catch (e) {
      await db.close();
      throw e;
    }
    return store;
  }

  // --- NICs -------------------------------------------------------------------------------------

  async addNicIfAbsent(n: NicRecord): Promise<boolean> {
    const params = this.#nicParams(n);
    return this.#db.transaction('write', function* (): Tx<boolean> {
      const rows = yield sql(`INSERT INTO nics (${codec.NIC_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id`, ...params);
      return rows.length === 1;
    });
  }

  async updateNic(n: NicRecord, fence: Fence): Promise<void> {
    const params = this.#nicParams(n);
    v.assertFence(fence);
    const fu = this.#db.forUpdate;
    const [id, ...rest] = params;
    await this.#db.transaction('write', function* () {
      yield* fenced(n.id, fence, fu, 'update its record');
      yield* requireNic(n.id);
      yield sql(
        `UPDATE nics SET address = ?, secure_port = ?, clear_port = ?, ike_port = ?, psk = ?, enrolled_at = ?, meta = ? WHERE id = ?`,
        ...rest, id,
      );
    });
  }

  /** Validate a NIC record and give its row's values, in NIC_COLUMNS order. */
  #nicParams(n: NicRecord) {
    v.assertNicRecord(n);
    return codec.nicParams(n, this.#wrap);
  }

  async getNic(id: string): Promise<NicRecord | null> {
    v.assertName('nic id', id);
    const rows = await this.#read(sql(`SELECT ${codec.NIC_COLUMNS} FROM nics WHERE id = ?`, id));
    return rows.length ? codec.nicFromRow(rows[0], this.#wrap) : null;
  }

  async listNics(): Promise<NicRecord[]> {
    const rows = await this.#read(sql(`SELECT ${codec.NIC_COLUMNS} FROM nics ORDER BY id`));
    return rows.map((r) => codec.nicFromRowLazyPsk(r, this.#wrap));
  }

  // --- SAs --------------------------------------------------------------------------------------

  async putSa(nic: string, sa: SaInput, now: number, fence: Fence): Promise<void> {
    v.assertName('nic id', nic);
    v.assertSaPair(sa?.pair);
    v.assertSaState(sa.state);
    if (sa.ike !== null) v.assertIke(sa.ike);
    v.assertTime('now', now);
    v.assertFence(fence);
    const gen = sa.pair.generation;
    const spi = sa.pair.fromNic.spi;
    const params = codec.saParams(nic, sa.pair, sa.state, sa.ike, now, this.#wrap);
    const fu = this.#db.forUpdate;
    await this.#db.transaction('write', function* () {
      yield* fenced(nic, fence, fu, 'store an SA');
      yield* requireNic(nic);
      const [cur] = yield sql('SELECT state FROM sas WHERE nic = ? AND generation = ?', nic, gen);
      if (cur && cur.state === 'retired' && sa.state !== 'retired') {
        throw saRules.retiredReused(nic, gen);
      }
      if (sa.state !== 'retired') {
        const [other] = yield sql(
          `SELECT nic, generation FROM sas WHERE from_nic_spi = ? AND state <> 'retired' AND NOT (nic = ? AND generation = ?)`,
          spi, nic, gen,
        );
        if (other) throw spiInUse(spi, String(other.nic), Number(other.generation));
      }
      if (sa.state === 'active') {
        const [act] = yield sql(`SELECT generation FROM sas WHERE nic = ? AND state = 'active' AND generation <> ?`, nic, gen);
        if (act) throw saRules.secondActive(nic, Number(act.generation));
      }
      yield sql(
        `INSERT INTO sas (${codec.SA_COLUMNS}) VALUES (${Array(17).fill('?').join(', ')})
         ON CONFLICT (nic, generation) DO UPDATE SET state = excluded.state, transform = excluded.transform,
           esn = excluded.esn, policy = excluded.policy, origin = excluded.origin,
           to_nic_spi = excluded.to_nic_spi, to_nic_ah_spi = excluded.to_nic_ah_spi,
           to_nic_enc_key = excluded.to_nic_enc_key, to_nic_ah_key = excluded.to_nic_ah_key,
           from_nic_spi = excluded.from_nic_spi, from_nic_ah_spi = excluded.from_nic_ah_spi,
           from_nic_enc_key = excluded.from_nic_enc_key, from_nic_ah_key = excluded.from_nic_ah_key,
           ike = excluded.ike, updated_at = excluded.updated_at`,
        ...params,
      );
      if (sa.state === 'retired') yield* pruneRetired(nic);
    });
  }

  async getSa(nic: string, generation: number): Promise<StoredSa | null> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    const rows = await this.#read(sql(`SELECT ${codec.SA_COLUMNS} FROM sas WHERE nic = ? AND generation = ?`, nic, generation));
    return rows.length ? codec.saFromRow(rows[0], this.#wrap) : null;
  }

  async listSas(nic: string, states?: readonly SaState[]): Promise<StoredSa[]> {
    v.assertName('nic id', nic);
    if (states !== undefined) {
      for (const st of states) v.assertSaState(st);
      if (states.length === 0) return [];
    }
    const only = states === undefined ? '' : ` AND state IN (${states.map(() => '?').join(', ')})`;
    const rows = await this.#read(sql(`SELECT ${codec.SA_COLUMNS} FROM sas WHERE nic = ?${only} ORDER BY generation`, nic, ...(states ?? [])));
    return rows.map((r) => codec.saFromRow(r, this.#wrap));
  }

  async listSaStates(): Promise<SaSummary[]> {
    const rows = await this.#read(sql(`SELECT nic, generation, state, updated_at FROM sas WHERE state <> 'retired' ORDER BY nic, generation`));
    return rows.map(saSummary);
  }

  async listNicSaStates(nic: string): Promise<NicSaState[]> {
    v.assertName('nic id', nic);
    const rows = await this.#read(sql(`SELECT nic, generation, state, updated_at, from_nic_spi FROM sas WHERE nic = ? ORDER BY generation`, nic));
    return rows.map((r) => ({ ...saSummary(r), fromNicSpi: Number(r.from_nic_spi) }));
  }

  async getActiveSa(nic: string): Promise<StoredSa | null> {
    v.assertName('nic id', nic);
    const rows = await this.#read(sql(`SELECT ${codec.SA_COLUMNS} FROM sas WHERE nic = ? AND state = 'active'`, nic));
    return rows.length ? codec.saFromRow(rows[0], this.#wrap) : null;
  }

  async activeGenerations(): Promise<Map<string, number>> {
    const rows = await this.#read(sql(`SELECT nic, generation FROM sas WHERE state = 'active'`));
    return new Map(rows.map((r) => [String(r.nic), Number(r.generation)]));
  }

  async findSaBySpi(spi: number): Promise<StoredSa | null> {
    v.assertInt('spi', spi, 1, 0xfffffffe);
    const rows = await this.#read(sql(`SELECT ${codec.SA_COLUMNS} FROM sas WHERE from_nic_spi = ? AND state <> 'retired'`, spi));
    return rows.length ? codec.saFromRow(rows[0], this.#wrap) : null;
  }

  async activateSa(nic: string, generation: number, now: number, fence: Fence): Promise<void> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    v.assertTime('now', now);
    v.assertFence(fence);
    const fu = this.#db.forUpdate;
    await this.#db.transaction('write', function* () {
      yield* fenced(nic, fence, fu, 'activate an SA');
      const state = yield* saState(nic, generation);
      if (state === 'active') return;
      if (state === 'retired') throw saRules.retiredActivated(nic, generation);
      // Make-before-break (DESIGN §2.5): keep exactly one previous SA besides the active one.
      yield sql(`UPDATE sas SET state = 'retired', updated_at = ? WHERE nic = ? AND state = 'previous' AND generation <> ?`, now, nic, generation);
      yield sql(`UPDATE sas SET state = 'previous', updated_at = ? WHERE nic = ? AND state = 'active'`, now, nic);
      yield sql(`UPDATE sas SET state = 'active', updated_at = ? WHERE nic = ? AND generation = ?`, now, nic, generation);
      // A pending SA below the new active one can never be committed (the NIC's one pending slot moved past it).
      yield sql(`UPDATE sas SET state = 'retired', updated_at = ? WHERE nic = ? AND state = 'pending' AND generation < ?`, now, nic, generation);
      yield* pruneRetired(nic);
    });
  }

  async setSaState(nic: string, generation: number, state: Exclude<SaState, 'active'>, now: number, fence: Fence): Promise<void> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    v.assertSaState(state);
    if ((state as SaState) === 'active') throw saRules.setActive();
    v.assertTime('now', now);
    v.assertFence(fence);
    const fu = this.#db.forUpdate;
    await this.#db.transaction('write', function* () {
      yield* fenced(nic, fence, fu, 'change an SA state');
      const cur = yield* saState(nic, generation);
      if (cur === 'retired' && state !== 'retired') throw saRules.retiredFinal(nic, generation);
      yield sql('UPDATE sas SET state = ?, updated_at = ? WHERE nic = ? AND generation = ?', state, now, nic, generation);
      if (state === 'retired') yield* pruneRetired(nic);
    });
  }

  // --- sequence checkpoints (DESIGN §2.6): sealed rows, sql-checkpoints.ts ------------------------

  async reserveOutbound(nic: string, generation: number, upTo: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertU64('upTo', upTo);
    return this.#raise(nic, generation, 'out_reserved', upTo, now, fence);
  }

  async claimOutbound(nic: string, generation: number, minNext: bigint, size: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    v.assertU64('minNext', minNext);
    v.assertBlockSize(size);
    v.assertTime('now', now);
    v.assertFence(fence);
    const [fu, macs] = [this.#db.forUpdate, this.#macs];
    return this.#db.transaction('write', () => claimBlock(nic, generation, minNext, size, now, fence, fu, macs));
  }

  async recordInbound(nic: string, generation: number, highest: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertU64('highest', highest);
    return this.#raise(nic, generation, 'in_highest', highest, now, fence);
  }

  async #raise(nic: string, gen: number, column: SeqColumn, value: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertName('nic id', nic);
    v.assertGeneration(gen);
    v.assertTime('now', now);
    v.assertFence(fence);
    const [fu, macs] = [this.#db.forUpdate, this.#macs];
    return this.#db.transaction('write', () => raiseCheckpoint(nic, gen, column, value, now, fence, fu, macs));
  }

  async getCheckpoint(nic: string, generation: number): Promise<SeqCheckpoint | null> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    const macs = this.#macs;
    return this.#db.transaction('read', () => readCheckpoint(nic, generation, macs));
  }

  // --- ownership (DESIGN §5) --------------------------------------------------------------------

  async acquireLease(nic: string, station: string, now: number, ttlMs: number): Promise<LeaseResult> {
    v.assertName('nic id', nic);
    v.assertName('station id', station);
    v.assertTime('now', now);
    v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
    const fu = this.#db.forUpdate;
    return this.#db.transaction('write', function* (): Tx<LeaseResult> {
      yield* requireNic(nic);
      // The row must exist before it can be locked; a concurrent insert waits for ours (PostgreSQL).
      yield sql('INSERT INTO leases (nic, owner, epoch, expires_at) VALUES (?, NULL, 0, 0) ON CONFLICT (nic) DO NOTHING', nic);
      const [row] = yield sql(`SELECT nic, owner, epoch, expires_at FROM leases WHERE nic = ?${fu}`, nic);
      const members = yield* memberExpiries();
      const cur = liveLease(codec.leaseFromRow(row), members);
      const expiresAt = now + ttlMs;
      if (cur.owner === station) {
        yield sql('UPDATE leases SET expires_at = ? WHERE nic = ?', expiresAt, nic);
        return { acquired: true, lease: { ...cur, expiresAt: Math.max(cur.expiresAt, expiresAt) }, takeover: false, previousOwner: station };
      }
      if (cur.owner !== null && now < cur.expiresAt) return { acquired: false, lease: cur };
      // Free or expired: a new epoch. Overwriting the row purges the old owner's claim, so the NIC
      // cannot be taken twice and the old owner's fenced writes fail from now on.
      const lease: Lease = liveLease({ nic, owner: station, epoch: cur.epoch + 1, expiresAt }, members);
      yield sql('UPDATE leases SET owner = ?, epoch = ?, expires_at = ? WHERE nic = ?', station, lease.epoch, expiresAt, nic);
      return { acquired: true, lease, takeover: cur.owner !== null, previousOwner: cur.owner };
    });
  }

  async acquireLeases(nics: readonly string[], station: string, now: number, ttlMs: number): Promise<Map<string, LeaseResult>> {
    for (const nic of nics) v.assertName('nic id', nic);
    v.assertName('station id', station);
    v.assertTime('now', now);
    v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
    const fu = this.#db.forUpdate;
    const out = new Map<string, LeaseResult>();
    // Sorted: two stations lock the rows of a batch in one order (PostgreSQL), so they never deadlock.
    const all = [...new Set(nics)].sort();
    const expiresAt = now + ttlMs;
    for (let i = 0; i < all.length; i += LEASE_BATCH) {
      const batch = all.slice(i, i + LEASE_BATCH);
      const marks = batch.map(() => '?').join(', ');
      await this.#db.transaction('write', function* () {
        // Rows exist before they can be locked (as acquireLease), for the NICs the store knows only.
        yield sql(`INSERT INTO leases (nic, owner, epoch, expires_at) SELECT id, NULL, 0, 0 FROM nics WHERE id IN (${marks}) ORDER BY id ON CONFLICT (nic) DO NOTHING`, ...batch);
        const rows = yield sql(`SELECT nic, owner, epoch, expires_at FROM leases WHERE nic IN (${marks}) ORDER BY nic${fu}`, ...batch);
        const members = yield* memberExpiries();
        const renew: string[] = [];
        const take: string[] = [];
        const results: [string, LeaseResult][] = [];
        for (const row of rows) {
          const cur = liveLease(codec.leaseFromRow(row), members);
          if (cur.owner === station) {
            renew.push(cur.nic);
            results.push([cur.nic, { acquired: true, lease: { ...cur, expiresAt: Math.max(cur.expiresAt, expiresAt) }, takeover: false, previousOwner: station }]);
          } else if (cur.owner !== null && now < cur.expiresAt) {
            results.push([cur.nic, { acquired: false, lease: cur }]);
          } else {
            // Free or expired: a new epoch, the old owner's claim purged (as acquireLease).
            take.push(cur.nic);
            const lease = liveLease({ nic: cur.nic, owner: station, epoch: cur.epoch + 1, expiresAt }, members);
            results.push([cur.nic, { acquired: true, lease, takeover: cur.owner !== null, previousOwner: cur.owner }]);
          }
        }
        const list = (ids: string[]) => ids.map(() => '?').join(', ');
        if (renew.length) yield sql(`UPDATE leases SET expires_at = ? WHERE nic IN (${list(renew)})`, expiresAt, ...renew);
        if (take.length) yield sql(`UPDATE leases SET owner = ?, epoch = epoch + 1, expires_at = ? WHERE nic IN (${list(take)})`, station, expiresAt, ...take);
        for (const [nic, r] of results) out.set(nic, r);
      });
    }
    return out;
  }

  async renewLease(nic: string, fence: Fence, now: number, ttlMs: number): Promise<Lease> {
    v.assertName('nic id', nic);
    v.assertFence(fence);
    v.assertTime('now', now);
    v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
    const fu = this.#db.forUpdate;
    return this.#db.transaction('write', function* (): Tx<Lease> {
      const cur = yield* fenced(nic, fence, fu, 'renew its lease');
      yield sql('UPDATE leases SET expires_at = ? WHERE nic = ?', now + ttlMs, nic);
      return { ...cur, expiresAt: now + ttlMs };
    });
  }

  async releaseLease(nic: string, fence: Fence): Promise<void> {
    v.assertName('nic id', nic);
    v.assertFence(fence);
    const fu = this.#db.forUpdate;
    await this.#db.transaction('write', function* () {
      yield* fenced(nic, fence, fu, 'release its lease');
      yield sql('UPDATE leases SET owner = NULL, expires_at = 0 WHERE nic = ?', nic);
    });
  }

  async getLease(nic: string): Promise<Lease | null> {
    v.assertName('nic id', nic);
    const [r] = await this.#read(sql(`${LIVE_LEASES} WHERE l.nic = ?`, nic));
    return r ? codec.leaseFromRow(r) : null;
  }

  async listLeases(): Promise<Lease[]> {
    const rows = await this.#read(sql(`${LIVE_LEASES} ORDER BY l.nic`));
    return rows.map(codec.leaseFromRow);
  }

  async releaseLeases(nics: ReadonlyMap<string, number>, station: string, now: number): Promise<string[]> {
    for (const [nic, epoch] of nics) {
      v.assertName('nic id', nic);
      v.assertFence({ station, epoch });
    }
    v.assertTime('now', now);
    const all = [...nics.keys()].sort();
    const released: string[] = [];
    for (let i = 0; i < all.length; i += LEASE_BATCH) {
      const batch = all.slice(i, i + LEASE_BATCH);
      await this.#db.transaction('write', function* () {
        // Row values (nic, epoch) IN (...): fenced per NIC by its epoch, in one statement for the batch.
        const pairs = batch.map(() => '(?, CAST(? AS BIGINT))').join(', ');
        const rows = yield sql(
          `UPDATE leases SET owner = NULL, expires_at = ? WHERE owner = ? AND (nic, epoch) IN (VALUES ${pairs}) RETURNING nic`,
          now, station, ...batch.flatMap((n) => [n, nics.get(n)!]),
        );
        for (const r of rows) released.push(String(r.nic));
      });
    }
    return released.sort();
  }

  // --- command log: sql-command-log.ts, the chain in command-log.ts ---------------------------------

  async appendCommand(nic: string, input: CommandInput, fence: Fence): Promise<CommandLogEntry> {
    v.assertName('nic id', nic);
    v.assertCommandInput(input);
    v.assertFence(fence);
    // Omitted wire identity (-1): the store assigns it from the log index, in the same transaction (wireIdentity()).
    const fields = {
      kind: 'command' as const, ref: null, command: input.command, rmcpSeq: input.rmcpSeq ?? -1, asfTag: input.asfTag ?? -1,
      outcome: input.outcome, time: input.time, syncEpoch: input.syncEpoch ?? null,
    };
    const [fu, seal] = [this.#db.forUpdate, this.#seal];
    return this.#db.transaction('write', () => appendEntry(nic, fence, fu, 'record a command', seal, () => fields));
  }

  async updateOutcome(
    nic: string, ref: CommandRef, outcome: CommandOutcome, time: number, fence: Fence, syncEpoch?: number,
  ): Promise<CommandLogEntry> {
    v.assertName('nic id', nic);
    v.assertCommandRef(ref);
    v.assertOutcome(outcome);
    v.assertTime('time', time);
    v.assertFence(fence);
    v.assertOutcomeEpoch(outcome, syncEpoch);
    const [fu, seal] = [this.#db.forUpdate, this.#seal];
    return this.#db.transaction('write', () =>
      appendEntry(nic, fence, fu, 'record a command outcome', seal, () => outcomeFields(nic, ref, outcome, time, syncEpoch)));
  }

  async readCommandLog(nic: string): Promise<CommandLogEntry[]> {
    v.assertName('nic id', nic);
    return (await this.#db.transaction('read', () => readLog(nic))).map(unsealed);
  }

  async updateOutcomeIf(nic: string, ref: CommandRef, outcome: 'sent' | 'failed', time: number, fence: Fence, expectEpoch: number, syncEpoch?: number): Promise<boolean> {
    v.assertName('nic id', nic);
    v.assertCommandRef(ref);
    v.assertTime('time', time);
    v.assertFence(fence);
    if (outcome !== 'sent' && outcome !== 'failed') throw new UsageError('E_USAGE', `updateOutcomeIf records 'sent' or 'failed', not ${JSON.stringify(outcome)}`);
    v.assertOutcomeEpoch(outcome, syncEpoch);
    v.assertSyncEpoch('expectEpoch', expectEpoch);
    const [fu, seal] = [this.#db.forUpdate, this.#seal];
    return this.#db.transaction('write', function* (): Tx<boolean> {
      yield* fenced(nic, fence, fu, 'record a command sent again');
      // Decided on a log that verifies, in the same transaction: an edited row cannot make a command go out twice.
      const { rows, head } = yield* readLogAndHead(nic);
      const audit = auditChain(nic, rows, head, seal);
      if (!audit.ok && !mutated('no-log-audit')) throw logAltered(nic, audit.problem);
      if (!resendAllowed(nic, rows, ref, expectEpoch)) return false;
      yield* appendEntry(nic, fence, fu, 'record a command sent again', seal, () => outcomeFields(nic, ref, outcome, time, syncEpoch));
      return true;
    });
  }

  async listCommands(nic: string): Promise<CommandRecord[]> {
    return foldCommands(nic, await this.readCommandLog(nic));
  }

  async auditCommandLog(nic: string): Promise<AuditReport> {
    v.assertName('nic id', nic);
    const { rows, head } = await this.#db.transaction('read', () => readLogAndHead(nic));
    return auditChain(nic, rows, head, this.#seal);
  }

  // --- NIC sync epochs (DESIGN §7): sealed rows, sql-checkpoints.ts --------------------------------

  async getSyncEpoch(nic: string): Promise<number> {
    v.assertName('nic id', nic);
    const macs = this.#macs;
    return this.#db.transaction('read', () => readSyncEpoch(nic, macs));
  }

  async recordSyncEpoch(nic: string, epoch: number, now: number, fence: Fence): Promise<number> {
    v.assertName('nic id', nic);
    v.assertSyncEpoch('epoch', epoch);
    v.assertTime('now', now);
    v.assertFence(fence);
    const [fu, macs] = [this.#db.forUpdate, this.#macs];
    return this.#db.transaction('write', () => raiseSyncEpoch(nic, epoch, now, fence, fu, macs));
  }

  // --- ASF alerts (docs/ALERTS.md) ---------------------------------------------------------------

  async addAlert(nic: string, station: string, a: AlertInput): Promise<AlertRecord | null> {
    assertAlert(nic, station, a);
    const params = alertParams(nic, station, a);
    const rows = await this.#db.transaction('write', function* (): Tx<Row[]> {
      const r = yield sql(
        `INSERT INTO alerts (nic, alert_id, received_at, station, event, severity, specific_trap, pet_sequence, pet_time, pet, via)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (nic, alert_id) DO NOTHING RETURNING ${ALERT_COLUMNS}`,
        ...params,
      );
      if (r.length === 1) {
        // The newest ALERTS_KEPT per NIC stay (a NIC that alerts for years keeps a bounded table).
        yield sql(`DELETE FROM alerts WHERE nic = ? AND id <= (SELECT id FROM alerts WHERE nic = ? ORDER BY id DESC LIMIT 1 OFFSET ${ALERTS_KEPT})`, nic, nic);
      }
      return r;
    });
    return rows.length === 1 ? alertFromRow(rows[0]) : null;
  }

  async listAlerts(q: AlertQuery): Promise<AlertRecord[]> {
    assertAlertQuery(q);
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (q.nic !== undefined) {
      where.push('nic = ?');
      params.push(q.nic);
    }
    if (q.afterId !== undefined) {
      where.push('id > ?');
      params.push(q.afterId);
    }
    const cond = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const limit = q.limit !== undefined ? ` LIMIT ${q.limit}` : '';
    const rows = await this.#read(sql(`SELECT ${ALERT_COLUMNS} FROM (SELECT ${ALERT_COLUMNS} FROM alerts ${cond} ORDER BY id DESC${limit}) newest ORDER BY id`, ...params));
    return rows.map(alertFromRow);
  }

  // --- cluster membership -----------------------------------------------------------------------

  async touchStation(id: string, address: string, now: number): Promise<void> {
    v.assertName('station id', id);
    v.assertStationAddress(address);
    v.assertTime('now', now);
    await this.#db.transaction('write', function* () {
      yield sql(
        `INSERT INTO stations (id, address, last_seen) VALUES (?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET address = excluded.address, last_seen = excluded.last_seen`,
        id, address, now,
      );
    });
  }

  async listStations(): Promise<StationRecord[]> {
    const rows = await this.#read(sql('SELECT id, address, last_seen FROM stations ORDER BY id'));
    return rows.map(codec.stationFromRow);
  }

  async renewMember(station: string, now: number, ttlMs: number): Promise<Member[]> {
    v.assertName('station id', station);
    v.assertTime('now', now);
    v.assertInt('ttlMs', ttlMs, 1, Number.MAX_SAFE_INTEGER - now);
    return this.#db.transaction('write', function* (): Tx<Member[]> {
      yield sql(
        'INSERT INTO cluster_members (station, expires_at) VALUES (?, ?) ON CONFLICT (station) DO UPDATE SET expires_at = excluded.expires_at',
        station, now + ttlMs,
      );
      const rows = yield sql('SELECT station, expires_at FROM cluster_members ORDER BY station');
      return rows.map((r) => ({ station: String(r.station), expiresAt: Number(r.expires_at) }));
    }, 'liveness');
  }

  async leaveMembers(station: string): Promise<void> {
    v.assertName('station id', station);
    await this.#db.transaction('write', function* () {
      yield sql('DELETE FROM cluster_members WHERE station = ?', station);
    });
  }

  asUserVerb<T>(f: () => Promise<T>): Promise<T> {
    return asUserVerb(f);
  }

  close(): Promise<void> {
    return this.#db.close();
  }

  #read(op: SqlOp): Promise<Row[]> {
    return this.#db.transaction('read', function* (): Tx<Row[]> {
      return yield op;
    });
  }
}

function saSummary(r: Row): SaSummary {
  return { nic: String(r.nic), generation: Number(r.generation), state: String(r.state) as SaState, updatedAt: Number(r.updated_at) };
}
