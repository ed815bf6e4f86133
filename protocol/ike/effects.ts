/**
 * What the IKE machines ask their shell to do. Effects come back, in order, from every call
 * (connect, receive, handleTimeout, ...); the shell performs them in that order.
 *
 * Ordering contract for the host side: `nic-write-pending` / `nic-commit` precede the `send`
 * that announces them (SA_READY / SA_CONFIRM). If a nic-* effect fails, the shell must not
 * perform the rest of that batch and must restart the agent from the NIC's EEPROM
 * (IkeResponder.recover), exactly like a crash: nothing is then announced that the NIC does not hold.
 * Station side: persist the SA of `switch-outbound` before sending on it.
 */
import type { ErrorCode } from '../../common/errors.js';
import type { SaPair } from '../../wire/sa.js';

/** Where a datagram came from, or where the responder sends one (RFC 7296 §2.11). */
export interface DatagramSource {
  /** The sender's IP address (§2.6 IPi in the cookie; the per-source half-open limit). */
  address: string;
  /** Its UDP port (the responder sends the IKE SA's requests back there). */
  port?: number;
}

export type IkeEffect =
  /**
   * A datagram for the peer's IKE port. The responder says where (`to`): an answer goes to the
   * request's source (§2.11), a request of ours to the peer its IKE SA was made with (a spoofed
   * datagram cannot redirect it); absent when the responder was not told (receive() without
   * `from`). The initiator has one peer and leaves it out.
   */
  | { kind: 'send'; bytes: Uint8Array; to?: DatagramSource }
  /** The IKE SA is authenticated (spiI/spiR as 16 hex digits). */
  | { kind: 'established'; spiI: string; spiR: string }
  /**
   * Station: a Child SA the host has staged on the NIC (it sent SA_READY for it); keys derived,
   * generation known, not yet in use. `role` says whether it replaces the current SA.
   */
  | { kind: 'child-sa'; sa: SaPair; role: 'new' | 'rekey' }
  /** Host: write `sa` to the NIC's pending EEPROM slot (DESIGN §2.5). */
  | { kind: 'nic-write-pending'; sa: SaPair }
  /** Host: make the pending slot of that generation the active SA. */
  | { kind: 'nic-commit'; generation: number }
  /** Host: drop the pending slot of that generation; the active SA stays in force. */
  | { kind: 'nic-discard'; generation: number }
  /** Station: SA_CONFIRM received; persist `sa`, then send on it (the NIC holds it committed). */
  | { kind: 'switch-outbound'; sa: SaPair }
  /** Station: the host refused or lost the staged SA; the current SA stays in use. */
  | { kind: 'commit-aborted'; generation: number; message: string }
  /**
   * The IKE SA was rekeyed (RFC 7296 §2.18): the new SPIs (16 hex digits) replace the old ones;
   * Child SAs and the commit moved to it. Export the new keys (Wireshark) like after `established`.
   */
  | { kind: 'ike-rekeyed'; oldSpiI: string; oldSpiR: string; spiI: string; spiR: string }
  /** A liveness (empty INFORMATIONAL) exchange got its answer (§1.4). */
  | { kind: 'alive' }
  /** The IKE SA is gone (DELETE received or sent and answered). */
  | { kind: 'closed'; message: string }
  /**
   * scope 'ike': the IKE SA failed or died; 'child': only the Child SA request was refused;
   * 'rekey': an IKE SA rekey was refused or lost, the IKE SA itself goes on.
   */
  | { kind: 'failed'; scope: 'ike' | 'child' | 'rekey'; code: ErrorCode; message: string }
  | { kind: 'log'; level: 'debug' | 'info' | 'warn'; event: string; message: string };

export function log(level: 'debug' | 'info' | 'warn', event: string, message: string): IkeEffect {
  return { kind: 'log', level, event, message };
}

/** Bad input is dropped and counted, never thrown (RFC 7296 §2.21, STYLE 4). */
export class DropCounter {
  private readonly counts = new Map<string, number>();

  /** Counts one drop and returns `fx` with a debug log appended. */
  drop(reason: string, fx: IkeEffect[], detail?: string): IkeEffect[] {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + 1);
    fx.push(log('debug', 'ike.drop', detail ? `${reason}: ${detail}` : reason));
    return fx;
  }

  get record(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
