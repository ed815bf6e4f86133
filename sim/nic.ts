/**
 * One emulated NIC in the simulator: the production NIC machine (firmware/nic-machine.ts) on an in-memory EEPROM,
 * its ports on the simulated network, its one deadline as a scheduler event. What the emulator's shell does with
 * sockets and files (nic-emulator/nic-node.ts), done here with the simulation's network and memory.
 */
import { MemoryEepromDevice } from '../firmware/eeprom-device.js';
import { EEPROM_SIZE, type NicConfig } from '../firmware/eeprom-image.js';
import { NicMachine, type ExecutedCommand, type LabEvent, type NicEffect, type NicPort } from '../firmware/nic-machine.js';
import type { SaPair } from '../wire/sa.js';
import type { Prng } from './prng.js';
import type { Scheduler } from './scheduler.js';
import type { Endpoint, SimNet } from './network.js';

export const NIC_PORTS = { clear: 623, secure: 664, ike: 500 } as const;

export interface NicHooks {
  executed(nic: SimNic, entry: ExecutedCommand): void;
  accepted(nic: SimNic, bytes: Uint8Array): void;
  /** Null when the run keeps no trace (nothing is formatted then). */
  trace: ((line: string) => void) | null;
}

export class SimNic {
  readonly owner: string;
  readonly device = new MemoryEepromDevice(EEPROM_SIZE);
  readonly machine: NicMachine;
  private timer: { cancel(): void } | null = null;
  private formatted = false;

  constructor(
    readonly id: string,
    readonly address: string,
    private readonly sched: Scheduler,
    private readonly net: SimNet,
    rnd: Prng,
    config: NicConfig,
    bootDelayMs: number,
    checkpointBlock: number,
    private readonly hooks: NicHooks,
  ) {
    this.owner = `nic:${id}`;
    this.machine = new NicMachine({
      id, address, ports: { ...NIC_PORTS },
      openDevice: () => {
        const fresh = !this.formatted;
        this.formatted = true;
        return { device: this.device, fresh };
      },
      deviceName: `${id}.eeprom`,
      initialConfig: config,
      initialHostState: 'up',
      bootDelayMs,
      checkpointBlock,
      random: (n) => rnd.bytes(n),
      onAccepted: (bytes) => hooks.accepted(this, bytes),
    });
    for (const port of ['clear', 'secure', 'ike'] as const) {
      net.register(address, NIC_PORTS[port], this.owner, (bytes, from) => this.receive(port, bytes, from));
    }
  }

  powerOn(): void {
    this.apply(this.machine.powerOn(this.sched.now));
  }

  private receive(port: NicPort, bytes: Uint8Array, from: Endpoint): void {
    // A port the NIC holds no socket on: the datagram meets a closed port (nic-node.ts binds as the machine says).
    if (port === 'secure' && !this.machine.wantsSecurePort) return;
    if (port === 'ike' && !this.machine.wantsIkePort) return;
    this.apply(this.machine.receive(port, from, bytes, this.sched.now));
  }

  apply(fx: NicEffect[]): void {
    for (const e of fx) {
      if (e.kind === 'send') this.net.send({ address: this.address, port: NIC_PORTS[e.port] }, e.to, e.bytes);
      else if (e.kind === 'executed') this.hooks.executed(this, e.entry);
      else if (e.level !== 'info') this.hooks.trace?.(`${this.id} ${e.level} ${e.msg} ${JSON.stringify(e.fields)}`);
    }
    this.schedule();
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = null;
    const at = this.machine.pollTimeout();
    if (at === null) return;
    this.timer = this.sched.at(at, this.owner, () => {
      this.timer = null;
      this.apply(this.machine.handleTimeout(this.sched.now));
    });
  }

  /** A lab event (host transition, power, cable); an illegal one is ignored (the fault schedule may ask for any). */
  event(ev: LabEvent): boolean {
    try {
      const r = this.machine.hostEvent(ev, this.sched.now);
      this.apply(r.effects);
      return true;
    } catch {
      return false;
    }
  }

  /** The administrator's control (the emulator's control API in a real lab). */
  setTrustAnchor(psk: Uint8Array): void {
    this.apply(this.machine.setTrustAnchor(psk, this.sched.now));
  }

  installSa(sa: SaPair): { generation: number } {
    const r = this.machine.installSa(sa, this.sched.now);
    this.apply(r.effects);
    return { generation: r.generation };
  }

  /** A copy of the EEPROM as it is now (a backup of the NIC's file). */
  snapshot(): Uint8Array {
    return new Uint8Array(this.device.image); // a copy, made in one go (not Uint8Array.from, which iterates)
  }

  /** Put a backup back: with the NIC off, the file replaced, power on again (it boots from what it finds). */
  restore(image: Uint8Array): void {
    this.event('power-loss');
    this.device.image.set(image);
    this.event('power-restore');
  }
}
