/**
 * The emulated host's IKE agent (DESIGN §2.4): an IKEv2 responder that exists only while the host OS is up. On a
 * hung or powered-off machine nothing answers on the IKE port: the NIC machine (nic-machine.ts) hands it datagrams
 * only while the OS is up, and resets it when the OS goes down (its IKE SAs vanish; the EEPROM keeps what it wrote).
 *
 * It writes negotiated child SAs into its NIC's pending EEPROM slot and commits them on SA_ACK (standing in for
 * the host driver that programs the NIC). A restarted agent discards a pending slot no IKE SA can confirm any more
 * (IkeResponder.recover). If an EEPROM write fails, the rest of that batch of effects is not performed (nothing is
 * announced that the NIC does not hold): the error is thrown after the agent reset itself, and the machine reboots
 * the NIC from its EEPROM. Pure: randomness injected, time an argument.
 */
import { IkeResponder, type IkeEffect } from '../protocol/index.js';
import type { SaDatabase } from './sa-database.js';
import type { SecurityPolicy } from '../wire/sa.js';

export interface Endpoint { address: string; port: number }

export interface HostAgentOptions {
  nicId: string;
  random: (n: number) => Uint8Array;
  db: () => SaDatabase | null;
  psk: () => Uint8Array | null;
  policy: () => SecurityPolicy;
  commitTimeoutMs?: number;
}

export interface AgentOutput {
  sends: { to: Endpoint; bytes: Uint8Array }[];
  logs: { level: 'info' | 'warn'; msg: string; fields: Record<string, unknown> }[];
  /** An SA was committed into the NIC (it may now need its secure port). */
  committed: boolean;
}

/** An EEPROM write failed while the agent performed its effects; what was done before it is in `done`. */
export class AgentWriteError extends Error {
  constructor(override readonly cause: unknown, readonly done: AgentOutput) {
    super(`host agent: EEPROM write failed (${(cause as Error)?.message ?? String(cause)})`);
  }
}

export class HostAgent {
  private responder: IkeResponder | null = null;
  private peer: Endpoint | null = null;
  readonly counters = { received: 0, sent: 0, noTrustAnchor: 0, eepromFailures: 0 };

  constructor(private readonly o: HostAgentOptions) {}

  /** The OS went down, or the trust anchor changed: the agent and its IKE SAs are gone. */
  reset(): void {
    this.responder = null;
    this.peer = null;
  }

  /** A datagram on the IKE port (only while the OS is up). Throws AgentWriteError when an EEPROM write failed. */
  receive(bytes: Uint8Array, from: Endpoint, now: number): AgentOutput {
    this.counters.received++;
    const out: AgentOutput = { sends: [], logs: [], committed: false };
    const r = this.ensureResponder(out);
    if (!r) {
      this.counters.noTrustAnchor++;
      return out; // no PSK written at enrolment yet: nothing to authenticate with
    }
    this.peer = { address: from.address, port: from.port };
    this.perform(r.receive(bytes, now), out);
    return out;
  }

  /** The responder's deadline (retransmission, commit timeout), or null. */
  pollTimeout(): number | null {
    return this.responder?.pollTimeout() ?? null;
  }

  handleTimeout(now: number): AgentOutput {
    const out: AgentOutput = { sends: [], logs: [], committed: false };
    if (this.responder) this.perform(this.responder.handleTimeout(now), out);
    return out;
  }

  /**
   * An SA of `generation` was written to the NIC beside the agent (manual keying through the control API): the
   * agent's next negotiated SA must come after it, or its pending write would be refused.
   */
  noteGenerationUsed(generation: number): void {
    this.responder?.setNextGeneration(generation + 1);
  }

  private ensureResponder(out: AgentOutput): IkeResponder | null {
    if (this.responder) return this.responder;
    const db = this.o.db();
    const psk = this.o.psk();
    if (!db || !psk) return null;
    this.responder = new IkeResponder({
      random: this.o.random,
      psk,
      id: `${this.o.nicId}.host.lifeline`,
      nextGeneration: db.nextGeneration(),
      policy: this.o.policy(),
      commitTimeoutMs: this.o.commitTimeoutMs,
    });
    this.perform(this.responder.recover(db.pending?.generation ?? null), out);
    return this.responder;
  }

  private perform(fx: IkeEffect[], out: AgentOutput): void {
    const db = this.o.db();
    for (const e of fx) {
      try {
        switch (e.kind) {
          case 'send':
            if (this.peer) {
              out.sends.push({ to: this.peer, bytes: e.bytes });
              this.counters.sent++;
            }
            break;
          case 'nic-write-pending':
            db!.writePending(e.sa);
            this.responder?.setNextGeneration(e.sa.generation + 1);
            break;
          case 'nic-commit':
            db!.commitPending(e.generation);
            out.committed = true;
            break;
          case 'nic-discard':
            db!.discardPending(e.generation);
            break;
          case 'log':
            if (e.level !== 'debug') out.logs.push({ level: e.level, msg: e.message, fields: { event: e.event } });
            break;
          case 'failed':
            out.logs.push({ level: 'warn', msg: e.message, fields: { code: e.code, scope: e.scope } });
            break;
          default:
            break;
        }
      } catch (err) {
        // An EEPROM write failed (e.g. torn by injected power loss): announce nothing more, restart the agent.
        this.counters.eepromFailures++;
        out.logs.push({ level: 'warn', msg: 'host agent: EEPROM write failed; agent restarts from the EEPROM', fields: { error: (err as Error).message } });
        this.reset();
        throw new AgentWriteError(err, out);
      }
    }
  }

  status(running: boolean): Record<string, unknown> {
    return { running, commit: this.responder?.commitState ?? 'idle', sessions: this.responder?.sessionStates ?? [], ...this.counters, drops: this.responder?.drops ?? {} };
  }
}
