/**
 * The management station's persistent store (DESIGN §2.6, §5): one async interface, two persistent backends
 * (SQLite for stations on one host, PostgreSQL for stations on several hosts) and an in-memory one for the
 * deterministic simulator and unit tests (memory-store.ts), one contract test suite.
 *
 * Rules every backend keeps:
 *  - Keys are never written in clear. PSKs, SA keys and IKE SA keys are wrapped with AES-GCM under the
 *    cluster key; the AAD binds the row identity (nic, generation, column), so a ciphertext copied to
 *    another row fails to unwrap (key-wrap.ts). (The memory backend writes nothing: it keeps them in memory.)
 *  - Rows someone with write access to the database could change to make a station misbehave are sealed under
 *    the cluster key: command log rows and head (command-log.ts), sequence checkpoints and sync epochs
 *    (row-mac.ts). A row that does not verify is never acted on (E_STORE).
 *  - Time is a parameter (`now`, ms). The store never reads a clock.
 *  - Writes to a NIC's runtime state (SAs, sequence checkpoints, command log) are fenced: they carry the
 *    caller's lease epoch and fail with E_FENCED once another station took the NIC over (§5 ownership).
 *    Fencing is by epoch, not by clock: a write under the current epoch is accepted even after the
 *    lease's expiry time as long as nobody has taken over, since clocks on two hosts cannot be compared.
 *  - Each call is one transaction; two stations racing on one NIC cannot both win.
 */
import type { SaPair } from '../../wire/sa.js';
import type { IkeSaKeys } from '../../protocol/ike/ike-crypto.js';

/** The SQL backends (sql-store.ts). */
export type SqlStoreKind = 'sqlite' | 'postgres';
/** Every backend: the SQL ones and the in-memory one of the simulator and unit tests (memory-store.ts). */
export type StoreKind = SqlStoreKind | 'memory';

/** An enrolled NIC. `psk` is the IKE pre-shared key (trust anchor written at enrolment, DESIGN §3). */
export interface NicRecord {
  /** Stable name, e.g. 'nic-1': letters, digits, '.', '_', ':', '-' (1..64 characters). */
  id: string;
  /** Host (IP address or name) of the NIC's sockets. */
  address: string;
  /** Secure RMCP port (664 by default, DESIGN §2.2). */
  securePort: number;
  /** Clear RMCP port (623 by default, DESIGN §2.1). */
  clearPort: number;
  /** IKE port of the host agent (500 by default, DESIGN §2.4). */
  ikePort: number;
  psk: Uint8Array;
  enrolledAt: number;
  /** Free-form JSON object (labels, policy file name, ...). */
  meta: Record<string, unknown>;
}

/** Station-side life of one SA generation (DESIGN §2.5: pending -> active -> previous -> retired). */
export type SaState = 'pending' | 'active' | 'previous' | 'retired';
export const SA_STATES: readonly SaState[] = ['pending', 'active', 'previous', 'retired'];

/**
 * Retired SAs a NIC keeps, the newest by generation: `keys --wireshark` exports them, for captures that span
 * refreshes (with the hourly default refresh, the last 16 hours). Older retired rows are deleted, with their
 * sequence checkpoints, in the transaction that retires another: a station refreshing for years keeps a bounded store.
 */
export const RETIRED_SAS_KEPT = 16;

/**
 * What the station needs to continue an IKE SA after a restart or takeover (RFC 7296 §2.14 keys,
 * §2.2 message IDs). Stored as one wrapped blob.
 */
export interface IkeSaSnapshot extends IkeSaKeys {
  /** IKE SA SPIs (RFC 7296 §3.1), 8 bytes each. */
  spiI: Uint8Array;
  spiR: Uint8Array;
  /** True if the station was the original initiator (RFC 7296 §2.2, §2.8 after a rekey). */
  initiator: boolean;
  /** Message ID of the next request this side sends (RFC 7296 §2.2). */
  nextRequestId: number;
  /** Message ID of the next request this side expects from the peer. */
  nextPeerRequestId: number;
  /** Negotiated transform IDs (RFC 7296 §3.3.2), e.g. { encr: 20, encrKeyBits: 256, prf: 5, dh: 31 }. */
  transforms: { encr: number; encrKeyBits: number; prf: number; integ: number; dh: number };
}

export interface StoredSa {
  nic: string;
  pair: SaPair;
  state: SaState;
  ike: IkeSaSnapshot | null;
  updatedAt: number;
}

/** An SA without its keys (listSaStates): what the fleet page shows of every NIC's SAs in one read. */
export interface SaSummary {
  nic: string;
  generation: number;
  state: SaState;
  updatedAt: number;
}

/** One of a NIC's SAs without its keys (listNicSaStates), with the station-inbound SPI that names it on the wire. */
export interface NicSaState extends SaSummary {
  /** `pair.fromNic.spi`: unique among the store's non-retired SAs (putSa), so it tells a row apart from one replaced. */
  fromNicSpi: number;
}

/** What `putSa` writes; `pair.generation` names the row. */
export interface SaInput {
  pair: SaPair;
  state: SaState;
  ike: IkeSaSnapshot | null;
}

/**
 * Sequence checkpoint of one SA generation (DESIGN §2.6). Its row carries a MAC under the cluster key over
 * (nic, generation, outReserved, inHighest): a row edited outside a station is E_STORE on every read and write.
 */
export interface SeqCheckpoint {
  nic: string;
  generation: number;
  /** Highest outbound (station -> NIC) sequence number reserved; resume above it. 0n = none. */
  outReserved: bigint;
  /** Highest inbound (NIC -> station) sequence number seen. 0n = none. */
  inHighest: bigint;
  updatedAt: number;
}

/** The caller's claim on a NIC: its station id and lease epoch (the fencing token). */
export interface Fence {
  station: string;
  epoch: number;
}

export interface Lease {
  nic: string;
  /** null: free (never taken or released). */
  owner: string | null;
  /** Fencing token; grows by one at every change of owner. 0 = never owned. */
  epoch: number;
  /**
   * ms; the lease is expired when now >= expiresAt. As the store reports it: the later of the row's own expiry and
   * its owner's member row's (renewMember), so a daemon that renews its member row keeps all its leases.
   */
  expiresAt: number;
}

/** `lease` with its owner's member row folded into its expiry (Store.renewMember; every backend's lease reads). */
export function liveLease(lease: Lease, members: ReadonlyMap<string, number>): Lease {
  const m = lease.owner === null ? undefined : members.get(lease.owner);
  return m !== undefined && m > lease.expiresAt ? { ...lease, expiresAt: m } : lease;
}

/** NICs per transaction of Store.acquireLeases (well under SQLite's and PostgreSQL's bound on parameters). */
export const LEASE_BATCH = 500;

export type LeaseResult =
  | {
      acquired: true;
      lease: Lease;
      /** The NIC was owned by another station whose lease had expired; its claim is gone now. */
      takeover: boolean;
      previousOwner: string | null;
    }
  | { acquired: false; lease: Lease };

/**
 * A command's identity on the wire, from its index in the NIC's (shared) command log: unique across stations
 * and restarts for 65,280 commands, far beyond the NIC's response cache (firmware/nic-firmware.ts).
 * RMCP sequence 0xFF is never used (it would suppress the ACK, DSP0136 §3.2.2.1).
 */
export function wireIdentity(index: number): { rmcpSeq: number; asfTag: number } {
  return { rmcpSeq: (index - 1) % 255, asfTag: Math.floor((index - 1) / 255) % 256 };
}

export type CommandOutcome = 'sent' | 'acked' | 'failed' | 'unknown';
export const COMMAND_OUTCOMES: readonly CommandOutcome[] = ['sent', 'acked', 'failed', 'unknown'];

/** What the caller supplies for a new command entry (station and epoch come from the fence). */
export interface CommandInput {
  time: number;
  /** The command's name, e.g. 'reset', 'power-up', 'power-down', 'power-cycle'. */
  command: string;
  /**
   * RMCP sequence number (0..254) and ASF message tag (0..255): together they identify the command on the
   * wire (DESIGN §5). Omit both and the store assigns them from the log index (wireIdentity).
   */
  rmcpSeq?: number;
  asfTag?: number;
  outcome: CommandOutcome;
  /**
   * The NIC sync epoch (wire/sync-frame.ts) the command is sent under: the NIC records executed commands by
   * (epoch, RMCP sequence, ASF tag, type), and a later session asks it about them by that identity.
   */
  syncEpoch?: number;
}

/**
 * One row of a NIC's hash-chained command log (command-log.ts). The log is append-only: an outcome
 * change is a new 'outcome' entry whose `ref` is the index of the command entry it completes.
 */
/** What a log entry and a command record both say of one entry of the command log. */
export interface CommandFields {
  nic: string;
  /** 1, 2, 3, ... without gaps. */
  index: number;
  time: number;
  station: string;
  epoch: number;
  command: string;
  rmcpSeq: number;
  asfTag: number;
  outcome: CommandOutcome;
  /**
   * The NIC sync epoch of the entry's transmission (null: none recorded, e.g. entries written before sync epochs
   * existed). On a command entry: the epoch it was first sent under; on an outcome entry with outcome 'sent': the
   * epoch it was sent under again (a session that found it not executed re-sends it in its own epoch).
   */
  syncEpoch: number | null;
}

export interface CommandLogEntry extends CommandFields {
  kind: 'command' | 'outcome';
  /** For 'outcome' entries: index of the command entry; null for 'command' entries. */
  ref: number | null;
  /** hex SHA-256 of the previous entry (64 zeros for the first). */
  prevHash: string;
  /** hex SHA-256(prevHash || canonical entry). */
  hash: string;
}

/**
 * The command an outcome is for: its log index, or its index with the hash of its command entry. With the hash the
 * store refuses (updateOutcome: E_STORE; updateOutcomeIf: false) when that index holds another command: the store
 * went back (was restored from a backup) and gave the index again, and an outcome by index alone would land on it.
 */
export type CommandRef = number | { index: number; hash: string };

/** A command with its latest outcome: the log folded by `ref`. */
export interface CommandRecord extends CommandFields {
  /** Time, station and epoch of the entry that set `outcome` (the others are the command entry's). */
  outcomeTime: number;
  outcomeStation: string;
  outcomeEpoch: number;
  /**
   * The sync epoch of the command's first transmission (the command entry's): with its index it is the identity
   * the NIC's executed-command record keeps however often it is sent again (firmware/exec-record.ts).
   */
  firstSyncEpoch: number | null;
  /** The hash of its command entry (a CommandRef names the command by it). */
  hash: string;
}

export interface AuditReport {
  nic: string;
  ok: boolean;
  /** Number of rows in the log. */
  entries: number;
  /** The checkpointed head, as stored. */
  head: { index: number; hash: string } | null;
  /** First index that cannot be trusted (edited, missing, out of order, beyond/after the head). */
  firstBadIndex: number | null;
  /** What is wrong, for the user; null when ok. */
  problem: string | null;
}

/**
 * An ASF alert a NIC sent (docs/ALERTS.md), as the station that verified and acknowledged it stored it. One row per
 * alert: a retransmission (the same `alertId`, the random id in the PET's OEM field) is stored once.
 */
export interface AlertInput {
  /** 16 hex digits: the id the NIC gave the alert (PET OEM field). */
  alertId: string;
  /** When the station received it (ms since the Unix epoch). */
  receivedAt: number;
  /** Lifeline's name for the event (wire/pet.ts ALERT_CODES), or `sensor-TT-OO` for another sender's. */
  event: string;
  severity: number;
  /** The trap's specific-trap number (sensor type, event type, direction, offset). */
  specific: number;
  petSequence: number;
  /** The PET's own timestamp (when the NIC saw the event), ms; null when unspecified. */
  petTime: number | null;
  /** The PET data, hex. */
  pet: string;
  via: 'secure' | 'clear';
}

export interface AlertRecord extends AlertInput {
  /** Row id, increasing in the order rows were stored (`events --follow` reads on from the last it printed). */
  id: number;
  nic: string;
  /** The station that stored it. */
  station: string;
}

/** Alerts a store keeps per NIC; the oldest go when more are stored. */
export const ALERTS_KEPT = 1000;

export interface AlertQuery {
  nic?: string;
  /** Only rows with a larger id. */
  afterId?: number;
  /** At most this many, the newest (in id order). */
  limit?: number;
}

export interface StationRecord {
  id: string;
  address: string;
  lastSeen: number;
}

/**
 * A station's liveness row (DESIGN §5, docs/STATION.md "Station cluster"): a daemon renews it at every poll round.
 * While it has not expired, every lease its station holds is live whatever the lease row's own expiry, so a round
 * renews one row, not one per NIC (Store.renewMember).
 */
export interface Member {
  station: string;
  /** ms; the member is dead (and its leases lapsed, unless their own expiry is later) when now >= expiresAt. */
  expiresAt: number;
}

export interface Store {
  readonly kind: StoreKind;
  /** The store URL with any password removed, for messages. */
  readonly url: string;
  /**
   * Run `f`, a user's verb (DaemonCore.read/command) or a poll round's lease work (DaemonCore.tick), with its
   * transactions on connections of their own, not queued behind the daemon's background polls (sql-driver.ts
   * asUserVerb; PostgreSQL's pool). Absent: no such lanes.
   */
  asUserVerb?<T>(f: () => Promise<T>): Promise<T>;

  // --- NICs (enrolment is an administrative write: not fenced) ---
  /**
   * Insert a NIC the store does not know yet; a NIC already there (another station's enrolment won the race)
   * is left as it is. Returns true if this call inserted it. The record of a NIC that is then leased is
   * written with `updateNic` under the lease: a station that loses the lease never replaces the winner's PSK.
   */
  addNicIfAbsent(nic: NicRecord): Promise<boolean>;
  /**
   * Replace an enrolled NIC's record (re-enrolment, a new address or PSK) under the caller's lease. Fenced:
   * E_FENCED unless `fence` holds the NIC's lease; E_NOT_FOUND if the NIC is not in the store.
   */
  updateNic(nic: NicRecord, fence: Fence): Promise<void>;
  getNic(id: string): Promise<NicRecord | null>;
  /** Every NIC, by id. SQL backends unwrap each record's PSK when it is first read (row-codec.ts nicFromRowLazyPsk). */
  listNics(): Promise<NicRecord[]>;

  // --- SAs ---
  /**
   * Insert or replace the SA (nic, sa.pair.generation). The station's inbound SPI (`pair.fromNic.spi`)
   * must be unique among non-retired SAs of the whole store (E_SPI_IN_USE), so adoption by SPI is
   * unambiguous; at most one SA per NIC is 'active' (E_ILLEGAL_TRANSITION). Fenced.
   */
  putSa(nic: string, sa: SaInput, now: number, fence: Fence): Promise<void>;
  getSa(nic: string, generation: number): Promise<StoredSa | null>;
  /**
   * All SAs of a NIC, by generation; with `states`, only those in one of them (a session loads its active and
   * previous SAs without unwrapping the keys of the retired ones it keeps).
   */
  listSas(nic: string, states?: readonly SaState[]): Promise<StoredSa[]>;
  /** Every NIC's SAs but the retired ones, without keys (nothing is unwrapped), by NIC and generation. */
  listSaStates(): Promise<SaSummary[]>;
  /**
   * One NIC's SAs, retired ones included, without keys (nothing is unwrapped), by generation: what a key exchange
   * needs to number the next generation and find pending rows left behind, and what a session needs to know which
   * of the SAs it holds keys for are active and previous now.
   */
  listNicSaStates(nic: string): Promise<NicSaState[]>;
  /** The NIC's 'active' SA, if any. */
  /**
   * The active SA's generation of every NIC that has one, in one read (a daemon's poll round: whether a session
   * must reload, StationCore.syncWithStore). A hint only: the session reloads through getActiveSa/listSas, which
   * verify the rows.
   */
  activeGenerations(): Promise<Map<string, number>>;
  getActiveSa(nic: string): Promise<StoredSa | null>;
  /** Adoption by SPI (DESIGN §5): the non-retired SA whose station-inbound SPI (fromNic.spi) is `spi`. */
  findSaBySpi(spi: number): Promise<StoredSa | null>;
  /**
   * Make `generation` the active SA (the station's commit, DESIGN §2.5): the current 'active' becomes
   * 'previous' and the former 'previous' is retired, in one transaction. So is every 'pending' SA of a lower
   * generation: the NIC's one pending slot has moved past it (its exchange died between SA_READY and SA_CONFIRM),
   * so it can never be committed. Retired rows beyond RETIRED_SAS_KEPT go. Fenced.
   */
  activateSa(nic: string, generation: number, now: number, fence: Fence): Promise<void>;
  /**
   * Set a non-active state ('pending' | 'previous' | 'retired'); 'retired' is final, and retiring one deletes the
   * retired rows beyond RETIRED_SAS_KEPT. Fenced.
   */
  setSaState(nic: string, generation: number, state: Exclude<SaState, 'active'>, now: number, fence: Fence): Promise<void>;

  // --- sequence checkpoints (DESIGN §2.6) ---
  /** Raise outReserved to `upTo` (never lowers it); returns the value now stored. Fenced. */
  reserveOutbound(nic: string, generation: number, upTo: bigint, now: number, fence: Fence): Promise<bigint>;
  /**
   * Claim an exclusive block of `size` outbound sequence numbers starting at or above `minNext` and above every
   * block claimed before (by any process of any station); returns its first number. Two senders on one SA can
   * never get the same number (AES-GCM nonce reuse, DESIGN §2.6). Fenced.
   */
  claimOutbound(nic: string, generation: number, minNext: bigint, size: bigint, now: number, fence: Fence): Promise<bigint>;
  /** Raise inHighest to `highest` (never lowers it); returns the value now stored. Fenced. */
  recordInbound(nic: string, generation: number, highest: bigint, now: number, fence: Fence): Promise<bigint>;
  getCheckpoint(nic: string, generation: number): Promise<SeqCheckpoint | null>;

  // --- ownership (DESIGN §5) ---
  /**
   * Take or extend the lease: succeeds if the NIC is free, its lease expired (takeover: epoch + 1, the old
   * owner's claim is replaced) or it is already ours (same epoch, expiry extended).
   */
  acquireLease(nic: string, station: string, now: number, ttlMs: number): Promise<LeaseResult>;
  /**
   * acquireLease for many NICs at once (a daemon's poll round, DESIGN §5), by the same rules NIC by NIC, in a few
   * statements per LEASE_BATCH NICs (one transaction each) rather than a transaction per NIC. A NIC the store does
   * not know is left out of the answer.
   */
  acquireLeases(nics: readonly string[], station: string, now: number, ttlMs: number): Promise<Map<string, LeaseResult>>;
  /** Extend our lease; E_FENCED if the epoch moved on or another station holds it. */
  renewLease(nic: string, fence: Fence, now: number, ttlMs: number): Promise<Lease>;
  /** Give the NIC up (owner cleared, epoch kept so the next owner gets epoch + 1). Fenced. */
  releaseLease(nic: string, fence: Fence): Promise<void>;
  getLease(nic: string): Promise<Lease | null>;
  listLeases(): Promise<Lease[]>;

  // --- command log (DESIGN §5, issue 5 "tamper-evident command log") ---
  /**
   * Append a command entry and checkpoint the head, atomically. Fenced. E_STORE if the log's head was
   * altered outside a station (fail closed until audited).
   */
  appendCommand(nic: string, input: CommandInput, fence: Fence): Promise<CommandLogEntry>;
  /**
   * Append an 'outcome' entry for the command at `index` (rows are never modified). Fenced. Outcome 'sent' with
   * `syncEpoch` records that the command is sent again under that epoch (written before it is sent); a sync epoch
   * with any other outcome is E_USAGE (an acknowledgement or a failure is not a transmission).
   */
  updateOutcome(nic: string, ref: CommandRef, outcome: CommandOutcome, time: number, fence: Fence, syncEpoch?: number): Promise<CommandLogEntry>;
  /**
   * Append an outcome entry for command `index` only while it is still 'sent' and was last sent under `expectEpoch`
   * (compare-and-set, decided on a log that verifies: E_STORE otherwise): 'sent' with `syncEpoch` records that it is
   * sent again under that epoch (a session found it not executed; written before it is sent); 'failed' records that
   * it never left (so no other process will send it). Returns false and writes nothing if another process settled or
   * re-sent it first: so a command is never sent by two processes, nor reported unsent after one sent it. Fenced.
   */
  updateOutcomeIf(nic: string, ref: CommandRef, outcome: 'sent' | 'failed', time: number, fence: Fence, expectEpoch: number, syncEpoch?: number): Promise<boolean>;
  /** Raw log rows, by index. */
  readCommandLog(nic: string): Promise<CommandLogEntry[]>;
  /**
   * Commands with their latest outcome, by index; `syncEpoch` is the latest epoch the command was sent under
   * (the command entry's, or that of its latest 'sent' outcome entry).
   */
  listCommands(nic: string): Promise<CommandRecord[]>;
  /** Verify the chain, every row's MAC and the checkpointed head. */
  auditCommandLog(nic: string): Promise<AuditReport>;

  // --- NIC sync epochs (wire/sync-frame.ts, DESIGN §7 "restoring a backup") ---
  /**
   * The highest sync epoch a station of this store has been given by the NIC (0 = none). A session asks the NIC
   * for an epoch above it, so a NIC whose EEPROM was restored from a backup never issues an epoch twice; a NIC
   * that reports a lower counter than this was restored. The row carries a MAC under the cluster key: a row that
   * does not verify is E_STORE.
   */
  getSyncEpoch(nic: string): Promise<number>;
  /** Raise the NIC's highest sync epoch to `epoch` (never lowers it); returns the value now stored. Fenced. */
  recordSyncEpoch(nic: string, epoch: number, now: number, fence: Fence): Promise<number>;

  // --- ASF alerts (docs/ALERTS.md): observations, not runtime state, so not fenced ---
  /** Store an alert; null when the NIC's alert with that id is already stored (a retransmission). */
  addAlert(nic: string, station: string, alert: AlertInput): Promise<AlertRecord | null>;
  listAlerts(q: AlertQuery): Promise<AlertRecord[]>;

  // --- cluster membership ---
  touchStation(id: string, address: string, now: number): Promise<void>;
  listStations(): Promise<StationRecord[]>;
  /**
   * Extend the station's liveness row to `now + ttlMs` (created on first call) and return every member row, dead
   * ones included, in station order: one transaction. A lease's liveness is the later of its own expiry and its
   * owner's member row's (`Lease.expiresAt` as every lease read and acquireLease(s) report it).
   */
  renewMember(station: string, now: number, ttlMs: number): Promise<Member[]>;
  /** Remove the station's member row (a daemon that stops cleanly): its leases then live by their own expiry only. */
  leaveMembers(station: string): Promise<void>;
  /**
   * Hand NICs over (a rebalance, DESIGN §5): each lease in `nics` that `station` holds under the epoch given is made
   * free (owner cleared, epoch kept, expiry `now`: the time it was released, which a backup's grace counts from).
   * Leases the station no longer holds under that epoch are left alone. One statement per LEASE_BATCH NICs.
   * Returns the NICs released.
   */
  releaseLeases(nics: ReadonlyMap<string, number>, station: string, now: number): Promise<string[]>;

  close(): Promise<void>;
}
