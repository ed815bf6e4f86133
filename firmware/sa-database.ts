/**
 * The NIC's SA database on top of its EEPROM image: which SAs accept station packets, the
 * make-before-break rule of the two-phase refresh (DESIGN §2.5), and sequence numbers that survive a
 * restart by reservation in blocks (DESIGN §2.6).
 *
 * Make-before-break (RFC 7296 §2.8): the SA under which a station packet most recently authenticated is
 * never discarded until a station packet authenticates under a newer one. "Most recently" is by
 * generation (the newest SA the station has been seen to use), which is also what a cluster peer that
 * adopts the SA from the shared store would use. Consequences:
 *  - inbound lookups see the active SA and the previous one (pending is not usable until committed);
 *  - a commit keeps as previous the SA that last authenticated (if that is not the new active), else the
 *    outgoing active SA; any third SA goes;
 *  - the first station packet under the active SA retires the previous one at once.
 *
 * Sequence reservations ("reserve the next K"): a checkpoint records, per held SA, the outbound and the
 * inbound sequence numbers reserved so far. It is written *before* a number above the reservation is
 * sent or acted on, so after any restart the NIC resumes outbound at reservedOut + 1 and treats every
 * inbound seq <= reservedIn as a replay. Reservations end on multiples of K; whenever a checkpoint is
 * written every counter within K/2 of its mark is extended too, so request/answer traffic costs one page
 * per K requests, not two. The same write records the newest SA that authenticated, so the first packet
 * under a new SA always costs one checkpoint page: that record is what lets the previous SA go across a
 * restart, and (with inbound reservations starting at 0) what makes its sequence numbers replay-safe.
 *
 * A station that suspects a NIC restart (no answers) continues at `resumeAfterPeerRestart(lastSent, K)`,
 * which is above any inbound reservation the NIC can hold for it.
 *
 * A checkpoint page that cannot be read at boot is either a write torn by a power loss (the NIC never acted
 * on it) or a checkpoint that went bad after it was used; the image cannot tell (EepromImage.load), so the
 * NIC assumes the worse and moves every reservation on by LOST_CHECKPOINT_BLOCKS blocks. That covers what
 * the lost checkpoint reserved unless the station packet that wrote it had jumped its counter past a NIC
 * restart in the same checkpoint interval: packets between the jump and the lost mark could then be replayed.
 */
import { ProtocolError, UsageError } from '../common/errors.js';
import type { EepromImage, SeqCheckpoint } from './eeprom-image.js';
import { carriesInbound, type SaPair } from '../wire/sa.js';

export const DEFAULT_CHECKPOINT_BLOCK = 16384;

export interface SaDatabaseOptions {
  /** K: sequence numbers reserved per checkpoint (default 16384). */
  checkpointBlock?: number;
}

const MAX_SEQ_ESN = (1n << 64n) - 1n;
const MAX_SEQ_32 = (1n << 32n) - 1n; // RFC 4303 §3.3.3: never cycles

/** The reservation mark for a counter whose last used value is `used`: the multiple of K at least K/2 above it. */
export function reserveUpTo(used: bigint, block: number | bigint, maxSeq: bigint = MAX_SEQ_ESN): bigint {
  const k = BigInt(block);
  if (k < 1n) throw new RangeError('expected block >= 1, got ' + block);
  const mark = ((used + k / 2n + k) / k) * k; // ceil((used + K/2 + 1) / K) * K
  return mark < maxSeq ? mark : maxSeq;
}

/**
 * Blocks a NIC adds to every reservation when it boots with its newest checkpoint page unreadable
 * (EepromImage.newestCheckpointMayBeLost): a checkpoint moves a counter that is at most one past its mark to at
 * most 2K above that mark (reserveUpTo), so two blocks cover whatever the lost checkpoint had reserved and
 * the NIC then used. (Not when the packet that wrote it had jumped its counter further, see the class comment.)
 */
export const LOST_CHECKPOINT_BLOCKS = 2n;

/**
 * First sequence number a sender may use after its peer NIC (reserving in blocks of K) restarted: above any
 * inbound reservation the NIC can hold for a sender whose last number was `lastSent`, also after a boot that
 * lost its newest checkpoint page.
 */
export function resumeAfterPeerRestart(lastSent: bigint, block: number | bigint): bigint {
  return reserveUpTo(lastSent, block) + LOST_CHECKPOINT_BLOCKS * BigInt(block) + 1n;
}

/** One held SA and its counters. */
interface LiveSa {
  sa: SaPair;
  maxSeq: bigint;
  /** Last outbound sequence number handed out. */
  outLast: bigint;
  outReserved: bigint;
  /** Highest inbound sequence number that authenticated since boot (0 = none). */
  inHigh: bigint;
  inReserved: bigint;
  /** Inbound numbers <= this are replays: the reservation this SA was loaded with. */
  inFloor: bigint;
}

function live(sa: SaPair, outLast: bigint, outReserved: bigint, inReserved: bigint): LiveSa {
  // inHigh counts only packets seen since boot: extending the inbound reservation from the loaded mark
  // would push it past what resumeAfterPeerRestart() promises a station that sent nothing since.
  return { sa, maxSeq: sa.esn ? MAX_SEQ_ESN : MAX_SEQ_32, outLast, outReserved, inHigh: 0n, inReserved, inFloor: inReserved };
}

export class SaDatabase {
  readonly image: EepromImage;
  readonly checkpointBlock: number;
  private activeSa: LiveSa | null = null;
  private previousSa: LiveSa | null = null;
  /** Newest generation under which a station packet authenticated (0 = none yet). */
  private lastAuth: number;

  constructor(image: EepromImage, options: SaDatabaseOptions = {}) {
    const k = options.checkpointBlock ?? DEFAULT_CHECKPOINT_BLOCK;
    if (!Number.isSafeInteger(k) || k < 1 || k > 2 ** 32) throw new UsageError('E_USAGE', `checkpointBlock must be an integer 1..2^32, got ${k}`);
    this.image = image;
    this.checkpointBlock = k;
    this.lastAuth = image.lastAuthenticated;
    const { active, previous } = image.sas;
    const [ca, cp] = image.checkpoints();
    // After a restart nothing at or below a reservation is reused: outbound resumes at reserved + 1. When the
    // newest checkpoint page was unreadable, the one before it may be behind what was reserved and used
    // (same GCM nonce twice, a captured command accepted again): every reservation moves on two blocks.
    const margin = image.newestCheckpointMayBeLost ? LOST_CHECKPOINT_BLOCKS * BigInt(k) : 0n;
    const resume = (sa: SaPair, c: SeqCheckpoint): LiveSa => {
      const max = sa.esn ? MAX_SEQ_ESN : MAX_SEQ_32;
      const out = c.outReserved + margin < max ? c.outReserved + margin : max;
      return live(sa, out, out, c.inReserved + margin < max ? c.inReserved + margin : max);
    };
    if (active) this.activeSa = resume(active, ca);
    if (active && previous && this.lastAuth < active.generation) this.previousSa = resume(previous, cp);
  }

  get active(): SaPair | null {
    return this.activeSa?.sa ?? null;
  }

  /** The SA kept next to the active one because the station last used it (make-before-break). */
  get previous(): SaPair | null {
    return this.previousSa?.sa ?? null;
  }

  /** Written by the host agent, not usable until committed. */
  get pending(): SaPair | null {
    return this.image.sas.pending;
  }

  get lastAuthenticated(): number {
    return this.lastAuth;
  }

  /** The generation to give the next pending SA. */
  nextGeneration(): number {
    return this.image.nextGeneration();
  }

  /** The held SA (active or previous) whose station->NIC SPI is `spi` (the AH SPI also matches under esp+ah). */
  lookupInbound(spi: number): SaPair | null {
    // The two held SAs, checked in place (no array: this runs for every secure packet).
    if (this.activeSa && carriesInbound(this.activeSa.sa, spi)) return this.activeSa.sa;
    if (this.previousSa && carriesInbound(this.previousSa.sa, spi)) return this.previousSa.sa;
    return null;
  }

  /** The held SA of this generation: answers go out under the SA their request came in on (DESIGN §2.2). */
  byGeneration(generation: number): SaPair | null {
    return this.find(generation)?.sa ?? null;
  }

  /** Inbound sequence numbers <= this are replays (the reservation held when the SA was loaded). */
  inboundFloor(generation: number): bigint {
    return this.need(generation).inFloor;
  }

  /** The number nextOutbound() would hand out next (for building a sender). */
  outboundStart(generation: number): bigint {
    return this.need(generation).outLast + 1n;
  }

  // ------------------------------------------------------------ refresh (DESIGN §2.5)

  /** Host agent: store a new SA as pending (2 page writes, 3 under esp+ah). Its generation must be nextGeneration() or above. */
  writePending(sa: SaPair): void {
    const k = BigInt(this.checkpointBlock);
    const max = sa.esn ? MAX_SEQ_ESN : MAX_SEQ_32;
    // The first K outbound numbers are reserved in the record itself; inbound starts unreserved, so the
    // first station packet is checkpointed before it is acted on.
    this.image.writePending(sa, { outReserved: k < max ? k : max, inReserved: 0n });
  }

  /**
   * Host agent on SA_ACK: pending becomes active (1 page write). With `generation`, idempotent as SA_CONFIRM
   * must be: committing the SA that is already active does nothing and returns false.
   */
  commitPending(generation?: number): boolean {
    const pending = this.image.sas.pending;
    if (generation !== undefined) {
      if (this.activeSa?.sa.generation === generation && pending?.generation !== generation) return false;
      if (pending?.generation !== generation) throw new UsageError('E_NO_SA', `there is no pending SA of generation ${generation} to commit`);
    }
    if (!pending) throw new UsageError('E_NO_SA', 'there is no pending SA to commit');
    const keep = this.find(this.lastAuth) ?? this.activeSa;
    this.image.commitPending(keep?.sa.generation ?? 0);
    const init = this.image.checkpoints()[0];
    this.previousSa = keep;
    this.activeSa = live(pending, 0n, init.outReserved, init.inReserved);
    return true;
  }

  /** Host agent when SA_ACK never came: forget the pending SA (1 page write). Returns false if there was none. */
  discardPending(generation?: number): boolean {
    const pending = this.image.sas.pending;
    if (!pending || (generation !== undefined && pending.generation !== generation)) return false;
    this.image.discardPending(this.previousSa?.sa.generation ?? 0);
    return true;
  }

  // ------------------------------------------------------------ traffic (DESIGN §2.6)

  /**
   * A station packet with sequence number `seq` authenticated under `generation` (call after the ICV
   * verified, before acting on it or marking the replay window). Writes a checkpoint first if `seq` is
   * above the inbound reservation or this is the newest SA seen in use. Throws E_REPLAY for a number at
   * or below the restart floor.
   */
  onAuthenticated(generation: number, seq: bigint): { checkpointed: boolean } {
    const l = this.need(generation);
    if (typeof seq !== 'bigint' || seq < 1n || seq > l.maxSeq) throw new UsageError('E_USAGE', `seq must be a bigint 1..${l.maxSeq}, got ${String(seq)}`);
    if (seq <= l.inFloor) throw new ProtocolError('E_REPLAY', `seq ${seq} of SA generation ${generation} is at or below the restart reservation ${l.inFloor}: a replay`);
    const lastAuth = Math.max(this.lastAuth, generation);
    // A packet under the active SA retires the previous one (it is newer than anything kept for the station).
    const retire = l === this.activeSa && this.previousSa !== null;
    let checkpointed = false;
    if (seq > l.inReserved || lastAuth > this.image.lastAuthenticated) {
      this.checkpoint(lastAuth, retire ? [l] : this.held(), { l, inUsed: seq });
      checkpointed = true;
    }
    if (seq > l.inHigh) l.inHigh = seq;
    this.lastAuth = lastAuth;
    if (retire) this.previousSa = null;
    return { checkpointed };
  }

  /** The next outbound sequence number under `generation`, checkpointed first if it passes the reservation. */
  nextOutbound(generation: number): { seq: bigint; checkpointed: boolean } {
    const l = this.need(generation);
    const seq = l.outLast + 1n;
    if (seq > l.maxSeq) {
      throw new UsageError('E_SEQ_EXHAUSTED', `SA generation ${generation} has used every sequence number; it must be refreshed before sending (RFC 4303 §3.3.3)`);
    }
    let checkpointed = false;
    if (seq > l.outReserved) {
      this.checkpoint(this.lastAuth, this.held(), { l, outUsed: seq });
      checkpointed = true;
    }
    l.outLast = seq;
    return { seq, checkpointed };
  }

  // ------------------------------------------------------------ resynchronisation (wire/sync-frame.ts)

  /** The highest sync epoch this NIC has issued (0 = none): the checkpoint carries it. */
  get syncEpoch(): number {
    return this.image.syncEpoch;
  }

  /** Epochs below it were issued by another history of this NIC (eeprom-image.ts Checkpoint.epochFloor). */
  get epochFloor(): number {
    return this.image.epochFloor;
  }

  /** Epochs below it had all ended when the last checkpoint was written (eeprom-image.ts Checkpoint.liveSpan). */
  get liveFloor(): number {
    return this.image.liveFloor;
  }

  /**
   * Record a newly issued sync epoch (one checkpoint page), before the NIC announces it. `jumped`: the station asked
   * for more than one above the highest this NIC had issued, so its EEPROM went back (a restored backup): every
   * epoch below the new one becomes another history's (the floor rises to it). `liveFloor`: the lowest epoch that
   * may still be live once it is (the new one, or an earlier one a non-exclusive sync leaves live).
   */
  recordSyncEpoch(epoch: number, jumped = false, liveFloor = 0): void {
    if (!Number.isInteger(epoch) || epoch <= this.image.syncEpoch) throw new UsageError('E_USAGE', `sync epochs only grow: ${epoch} after ${this.image.syncEpoch}`);
    this.checkpoint(this.lastAuth, this.held(), null, { syncEpoch: epoch, epochFloor: jumped ? epoch : undefined, liveFloor });
  }

  /** The highest inbound number known under `generation`: above it the station's next packets must lie. */
  inboundHigh(generation: number): bigint {
    const l = this.need(generation);
    return l.inHigh > l.inFloor ? l.inHigh : l.inFloor;
  }

  /**
   * Move the outbound counter of `generation` on to at least `next` (the station reported it saw our numbers up to
   * next - 1): checkpointed first if that passes the reservation. Never moves back.
   */
  skipOutbound(generation: number, next: bigint): void {
    const l = this.need(generation);
    if (next - 1n <= l.outLast) return;
    const used = next - 1n > l.maxSeq ? l.maxSeq : next - 1n;
    if (used > l.outReserved) this.checkpoint(this.lastAuth, this.held(), { l, outUsed: used });
    l.outLast = used;
  }

  /** A JSON-friendly picture for status reports. */
  summary(): Record<string, unknown> {
    const held = (l: LiveSa | null) =>
      l && { generation: l.sa.generation, toNicSpi: l.sa.toNic.spi, fromNicSpi: l.sa.fromNic.spi, outNext: String(l.outLast + 1n), outReserved: String(l.outReserved), inHighest: String(l.inHigh), inReserved: String(l.inReserved) };
    const p = this.image.sas.pending;
    return {
      active: held(this.activeSa),
      previous: held(this.previousSa),
      pending: p && { generation: p.generation, toNicSpi: p.toNic.spi, fromNicSpi: p.fromNic.spi },
      lastAuthenticated: this.lastAuth,
      checkpointBlock: this.checkpointBlock,
    };
  }

  // ------------------------------------------------------------ internals

  private held(): LiveSa[] {
    return [this.activeSa, this.previousSa].filter((l): l is LiveSa => l !== null);
  }

  private find(generation: number): LiveSa | null {
    if (generation === 0) return null; // (no array: this runs for every secure packet)
    if (this.activeSa?.sa.generation === generation) return this.activeSa;
    return this.previousSa?.sa.generation === generation ? this.previousSa : null;
  }

  private need(generation: number): LiveSa {
    const l = this.find(generation);
    if (!l) throw new UsageError('E_NO_SA', `SA generation ${generation} is neither the active nor the previous SA of this NIC`);
    return l;
  }

  /**
   * Writes one checkpoint page for `keep`, counting `use` (the number about to be sent or acted on) as
   * used, then adopts the new reservations. Every counter within K/2 of its mark moves on one block, so
   * the other direction does not need a page of its own soon after.
   */
  private checkpoint(lastAuth: number, keep: LiveSa[], use: { l: LiveSa; outUsed?: bigint; inUsed?: bigint } | null, epochs?: { syncEpoch: number; epochFloor?: number; liveFloor?: number }): void {
    const k = this.checkpointBlock;
    const next = keep.map((l) => {
      const outUsed = use && l === use.l && use.outUsed !== undefined ? use.outUsed : l.outLast;
      const inUsed = use && l === use.l && use.inUsed !== undefined && use.inUsed > l.inHigh ? use.inUsed : l.inHigh;
      const extend = (reserved: bigint, used: bigint) => {
        if (used === 0n) return reserved; // nothing used yet: the first use checkpoints anyway
        const mark = reserveUpTo(used, k, l.maxSeq);
        return mark > reserved ? mark : reserved;
      };
      return { l, outReserved: extend(l.outReserved, outUsed), inReserved: extend(l.inReserved, inUsed) };
    });
    this.image.writeCheckpoint({
      lastAuthenticated: lastAuth,
      entries: next.map((n) => ({ generation: n.l.sa.generation, outReserved: n.outReserved, inReserved: n.inReserved })),
      syncEpoch: epochs?.syncEpoch,
      epochFloor: epochs?.epochFloor,
      liveFloor: epochs?.liveFloor,
    });
    for (const n of next) {
      n.l.outReserved = n.outReserved;
      n.l.inReserved = n.inReserved;
    }
  }
}
