/**
 * The NIC's side of the resynchronisation (wire/sync-frame.ts): it answers HELLO with a fresh challenge, and a SET
 * that answers one of its challenges with a new sync epoch, written to the EEPROM before DONE goes out. Only ESP
 * packets of live epochs are accepted (secure-channel.ts); after a boot there is none until a station syncs, so
 * nothing captured before the boot, and nothing from a station that has not synced since, is ever acted on.
 * Pure: randomness is injected, time is an argument.
 *
 * What a SET does, in this order:
 *  1. answers its queries from the executed-command record (exec-record.ts) as things stood before this sync; for
 *     every command it reports not executed it cancels the transmission the station last sent (if that epoch is
 *     still live: it must never run now), and remembers that the command, if it comes under the new epoch, is the
 *     same command (its first epoch): the station may send it again, and a copy of it can never run twice;
 *  2. issues epoch max(highest issued + 1, the station's minimum) and writes it (a checkpoint page); a minimum
 *     above highest + 1 means the station's store saw epochs this NIC has no record of (its EEPROM went back), so
 *     the epoch floor rises to the new epoch: every earlier one is another history's, and queries about commands
 *     last sent under one are answered 'unknown' (exec-record.ts). The page also says how far below the new epoch
 *     the lowest one still live is (a non-exclusive sync leaves the others live): an image restored from a backup
 *     of this page may lack commands run under those afterwards, so they are 'unknown' after such a boot too;
 *  3. makes it live: the SA's inbound window starts above P - 1 (the station's first number in the epoch); an
 *     exclusive SET (a takeover) ends every other epoch; the outbound counter moves past S (what the station has
 *     seen of ours), so the station's replay window takes our next answers even if our EEPROM went back;
 *  4. answers DONE, and keeps that DONE for a retransmitted SET (same challenge): a SET is acted on once.
 */
import { hex } from '../common/bytes.js';
import { ProtocolError } from '../common/errors.js';
import { decodeSync, encodeSync, SYNC_NONCE_LENGTH, ZERO_NONCE, type CommandIdentity, type SyncFrame } from '../wire/sync-frame.js';
import { SYNC_EPOCH_MAX } from '../wire/sync-iv.js';
import { mutated } from '../common/mutation.js';
import type { SaPair } from '../wire/sa.js';
import type { SaDatabase } from './sa-database.js';
import type { ExecRecord } from './exec-record.js';

/** Challenges kept at once (a few stations may sync at the same time; the oldest goes first). */
const MAX_CHALLENGES = 4;
/** A challenge not answered within this long is forgotten. */
const CHALLENGE_TTL_MS = 30_000;
/** Unsolicited challenges (an invitation to sync, sent to a station whose packet found the NIC unsynced): at most one per this long. */
const HINT_INTERVAL_MS = 100;

export interface SyncChannel {
  /** A new live epoch, SA `generation`'s window above `floor`; returns the epochs that ended (secure-channel.ts). */
  addEpoch(epoch: number, generation: number, floor: bigint, now: number, exclusive: boolean): number[];
  isLive(epoch: number): boolean;
  readonly liveEpochs: number[];
}

/**
 * Cancelled identities and first-epoch mappings kept at once: a station queries at most 32 per sync, and both matter
 * only while their epoch lives (at most 4 live epochs), so 256 never drops one that still matters.
 */
const MAX_CANCELLED = 256;

function idKey(q: CommandIdentity): string {
  return `${q.epoch}:${q.rmcpSeq}:${q.tag}:${q.type}`;
}

export interface NicSyncCounters {
  hellos: number;
  sets: number;
  /** SETs that repeated one already acted on: answered with the same DONE. */
  repeatedSets: number;
  /** Unsolicited challenges sent. */
  hints: number;
  epochsIssued: number;
  /** Queried identities reported not executed while their epoch was live: never run afterwards. */
  cancelled: number;
}

export class NicSync {
  /** The highest epoch issued when this NIC booted (exec-record.ts query()). */
  readonly bootEpoch: number;
  /** Epochs below it had ended when the checkpoint this NIC booted from was written (exec-record.ts query()). */
  readonly bootLiveFloor: number;
  readonly counters: NicSyncCounters = { hellos: 0, sets: 0, repeatedSets: 0, hints: 0, epochsIssued: 0, cancelled: 0 };
  private readonly cancelledIds = new Map<string, number>();
  /** `${epoch}:${rmcpSeq}:${tag}:${type}` of a command a station may send again under a new epoch -> its first epoch. */
  private readonly firstEpochs = new Map<string, number>();
  private readonly challenges = new Map<string, { generation: number; at: number }>();
  private done: { key: string; bytes: Uint8Array } | null = null;
  private lastHintAt = -Infinity;

  constructor(
    private readonly db: SaDatabase,
    private readonly exec: ExecRecord,
    private readonly channel: SyncChannel,
    private readonly random: (n: number) => Uint8Array,
  ) {
    this.bootEpoch = db.syncEpoch;
    this.bootLiveFloor = db.liveFloor;
  }

  /**
   * A sync frame from a station under `sa` (found by the frame's SPI). Returns the frames to send back. Throws
   * ProtocolError for a frame to drop (bad tag, no such challenge, no epoch left); an EEPROM write's error
   * (a torn write: power lost) propagates, and nothing is announced.
   */
  receive(sa: SaPair, bytes: Uint8Array, now: number): Uint8Array[] {
    const f = decodeSync(bytes, sa, true);
    if (f.kind === 'hello') {
      this.counters.hellos++;
      return [this.challenge(sa, f.ns, false, now)];
    }
    if (f.kind !== 'set') throw new ProtocolError('E_TYPE', `a NIC does not take sync ${f.kind}; dropped`);
    const key = hex(f.nn);
    if (this.done && this.done.key === key) {
      this.counters.repeatedSets++;
      return [this.done.bytes];
    }
    const c = this.challenges.get(key);
    if (!c || now - c.at > CHALLENGE_TTL_MS) {
      throw new ProtocolError('E_REPLAY', `sync SET answers challenge ${key}, which this NIC did not issue or has forgotten; dropped`);
    }
    if (c.generation !== sa.generation) throw new ProtocolError('E_SPI', `sync SET under SA generation ${sa.generation} answers a challenge sent under ${c.generation}; dropped`);
    const issued = this.db.syncEpoch;
    const epoch = mutated('epoch-reuse') ? Math.max(issued, f.minEpoch, 1) : Math.max(issued + 1, f.minEpoch);
    if (epoch > SYNC_EPOCH_MAX) throw new ProtocolError('E_EPOCH_EXHAUSTED', `sync epoch ${epoch} is past ${SYNC_EPOCH_MAX}; re-enroll the NIC with a fresh image`);
    this.challenges.delete(key);
    // 1. what this NIC knows of the station's unfinished commands; what did not run never will under its epoch
    const answers = f.queries.map((q) => this.exec.query(q, issued, this.bootEpoch, this.db.epochFloor, this.bootLiveFloor));
    // 2. durable before announced (a torn write throws here: no DONE, no cancellation, the epoch is not live).
    // A station that asks for more than one above what this NIC issued has seen epochs this NIC has no record of:
    // its EEPROM went back (a restored backup), and from now on it answers 'unknown' for every earlier epoch.
    // Live once it is: the new epoch, and (unless it is exclusive) those live now; an eviction only raises the floor.
    const liveFloor = f.exclusive ? epoch : Math.min(epoch, ...this.channel.liveEpochs);
    if (epoch > issued) this.db.recordSyncEpoch(epoch, f.minEpoch > issued + 1, liveFloor);
    this.counters.sets++;
    this.counters.epochsIssued++;
    f.queries.forEach((q, i) => {
      if (answers[i] !== 'not-executed') return;
      if (this.channel.isLive(q.epoch)) {
        this.cancelledIds.set(idKey(q), q.epoch);
        this.counters.cancelled++;
      }
      this.firstEpochs.set(idKey({ ...q, epoch }), q.firstEpoch);
    });
    // 3. live
    this.channel.addEpoch(epoch, sa.generation, f.p > 0n ? f.p - 1n : 0n, now, f.exclusive);
    this.pruneCancelled();
    this.db.skipOutbound(sa.generation, f.s + 1n);
    // 4. the answer, kept for a repeated SET
    const bytesOut = encodeSync(sa, { kind: 'done', ns: f.ns, nn: f.nn, epoch, outNext: this.db.outboundStart(sa.generation), answers });
    this.done = { key, bytes: bytesOut };
    return [bytesOut];
  }

  /**
   * An authentic ESP packet arrived while this NIC is not synced (just booted): invite the station to sync with an
   * unsolicited challenge, at most one per HINT_INTERVAL_MS. Null when it is too soon.
   */
  hint(sa: SaPair, now: number): Uint8Array | null {
    if (now - this.lastHintAt < HINT_INTERVAL_MS) return null;
    this.lastHintAt = now;
    this.counters.hints++;
    return this.challenge(sa, ZERO_NONCE, true, now);
  }

  /** Was this command identity cancelled by a sync (see the file comment)? */
  isCancelled(id: CommandIdentity): boolean {
    return this.cancelledIds.size > 0 && this.cancelledIds.has(idKey(id));
  }

  /** The epoch a command arriving under `id.epoch` was first sent under (its own, unless a sync said otherwise). */
  firstEpochOf(id: CommandIdentity): number {
    return this.firstEpochs.size > 0 ? (this.firstEpochs.get(idKey(id)) ?? id.epoch) : id.epoch;
  }

  /** Not synced since boot: no epoch is live. */
  get unsynced(): boolean {
    return this.channel.liveEpochs.length === 0;
  }

  /** Cancellations of epochs that ended are moot; the oldest go first beyond MAX_CANCELLED. */
  private pruneCancelled(): void {
    for (const [k, e] of this.cancelledIds) if (!this.channel.isLive(e)) this.cancelledIds.delete(k);
    while (this.cancelledIds.size > MAX_CANCELLED) this.cancelledIds.delete(this.cancelledIds.keys().next().value!);
    for (const k of this.firstEpochs.keys()) if (!this.channel.isLive(Number(k.slice(0, k.indexOf(':'))))) this.firstEpochs.delete(k);
    while (this.firstEpochs.size > MAX_CANCELLED) this.firstEpochs.delete(this.firstEpochs.keys().next().value!);
  }

  private challenge(sa: SaPair, ns: Uint8Array, unsolicited: boolean, now: number): Uint8Array {
    for (const [k, c] of this.challenges) if (now - c.at > CHALLENGE_TTL_MS) this.challenges.delete(k);
    let nn = this.random(SYNC_NONCE_LENGTH);
    while (this.challenges.has(hex(nn)) || (this.done && this.done.key === hex(nn))) nn = this.random(SYNC_NONCE_LENGTH);
    this.challenges.set(hex(nn), { generation: sa.generation, at: now });
    if (this.challenges.size > MAX_CHALLENGES) this.challenges.delete(this.challenges.keys().next().value!);
    const frame: SyncFrame = {
      kind: 'challenge', ns, nn, epoch: this.db.syncEpoch, unsolicited, unsynced: this.unsynced,
      inHigh: this.db.inboundHigh(sa.generation), outNext: this.db.outboundStart(sa.generation),
    };
    return encodeSync(sa, frame);
  }

  status(): Record<string, unknown> {
    return { live: this.channel.liveEpochs, issued: this.db.syncEpoch, bootEpoch: this.bootEpoch, challenges: this.challenges.size, ...this.counters };
  }
}
