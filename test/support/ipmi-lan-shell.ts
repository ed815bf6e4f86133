/**
 * A test-only I/O shell around firmware/ipmi/ipmi-lan.ts: binds UDP 623 on one loopback address, hands every
 * RMCP class-7 datagram to IpmiLan, sends what it says, and applies its host commands to a host state kept with
 * firmware/host-state.ts's transition() (with a boot timer: pre-boot -> up after `bootDelayMs`), so the real
 * ipmitool and FreeIPMI tools can be run against the pure core. The NIC emulator will do the same in its own
 * shell; this one exists so the core can be tested before that integration.
 *
 * Everything it opens (the socket, the deadline timer, the boot timer) close() closes.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { IpmiLan, type IpmiLanOptions } from '../../firmware/ipmi/ipmi-lan.js';
import type { IpmiEffect } from '../../firmware/ipmi/ipmi-types.js';
import { transition, type HostState, type AsfCommandEvent } from '../../firmware/host-state.js';

export interface ShellOptions {
  address: string;
  port?: number;
  lan: Omit<IpmiLanOptions, 'random'> & { random?: IpmiLanOptions['random'] };
  initialState?: HostState;
  bootDelayMs?: number;
}

export interface AppliedCommand { command: AsfCommandEvent; ipmi: string; user: string; from: HostState; to: HostState }

export class IpmiLanShell {
  readonly lan: IpmiLan;
  state: HostState;
  readonly applied: AppliedCommand[] = [];
  readonly logs: (IpmiEffect & { kind: 'log' })[] = [];
  /** Every datagram in and out, for tests that look at the bytes (in: from the console, out: to it). */
  readonly traffic: { dir: 'in' | 'out'; bytes: Uint8Array }[] = [];
  private deadline: NodeJS.Timeout | null = null;
  private bootTimer: NodeJS.Timeout | null = null;
  private closed = false;

  private constructor(private readonly socket: dgram.Socket, o: ShellOptions) {
    this.lan = new IpmiLan({ random: (n) => new Uint8Array(randomBytes(n)), ...o.lan });
    this.state = o.initialState ?? 'up';
    const bootDelayMs = o.bootDelayMs ?? 200;
    socket.on('message', (msg, rinfo) => {
      const bytes = new Uint8Array(msg);
      // Only RMCP 1.0 class 7 goes to the IPMI responder (the NIC's clear path keeps ASF, class 6).
      if (bytes.length < 4 || bytes[0] !== 0x06 || (bytes[3] & 0x9f) !== 0x07) return;
      this.traffic.push({ dir: 'in', bytes });
      this.perform(this.lan.receive({ address: rinfo.address, port: rinfo.port }, bytes, Date.now(), { state: this.state }), bootDelayMs);
    });
    socket.on('error', () => undefined);
  }

  static async start(o: ShellOptions): Promise<IpmiLanShell> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind({ address: o.address, port: o.port ?? 623, exclusive: true }, () => {
        socket.removeListener('error', reject);
        resolve();
      });
    });
    return new IpmiLanShell(socket, o);
  }

  private perform(effects: IpmiEffect[], bootDelayMs: number): void {
    for (const e of effects) {
      if (e.kind === 'send') {
        this.traffic.push({ dir: 'out', bytes: e.bytes });
        this.socket.send(e.bytes, e.to.port, e.to.address);
      } else if (e.kind === 'log') {
        this.logs.push(e);
      } else {
        const t = transition(this.state, e.command);
        this.applied.push({ command: e.command, ipmi: e.ipmi, user: e.user, from: t.from, to: t.to });
        this.state = t.to;
        if (this.bootTimer) clearTimeout(this.bootTimer);
        this.bootTimer = null;
        if (t.startBootTimer) {
          this.bootTimer = setTimeout(() => {
            this.bootTimer = null;
            if (this.state === 'pre-boot') this.state = transition(this.state, 'boot-complete').to;
          }, bootDelayMs);
        }
      }
    }
    this.rearm(bootDelayMs);
  }

  private rearm(bootDelayMs: number): void {
    if (this.closed) return;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = null;
    const t = this.lan.pollTimeout();
    if (t === null) return;
    this.deadline = setTimeout(() => {
      this.deadline = null;
      this.perform(this.lan.handleTimeout(Date.now()), bootDelayMs);
    }, Math.max(0, t - Date.now()) + 1);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.deadline) clearTimeout(this.deadline);
    if (this.bootTimer) clearTimeout(this.bootTimer);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
