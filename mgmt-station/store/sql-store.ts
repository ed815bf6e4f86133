/**
 * The store logic, written once over SqlDriver (sql-driver.ts) for both backends.
 *
 * Locking: every fenced write first locks the NIC's lease row (PostgreSQL SELECT ... FOR UPDATE; SQLite
 * BEGIN IMMEDIATE holds the database write lock for the whole transaction), checks the caller's epoch,
 * then writes. A takeover needs the same row lock, so no write under an old epoch can land after a newer
 * epoch was granted, and two stations racing for one NIC are serialised: exactly one wins.
 */
import { wireIdentity } from './store.js';
import { UsageError } from '../../common/errors.js';
import type { ClusterKey } from './cluster-key.js';
import { auditChain, LogSealer, type SealedEntry } from './command-log.js';
import { KeyWrapper } from './key-wrap.js';
import * as codec from './row-codec.js';
import { ensureSchema } from './schema.js';
import { sql, type Row, type SqlDriver, type Tx } from './sql-driver.js';
import type {
  AuditReport, CommandInput, CommandLogEntry, CommandOutcome, CommandRecord, Fence, Lease,
  LeaseResult, NicRecord, SaInput, SaState, SeqCheckpoint, StationRecord, Store, StoredSa,
} from './store.js';
import { fenced, illegal, isGenerator, requireNic, saState } from './tx-steps.js';
import * as v from './validate.js';

export interface SqlStoreOptions {
  /** Randomness for key-wrap nonces (default node:crypto). */
  random?: (n: number) => Uint8Array;
}

/** What a caller decides about a new log entry; the rest comes from the fence and the chain. */
type EntryFields = Omit<SealedEntry, 'nic' | 'index' | 'station' | 'epoch' | 'prevHash' | 'hash' | 'mac'>;

function strip({ mac: _mac, ...entry }: SealedEntry): CommandLogEntry {
  return entry;
}

export class SqlStore implements Store {
  readonly kind;
  readonly url;
  readonly #db: SqlDriver;
  readonly #wrap: KeyWrapper;
  readonly #seal: LogSealer;

  private constructor(db: SqlDriver, key: ClusterKey, opts: SqlStoreOptions) {
    this.#db = db;
    this.kind = db.kind;
    this.url = db.url;
    this.#wrap = new KeyWrapper(key, opts.random);
    this.#seal = new LogSealer(key);
  }

  /** Create the schema if needed and check the cluster key against the store's (E_KEYFILE). */
  static async open(db: SqlDriver, key: ClusterKey, opts: SqlStoreOptions = {}): Promise<SqlStore> {
    const store = new SqlStore(db, key, opts);
    try {
      await db.transaction('write', () => ensureSchema(db.kind, db.url, key.id, db.prelude()));
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
    v.assertName('nic id', n?.id);
    if (typeof n.address !== 'string' || n.address.length === 0 || n.address.length > 255) {
      throw new UsageError('E_USAGE', `nic address must be a host name or address, got ${JSON.stringify(n.address)}`);
    }
    v.assertInt('securePort', n.securePort, 1, 65535);
    v.assertInt('clearPort', n.clearPort, 1, 65535);
    v.assertInt('ikePort', n.ikePort, 1, 65535);
    v.assertBytes('psk', n.psk, 1, 1024);
    v.assertTime('enrolledAt', n.enrolledAt);
    return codec.nicParams(n, this.#wrap);
  }

  async getNic(id: string): Promise<NicRecord | null> {
    v.assertName('nic id', id);
    const rows = await this.#read(sql(`SELECT ${codec.NIC_COLUMNS} FROM nics WHERE id = ?`, id));
    return rows.length ? codec.nicFromRow(rows[0], this.#wrap) : null;
  }

  async listNics(): Promise<NicRecord[]> {
    const rows = await this.#read(sql(`SELECT ${codec.NIC_COLUMNS} FROM nics ORDER BY id`));
    return rows.map((r) => codec.nicFromRow(r, this.#wrap));
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
        throw illegal(`SA generation ${gen} of ${nic} is retired; a retired SA cannot be reused`);
      }
      if (sa.state !== 'retired') {
        const [other] = yield sql(
          `SELECT nic, generation FROM sas WHERE from_nic_spi = ? AND state <> 'retired' AND NOT (nic = ? AND generation = ?)`,
          spi, nic, gen,
        );
        if (other) {
          throw new UsageError(
            'E_SPI_IN_USE',
            `inbound SPI 0x${spi.toString(16).padStart(8, '0')} is already used by ${String(other.nic)} generation ${Number(other.generation)}; choose another SPI`,
          );
        }
      }
      if (sa.state === 'active') {
        const [act] = yield sql(`SELECT generation FROM sas WHERE nic = ? AND state = 'active' AND generation <> ?`, nic, gen);
        if (act) throw illegal(`${nic} already has active SA generation ${Number(act.generation)}; store the new one as pending and use activateSa`);
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
    });
  }

  async getSa(nic: string, generation: number): Promise<StoredSa | null> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    const rows = await this.#read(sql(`SELECT ${codec.SA_COLUMNS} FROM sas WHERE nic = ? AND generation = ?`, nic, generation));
    return rows.length ? codec.saFromRow(rows[0], this.#wrap) : null;
  }

  async listSas(nic: string): Promise<StoredSa[]> {
    v.assertName('nic id', nic);
    const rows = await this.#read(sql(`SELECT ${codec.SA_COLUMNS} FROM sas WHERE nic = ? ORDER BY generation`, nic));
    return rows.map((r) => codec.saFromRow(r, this.#wrap));
  }

  async getActiveSa(nic: string): Promise<StoredSa | null> {
    v.assertName('nic id', nic);
    const rows = await this.#read(sql(`SELECT ${codec.SA_COLUMNS} FROM sas WHERE nic = ? AND state = 'active'`, nic));
    return rows.length ? codec.saFromRow(rows[0], this.#wrap) : null;
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
      if (state === 'retired') throw illegal(`SA generation ${generation} of ${nic} is retired and cannot become active again`);
      // Make-before-break (DESIGN §2.5): keep exactly one previous SA besides the active one.
      yield sql(`UPDATE sas SET state = 'retired', updated_at = ? WHERE nic = ? AND state = 'previous' AND generation <> ?`, now, nic, generation);
      yield sql(`UPDATE sas SET state = 'previous', updated_at = ? WHERE nic = ? AND state = 'active'`, now, nic);
      yield sql(`UPDATE sas SET state = 'active', updated_at = ? WHERE nic = ? AND generation = ?`, now, nic, generation);
    });
  }

  async setSaState(nic: string, generation: number, state: Exclude<SaState, 'active'>, now: number, fence: Fence): Promise<void> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    v.assertSaState(state);
    if ((state as SaState) === 'active') throw new UsageError('E_USAGE', 'use activateSa to make an SA active');
    v.assertTime('now', now);
    v.assertFence(fence);
    const fu = this.#db.forUpdate;
    await this.#db.transaction('write', function* () {
      yield* fenced(nic, fence, fu, 'change an SA state');
      const cur = yield* saState(nic, generation);
      if (cur === 'retired' && state !== 'retired') throw illegal(`SA generation ${generation} of ${nic} is retired; that is final`);
      yield sql('UPDATE sas SET state = ?, updated_at = ? WHERE nic = ? AND generation = ?', state, now, nic, generation);
    });
  }

  // --- sequence checkpoints (DESIGN §2.6) -------------------------------------------------------

  async reserveOutbound(nic: string, generation: number, upTo: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertU64('upTo', upTo);
    return this.#raise(nic, generation, 'out_reserved', upTo, now, fence);
  }

  async claimOutbound(nic: string, generation: number, minNext: bigint, size: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    v.assertU64('minNext', minNext);
    v.assertU64('size', size);
    if (size < 1n) throw new UsageError('E_USAGE', 'size must be >= 1');
    v.assertTime('now', now);
    v.assertFence(fence);
    const fu = this.#db.forUpdate;
    return this.#db.transaction('write', function* (): Tx<bigint> {
      yield* fenced(nic, fence, fu, 'claim sequence numbers');
      yield* saState(nic, generation);
      const [cur] = yield sql('SELECT out_reserved, in_highest FROM seq_checkpoints WHERE nic = ? AND generation = ?', nic, generation);
      const reserved = cur ? BigInt(String(cur.out_reserved)) : 0n;
      const start = minNext > reserved ? minNext : reserved + 1n;
      const end = start + size - 1n;
      v.assertU64('claimed block end', end);
      yield sql(
        `INSERT INTO seq_checkpoints (nic, generation, out_reserved, in_highest, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (nic, generation) DO UPDATE SET out_reserved = excluded.out_reserved, updated_at = excluded.updated_at`,
        nic, generation, end.toString(), cur ? String(cur.in_highest) : '0', now,
      );
      return start;
    });
  }

  async recordInbound(nic: string, generation: number, highest: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertU64('highest', highest);
    return this.#raise(nic, generation, 'in_highest', highest, now, fence);
  }

  async #raise(nic: string, gen: number, column: 'out_reserved' | 'in_highest', value: bigint, now: number, fence: Fence): Promise<bigint> {
    v.assertName('nic id', nic);
    v.assertGeneration(gen);
    v.assertTime('now', now);
    v.assertFence(fence);
    const fu = this.#db.forUpdate;
    return this.#db.transaction('write', function* (): Tx<bigint> {
      yield* fenced(nic, fence, fu, 'checkpoint sequence numbers');
      yield* saState(nic, gen);
      const [cur] = yield sql('SELECT out_reserved, in_highest FROM seq_checkpoints WHERE nic = ? AND generation = ?', nic, gen);
      const out = cur ? BigInt(String(cur.out_reserved)) : 0n;
      const inn = cur ? BigInt(String(cur.in_highest)) : 0n;
      const old = column === 'out_reserved' ? out : inn;
      if (cur && value <= old) return old; // monotonic: never lower a checkpoint
      const next = { out_reserved: out, in_highest: inn, [column]: value };
      yield sql(
        `INSERT INTO seq_checkpoints (nic, generation, out_reserved, in_highest, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (nic, generation) DO UPDATE SET out_reserved = excluded.out_reserved,
           in_highest = excluded.in_highest, updated_at = excluded.updated_at`,
        nic, gen, next.out_reserved.toString(), next.in_highest.toString(), now,
      );
      return value;
    });
  }

  async getCheckpoint(nic: string, generation: number): Promise<SeqCheckpoint | null> {
    v.assertName('nic id', nic);
    v.assertGeneration(generation);
    const [r] = await this.#read(sql('SELECT * FROM seq_checkpoints WHERE nic = ? AND generation = ?', nic, generation));
    if (!r) return null;
    return {
      nic, generation,
      outReserved: BigInt(String(r.out_reserved)),
      inHighest: BigInt(String(r.in_highest)),
      updatedAt: Number(r.updated_at),
    };
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
      const cur = codec.leaseFromRow(row);
      const expiresAt = now + ttlMs;
      if (cur.owner === station) {
        yield sql('UPDATE leases SET expires_at = ? WHERE nic = ?', expiresAt, nic);
        return { acquired: true, lease: { ...cur, expiresAt }, takeover: false, previousOwner: station };
      }
      if (cur.owner !== null && now < cur.expiresAt) return { acquired: false, lease: cur };
      // Free or expired: a new epoch. Overwriting the row purges the old owner's claim, so the NIC
      // cannot be taken twice and the old owner's fenced writes fail from now on.
      const lease: Lease = { nic, owner: station, epoch: cur.epoch + 1, expiresAt };
      yield sql('UPDATE leases SET owner = ?, epoch = ?, expires_at = ? WHERE nic = ?', station, lease.epoch, expiresAt, nic);
      return { acquired: true, lease, takeover: cur.owner !== null, previousOwner: cur.owner };
    });
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
    const [r] = await this.#read(sql('SELECT nic, owner, epoch, expires_at FROM leases WHERE nic = ?', nic));
    return r ? codec.leaseFromRow(r) : null;
  }

  async listLeases(): Promise<Lease[]> {
    const rows = await this.#read(sql('SELECT nic, owner, epoch, expires_at FROM leases ORDER BY nic'));
    return rows.map(codec.leaseFromRow);
  }

  // --- command log ------------------------------------------------------------------------------

  async appendCommand(nic: string, input: CommandInput, fence: Fence): Promise<CommandLogEntry> {
    v.assertName('nic id', nic);
    v.assertTime('time', input?.time);
    if (typeof input.command !== 'string' || input.command.length === 0 || input.command.length > 64) {
      throw new UsageError('E_USAGE', `command must be a name of 1..64 characters, got ${JSON.stringify(input.command)}`);
    }
    // Omitted wire identity: the store assigns it from the log index, in the same transaction (wireIdentity()).
    const auto = input.rmcpSeq === undefined && input.asfTag === undefined;
    if (!auto) {
      v.assertInt('rmcpSeq', input.rmcpSeq, 0, 255);
      v.assertInt('asfTag', input.asfTag, 0, 255);
    }
    v.assertOutcome(input.outcome);
    v.assertFence(fence);
    const { time, command, outcome } = input;
    const rmcpSeq = auto ? -1 : (input.rmcpSeq as number);
    const asfTag = auto ? -1 : (input.asfTag as number);
    return this.#append(nic, fence, 'record a command', () => ({ kind: 'command', ref: null, command, rmcpSeq, asfTag, outcome, time }));
  }

  async updateOutcome(nic: string, index: number, outcome: CommandOutcome, time: number, fence: Fence): Promise<CommandLogEntry> {
    v.assertName('nic id', nic);
    v.assertInt('index', index, 1, Number.MAX_SAFE_INTEGER);
    v.assertOutcome(outcome);
    v.assertTime('time', time);
    v.assertFence(fence);
    return this.#append(nic, fence, 'record a command outcome', function* () {
      const [cmd] = yield sql(`SELECT command, rmcp_seq, asf_tag FROM command_log WHERE nic = ? AND idx = ? AND kind = 'command'`, nic, index);
      if (!cmd) throw new UsageError('E_NOT_FOUND', `${nic} has no command at log index ${index}`);
      return {
        kind: 'outcome' as const, ref: index, command: String(cmd.command),
        rmcpSeq: Number(cmd.rmcp_seq), asfTag: Number(cmd.asf_tag), outcome, time,
      };
    });
  }

  /** Lock, read the tail, seal the next entry, insert it and checkpoint the head: one transaction. */
  async #append(
    nic: string,
    fence: Fence,
    what: string,
    make: () => EntryFields | Tx<EntryFields>,
  ): Promise<CommandLogEntry> {
    const fu = this.#db.forUpdate;
    const sealer = this.#seal;
    return this.#db.transaction('write', function* (): Tx<CommandLogEntry> {
      yield* fenced(nic, fence, fu, what);
      const made = make();
      const fields = isGenerator(made) ? yield* made : made;
      // Chain from the sealed head, not from the last row: rows deleted behind our back stay visible
      // as a gap to the audit instead of being papered over by the next entry. A head that does not
      // verify, or rows beyond it, mean tampering: refuse to log (and so to acknowledge) until audited.
      const [head] = yield sql('SELECT idx, hash, mac FROM command_heads WHERE nic = ?', nic);
      const [tail] = yield sql('SELECT idx FROM command_log WHERE nic = ? ORDER BY idx DESC LIMIT 1', nic);
      const prev = head ? codec.headFromRow(head) : null;
      if ((prev && !sealer.verifyHead(nic, prev)) || (tail && (!prev || Number(tail.idx) > prev.index))) {
        throw new UsageError('E_STORE', `the command log of ${nic} was altered outside a station; run \`mgmt-station audit ${nic}\` and restore the store`);
      }
      if (fields.rmcpSeq < 0) Object.assign(fields, wireIdentity((prev?.index ?? 0) + 1));
      const e = sealer.seal(prev, { ...fields, nic, station: fence.station, epoch: fence.epoch });
      yield sql(`INSERT INTO command_log (${codec.LOG_COLUMNS}) VALUES (${Array(14).fill('?').join(', ')})`, ...codec.logParams(e));
      yield sql(
        `INSERT INTO command_heads (nic, idx, hash, mac) VALUES (?, ?, ?, ?)
         ON CONFLICT (nic) DO UPDATE SET idx = excluded.idx, hash = excluded.hash, mac = excluded.mac`,
        nic, e.index, e.hash, sealer.headMac(nic, e.index, e.hash),
      );
      return strip(e);
    });
  }

  async readCommandLog(nic: string): Promise<CommandLogEntry[]> {
    v.assertName('nic id', nic);
    const rows = await this.#read(sql(`SELECT ${codec.LOG_COLUMNS} FROM command_log WHERE nic = ? ORDER BY idx`, nic));
    return rows.map((r) => strip(codec.logFromRow(r)));
  }

  async listCommands(nic: string): Promise<CommandRecord[]> {
    const byIndex = new Map<number, CommandRecord>();
    for (const e of await this.readCommandLog(nic)) {
      if (e.kind === 'command') {
        byIndex.set(e.index, {
          nic, index: e.index, time: e.time, station: e.station, epoch: e.epoch, command: e.command,
          rmcpSeq: e.rmcpSeq, asfTag: e.asfTag, outcome: e.outcome,
          outcomeTime: e.time, outcomeStation: e.station, outcomeEpoch: e.epoch,
        });
      } else {
        const c = e.ref === null ? undefined : byIndex.get(e.ref);
        if (c) Object.assign(c, { outcome: e.outcome, outcomeTime: e.time, outcomeStation: e.station, outcomeEpoch: e.epoch });
      }
    }
    return [...byIndex.values()];
  }

  async auditCommandLog(nic: string): Promise<AuditReport> {
    v.assertName('nic id', nic);
    const { rows, head } = await this.#db.transaction('read', function* () {
      const rows = yield sql(`SELECT ${codec.LOG_COLUMNS} FROM command_log WHERE nic = ? ORDER BY idx`, nic);
      const heads = yield sql('SELECT idx, hash, mac FROM command_heads WHERE nic = ?', nic);
      return { rows, head: heads[0] };
    });
    return auditChain(nic, rows.map(codec.logFromRow), head ? codec.headFromRow(head) : null, this.#seal);
  }

  // --- cluster membership -----------------------------------------------------------------------

  async touchStation(id: string, address: string, now: number): Promise<void> {
    v.assertName('station id', id);
    if (typeof address !== 'string' || address.length > 255) throw new UsageError('E_USAGE', 'station address must be a string');
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

  close(): Promise<void> {
    return this.#db.close();
  }

  #read(op: ReturnType<typeof sql>): Promise<Row[]> {
    return this.#db.transaction('read', function* (): Tx<Row[]> {
      return yield op;
    });
  }
}
