/**
 * What the emulator's sockets moved and what its hosts ran, for the whole fleet of the process: plain integers that
 * every NIC's shell (nic-node.ts) bumps as it receives and sends datagrams and performs `executed` effects, read by
 * the emulator's `/metrics` (emulator-metrics.ts). One object per fleet: a scrape reads it without visiting a NIC,
 * and a datagram costs one increment, no label lookup.
 */
import type { NicPort } from '../firmware/nic-machine.js';

export type ExecutedVia = 'clear' | 'secure' | 'ipmi';

export class FleetTally {
  /** Datagrams the NICs' sockets delivered (whatever became of them) and sent, by port. */
  readonly received: Record<NicPort, number> = { clear: 0, secure: 0, ike: 0 };
  readonly sent: Record<NicPort, number> = { clear: 0, secure: 0, ike: 0 };
  /** Host commands executed, by `command|via` (command: reset, power-up, power-down, power-cycle). */
  readonly executed = new Map<string, number>();

  commandExecuted(command: string, via: ExecutedVia): void {
    const k = `${command}|${via}`;
    this.executed.set(k, (this.executed.get(k) ?? 0) + 1);
  }
}
