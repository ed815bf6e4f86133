/**
 * Anti-replay window of an inbound SA (RFC 4303 §3.4.3, RFC 4302 §3.4.3), aware of 64-bit Extended
 * Sequence Numbers (RFC 4303 Appendix A).
 *
 * The bitmap is kept as in RFC 6479: a ring of 32-bit blocks, one block more than the window needs,
 * indexed by (seq / 32) mod blocks. Advancing the right edge only zeroes the blocks it passes into;
 * the window is never shifted bit by bit. Below 2^53 the arithmetic is done in JS numbers (no BigInt result,
 * so no allocation per packet); above, in BigInt.
 *
 * Usage (check, then authenticate, then mark — RFC 4303 §3.4.3):
 *   if (!w.check(seq)) drop as replay;   // cheap, before any cryptography
 *   verify the ICV;                       // drop on failure, window untouched
 *   w.mark(seq);
 */
import { UsageError } from '../common/errors.js';
import { MAX_SAFE_BIGINT } from '../common/bytes.js';

/** DESIGN §2.2 asks for at least 128; RFC 4303 §3.4.3 says 32 minimum, 64 default. */
export const DEFAULT_REPLAY_WINDOW = 1024;
export const MIN_REPLAY_WINDOW = 128;

const MAX_SEQ = (1n << 64n) - 1n;
const LOW32 = 0xffffffffn;

function assertSeq(seq: bigint): void {
  if (typeof seq !== 'bigint' || seq < 0n || seq > MAX_SEQ) {
    throw new UsageError('E_USAGE', `expected a sequence number 0..2^64-1 as a bigint, got ${String(seq)}`);
  }
}

export class ReplayWindow {
  /** Window width W in sequence numbers. */
  readonly size: number;
  /** Every number <= floor is refused (a restart checkpoint, DESIGN §2.6; 0 is never sent). */
  readonly floor: bigint;
  readonly #sizeBig: bigint;
  readonly #blocks: Uint32Array;
  readonly #blockCount: bigint;
  #highest: bigint;
  /** #highest as a number (exact while it is <= MAX_SAFE_BIGINT). */
  #highestN: number;

  constructor(size: number = DEFAULT_REPLAY_WINDOW, floor: bigint = 0n) {
    if (!Number.isSafeInteger(size) || size < MIN_REPLAY_WINDOW || size % 32 !== 0) {
      throw new UsageError('E_USAGE', `replay window must be a multiple of 32 and >= ${MIN_REPLAY_WINDOW}, got ${size}`);
    }
    assertSeq(floor);
    this.size = size;
    this.floor = floor;
    this.#sizeBig = BigInt(size);
    // One spare block (RFC 6479 §2): the newest block may be partly ahead of the right edge.
    this.#blocks = new Uint32Array(size / 32 + 1);
    this.#blockCount = BigInt(this.#blocks.length);
    this.#highest = floor;
    this.#highestN = Number(floor);
  }

  /** Highest sequence number marked so far (or the floor, before anything was marked). */
  get highest(): bigint {
    return this.#highest;
  }

  /** True if `seq` is neither a replay nor left of the window. Does not change the window. */
  check(seq: bigint): boolean {
    assertSeq(seq);
    if (seq <= this.floor) return false;
    if (seq > this.#highest) return true;
    if (this.#highest <= MAX_SAFE_BIGINT) {
      const s = Number(seq);
      if (this.#highestN - s >= this.size) return false; // too old
      return (this.#blocks[Math.floor(s / 32) % this.#blocks.length] & (1 << (s & 31))) === 0;
    }
    if (this.#highest - seq >= this.#sizeBig) return false; // too old
    const block = this.#blocks[Number((seq >> 5n) % this.#blockCount)];
    return (block & (1 << Number(seq & 31n))) === 0;
  }

  /** Records `seq` as received. Call only after its ICV verified (RFC 4303 §3.4.3). */
  mark(seq: bigint): void {
    assertSeq(seq);
    if (seq <= MAX_SAFE_BIGINT && this.#highest <= MAX_SAFE_BIGINT) {
      this.#markSafe(seq);
      return;
    }
    if (seq <= this.floor || this.#highest - seq >= this.#sizeBig) {
      throw new UsageError('E_USAGE', `cannot mark ${seq}: it is outside the window; call check() first`);
    }
    if (seq > this.#highest) {
      const from = this.#highest >> 5n;
      const to = seq >> 5n;
      if (to - from >= this.#blockCount) {
        this.#blocks.fill(0);
      } else {
        for (let b = from + 1n; b <= to; b++) this.#blocks[Number(b % this.#blockCount)] = 0;
      }
      this.#highest = seq;
      this.#highestN = Number(seq);
    }
    this.#blocks[Number((seq >> 5n) % this.#blockCount)] |= 1 << Number(seq & 31n);
  }

  /** mark() for seq and highest both <= MAX_SAFE_BIGINT: the same steps in numbers. */
  #markSafe(seq: bigint): void {
    const s = Number(seq);
    if (seq <= this.floor || this.#highestN - s >= this.size) {
      throw new UsageError('E_USAGE', `cannot mark ${seq}: it is outside the window; call check() first`);
    }
    const n = this.#blocks.length;
    if (s > this.#highestN) {
      const from = Math.floor(this.#highestN / 32);
      const to = Math.floor(s / 32);
      if (to - from >= n) {
        this.#blocks.fill(0);
      } else {
        for (let b = from + 1; b <= to; b++) this.#blocks[b % n] = 0;
      }
      this.#highest = seq;
      this.#highestN = s;
    }
    this.#blocks[Math.floor(s / 32) % n] |= 1 << (s & 31);
  }

  /** Why check(seq) refused `seq`, for error messages. */
  refusal(seq: bigint): string {
    if (seq <= this.floor) return `at or below the restart checkpoint ${this.floor}`;
    if (this.#highest - seq >= this.#sizeBig) return `older than the ${this.size}-packet window ending at ${this.#highest}`;
    return 'already received';
  }

  /**
   * The full 64-bit number of a packet that carries only the low 32 bits (RFC 4303 Appendix A2.2),
   * relative to the right edge T = highest and the window W = size. A wrong guess is harmless: the
   * high half is in the ICV/AAD, so the packet then fails authentication.
   */
  inferEsn(seqLow: number): bigint {
    if (!Number.isInteger(seqLow) || seqLow < 0 || seqLow > 0xffffffff) {
      throw new UsageError('E_USAGE', `expected a 32-bit sequence number, got ${seqLow}`);
    }
    const th = this.#highest >> 32n;
    const tl = Number(this.#highest & LOW32);
    const w = this.size;
    let sh: bigint;
    if (tl >= w - 1) {
      // Case A: the window lies within one 2^32 subspace.
      sh = seqLow >= tl - (w - 1) ? th : th + 1n;
      if (sh > LOW32) sh = th; // no subspace above the last one: the packet can only be old
    } else {
      // Case B: the window spans the subspace boundary; its left edge is in subspace th - 1.
      const leftEdge = (tl - (w - 1)) >>> 0; // mod 2^32
      sh = seqLow >= leftEdge ? th - 1n : th;
      if (sh < 0n) sh = 0n; // there is no subspace below the first one
    }
    return (sh << 32n) | BigInt(seqLow);
  }
}
