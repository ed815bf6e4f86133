/**
 * An outbound sequence counter (RFC 4303 §3.3.3, RFC 4302 §3.3.2): starts at a given number (1 for a new SA,
 * the value after a reserved block after a restart), never cycles. `max + 1` is a legal, exhausted state: the
 * SA must be replaced before anything else is sent. Shared by the ESP and AH senders.
 */
import { ProtocolError, UsageError } from '../common/errors.js';

export function maxSequence(esn: boolean): bigint {
  return esn ? (1n << 64n) - 1n : 0xffffffffn;
}

export class SendCounter {
  readonly max: bigint;
  #next: bigint;

  constructor(esn: boolean, next: bigint, private readonly what: string) {
    this.max = maxSequence(esn);
    this.#next = this.check(next);
  }

  /** The number the next take() hands out. */
  get next(): bigint {
    return this.#next;
  }

  /** True once the last number was used: the SA must be refreshed. */
  get exhausted(): boolean {
    return this.#next > this.max;
  }

  /** Continue from `next` (forward only): e.g. above a block another sender reserved (DESIGN §2.6). */
  skipTo(next: bigint): void {
    if (this.check(next) > this.#next) this.#next = next;
  }

  /** The number to use now; the counter moves on. Throws E_SEQ_EXHAUSTED instead of cycling. */
  take(spi: number): bigint {
    const seq = this.#next;
    if (seq > this.max) {
      throw new ProtocolError('E_SEQ_EXHAUSTED', `${this.what} SPI 0x${spi.toString(16).padStart(8, '0')} has sent sequence number ${this.max}; refresh the SA before sending more`);
    }
    this.#next = seq + 1n;
    return seq;
  }

  private check(next: bigint): bigint {
    if (typeof next !== 'bigint' || next < 1n || next > this.max + 1n) {
      throw new UsageError('E_USAGE', `first ${this.what} sequence number must be 1..${this.max + 1n}, got ${String(next)}`);
    }
    return next;
  }
}
