/**
 * What the simulator checks after every step (DESIGN §7), from what it observes on the network, at the NICs and
 * at the callers — never from the parties' own bookkeeping:
 *  - nonce: no (key, IV) pair carries two different ESP packets, either direction;
 *  - replay: no receiver (a NIC, a station) accepts the same datagram twice;
 *  - commands: none runs twice; every one acknowledged to a caller ran exactly once; one reported as not run never
 *    runs; the rest ran at most once (their callers heard E_OUTCOME_UNKNOWN or E_TIMEOUT, or nothing);
 *  - audit: a command log edited outside a station fails its audit, and no session opens on it;
 *  - at the end, once the system quiesced: every NIC answers its owner under a common SA.
 * A violation stops the run; its message and the trace say what happened.
 */
import { u32 } from '../common/bytes.js';

export class Violation extends Error {
  constructor(readonly invariant: string, message: string) {
    super(`${invariant}: ${message}`);
  }
}

const hex = (b: Uint8Array, from = 0, to = b.length): string => Buffer.from(b.buffer, b.byteOffset + from, to - from).toString('hex');
/** Bytes as a compact string key (one char per byte): cheaper than hex for the per-packet maps. */
const raw = (b: Uint8Array, from = 0, to = b.length): string => Buffer.from(b.buffer, b.byteOffset + from, to - from).toString('latin1');

/** The ESP packet inside a datagram on UDP/664 (after AH under esp+ah), or null (a sync or heartbeat frame). */
function espOf(b: Uint8Array): Uint8Array | null {
  if (b.length < 32) return null;
  if (u32(b, 0) === 0xffffffff) return null;
  if (b[0] === 50 && b[1] === 5) return b.length >= 28 + 32 ? b.subarray(28) : null;
  return b;
}

export class Invariants {
  /** `${nic address}|${direction}|${spi}|${iv}` -> the packet's ICV (its identity). */
  private readonly ivs = new Map<string, string>();
  private readonly accepted = new Map<string, Set<string>>();
  /**
   * Commands by the identity the simulator gave each when a station logged it (a log index is not one: a store
   * restored from a backup hands the same index to a new command): executions, acknowledgements, reports.
   */
  readonly executions = new Map<number, number>();
  /** Commands whose caller was told they did not run. */
  private readonly mustNotRun = new Set<number>();
  /** Commands acknowledged to a caller. */
  readonly acked = new Set<number>();
  /** What each command is called in messages. */
  readonly names = new Map<number, string>();
  /** NICs whose log was edited outside a station (and not restored since): no session may open on them. */
  readonly tainted = new Set<string>();
  readonly counts = { espPackets: 0, accepted: 0, executions: 0, acked: 0, unknown: 0, notRun: 0, reopened: 0 };

  /** A datagram on the wire between a station (address) and a NIC (address) on the secure port. */
  packet(nicAddress: string, toNic: boolean, bytes: Uint8Array): void {
    const esp = espOf(bytes);
    if (!esp || esp.length < 16 + 16) return;
    this.counts.espPackets++;
    const key = `${nicAddress}|${toNic ? '>' : '<'}|${u32(esp, 0)}|${raw(esp, 8, 16)}`;
    const icv = raw(esp, esp.length - 16);
    const had = this.ivs.get(key);
    if (had === undefined) this.ivs.set(key, icv);
    else if (had !== icv) {
      throw new Violation('nonce', `two different ESP packets ${toNic ? 'to' : 'from'} NIC ${nicAddress} under SPI 0x${u32(esp, 0).toString(16)} with IV ${hex(esp, 8, 16)} (AES-GCM nonce reuse)`);
    }
  }

  /** `receiver` accepted `bytes` as authentic and new. */
  accept(receiver: string, bytes: Uint8Array): void {
    this.counts.accepted++;
    const id = raw(bytes, bytes.length - 16);
    let seen = this.accepted.get(receiver);
    if (!seen) this.accepted.set(receiver, (seen = new Set()));
    if (seen.has(id)) throw new Violation('replay', `${receiver} accepted the same datagram twice (ICV ${hex(bytes, bytes.length - 16)})`);
    seen.add(id);
  }

  executed(cmd: number): void {
    this.counts.executions++;
    const n = (this.executions.get(cmd) ?? 0) + 1;
    this.executions.set(cmd, n);
    if (n > 1) throw new Violation('exactly-once', `${this.name(cmd)} executed a second time`);
    if (this.mustNotRun.has(cmd)) throw new Violation('outcome', `${this.name(cmd)} executed, but its caller was told it did not run`);
  }

  name(cmd: number): string {
    return this.names.get(cmd) ?? `command ${cmd}`;
  }

  private runs(cmd: number): number {
    return this.executions.get(cmd) ?? 0;
  }

  /** A caller was told its command was done. */
  callerAcked(cmd: number): void {
    this.counts.acked++;
    this.acked.add(cmd);
    if (this.runs(cmd) !== 1) throw new Violation('exactly-once', `a caller was told ${this.name(cmd)} was done, but it ran ${this.runs(cmd)} times`);
  }

  /** A caller was told its (logged) command did not run: it never may. */
  callerNotRun(cmd: number, code: string): void {
    this.counts.notRun++;
    if (this.runs(cmd) > 0) throw new Violation('outcome', `a caller was told ${code} for ${this.name(cmd)}, which ran`);
    this.mustNotRun.add(cmd);
  }

  /**
   * The store went back to a backup in which `cmd` is still pending ('sent'): what its caller was told since (that
   * it did not run) is undone with the rest of the log, and the NIC's owner may complete it (docs/SIMULATION.md,
   * "restoring a backup").
   */
  reopened(cmd: number): void {
    if (this.mustNotRun.delete(cmd)) this.counts.reopened++;
  }

  callerUnknown(): void {
    this.counts.unknown++;
  }

  sessionOpened(station: string, nic: string): void {
    if (this.tainted.has(nic)) throw new Violation('audit', `${station} opened a session to ${nic} on a command log edited outside a station`);
  }

  /** End of run: what was acknowledged ran exactly once (checked again, nothing may have run it since). */
  final(): void {
    for (const c of this.acked) if (this.runs(c) !== 1) throw new Violation('exactly-once', `${this.name(c)} was acknowledged but ran ${this.runs(c)} times`);
  }
}
