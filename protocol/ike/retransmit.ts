/**
 * Request retransmission (RFC 7296 §2.1, §2.4): the requester alone retransmits, with
 * exponential back-off, and gives up (the IKE SA is dead) after a fixed number of tries.
 * A timer is data: a deadline the owner reports from pollTimeout() and fires from
 * handleTimeout(now). No clocks are read here.
 */
import { UsageError } from '../../common/errors.js';

export interface RetransmitPolicy {
  /** Wait after the first transmission, ms. */
  baseMs: number;
  /** Multiplier for each following wait. */
  factor: number;
  /** Total transmissions (first send included) before giving up. */
  tries: number;
}

/** Short enough for a lab: 250 ms, 500, 1 s, 2 s, 4 s -> the SA is declared dead after 7.75 s. */
export const DEFAULT_RETRANSMIT: RetransmitPolicy = { baseMs: 250, factor: 2, tries: 5 };

export function assertRetransmitPolicy(p: RetransmitPolicy): void {
  if (!(Number.isFinite(p.baseMs) && p.baseMs > 0)) throw new UsageError('E_USAGE', 'retransmit baseMs must be > 0');
  if (!(Number.isFinite(p.factor) && p.factor >= 1)) throw new UsageError('E_USAGE', 'retransmit factor must be >= 1');
  if (!(Number.isInteger(p.tries) && p.tries >= 1)) throw new UsageError('E_USAGE', 'retransmit tries must be an integer >= 1');
}

/** How long after the first transmission a requester gives up. */
export function giveUpAfterMs(p: RetransmitPolicy): number {
  let total = 0;
  for (let i = 0; i < p.tries; i++) total += p.baseMs * p.factor ** i;
  return total;
}

export class RetransmitTimer {
  private sent = 0;
  private due: number | null = null;

  constructor(readonly policy: RetransmitPolicy) {}

  /** The first transmission happens at `now`. */
  start(now: number): void {
    this.sent = 1;
    this.due = now + this.policy.baseMs;
  }

  get deadline(): number | null {
    return this.due;
  }

  /** At or after the deadline: 'resend' (the next deadline is set) or 'give-up'; before it: null. */
  fire(now: number): 'resend' | 'give-up' | null {
    if (this.due === null || now < this.due) return null;
    if (this.sent >= this.policy.tries) {
      this.due = null;
      return 'give-up';
    }
    this.due = now + this.policy.baseMs * this.policy.factor ** this.sent;
    this.sent++;
    return 'resend';
  }

  stop(): void {
    this.due = null;
  }
}
