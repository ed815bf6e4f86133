/**
 * The emulated host's IKE agent (DESIGN §2.4): an IKEv2 responder that exists only while the host OS is
 * up. It binds the NIC's IKE port when the OS comes up and closes it when the OS goes down (hang, suspend,
 * crash, power-down): on a hung or powered-off machine nothing answers on the IKE port.
 *
 * It writes negotiated child SAs into its NIC's pending EEPROM slot and commits them on SA_ACK (standing in
 * for the host driver that programs the NIC). A restarted agent discards a pending slot no IKE SA can
 * confirm any more (IkeResponder.recover). If an EEPROM write fails, the rest of that batch of effects is
 * not performed (nothing is announced that the NIC does not hold) and the agent restarts from the EEPROM.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { IkeResponder, type IkeEffect } from '../protocol/index.js';
import type { SaDatabase } from '../firmware/sa-database.js';
import type { SecurityPolicy } from '../wire/sa.js';
import type { Logger } from '../lib/log.js';

export interface HostAgentOptions {
  nicId: string;
  address: string;
  port: number;
  db: () => SaDatabase | null;
  psk: () => Uint8Array | null;
  policy: () => SecurityPolicy;
  log: Logger;
  commitTimeoutMs?: number;
  /** An EEPROM write failed mid-batch (power lost): the NIC shell reboots the NIC. */
  onEepromFailure: (e: unknown) => void;
  /** An SA was committed to the NIC (the shell binds the secure port if it is not yet). */
  onCommit?: () => void;
}

export class HostAgent {
  private socket: dgram.Socket | null = null;
  private responder: IkeResponder | null = null;
  private peer: { address: string; port: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closing: Promise<void> | null = null;
  readonly counters = { received: 0, sent: 0, noTrustAnchor: 0, eepromFailures: 0 };

  constructor(private readonly o: HostAgentOptions) {}

  get running(): boolean {
    return this.socket !== null;
  }

  /** The OS came up: start the agent (bind the IKE port). */
  async start(): Promise<void> {
    if (this.socket) return;
    if (this.closing) await this.closing;
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind({ address: this.o.address, port: this.o.port, exclusive: true }, () => {
        s.removeListener('error', reject);
        resolve();
      });
    });
    s.on('error', (e) => this.o.log.log('warn', 'IKE socket error', { error: e.message }));
    s.on('message', (msg, rinfo) => this.onDatagram(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), rinfo));
    this.socket = s;
    this.responder = null; // created lazily: the trust anchor may be written after the OS came up
  }

  /** The trust anchor changed (enrolment): IKE SAs made under the old one are forgotten. */
  resetTrust(): void {
    this.responder = null;
  }

  /** The OS went down: the agent and its IKE SAs vanish (the EEPROM keeps whatever it wrote). */
  stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.responder = null;
    const s = this.socket;
    this.socket = null;
    if (!s) return this.closing ?? Promise.resolve();
    this.closing = new Promise<void>((r) => s.close(() => r())).finally(() => (this.closing = null));
    return this.closing;
  }

  private ensureResponder(): IkeResponder | null {
    if (this.responder) return this.responder;
    const db = this.o.db();
    const psk = this.o.psk();
    if (!db || !psk) return null;
    this.responder = new IkeResponder({
      random: (n) => new Uint8Array(randomBytes(n)),
      psk,
      id: `${this.o.nicId}.host.lifeline`,
      nextGeneration: db.nextGeneration(),
      policy: this.o.policy(),
      commitTimeoutMs: this.o.commitTimeoutMs,
    });
    this.perform(this.responder.recover(db.pending?.generation ?? null));
    return this.responder;
  }

  private onDatagram(bytes: Uint8Array, from: dgram.RemoteInfo): void {
    this.counters.received++;
    const r = this.ensureResponder();
    if (!r) {
      this.counters.noTrustAnchor++;
      return; // no PSK written at enrolment yet: nothing to authenticate with
    }
    this.peer = { address: from.address, port: from.port };
    this.perform(r.receive(bytes, Date.now()));
  }

  /**
   * An SA of `generation` was written to the NIC beside the agent (manual keying through the control API): the
   * agent's next negotiated SA must come after it, or its pending write would be refused.
   */
  noteGenerationUsed(generation: number): void {
    this.responder?.setNextGeneration(generation + 1);
  }

  private perform(fx: IkeEffect[]): void {
    const db = this.o.db();
    for (const e of fx) {
      try {
        switch (e.kind) {
          case 'send':
            if (this.socket && this.peer) {
              this.socket.send(e.bytes, this.peer.port, this.peer.address);
              this.counters.sent++;
            }
            break;
          case 'nic-write-pending':
            db!.writePending(e.sa);
            this.responder?.setNextGeneration(e.sa.generation + 1);
            break;
          case 'nic-commit':
            db!.commitPending(e.generation);
            this.o.onCommit?.();
            break;
          case 'nic-discard':
            db!.discardPending(e.generation);
            break;
          case 'log':
            if (e.level !== 'debug') this.o.log.log(e.level, e.message, { event: e.event });
            break;
          case 'failed':
            this.o.log.log('warn', e.message, { code: e.code, scope: e.scope });
            break;
          default:
            break;
        }
      } catch (err) {
        // An EEPROM write failed (e.g. torn by injected power loss): announce nothing more, restart the agent.
        this.counters.eepromFailures++;
        this.o.log.log('warn', 'host agent: EEPROM write failed; agent restarts from the EEPROM', { error: (err as Error).message });
        this.responder = null;
        this.o.onEepromFailure(err);
        return;
      }
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const at = this.responder?.pollTimeout();
    if (at === null || at === undefined || !this.socket) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.responder) this.perform(this.responder.handleTimeout(Date.now()));
    }, Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  status(): Record<string, unknown> {
    return { running: this.running, commit: this.responder?.commitState ?? 'idle', sessions: this.responder?.sessionStates ?? [], ...this.counters, drops: this.responder?.drops ?? {} };
  }
}
