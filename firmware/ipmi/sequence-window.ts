/**
 * Inbound session sequence numbers of one RMCP+ session (IPMI v2.0 §6.12.13; cat. §5.3).
 *
 * The BMC accepts a number up to 15 above the highest authenticated one seen and up to 16 below it, each
 * number once; 0 is never valid in a session. That is OpenIPMI's reading of the spec's RMCP+ window
 * (+15/-16); the catalogue could not confirm the spec's text, and FreeIPMI's own window (8) is narrower, so
 * both clients' habits fit in it. The first authenticated packet sets the baseline: ipmitool's first
 * in-session number is 3 or more (its counter also moves during set-up), FreeIPMI's is 1.
 *
 * Like an ESP receiver (STYLE.md rule 3): check() before the AuthCode is verified, mark() only after, so a
 * forged packet cannot move the window.
 */

export const SEQ_AHEAD = 15;
export const SEQ_BEHIND = 16;

export type SequenceVerdict = 'ok' | 'replay' | 'out-of-window';

export class SequenceWindow {
  /** Highest number marked; 0 until the first packet is marked. */
  private highest = 0;
  /** Bit i set = (highest - i) was received, for i = 0..SEQ_BEHIND. */
  private seen = 0;

  check(seq: number): SequenceVerdict {
    if (!Number.isInteger(seq) || seq <= 0 || seq > 0xffffffff) return 'out-of-window';
    if (this.highest === 0) return 'ok';
    if (seq > this.highest) return seq - this.highest <= SEQ_AHEAD ? 'ok' : 'out-of-window';
    const back = this.highest - seq;
    if (back > SEQ_BEHIND) return 'out-of-window';
    return (this.seen >>> back) & 1 ? 'replay' : 'ok';
  }

  /** Records `seq` as received; call only after check() said 'ok' and the packet authenticated. */
  mark(seq: number): void {
    if (this.highest === 0 || seq > this.highest) {
      const shift = this.highest === 0 ? 32 : seq - this.highest;
      this.seen = shift > SEQ_BEHIND ? 1 : ((this.seen << shift) | 1) & ((1 << (SEQ_BEHIND + 1)) - 1);
      this.highest = seq;
    } else {
      this.seen |= 1 << (this.highest - seq);
    }
  }

  get highestSeen(): number {
    return this.highest;
  }
}
