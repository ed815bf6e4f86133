/** A fleet of emulated NICs in one process, plus the control API that drives them. */
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
}

export class Fleet {
  readonly nics: NicNode[] = [];
  /** Datagrams and executed commands of every NIC of the fleet (the emulator's /metrics). */
  readonly tally = new FleetTally();
  private readonly byId = new Map<string, NicNode>();

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
    for (const addr of assignAddresses(opts)) {
      const n = new NicNode({
        addr, dataDir: opts.dataDir, bootDelayMs: opts.bootDelayMs, initialConfig: opts.initialConfig, ipmiUsers: opts.ipmiUsers,
        initialHostState: opts.initialHostState, checkpointBlock: opts.checkpointBlock, log: opts.log,
        busyPoll: opts.busyPoll, udpIo: opts.udpIo, tally: this.tally,
      });
      this.nics.push(n);
      this.byId.set(n.id, n);
      this.byId.set(addr.address + (opts.portBase !== null ? `:${addr.clearPort}` : ''), n);
    }
  }

  /** Start every NIC. A NIC whose EEPROM is corrupt stays 'failed'; the others run. Socket errors are fatal. */
  async start(onProgress?: (done: number, total: number) => void): Promise<void> {
    const queue = [...this.nics];
    let done = 0;
    const worker = async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        await n.start();
        onProgress?.(++done, this.nics.length);
      }
    };
    await Promise.all(Array.from({ length: this.opts.startConcurrency ?? 64 }, worker));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nics.map((n) => n.stop()));
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
