/**
 * A fleet of emulated NICs in one process, plus the control API that drives them.
 *
 * Sockets: with address-per-NIC addressing and batched UDP, a fleet of SHARED_SOCKETS_MIN_NICS or more (or any
 * size with `--shared-sockets on`) binds one socket per port number for all its NICs (shared-ports.ts: 0.0.0.0
 * on 623, 664 and the IKE port, dispatch by destination address); a NIC then costs no file descriptor. Smaller
 * fleets, port-per-NIC fleets and the node:dgram layer bind a socket per NIC and port as before, so that a small
 * emulator shares the host's 623/664/500 with other processes bound to other 127.x addresses.
 */
import { makePrivateDir } from '../lib/secret-file.js';
import { NicNode } from './nic-node.js';
import { UsageError } from '../common/errors.js';
import { assignAddresses, type AddressingOptions } from './addressing.js';
import type { NicConfig } from '../firmware/eeprom-image.js';
import type { IpmiUsersConfig } from '../firmware/ipmi/ipmi-users-record.js';
import type { HostState } from '../firmware/host-state.js';
import type { Logger } from '../lib/log.js';
import type { BusyPoll } from './busy-poll.js';
import { defaultUdpIo, type UdpIo } from '../lib/batch-udp.js';
import { FleetTally } from './fleet-tally.js';
import { SharedPorts, type SharedPortCounters } from './shared-ports.js';

export type SharedSockets = 'auto' | 'on' | 'off';
/** `--shared-sockets auto`: fleets this large share (per-NIC sockets would cost up to 3 descriptors a NIC). */
export const SHARED_SOCKETS_MIN_NICS = 1000;
/** A NIC without a secure packet for this long drops its per-key crypto tables (NicMachine.releaseIdle)... */
export const CRYPTO_IDLE_MS = 60_000;
/** ...checked by one sweep over the fleet this often (100,000 NICs: a few ms). */
const IDLE_SWEEP_MS = 30_000;

export interface FleetOptions extends AddressingOptions {
  dataDir: string;
  bootDelayMs: number;
  initialConfig: NicConfig;
  /** `start --ipmi-user`: every NIC's IPMI users (nic-node.ts); absent: each keeps its EEPROM's. */
  ipmiUsers?: IpmiUsersConfig;
  initialHostState: HostState;
  checkpointBlock?: number;
  log: Logger;
  /** Adaptive busy polling shared by every NIC of the process (the event loop is one). */
  busyPoll?: BusyPoll;
  /** The NICs' socket layer (lib/batch-udp.ts); default: batched where it is built. */
  udpIo?: UdpIo;
  /** How many NICs bind their sockets concurrently while starting. */
  startConcurrency?: number;
  /** One socket per port for the fleet (see above); default auto. */
  sharedSockets?: SharedSockets;
}

export class Fleet {
  readonly nics: NicNode[] = [];
  /** Datagrams and executed commands of every NIC of the fleet (the emulator's /metrics). */
  readonly tally = new FleetTally();
  private readonly byId = new Map<string, NicNode>();
  private sweep: NodeJS.Timeout | null = null;
  /** The fleet's shared sockets, or null when every NIC binds its own. */
  readonly shared: SharedPorts | null;

  constructor(private readonly opts: FleetOptions) {
    try {
      // The EEPROM files hold every SA key and the PSK: 0600 files in a 0700 directory (lib/secret-file.ts).
      if (makePrivateDir(opts.dataDir, (name) => name.endsWith('.eeprom')) === 'narrowed') {
        opts.log.log('info', 'data directory narrowed to 0700 (it holds the NICs\' keys)', { dir: opts.dataDir });
      }
    } catch (e) {
      // EEXIST / ENOTDIR: a regular file stands where the directory (or one above it) should be; EACCES: no rights.
      throw new UsageError('E_USAGE', `cannot use ${opts.dataDir} as the EEPROM directory (${(e as Error).message}); give --data-dir a directory`);
    }
    const addrs = assignAddresses(opts);
    const mode = opts.sharedSockets ?? 'auto';
    const canShare = opts.portBase === null && (opts.udpIo ?? defaultUdpIo()) === 'batch';
    if (mode === 'on' && !canShare) {
      throw new UsageError('E_USAGE', `--shared-sockets on needs address-per-NIC addressing (no --port-base) and --udp-io batch (${opts.portBase !== null ? 'port-per-NIC given' : 'node:dgram in use'})`);
    }
    const first = addrs[0];
    this.shared = canShare && (mode === 'on' || (mode === 'auto' && addrs.length >= SHARED_SOCKETS_MIN_NICS))
      ? new SharedPorts({ clear: first.clearPort, secure: first.securePort, ike: first.ikePort },
        (port, e) => opts.log.log('warn', 'shared socket error', { port, error: e.message }))
      : null;
    for (const addr of addrs) {
      const n = new NicNode({
        addr, dataDir: opts.dataDir, bootDelayMs: opts.bootDelayMs, initialConfig: opts.initialConfig, ipmiUsers: opts.ipmiUsers,
        initialHostState: opts.initialHostState, checkpointBlock: opts.checkpointBlock, log: opts.log,
        busyPoll: opts.busyPoll, udpIo: opts.udpIo, tally: this.tally, shared: this.shared ?? undefined,
      });
      this.nics.push(n);
      this.byId.set(n.id, n);
      this.byId.set(addr.address + (opts.portBase !== null ? `:${addr.clearPort}` : ''), n);
    }
  }

  /** Start every NIC. A NIC whose EEPROM is corrupt stays 'failed'; the others run. Socket errors are fatal. */
  async start(onProgress?: (done: number, total: number) => void): Promise<void> {
    await this.shared?.open(); // before any NIC boots: a NIC's first answer may leave during start
    const queue = [...this.nics];
    let done = 0;
    const worker = async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        await n.start();
        onProgress?.(++done, this.nics.length);
      }
    };
    await Promise.all(Array.from({ length: this.opts.startConcurrency ?? 64 }, worker));
    this.sweep = setInterval(() => this.releaseIdle(Date.now()), IDLE_SWEEP_MS);
    this.sweep.unref();
  }

  /** Memory for what is in use: every NIC idle for CRYPTO_IDLE_MS drops its crypto tables. Returns how many did. */
  releaseIdle(now: number, idleMs = CRYPTO_IDLE_MS): number {
    let n = 0;
    for (const nic of this.nics) if (nic.machine.releaseIdle(now, idleMs)) n++;
    return n;
  }

  async stop(): Promise<void> {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = null;
    await Promise.all(this.nics.map((n) => n.stop()));
    await this.shared?.close();
  }

  /** Datagrams the shared sockets dropped for want of a NIC or an open port; null without shared sockets. */
  get sharedDrops(): SharedPortCounters | null {
    return this.shared ? { ...this.shared.counters } : null;
  }

  get udpIo(): UdpIo {
    return this.opts.udpIo ?? defaultUdpIo();
  }

  get busyPoll(): BusyPoll | undefined {
    return this.opts.busyPoll;
  }

  get(idOrAddress: string): NicNode | undefined {
    return this.byId.get(idOrAddress);
  }
}
