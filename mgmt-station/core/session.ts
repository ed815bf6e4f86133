/**
 * The station's secure channel to one NIC (DESIGN §2.2, §2.6, §5, §7): the SA endpoints it holds (active and
 * previous), the resynchronisation that gives this process its own sync epoch at the NIC (wire/sync-frame.ts),
 * request/response matching with retransmission, and commands with exactly-once semantics across crashes,
 * takeovers, pauses and restored backups. Sans-I/O apart from its injected env, store and socket (core/env.ts).
 *
 * IVs (wire/sync-iv.ts): this session sends IV = epoch || low 32 bits of the sequence number, in an epoch the NIC
 * issued to it alone, so no IV repeats under a key even when the store's counters went back (a restored backup):
 * the next sync gives a new epoch. The NIC's answers carry IVs derived from the request's, so an answer is matched
 * to the transmission it answers; a replayed or misdirected one matches nothing and is dropped.
 *
 * Sync: before its first request, and after two unanswered attempts in a row (the NIC may have rebooted, or ended
 * this session's epoch), or when the NIC invites one (an unsolicited challenge after its boot). A sync also asks
 * the NIC about the commands it has not seen settled: those this process has in flight, and, the first time, those
 * the command log holds as 'sent' (an earlier process of this station, or a station this one took over from). The
 * NIC answers executed (-> 'acked'), not executed (it cancels that identity, which then never runs; the session
 * sends the command again in its own epoch, recording that first), or unknown (-> 'unknown', never sent again).
 * The station's store records every epoch before it is used, and a NIC whose counter is behind that record had its
 * EEPROM restored: its answers are then all taken as unknown.
 *
 * Commands are appended to the NIC's command log before they are sent; the log index gives the RMCP sequence and
 * ASF tag. A command is reported done only after the NIC acknowledged it *and* the outcome is durable ("replicate
 * before acknowledging"). A command whose session is lost before that (its lease went to another station, or a
 * pause outlasted it) is reported as the store records it once settled: done (by the other station), or
 * E_OUTCOME_UNKNOWN — never as something to retry elsewhere.
 */
import { SaEndpoint, espPacketOf } from '../../wire/sa-endpoint.js';
import { encodeRmcpAsf, decodeRmcpAsf, ASF_TYPE_CODE, type AsfMessage } from '../../wire/asf.js';
import { RMCP_SEQ_NO_ACK, RMCP_PORT } from '../../wire/rmcp.js';
import { decodeInnerUdp, encodeInnerUdp, maxSequence } from '../../wire/esp.js';
import { encodeOwnerNotice } from '../../wire/owner-notice.js';
import { decodeSync, encodeSync, isSyncFrame, SYNC_MAX_QUERIES, SYNC_NONCE_LENGTH, type CommandQuery, type QueryAnswer, type SyncFrame } from '../../wire/sync-frame.js';
import { isAlertK, nicAnswerIv, nicIvParts, stationIv, SYNC_EPOCH_MAX } from '../../wire/sync-iv.js';
import { alertEventOf, decodePet, decodeTrap, petTimeMs, SNMP_TRAP_PORT, type Pet } from '../../wire/pet.js';
import { encodePetAck, petAckFor } from '../../wire/pet-ack.js';
import { LifelineError, ProtocolError } from '../../common/errors.js';
import { equalBytes } from '../../common/bytes.js';
import { mutated } from '../../common/mutation.js';
import type { AhEndpoints } from '../../wire/ah.js';
import type { SaPair } from '../../wire/sa.js';
import type { AlertInput, AlertRecord, CommandRecord, CommandRef, Fence, NicRecord, Store, StoredSa } from '../store/store.js';
import type { Endpoint, SecurePort, StationEnv } from './env.js';

export type ReadKind = 'presence-ping' | 'capabilities-request' | 'system-state-request';
export type CommandKind = 'reset' | 'power-up' | 'power-down' | 'power-cycle';
export const COMMAND_KINDS: readonly CommandKind[] = ['reset', 'power-up', 'power-down', 'power-cycle'];

export interface SessionOptions {
  store: Store;
  port: SecurePort;
  fence: Fence;
  env: StationEnv;
  /** Outbound sequence numbers claimed in the store per write (station side of DESIGN §2.6). */
  reserveBlock?: bigint;
  /** First retransmission after this many ms, doubling, capped at 1 s. */
  retransmitMs?: number;
  /** This session's lease came from another station (a takeover): its sync ends every other epoch at the NIC. */
  takeover?: boolean;
  log?: (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;
  /** Observer of the NIC datagrams this session accepted (the simulator's replay check); absent: none. */
  onAccepted?: (bytes: Uint8Array) => void;
  /** Observer of each alert this session stored (a retransmission is stored once: not told again). */
  onAlert?: (a: AlertRecord) => void;
}

interface TakenAlert {
  alert: Uint8Array;
  pet: Pet;
  input: AlertInput;
  /** The PET Acknowledge datagram sent for it, once it is stored. */
  ack: Uint8Array | null;
  /** Being stored and acknowledged now. */
  busy: boolean;
}

/** Alerts whose acknowledgement a session keeps, to answer a retransmission with the same datagram. */
const ALERT_ACKS_KEPT = 64;

/** Commands in flight to one NIC (a sync asks about at most SYNC_MAX_QUERIES at once). */
export const MAX_COMMANDS_IN_FLIGHT = 16;
/** How long a sync waits for the NIC when nobody gave a deadline (the first request's timeout is used otherwise). */
const SYNC_TIMEOUT_MS = 3000;
/** Attempts in a row without an answer on the active SA before the session syncs again. */
const UNANSWERED_BEFORE_SYNC = 2;

export interface RequestResult {
  nic: string;
  request: string;
  generation: number;
  attempts: number;
  rttMs: number;
  response: AsfMessage | { type: 'rmcp-ack'; sequence: number };
  /** The command's log row: its index, wire identity and the hash of its entry (the index alone is not unique once a store went back). */
  command?: { index: number; rmcpSeq: number; tag: number; hash: string };
  /** Set when another station (or process) completed this command after this session lost it. */
  completedBy?: string;
}

/**
 * A verb's result, written out field by field: an object spread with added fields (`{ ...r, request }`) is slow in
 * V8 (a generic property copy), and this is on the path of every read's round trip (bench `lifeline.station`).
 */
function requestResult(
  r: { nic: string; generation: number; attempts: number; rttMs: number },
  request: string,
  response: RequestResult['response'],
  command?: RequestResult['command'],
): RequestResult {
  const out: RequestResult = { nic: r.nic, request, generation: r.generation, attempts: r.attempts, rttMs: r.rttMs, response };
  if (command) out.command = command;
  return out;
}

interface Held {
  /** The SA and its state, without the rest of its stored row (its IKE SA snapshot: keys this session never uses). */
  stored: Pick<StoredSa, 'pair' | 'state'>;
  ep: SaEndpoint;
  inboundSpi: number;
  /** Attempts on this SA in a row that got no answer, across requests; reset by any packet the NIC sends on it. */
  unanswered: number;
}

interface Answer { msg: AsfMessage | null; rmcpSeq: number; ack: boolean; generation: number }

interface Waiter {
  /** The transmissions this waiter made, as `${epoch mod 2^30}:${low 32 bits}`: the NIC's answers name one. */
  sent: Set<string>;
  match: (a: Answer) => boolean;
  settle: (r: Answer | { closed: true } | { synced: QueryAnswer }) => void;
  /** Wakes the waiting request early (the NIC invited a sync): set while it sleeps between transmissions. */
  kick?: () => void;
}

type Exchanged = { nic: string; msg: AsfMessage | null; generation: number; attempts: number; rttMs: number; synced?: QueryAnswer };

/** A command this session has in flight: its identity and the epoch it was last sent under. */
interface InFlight {
  index: number;
  /** The hash of its command entry: the store's outcomes name it by index and hash (store.ts CommandRef). */
  hash: string;
  /** Its row is gone from the store (restored from a backup after it was logged): nothing more is recorded of it. */
  orphaned?: boolean;
  kind: CommandKind;
  rmcpSeq: number;
  tag: number;
  /** The epoch it was first sent under: with index-derived RMCP sequence and tag, the identity the NIC records. */
  firstEpoch: number;
  epoch: number;
  /**
   * The datagram it went out as under the current epoch and SA: a retransmission sends these very bytes again.
   * One ESP packet per command and epoch: the NIC's replay window then takes it at most once, so a retransmission
   * that never arrived, captured and sent later by someone else, can never run it a second time (found by the
   * simulator: seed 4175). The NIC answers a lost ACK's command at the next sync instead.
   */
  sealed?: { epoch: number; generation: number; bytes: Uint8Array; sent: string };
  waiter: Waiter | null;
}

interface SyncResult { epoch: number; answers: QueryAnswer[]; nicRestored: boolean }

const WANT = { 'presence-ping': 'presence-pong', 'capabilities-request': 'capabilities-response', 'system-state-request': 'system-state-response' } as const;

/** What a session keeps of its NIC's record: where to send (not its PSK or meta: a daemon holds a session per NIC). */
export type SessionNic = Pick<NicRecord, 'id' | 'address' | 'securePort'>;

export class NicSession {
  readonly nic: SessionNic;
  private held: Held[] = [];
  private active: Held | null = null;
  /** The tail of the reloads asked for (reload(): one at a time). */
  private reloading: Promise<void> = Promise.resolve();
  private reservedOut = 0n;
  /** This process's sync epoch at the NIC; null until the first sync. */
  private epoch: number | null = null;
  private syncing: Promise<void> | null = null;
  /** A sync of this session is waiting for these frames. */
  private syncWait: { ns: Uint8Array; nn: Uint8Array | null; onFrame: (f: SyncFrame) => void } | null = null;
  /** Unsolicited challenges arrive here while no sync runs (the NIC booted and invites one). */
  private invited = false;
  private waiters = new Set<Waiter>();
  /** Commands in flight by the hash of their log row (an index alone repeats once a store went back). */
  private inFlight = new Map<string, InFlight>();
  private queue: (() => void)[] = [];
  private commandsRunning = 0;
  /** Commands of the log to settle at the first sync (logged 'sent' before this session opened). */
  private backlog: CommandRecord[] = [];
  /**
   * Log indexes of the commands logged or sent under the current epoch (`usedEpoch`). A new command given one of
   * them means the store went back (restored from a backup under a running station): that identity (epoch, index)
   * may already have run, or the NIC may take it for the command that was sent again under it, so the row is
   * abandoned ('failed': it was never sent) and the command is logged again after a sync gives a new epoch, under
   * which nothing has been sent.
   */
  private used: Set<number> | null = null; // made by the first command
  private usedEpoch = -1;
  private closed = false;
  /**
   * 'Previous' SAs this session let go of, by generation, with where their endpoints' counters were: once the NIC
   * answered on the active SA it has retired the previous one (protocol/README.md), so nothing it sends can come
   * under it any more, and its endpoint (about 3 KiB, issue 16: a daemon holds a session per NIC) goes. A reload
   * does not take a let-go SA up again while the store holds it as 'previous'; if the store holds it as 'active'
   * again (restored from a backup), its new endpoint goes on from these counters, never from the lower ones the
   * backup holds (two packets under one key and IV: found by the simulator, seed 202209).
   */
  private letGo: Map<number, { nextOut: bigint; inHigh: bigint }> | null = null;
  private tag: number;
  readonly counters = { accepted: 0, syncs: 0, dropped: {} as Record<string, number>, alerts: { stored: 0, duplicates: 0, acksSent: 0 } };
  /**
   * Alerts taken, by their IV (`${epoch mod 2^30}:${low}:${k}`, wire/sync-iv.ts): the datagram and, once the alert is stored, the PET
   * Acknowledge sent for it. A retransmission is the same datagram (which the replay window refuses): it gets the
   * same acknowledgement datagram again, so no IV is spent on it (docs/ALERTS.md).
   */
  private alertAcks: Map<string, TakenAlert> | null = null; // made on the first alert (a daemon holds a session per NIC)
  private ackSeq = 0;

  private constructor(nic: NicRecord, private readonly o: SessionOptions) {
    this.nic = { id: nic.id, address: nic.address, securePort: nic.securePort };
    this.tag = o.env.random(1)[0] ^ 0x5a;
  }

  /**
   * Load the NIC's SAs and its unsettled commands from the store. The command log must verify (hash chain, MACs,
   * sealed head) before the session acts on any of its rows: E_STORE otherwise, and nothing is sent.
   */
  static async open(nicOrId: string | NicRecord, o: SessionOptions, known?: SaPair): Promise<NicSession> {
    // A record the caller has just read or written (a key exchange's) is not read again.
    const nicId = typeof nicOrId === 'string' ? nicOrId : nicOrId.id;
    const nic = typeof nicOrId === 'string' ? await o.store.getNic(nicId) : nicOrId;
    if (!nic) throw new LifelineError('E_NOT_FOUND', `NIC '${nicId}' is not known to this station; enroll it or key it with 'mgmt-station sa manual ${nicId}'`);
    const audit = mutated('no-log-audit') ? { ok: true, problem: null, entries: -1 } : await o.store.auditCommandLog(nicId);
    if (!audit.ok) {
      throw new LifelineError('E_STORE', `the command log of ${nicId} does not verify (${audit.problem}); nothing was sent. Run 'mgmt-station audit ${nicId}' and restore the store from a backup`);
    }
    const s = new NicSession(nic, o);
    // An empty log (a NIC just enrolled) has no command to settle: not read a second time.
    const listed = audit.entries === 0 ? [] : await o.store.listCommands(nicId);
    s.backlog = listed.filter((c) => c.outcome === 'sent');
    await s.reload(known);
    return s;
  }

  /**
   * (Re)read the SAs from the store: after a refresh, a takeover or an adoption. The sync epoch stays. Reloads run
   * one at a time, in the order asked: two at once (a refresh's and a daemon poll's catch-up with the store) would
   * each find the other's half-built list, and the second make a second endpoint for the same SA from its stored
   * checkpoint — two senders of the same sequence numbers under one key (found by the simulator, commit:cable:0).
   */
  reload(known?: SaPair): Promise<void> {
    const r = this.reloading.then(() => this.reloadNow(known));
    this.reloading = r.catch(() => undefined);
    return r;
  }

  private async reloadNow(known?: SaPair): Promise<void> {
    // This session's sync epoch stays, so an SA it keeps keeps its endpoint: its IVs go on from where they are
    // (never from a lower number a store restored from a backup may now hold), and its replay window still knows
    // every answer it took (one taken before the reload and sent again by someone is not taken twice).
    const kept = new Map(this.held.map((h) => [h.stored.pair.generation, h.ep]));
    const have = new Map<number, SaPair>(this.held.map((h) => [h.stored.pair.generation, h.stored.pair]));
    if (known) have.set(known.generation, known);
    for (const h of this.held) this.unregister(h);
    this.held = [];
    this.active = null;
    const letGo = this.letGo;
    const { sas, live } = await this.liveSas(have, letGo);
    // Only SAs the store still holds keep their record (one or two generations at most).
    if (letGo !== null) {
      for (const g of [...letGo.keys()]) if (!live.has(g)) letGo.delete(g);
      if (letGo.size === 0) this.letGo = null;
    }
    for (const stored of sas) {
      const cp = await this.o.store.getCheckpoint(this.nic.id, stored.pair.generation);
      const max = maxSequence(stored.pair.esn);
      const wanted = (cp?.outReserved ?? 0n) + 1n;
      let outStart = wanted > max + 1n ? max + 1n : wanted; // max + 1 = exhausted: sends fail, never wrap
      let inFloor = cp?.inHighest ?? 0n;
      const gone = this.letGo?.get(stored.pair.generation);
      if (gone) {
        // Active again (see letGo): on from where this session's endpoint was.
        if (gone.nextOut > outStart) outStart = gone.nextOut;
        if (gone.inHigh > inFloor) inFloor = gone.inHigh;
        this.letGo!.delete(stored.pair.generation);
      }
      const old = kept.get(stored.pair.generation);
      const same = old && old.inboundSpi === (stored.pair.policy === 'esp+ah' ? stored.pair.fromNic.ahSpi : stored.pair.fromNic.spi);
      // The small GHASH table (wire/aead.ts 'keyed-small'): a daemon holds these for every NIC it polls (issue 16).
      const ep = same ? old : new SaEndpoint(stored.pair, 'station', { outStart, inFloor, impl: 'keyed-small' });
      if (ep.nextOutSeq < outStart) ep.skipOutboundTo(outStart); // another process of this station claimed a block
      const h: Held = { stored: { pair: stored.pair, state: stored.state }, ep, inboundSpi: ep.inboundSpi, unanswered: 0 };
      this.held.push(h);
      const handler = (b: Uint8Array, from: Endpoint) => this.onDatagram(h, b, from);
      this.o.port.register(h.inboundSpi, handler);
      // Sync frames name the SA by its ESP SPI also under esp+ah (wire/sync-frame.ts).
      if (stored.pair.fromNic.spi !== h.inboundSpi) this.o.port.register(stored.pair.fromNic.spi, handler);
      if (stored.state === 'active') {
        this.active = h;
        this.reservedOut = cp?.outReserved ?? 0n;
      } else ep.releaseCrypto(); // 'previous': kept for late answers, its AEADs made again only if one comes
    }
  }

  /**
   * The NIC's active and previous SAs as the store has them now. Their keys come from `have` (what this process
   * already holds: the SAs the session held, and the one a key exchange of this process has just stored and
   * activated) when the store's row is that SA (same generation and station-inbound SPI); else they are read with
   * their keys (an unwrap per key). Which SAs are live, and in which state, always comes from the store.
   */
  private async liveSas(have: Map<number, SaPair>, letGo: ReadonlyMap<number, unknown> | null): Promise<{ sas: StoredSa[]; live: Set<number> }> {
    // A 'previous' SA this session has let go of stays let go (its keys are not read); `live` names every
    // generation the store still holds as active or previous.
    const full = async () => {
      const listed = await this.o.store.listSas(this.nic.id, ['active', 'previous']);
      return { sas: listed.filter((x) => !(x.state === 'previous' && letGo?.has(x.pair.generation))), live: new Set(listed.map((x) => x.pair.generation)) };
    };
    if (have.size === 0) return full();
    const sas: StoredSa[] = [];
    const live = new Set<number>();
    for (const s of await this.o.store.listNicSaStates(this.nic.id)) {
      if (s.state !== 'active' && s.state !== 'previous') continue;
      live.add(s.generation);
      if (s.state === 'previous' && letGo?.has(s.generation)) continue;
      const pair = have.get(s.generation);
      if (!pair || pair.fromNic.spi !== s.fromNicSpi) return full();
      sas.push({ nic: this.nic.id, pair, state: s.state, ike: null, updatedAt: s.updatedAt });
    }
    return { sas, live };
  }

  /**
   * Nothing of this session is under way: no command in flight or queued, no sync, no request awaiting an answer.
   * A daemon hands a NIC over to another station only then (DaemonCore: a rebalance's safe point), so every command
   * it sent has its outcome stored before the lease goes.
   */
  get idle(): boolean {
    return this.inFlight.size === 0 && this.commandsRunning === 0 && this.queue.length === 0 && this.syncing === null && this.waiters.size === 0;
  }

  /**
   * The NIC sent on the active SA, so it has retired the previous one: drop its endpoint and SPIs (a datagram that
   * still names them is counted by the socket as of an unknown SPI). Its store row stays 'previous'.
   */
  private letGoOfPrevious(): void {
    for (const x of this.held) {
      if (x === this.active) continue;
      this.unregister(x);
      (this.letGo ??= new Map()).set(x.stored.pair.generation, { nextOut: x.ep.nextOutSeq, inHigh: x.ep.highestInSeq });
    }
    this.held = this.active ? [this.active] : [];
  }

  private unregister(h: Held): void {
    this.o.port.unregister(h.inboundSpi);
    if (h.stored.pair.fromNic.spi !== h.inboundSpi) this.o.port.unregister(h.stored.pair.fromNic.spi);
  }

  close(): void {
    for (const h of this.held) this.unregister(h);
    this.held = [];
    // Waiting requests fail: a closed session (lost lease, shutdown) must never look like an answer.
    this.closed = true;
    for (const w of this.waiters) w.settle({ closed: true });
    this.waiters.clear();
  }

  get activeGeneration(): number | null {
    return this.active?.stored.pair.generation ?? null;
  }

  get syncEpoch(): number | null {
    return this.epoch;
  }

  // ------------------------------------------------------------------ requests

  /**
   * `background`: the daemon's periodic poll, or the ping that puts a new SA to use, whose round trip nobody waits
   * for; it does not keep the event loop polling for its answer (lib/answer-poll.ts), so a daemon polling or keying
   * many NICs does not spin a CPU for them.
   */
  async read(kind: ReadKind, timeoutMs: number, background = false): Promise<RequestResult> {
    const tag = (this.tag = (this.tag + 1) & 0xff);
    const want = WANT[kind];
    const msg = { type: kind, tag } as AsfMessage;
    const deadline = this.o.env.mono() + timeoutMs;
    await this.caughtUp(deadline, kind);
    const r = await this.exchange(encodeRmcpAsf(RMCP_SEQ_NO_ACK, msg), (a) => a.msg !== null && a.msg.type === want && a.msg.tag === tag, deadline - this.o.env.mono(), kind, !background, null);
    return requestResult(r, kind, r.msg!);
  }

  async command(kind: CommandKind, timeoutMs: number): Promise<RequestResult> {
    const t0 = this.o.env.mono();
    const deadline = t0 + timeoutMs;
    try {
      await this.enterCaughtUp(deadline, kind);
    } catch (e) {
      // The command never left (the NIC took no sync, or the SA has no number left): logged as 'failed' (it did
      // not run), when it can be.
      const code = (e as LifelineError).code;
      if (code === 'E_TIMEOUT' || code === 'E_SEQ_EXHAUSTED') {
        await this.o.store.appendCommand(this.nic.id, { time: this.o.env.now(), command: kind, outcome: 'failed' }, this.o.fence).catch(() => undefined);
      }
      throw e;
    }
    let entry: { index: number; rmcpSeq: number; asfTag: number; hash: string } | null = null;
    let inFlight: InFlight | null = null;
    try {
      // The store gives the command its identity on the wire from its log index (store.ts wireIdentity): unique
      // per NIC across stations and restarts; with the epoch it is the identity the NIC records (DESIGN §5).
      let loggedEpoch = this.epoch!;
      entry = await this.o.store.appendCommand(this.nic.id, { time: this.o.env.now(), command: kind, outcome: 'sent', syncEpoch: loggedEpoch }, this.o.fence);
      if (this.usedEpoch === loggedEpoch && this.used?.has(entry.index)) {
        this.o.log?.('warn', "the store's command log went back (restored from a backup?): the command is logged again after a sync gives a new epoch", { nic: this.nic.id, index: entry.index, epoch: loggedEpoch });
        await this.o.store.updateOutcomeIf(this.nic.id, refOf(entry), 'failed', this.o.env.now(), this.o.fence, loggedEpoch).catch(() => false);
        await this.sync(deadline, 'the store went back');
        if (this.epoch === loggedEpoch) throw new LifelineError('E_STORE', `${this.nic.id}: the command log went back and no new epoch could be had; nothing was sent`);
        loggedEpoch = this.epoch!;
        entry = await this.o.store.appendCommand(this.nic.id, { time: this.o.env.now(), command: kind, outcome: 'sent', syncEpoch: loggedEpoch }, this.o.fence);
      }
      this.markUsed(entry.index, loggedEpoch);
      // The epoch it is logged under (a sync may move the session on before it goes out: exchange() then has the NIC
      // asked about it in a sync, and sends it under the new epoch only when the NIC says it did not run).
      const f: InFlight = (inFlight = { index: entry.index, hash: entry.hash, kind, rmcpSeq: entry.rmcpSeq, tag: entry.asfTag, firstEpoch: loggedEpoch, epoch: loggedEpoch, waiter: null });
      const r = await this.runCommand(f, deadline);
      // Second ack: the outcome and the sequence state are durable before the user hears "done".
      await this.persistInbound(r.generation);
      if (!(await this.recordAcked(f))) {
        this.o.log?.('warn', "a command ran, but the store no longer holds its row (restored from a backup after it was logged): its outcome is not in the log", { nic: this.nic.id, index: f.index, command: kind });
      }
      return requestResult(r, kind, { type: 'rmcp-ack', sequence: f.rmcpSeq }, { index: f.index, rmcpSeq: f.rmcpSeq, tag: f.tag, hash: f.hash });
    } catch (e) {
      if (!entry || !inFlight) throw e; // nothing logged, so nothing sent
      return this.commandLost(inFlight, kind, e, deadline);
    } finally {
      this.leaveCommand();
    }
  }

  /**
   * A logged command did not end in an acknowledgement this session could record. Nothing sent at all: 'failed'.
   * Otherwise 'unknown' if this session still may write; and if it may not (its lease went to another station, or
   * the session closed), the truth is in the store: the outcome another station recorded (read until the caller's
   * deadline), else E_OUTCOME_UNKNOWN. Never an invitation to send the command again elsewhere.
   */
  private async commandLost(f: InFlight, kind: CommandKind, e: unknown, deadline: number): Promise<RequestResult> {
    const code = (e as LifelineError).code;
    const sent = this.inFlightSent?.delete(f.hash) ?? false;
    const entry = { index: f.index, rmcpSeq: f.rmcpSeq, asfTag: f.tag };
    const about = (err: LifelineError) => Object.assign(err, { command: { index: entry.index, hash: f.hash, sent } });
    if (!sent) {
      // Logged, never sent by this session (no sequence number left, or the session closed first). It did not run
      // if the log can say so before anyone else sends it (compare-and-set: another session may be completing it).
      const failed = await this.o.store.updateOutcomeIf(this.nic.id, refOf(f), 'failed', this.o.env.now(), this.o.fence, f.epoch).catch(() => false);
      if (failed) throw about(e instanceof LifelineError ? e : new LifelineError('E_INTERNAL', String(e)));
    }
    const mine = sent && code !== 'E_FENCED' && !this.closed;
    if (mine) {
      const wrote = await this.o.store.updateOutcome(this.nic.id, refOf(f), 'unknown', this.o.env.now(), this.o.fence).then(() => true, () => false);
      if (wrote) {
        // Recorded as unknown: the caller hears it as such (a timeout says so too, as it always has).
        if (code === 'E_TIMEOUT') throw about(e as LifelineError);
        throw about(new LifelineError('E_OUTCOME_UNKNOWN', `${this.nic.id}: ${kind} (log entry ${entry.index}) may or may not have run: ${(e as Error).message}`));
      }
    }
    if (mutated('lost-means-fenced')) throw about(new LifelineError('E_FENCED', `${this.nic.id}: the session was lost; use the NIC's owner`));
    for (;;) {
      // Its own row (by hash: a store restored from a backup may hold another command at that index).
      const c = (await this.o.store.listCommands(this.nic.id).catch(() => [])).find((x) => x.index === entry.index && x.hash === f.hash);
      if (c && c.outcome === 'acked') {
        const r = requestResult({ nic: this.nic.id, generation: this.activeGeneration ?? 0, attempts: 0, rttMs: 0 }, kind, { type: 'rmcp-ack', sequence: entry.rmcpSeq }, { index: entry.index, rmcpSeq: entry.rmcpSeq, tag: entry.asfTag, hash: f.hash });
        r.completedBy = c.outcomeStation;
        return r;
      }
      if (!c || c.outcome !== 'sent' || this.o.env.mono() >= deadline) break;
      await new Promise<void>((r) => this.o.env.after(Math.min(100, Math.max(1, deadline - this.o.env.mono())), r));
    }
    throw about(new LifelineError('E_OUTCOME_UNKNOWN', `${this.nic.id}: ${kind} (log entry ${entry.index}) may or may not have run: this session lost the NIC (${(e as Error).message}) before it was acknowledged; its outcome is in 'mgmt-station log ${this.nic.id}' once the NIC's owner settles it. Do not send it again blindly`));
  }

  /** Commands whose first transmission left (a failure after it cannot be 'failed'). */
  private inFlightSent: Set<string> | null = null; // made by the first command

  /** Send a command (and again, as long as the deadline allows) until the NIC acknowledges it or a sync settles it. */
  private async runCommand(f: InFlight, deadline: number): Promise<Exchanged> {
    this.inFlight.set(f.hash, f);
    try {
      for (;;) {
        const msg = { type: f.kind, tag: f.tag, bootOptions: null } as AsfMessage;
        const r = await this.exchange(encodeRmcpAsf(f.rmcpSeq, msg), (a) => a.ack && a.rmcpSeq === f.rmcpSeq, deadline - this.o.env.mono(), f.kind, true, f);
        if (r.synced === undefined) return r;
        // A sync settled it while it was in flight.
        if (r.synced === 'executed') return { nic: this.nic.id, msg: null, generation: this.activeGeneration ?? 0, attempts: r.attempts, rttMs: r.rttMs };
        if (f.orphaned) throw new LifelineError('E_OUTCOME_UNKNOWN', `${this.nic.id}: the store no longer holds ${f.kind} (log entry ${f.index}): it was restored from a backup after the command was logged; the NIC reports it ${r.synced === 'not-executed' ? 'did not run (and it never will now)' : 'may or may not have run'}`);
        if (r.synced === 'unknown') throw new LifelineError('E_OUTCOME_UNKNOWN', `${this.nic.id}: the NIC cannot tell whether ${f.kind} (log entry ${f.index}) ran (its EEPROM may have been restored, or its record no longer holds it); it is not sent again`);
        // Not executed, and it never will be under its old epoch: send it again in ours, recorded first.
        if (!(await this.recordResend(f))) throw new LifelineError('E_OUTCOME_UNKNOWN', `${this.nic.id}: the command at log entry ${f.index} was taken over by another process of this station, or the store went back`);
      }
    } finally {
      this.inFlight.delete(f.hash);
    }
  }

  /** Log that command `f` is sent again under this session's epoch (before it is), if nobody else did meanwhile. */
  private async recordResend(f: InFlight): Promise<boolean> {
    if (f.orphaned) return false;
    const ok = await this.o.store.updateOutcomeIf(this.nic.id, refOf(f), 'sent', this.o.env.now(), this.o.fence, f.epoch, this.epoch!);
    if (ok) f.epoch = this.epoch!;
    return ok;
  }

  /**
   * Record command `f` acknowledged. False if the store no longer holds its row (it went back to a backup taken
   * before the command was logged, and may hold another command at its index): nothing is written then.
   */
  private async recordAcked(f: InFlight): Promise<boolean> {
    if (f.orphaned) return false;
    try {
      await this.o.store.updateOutcome(this.nic.id, refOf(f), 'acked', this.o.env.now(), this.o.fence);
      return true;
    } catch (e) {
      if ((e as LifelineError).code !== 'E_STORE') throw e;
      const c = (await this.o.store.listCommands(this.nic.id)).find((x) => x.index === f.index);
      if (c?.hash === f.hash) throw e;
      f.orphaned = true;
      return false;
    }
  }

  private markUsed(index: number, epoch: number): void {
    if (epoch !== this.usedEpoch) {
      if (epoch < this.usedEpoch) return;
      this.used?.clear();
      this.usedEpoch = epoch;
    }
    (this.used ??= new Set()).add(index);
  }

  /**
   * A command slot, with the session synced and the commands its sync took over from the log (`completing`) done.
   * Those need slots of their own (completeLater), so they are never waited for while holding one: sixteen callers
   * holding every slot while waiting for them would wait for ever (found by the simulator, seed 60895).
   */
  private async enterCaughtUp(deadline: number, what: string): Promise<void> {
    for (;;) {
      await this.enterCommand();
      try {
        await this.synced(deadline, what);
      } catch (e) {
        this.leaveCommand();
        throw e;
      }
      const c = this.completing;
      if (!c) return;
      this.leaveCommand();
      await c;
    }
  }

  /** At most MAX_COMMANDS_IN_FLIGHT commands per NIC. */
  private async enterCommand(): Promise<void> {
    while (this.commandsRunning >= MAX_COMMANDS_IN_FLIGHT) await new Promise<void>((r) => this.queue.push(r));
    this.commandsRunning++;
  }

  private leaveCommand(): void {
    this.commandsRunning--;
    this.queue.shift()?.();
  }

  /**
   * Tell the NIC that this station owns it now (wire/owner-notice.ts): it points its heartbeats and alerts at
   * `listen`. Authenticated by the SA; acknowledged by an RMCP ACK.
   */
  async notifyOwner(epoch: number, listen: Endpoint, timeoutMs: number): Promise<RequestResult> {
    const seq = (epoch % 254) + 1; // never 0xFF: the notice asks for an ACK
    const r = await this.exchange(encodeOwnerNotice(seq, { epoch, address: listen.address, port: listen.port }), (a) => a.ack && a.rmcpSeq === seq, timeoutMs, 'owner notice', true, null);
    return requestResult(r, 'owner-notice', { type: 'rmcp-ack', sequence: seq });
  }

  private async exchange(
    rmcpAsf: Uint8Array,
    match: Waiter['match'],
    timeoutMs: number,
    what: string,
    pollForAnswer: boolean,
    command: InFlight | null,
  ): Promise<Exchanged> {
    const env = this.o.env;
    const t0 = env.mono();
    const deadline = t0 + timeoutMs;
    if (!this.active) throw new LifelineError('E_NO_SA', `no active SA for ${this.nic.id}; run 'mgmt-station sa manual ${this.nic.id}' or 'mgmt-station enroll ${this.nic.id}'`);
    const inner = encodeInnerUdp(this.o.port.port, RMCP_PORT, rmcpAsf);
    let attempts = 0;
    let settled: Answer | { closed: true } | { synced: QueryAnswer } | null = null;
    let wake: (() => void) | null = null;
    const waiter: Waiter = { sent: new Set(), match, settle: (r) => { settled = r; wake?.(); } };
    if (command) command.waiter = waiter;
    this.waiters.add(waiter);
    const poll = pollForAnswer ? this.o.port.poll : null;
    poll?.open();
    try {
      let interval = this.o.retransmitMs ?? 250;
      while (!settled) {
        await this.ensureSynced(deadline, what);
        if (settled) break;
        const h = this.active;
        if (!h) throw new LifelineError('E_NO_SA', `no active SA for ${this.nic.id}`);
        if (h.unanswered >= UNANSWERED_BEFORE_SYNC) {
          // Silence: the NIC may have rebooted (it then takes nothing before a sync) or ended this epoch.
          h.unanswered = 0;
          try {
            await this.sync(deadline, 'no answer');
          } catch (e) {
            if ((e as LifelineError).code === 'E_TIMEOUT') break;
            throw e;
          }
          if (settled) break;
        }
        if (command && command.epoch !== this.epoch) {
          // The session's epoch moved on since the command was logged or last sent, and the sync that moved it did
          // not ask about it (it was not yet in flight). It goes out under the new epoch only after a sync has asked
          // about it: the NIC then knows it as the command first sent under its first epoch (its identity, which
          // the executed-command record keeps and a later sync asks by), and this one hears the answer.
          await this.sync(deadline, 'a command of an earlier epoch');
          if (settled) break;
          continue;
        }
        await this.sendOn(this.active!, inner, waiter, command);
        if (command) {
          (this.inFlightSent ??= new Set()).add(command.hash);
          this.markUsed(command.index, command.epoch);
        }
        attempts++;
        const wait = Math.min(interval, deadline - env.mono());
        if (wait <= 0) {
          this.active!.unanswered++;
          break;
        }
        await new Promise<void>((r) => {
          const t = env.after(wait, r);
          wake = waiter.kick = () => {
            t.cancel();
            r();
          };
        });
        wake = null;
        waiter.kick = undefined;
        if (!settled && this.active) this.active.unanswered++;
        interval = Math.min(interval * 2, 1000);
        if (env.mono() >= deadline) break;
      }
    } finally {
      this.waiters.delete(waiter);
      if (command) command.waiter = null;
      poll?.close();
    }
    const s = settled as Answer | { closed: true } | { synced: QueryAnswer } | null;
    void wake;
    if (!s) {
      throw new LifelineError('E_TIMEOUT', `no answer from ${this.nic.id} (${this.nic.address}:${this.nic.securePort}) to ${what} after ${attempts} attempts in ${Math.round(timeoutMs)} ms; is the emulator running and the NIC's link up?`);
    }
    if ('closed' in s || this.closed) throw new LifelineError('E_FENCED', `the session to ${this.nic.id} was closed before ${what} was answered (lease lost or station stopping)`);
    const rttMs = env.mono() - t0;
    if ('synced' in s) return { nic: this.nic.id, msg: null, generation: this.activeGeneration ?? 0, attempts, rttMs, synced: s.synced };
    return { nic: this.nic.id, msg: s.msg, generation: s.generation, attempts, rttMs };
  }

  private async sendOn(h: Held, inner: Uint8Array, waiter: Waiter, command: InFlight | null): Promise<void> {
    const c = command?.sealed;
    if (c && c.epoch === this.epoch && c.generation === h.stored.pair.generation) {
      waiter.sent.add(c.sent);
      this.o.port.send(c.bytes, this.nic.securePort, this.nic.address);
      this.o.port.poll?.sent();
      return;
    }
    // Sequence numbers come from blocks claimed in the store (two processes of one station never share one).
    while (h.ep.nextOutSeq > this.reservedOut) await this.claim(h, h.ep.nextOutSeq);
    const seq = h.ep.nextOutSeq;
    const epoch = this.epoch!;
    const bytes = h.ep.seal(inner, this.ahOut(), stationIv(epoch, seq));
    const sent = `${epoch & SYNC_EPOCH_MAX}:${Number(seq & 0xffffffffn)}`;
    waiter.sent.add(sent);
    if (command) command.sealed = { epoch, generation: h.stored.pair.generation, bytes, sent };
    this.o.port.send(bytes, this.nic.securePort, this.nic.address);
    this.o.port.poll?.sent(); // poll for a waited-for answer rather than sleep until it wakes us (lib/answer-poll.ts)
    // While the NIC works: the keystreams of our next request and of this one's answer (a response: k = 1).
    h.ep.prepareNext(stationIv(epoch, seq + 1n), nicAnswerIv(epoch, Number(seq & 0xffffffffn), 1));
  }

  private claiming: Promise<void> | null = null;

  private async claim(h: Held, minNext: bigint): Promise<void> {
    if (this.claiming) return this.claiming;
    this.claiming = (async () => {
      const block = this.o.reserveBlock ?? 1024n;
      const max = maxSequence(h.stored.pair.esn);
      if (minNext > max) throw this.exhausted(h);
      const start = await this.o.store.claimOutbound(this.nic.id, h.stored.pair.generation, minNext, block, this.o.env.now(), this.o.fence);
      if (start > max) throw this.exhausted(h);
      h.ep.skipOutboundTo(start);
      this.reservedOut = start + block - 1n;
    })().finally(() => (this.claiming = null));
    return this.claiming;
  }

  /** RFC 4303 §3.3.3: a counter never cycles; the SA must be replaced. */
  private exhausted(h: Held): LifelineError {
    return new LifelineError(
      'E_SEQ_EXHAUSTED',
      `${this.nic.id}: SA generation ${h.stored.pair.generation} has used every sequence number (RFC 4303 §3.3.3: it never wraps); refresh it: mgmt-station refresh ${this.nic.id}`,
    );
  }

  private async persistInbound(generation: number): Promise<void> {
    const h = this.held.find((x) => x.stored.pair.generation === generation);
    if (h) await this.o.store.recordInbound(this.nic.id, generation, h.ep.highestInSeq, this.o.env.now(), this.o.fence);
  }

  private ahOut(): AhEndpoints {
    return { srcAddr: this.o.port.address, srcPort: this.o.port.port, dstAddr: this.nic.address, dstPort: this.nic.securePort };
  }

  private ahIn(from: Endpoint): AhEndpoints {
    return { srcAddr: from.address, srcPort: from.port, dstAddr: this.o.port.address, dstPort: this.o.port.port };
  }

  // ------------------------------------------------------------------ sync (wire/sync-frame.ts)

  /** Sync before the first request of this session (once; concurrent callers share it), or when the NIC asks. */
  private async ensureSynced(deadline: number, what: string): Promise<void> {
    // Nothing goes out while a sync runs: the sync asks about the commands in flight when it starts, and a command
    // first sent under the old epoch after that would be one it never asked about.
    while (this.syncing) await this.syncing.catch(() => undefined);
    if (this.epoch !== null && !this.invited) return;
    this.invited = false;
    await this.sync(deadline, this.epoch === null ? `first ${what}` : 'the NIC asked');
  }

  /**
   * Commands of the log that the first sync found not executed, being sent again (completeLater): a read or a new
   * command waits for them, as the session's first business (an earlier owner's commands come first).
   */
  private completing: Promise<void> | null = null;

  /** Run a sync (or join the one running). */
  private sync(deadline: number, why: string): Promise<void> {
    if (!this.syncing) {
      this.syncing = this.runSync(deadline, why)
        .then((todo) => {
          if (todo.length > 0) {
            const all = Promise.all(todo.map((t) => this.completeLater(t.c, t.id))).then(() => undefined);
            this.completing = all;
            void all.finally(() => {
              if (this.completing === all) this.completing = null;
            });
          }
        })
        .finally(() => (this.syncing = null));
    }
    return this.syncing;
  }

  /**
   * Sync if this session has not yet, and wait for what that sync took over from the log (see `completing`). A sync
   * the NIC does not answer is the request's timeout, reported as any request's is.
   */
  private async caughtUp(deadline: number, what: string): Promise<void> {
    await this.synced(deadline, what);
    if (this.completing) await this.completing;
  }

  /** ensureSynced, with a timeout reported as the request's own. */
  private async synced(deadline: number, what: string): Promise<void> {
    const t0 = this.o.env.mono();
    try {
      await this.ensureSynced(deadline, what);
    } catch (e) {
      if ((e as LifelineError).code !== 'E_TIMEOUT') throw e;
      const n = this.syncAttempts;
      throw new LifelineError('E_TIMEOUT', `no answer from ${this.nic.id} (${this.nic.address}:${this.nic.securePort}) to ${what} after ${n} attempts in ${Math.round(deadline - t0)} ms; is the emulator running and the NIC's link up?`);
    }
  }

  /** Frames the last sync sent (HELLO and SET transmissions), for the timeout message. */
  private syncAttempts = 0;

  private async runSync(deadline: number, why: string): Promise<{ c: CommandRecord; id: CommandQuery }[]> {
    const h = this.active;
    if (!h) throw new LifelineError('E_NO_SA', `no active SA for ${this.nic.id}`);
    const sa = h.stored.pair;
    const env = this.o.env;
    const until = Math.min(deadline, env.mono() + SYNC_TIMEOUT_MS * 4);
    // What to ask about: this process's commands in flight, and (the first time) the log's unsettled ones, each by
    // the epoch the store says it was last sent under (another process may have sent it again since).
    const listed = await this.verifiedCommands();
    const byIndex = new Map(listed.map((c) => [c.index, c]));
    const asks: { index: number; hash: string; id: CommandQuery; own: InFlight | null }[] = [];
    for (const f of this.inFlight.values()) {
      let c = byIndex.get(f.index);
      if (!f.orphaned && c?.hash !== f.hash) {
        // The store went back to before this command was logged: still asked about (by its own identity), so its
        // caller hears what the NIC knows, but nothing of it is recorded any more.
        this.o.log?.('warn', "the store no longer holds a command in flight (restored from a backup?)", { nic: this.nic.id, index: f.index });
        f.orphaned = true;
      }
      if (f.orphaned) c = undefined;
      if (c && c.outcome !== 'sent') {
        // Settled meanwhile by another process (it took the command over): that is its outcome.
        f.waiter?.settle({ synced: c.outcome === 'acked' ? 'executed' : 'unknown' });
        continue;
      }
      if (c?.syncEpoch) f.epoch = c.syncEpoch;
      asks.push({ index: f.index, hash: f.hash, id: { epoch: f.epoch, firstEpoch: f.firstEpoch, rmcpSeq: f.rmcpSeq, tag: f.tag, type: ASF_TYPE_CODE[f.kind] }, own: f });
    }
    for (const b of this.backlog) {
      const c = byIndex.get(b.index);
      if (!c || c.outcome !== 'sent' || this.inFlight.has(b.hash)) continue;
      const kind = c.command as CommandKind;
      if (!COMMAND_KINDS.includes(kind) || !c.syncEpoch || !c.firstSyncEpoch) {
        // Logged before sync epochs existed, or not a command the NIC records: its fate cannot be asked.
        await this.o.store.updateOutcome(this.nic.id, refOf(c), 'unknown', env.now(), this.o.fence);
        continue;
      }
      asks.push({ index: c.index, hash: c.hash, id: { epoch: c.syncEpoch, firstEpoch: c.firstSyncEpoch, rmcpSeq: c.rmcpSeq, tag: c.asfTag, type: ASF_TYPE_CODE[kind] }, own: null });
      if (asks.length >= SYNC_MAX_QUERIES) break;
    }
    const r = await this.handshake(sa, asks.map((a) => a.id), until, why);
    if (asks.length > 0) this.o.log?.('info', 'sync answered', { nic: this.nic.id, epoch: r.epoch, nicRestored: r.nicRestored, asked: asks.map((a, i) => `#${a.index}@${a.id.epoch}:${r.answers[i]}`) });
    this.backlog = this.backlog.filter((b) => !asks.some((a) => a.index === b.index));
    // The NIC now takes each command asked about, if it comes under the new epoch, as that command (it maps the
    // wire identity to the command's first epoch): no other command may go out under these identities in this
    // epoch, also one a store gone back gives the same index (see `used`).
    for (const a of asks) this.markUsed(a.index, r.epoch);
    // Settle: in-flight commands hear their answer; backlog commands are recorded, or returned to be sent again.
    const todo: { c: CommandRecord; id: CommandQuery }[] = [];
    for (let i = 0; i < asks.length; i++) {
      const a = asks[i];
      const answer = r.nicRestored ? 'unknown' : r.answers[i];
      if (a.own) {
        a.own.waiter?.settle({ synced: answer });
        continue;
      }
      if (answer === 'executed') await this.o.store.updateOutcome(this.nic.id, refOf(a), 'acked', env.now(), this.o.fence);
      else if (answer === 'unknown') await this.o.store.updateOutcome(this.nic.id, refOf(a), 'unknown', env.now(), this.o.fence);
      else todo.push({ c: byIndex.get(a.index)!, id: a.id });
    }
    return todo;
  }

  /**
   * The NIC's commands with their outcomes, from a log that verifies (hash chain, row MACs, sealed head): a sync
   * decides on them (which to ask about, which to send again), and a row edited outside a station (a deleted
   * re-send or outcome row) could make it send a command a second time. E_STORE otherwise; nothing is sent.
   */
  private async verifiedCommands(): Promise<CommandRecord[]> {
    const audit = mutated('no-log-audit') ? { ok: true, problem: null } : await this.o.store.auditCommandLog(this.nic.id);
    if (!audit.ok) {
      throw new LifelineError('E_STORE', `the command log of ${this.nic.id} does not verify (${audit.problem}); nothing was sent. Run 'mgmt-station audit ${this.nic.id}' and restore the store from a backup`);
    }
    return this.o.store.listCommands(this.nic.id);
  }

  /** A command of the log the NIC reports not executed: sent again in this session's epoch, as its owner would. */
  private async completeLater(c: CommandRecord, id: CommandQuery): Promise<void> {
    const f: InFlight = { index: c.index, hash: c.hash, kind: c.command as CommandKind, rmcpSeq: c.rmcpSeq, tag: c.asfTag, firstEpoch: id.firstEpoch, epoch: id.epoch, waiter: null };
    try {
      await this.enterCommand();
      try {
        if (!(await this.recordResend(f))) return; // another process of this station took it
        const r = await this.runCommand(f, this.o.env.mono() + SYNC_TIMEOUT_MS);
        await this.persistInbound(r.generation);
        await this.recordAcked(f);
      } finally {
        this.leaveCommand();
      }
    } catch (e) {
      if ((e as LifelineError).code !== 'E_OUTCOME_UNKNOWN' || !this.closed) {
        await this.o.store.updateOutcome(this.nic.id, refOf(c), 'unknown', this.o.env.now(), this.o.fence).catch(() => undefined);
      }
      this.o.log?.('warn', 'a command taken over from the log was not acknowledged', { nic: this.nic.id, index: c.index, error: (e as Error).message });
    }
  }

  /** HELLO -> CHALLENGE -> SET -> DONE, each retransmitted (same bytes) until answered or `until`. */
  private async handshake(sa: StoredSa['pair'], queries: CommandQuery[], until: number, why: string): Promise<SyncResult> {
    const env = this.o.env;
    const store = this.o.store;
    const ns = env.random(SYNC_NONCE_LENGTH);
    let challenge: Extract<SyncFrame, { kind: 'challenge' }> | null = null;
    let done: Extract<SyncFrame, { kind: 'done' }> | null = null;
    let wake: (() => void) | null = null;
    this.syncWait = {
      ns, nn: null,
      onFrame: (f) => {
        if (f.kind === 'challenge' && !challenge && (equalBytes(f.ns, ns) || f.unsolicited)) challenge = f;
        else if (f.kind === 'done' && challenge && equalBytes(f.nn, challenge.nn)) done = f;
        else return;
        wake?.();
      },
    };
    const waitFor = async (bytes: Uint8Array, got: () => boolean, what: string) => {
      let interval = this.o.retransmitMs ?? 250;
      while (!got()) {
        if (this.closed) throw new LifelineError('E_FENCED', `the session to ${this.nic.id} was closed during a sync`);
        const left = until - env.mono();
        if (left <= 0) throw new LifelineError('E_TIMEOUT', `no answer from ${this.nic.id} (${this.nic.address}:${this.nic.securePort}) to the sync ${what} (${why}); is the emulator running and the NIC's link up?`);
        this.o.port.send(bytes, this.nic.securePort, this.nic.address);
        this.syncAttempts++;
        await new Promise<void>((r) => {
          const t = env.after(Math.min(interval, left), () => r());
          wake = () => {
            t.cancel();
            r();
          };
        });
        wake = null;
        interval = Math.min(interval * 2, 1000);
      }
    };
    this.syncAttempts = 0;
    try {
      this.counters.syncs++;
      const storeMax = await store.getSyncEpoch(this.nic.id);
      if (this.pendingChallenge && (this.pendingChallenge.unsolicited)) challenge = this.pendingChallenge;
      this.pendingChallenge = null;
      await waitFor(encodeSync(sa, { kind: 'hello', ns, nn: new Uint8Array(SYNC_NONCE_LENGTH) }), () => challenge !== null, 'HELLO');
      const ch = challenge!;
      const h = this.active!;
      // Our first number in the new epoch: above what the NIC has seen (its restart floor too) and claimed for us.
      const need = ch.inHigh + 1n;
      if (h.ep.nextOutSeq < need) h.ep.skipOutboundTo(need);
      if (h.ep.nextOutSeq > this.reservedOut) await this.claim(h, h.ep.nextOutSeq);
      const p = h.ep.nextOutSeq;
      const cp = await store.getCheckpoint(this.nic.id, sa.generation);
      const seen = h.ep.highestInSeq > (cp?.inHighest ?? 0n) ? h.ep.highestInSeq : (cp?.inHighest ?? 0n);
      const set = encodeSync(sa, {
        kind: 'set', ns, nn: ch.nn, minEpoch: Math.min(storeMax + 1, SYNC_EPOCH_MAX), exclusive: this.o.takeover === true && this.epoch === null,
        p, s: seen, queries,
      });
      await waitFor(set, () => done !== null, 'SET');
      const d = done!;
      // Recorded before it is used: a NIC whose EEPROM is later restored is then told to issue above it.
      await store.recordSyncEpoch(this.nic.id, d.epoch, env.now(), this.o.fence);
      this.epoch = d.epoch;
      h.unanswered = 0;
      const nicRestored = ch.epoch < storeMax;
      if (nicRestored) {
        this.o.log?.('warn', "the NIC's sync counter is behind the store's record: its EEPROM was restored from a backup; its answers about earlier commands are taken as unknown", { nic: this.nic.id, nicCounter: ch.epoch, stored: storeMax });
      }
      return { epoch: d.epoch, answers: d.answers, nicRestored };
    } finally {
      this.syncWait = null;
    }
  }

  /** An unsolicited challenge that arrived while no sync ran (the NIC booted): the next sync starts from it. */
  private pendingChallenge: Extract<SyncFrame, { kind: 'challenge' }> | null = null;

  private onSyncFrame(h: Held, bytes: Uint8Array): void {
    let f: SyncFrame;
    try {
      f = decodeSync(bytes, h.stored.pair, false);
    } catch (e) {
      this.count(e);
      return;
    }
    if (this.syncWait) {
      this.syncWait.onFrame(f);
      return;
    }
    if (f.kind === 'challenge' && f.unsolicited && f.unsynced) {
      // The NIC booted and found our packet: sync before the next transmission, now rather than at the next retry.
      this.pendingChallenge = f;
      this.invited = true;
      for (const w of this.waiters) w.kick?.();
    }
  }

  // ------------------------------------------------------------------ arriving datagrams

  private onDatagram(h: Held, bytes: Uint8Array, from: Endpoint): void {
    if (isSyncFrame(bytes)) {
      this.onSyncFrame(h, bytes);
      return;
    }
    let payload: Uint8Array;
    try {
      // An answer names the epoch of the request it answers (wire/sync-iv.ts): one of another epoch (an earlier
      // process's, replayed) is dropped before any cryptography.
      const esp = espPacketOf(bytes, h.stored.pair.policy === 'esp+ah');
      const iv = esp ? nicIvParts(esp) : null;
      if (!iv) throw new ProtocolError('E_SHORT', `datagram of ${bytes.length} bytes from ${this.nic.id}; dropped`);
      const counterIv = mutated('nic-counter-iv'); // (mutation check: answers carry the NIC's own counter as IV)
      if (!counterIv && (this.epoch === null || iv.epoch30 !== (this.epoch & SYNC_EPOCH_MAX))) {
        throw new ProtocolError('E_EPOCH', `answer of sync epoch ${iv.epoch30}, this session's is ${this.epoch}; dropped`);
      }
      const key = `${iv.epoch30}:${iv.low}`;
      const alert = isAlertK(iv.k);
      const alertKey = `${key}:${iv.k}`;
      if (alert) {
        // A retransmitted alert: the same datagram as one taken (the replay window would refuse it) gets the same
        // acknowledgement again, if it is stored by now.
        const taken = this.alertAcks?.get(alertKey);
        if (taken && equalBytes(taken.alert, bytes)) {
          this.counters.alerts.duplicates++;
          if (taken.ack) this.o.port.send(taken.ack, this.nic.securePort, this.nic.address);
          else if (!taken.busy) this.storeAndAck(taken);
          return;
        }
      }
      payload = h.ep.open(bytes, this.ahIn(from)).payload;
      this.o.onAccepted?.(bytes);
      // The NIC takes our packets on this SA: no sync needed.
      h.unanswered = 0;
      if (h === this.active && this.held.length > 1) this.letGoOfPrevious();
      const udp = decodeInnerUdp(payload);
      if (udp.dstPort === SNMP_TRAP_PORT && alert) {
        this.onAlert(alertKey, bytes, udp.body);
        return;
      }
      const pkt = decodeRmcpAsf(udp.body);
      this.counters.accepted++;
      const a: Answer = { msg: pkt.asf, rmcpSeq: pkt.rmcp.sequence, ack: pkt.rmcp.ack, generation: h.stored.pair.generation };
      for (const w of this.waiters) {
        // Only an answer to one of this waiter's own transmissions (its IV names it) can settle it.
        if ((counterIv || (!alert && w.sent.has(key))) && w.match(a)) {
          this.waiters.delete(w);
          w.settle(a);
          return;
        }
      }
      // Otherwise a late duplicate (its request was answered already): nothing to do.
    } catch (e) {
      this.count(e);
    }
  }

  /**
   * An alert from the NIC, authentic and new (docs/ALERTS.md): stored (once: its id is the key), then acknowledged
   * with a PET Acknowledge under the SA — acknowledged only once durable, so a station that crashes before never
   * leaves the NIC believing it was heard.
   */
  private onAlert(key: string, bytes: Uint8Array, body: Uint8Array): void {
    let pet: Pet;
    let specific: number;
    let petBytes: Uint8Array;
    try {
      const trap = decodeTrap(body);
      pet = decodePet(trap.pet);
      specific = trap.specific;
      petBytes = trap.pet;
    } catch (e) {
      this.count(e);
      return;
    }
    const id = pet.oemFields.find((f) => f.length === 9 && f[0] === 0x08);
    if (!id) {
      this.bump('alert_id');
      return;
    }
    const event = alertEventOf(specific) ?? `sensor-${((specific >> 16) & 0xff).toString(16).padStart(2, '0')}-${(specific & 0xff).toString(16).padStart(2, '0')}`;
    const taken: TakenAlert = {
      alert: bytes, pet, ack: null, busy: false,
      input: {
        alertId: Buffer.from(id.subarray(1)).toString('hex'), receivedAt: this.o.env.now(), event, severity: pet.severity, specific,
        petSequence: pet.sequence, petTime: petTimeMs(pet.timestamp), pet: Buffer.from(petBytes).toString('hex'), via: 'secure',
      },
    };
    const acks = (this.alertAcks ??= new Map());
    acks.set(key, taken);
    if (acks.size > ALERT_ACKS_KEPT) acks.delete(acks.keys().next().value!);
    this.storeAndAck(taken);
  }

  private storeAndAck(taken: TakenAlert): void {
    taken.busy = true;
    void (async () => {
      const stored = await this.o.store.addAlert(this.nic.id, this.o.fence.station, taken.input);
      if (stored) {
        this.counters.alerts.stored++;
        this.o.onAlert?.(stored);
      } else this.counters.alerts.duplicates++;
      const h = this.active;
      if (!h || this.epoch === null || this.closed) return;
      while (h.ep.nextOutSeq > this.reservedOut) await this.claim(h, h.ep.nextOutSeq);
      if (this.active !== h || this.epoch === null || this.closed) return;
      this.ackSeq = (this.ackSeq + 1) & 0x3f;
      const inner = encodeInnerUdp(this.o.port.port, RMCP_PORT, encodePetAck(petAckFor(taken.pet, this.ackSeq)));
      const ack = h.ep.seal(inner, this.ahOut(), stationIv(this.epoch, h.ep.nextOutSeq));
      taken.ack = ack;
      this.counters.alerts.acksSent++;
      this.o.port.send(ack, this.nic.securePort, this.nic.address);
    })().catch((e) => {
      // Not stored (the store is down) or not acknowledged: the NIC sends it again, and that copy tries again.
      this.o.log?.('warn', 'alert not stored or not acknowledged; the NIC will send it again', { nic: this.nic.id, error: (e as Error).message });
    }).finally(() => {
      taken.busy = false;
    });
  }

  private count(e: unknown): void {
    const code = e instanceof ProtocolError || e instanceof LifelineError ? e.code : 'E_INTERNAL';
    this.bump(code.replace(/^E_/, '').toLowerCase());
  }

  private bump(k: string): void {
    this.counters.dropped[k] = (this.counters.dropped[k] ?? 0) + 1;
  }
}

/** A command by its log index and the hash of its entry (store.ts CommandRef). */
function refOf(c: { index: number; hash: string }): CommandRef {
  return { index: c.index, hash: c.hash };
}
