/**
 * A fleet of emulated NICs in one process, plus the control API that drives them.
 *
 * Sockets: with address-per-NIC addressing and batched UDP, a fleet of SHARED_SOCKETS_MIN_NICS or more (or any
 * size with `--shared-sockets on`) binds one socket per port number for all its NICs (shared-ports.ts: 0.0.0.0
 * on 623, 664 and the IKE port, dispatch by destination address); a NIC then costs no file descriptor. Smaller
 * fleets, port-per-NIC fleets and the node:dgram layer bind a socket per NIC and port as before, so that a small
 * emulator shares the host's 623/664/500 with other processes bound to other 127.x addresses.
 *
 * Boot: a fleet on shared sockets of LAZY_BOOT_MIN_NICS or more (or any size with `--lazy-boot on`) boots lazily.
 * start() opens the shared sockets, lists the data directory once and returns: the emulator is ready before any
 * EEPROM is read (a NIC's boot, reading and checking its image, is about 0.1-0.2 ms: 100,000 NICs took 17 s). Each
 * NIC then boots on whichever comes first: its first datagram (NicNode.onSharedDatagram), a control API call or
 * status that names it (NicNode.ensureBooted), or the background boot, which boots the fleet in index order in
 * slices of BOOT_SLICE_MS and lets the event loop handle datagrams and requests between slices. It is the same
 * boot as an eager one (NicMachine.powerOn), only later: a NIC executes nothing before a sync, a corrupt image
 * leaves the NIC failed with its error, heartbeats and the host agent start at its boot. Until every NIC has
 * booted, `booting` counts those that have not (health, the ready line; /metrics: lifeline_nics{state="starting"}),
 * and the fleet totals count booted NICs only. With a socket per NIC the sockets to bind depend on the image
 * (664 once it holds an SA, the IKE port once enrolled), so such a fleet boots every NIC before it is ready.
 */
import { readdirSync } from 'node:fs';
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
export type LazyBoot = 'auto' | 'on' | 'off';
/** `--lazy-boot auto`: a fleet on shared sockets this large is ready before its NICs have booted (see above). */
export const LAZY_BOOT_MIN_NICS = 1000;
/** The background boot runs this long, then lets the event loop serve datagrams and requests. */
const BOOT_SLICE_MS = 10;

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
  /** Boot the NICs after ready (see above; needs shared sockets); default auto. */
  lazyBoot?: LazyBoot;
}

export class Fleet {
  readonly nics: NicNode[] = [];
  /** Datagrams and executed commands of every NIC of the fleet (the emulator's /metrics). */
  readonly tally = new FleetTally();
  private readonly byId = new Map<string, NicNode>();
  private sweep: NodeJS.Timeout | null = null;
  /** The fleet's shared sockets, or null when every NIC binds its own. */
  readonly shared: SharedPorts | null;
  /** Whether start() returns before the NICs have booted (see above). */
  readonly lazy: boolean;
  /** Settles once every NIC has booted (at once for an eager fleet): how long the boot took from start(). */
  allBooted: Promise<{ ms: number }> = Promise.resolve({ ms: 0 });
  /** The EEPROM files the data directory held at start() (NicNode's fileListed), until every NIC has booted. */
  private listed: Set<string> | null = null;
  private stopping = false;

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
    const lazy = opts.lazyBoot ?? 'auto';
    if (lazy === 'on' && !this.shared) {
      throw new UsageError('E_USAGE', '--lazy-boot on needs shared sockets (address-per-NIC, --udp-io batch, --shared-sockets auto or on): with a socket per NIC the ports to bind depend on the EEPROM');
    }
    this.lazy = this.shared !== null && (lazy === 'on' || (lazy === 'auto' && addrs.length >= LAZY_BOOT_MIN_NICS));
    const fileListed = (id: string) => this.listed?.has(`${id}.eeprom`);
    for (const addr of addrs) {
      const n = new NicNode({
        addr, dataDir: opts.dataDir, bootDelayMs: opts.bootDelayMs, initialConfig: opts.initialConfig, ipmiUsers: opts.ipmiUsers,
        initialHostState: opts.initialHostState, checkpointBlock: opts.checkpointBlock, log: opts.log,
        busyPoll: opts.busyPoll, udpIo: opts.udpIo, tally: this.tally, shared: this.shared ?? undefined, fileListed,
      });
      this.nics.push(n);
      this.byId.set(n.id, n);
      this.byId.set(addr.address + (opts.portBase !== null ? `:${addr.clearPort}` : ''), n);
    }
  }

  /**
   * Start every NIC, or with lazy boot register them and boot them after (see above). A NIC whose EEPROM is corrupt
   * stays 'failed'; the others run. Socket errors are fatal.
   */
  async start(onProgress?: (done: number, total: number) => void): Promise<void> {
    const t0 = performance.now();
    await this.shared?.open(); // before any NIC boots: a NIC's first answer may leave during start
    this.listed = this.listDataDir();
    this.sweep = setInterval(() => this.releaseIdle(Date.now()), IDLE_SWEEP_MS);
    this.sweep.unref();
    if (this.lazy) {
      this.allBooted = this.bootInBackground(t0);
      return;
    }
    const queue = [...this.nics];
    let done = 0;
    const worker = async () => {
      for (let n = queue.shift(); n; n = queue.shift()) {
        await n.start();
        onProgress?.(++done, this.nics.length);
      }
    };
    await Promise.all(Array.from({ length: this.opts.startConcurrency ?? 64 }, worker));
    this.listed = null;
    this.allBooted = Promise.resolve({ ms: Math.round(performance.now() - t0) });
  }

  /** The data directory's EEPROM file names, one readdir for the fleet; null when it cannot be listed (each NIC looks). */
  private listDataDir(): Set<string> | null {
    try {
      return new Set(readdirSync(this.opts.dataDir).filter((f) => f.endsWith('.eeprom')));
    } catch {
      return null;
    }
  }

  /**
   * Lazy boot: every NIC not booted yet, in index order, BOOT_SLICE_MS at a time; datagrams and requests between.
   * The first slice runs after the ready line (start() has returned), so that line counts every NIC as booting.
   */
  private async bootInBackground(t0: number): Promise<{ ms: number }> {
    const nics = this.nics;
    let i = 0;
    for (;;) {
      await new Promise<void>((r) => setImmediate(r));
      if (i >= nics.length || this.stopping) break;
      const end = performance.now() + BOOT_SLICE_MS;
      do nics[i++].ensureBooted(); while (i < nics.length && performance.now() < end);
    }
    this.listed = null;
    return { ms: Math.round(performance.now() - t0) };
  }

  /** NICs not booted yet (lazy boot; 0 once every NIC has). */
  get booting(): number {
    let n = 0;
    for (const nic of this.nics) if (!nic.booted) n++;
    return n;
  }

  /** Memory for what is in use: every NIC idle for CRYPTO_IDLE_MS drops its crypto tables. Returns how many did. */
  releaseIdle(now: number, idleMs = CRYPTO_IDLE_MS): number {
    let n = 0;
    for (const nic of this.nics) if (nic.machine.releaseIdle(now, idleMs)) n++;
    return n;
  }

  async stop(): Promise<void> {
    this.stopping = true;
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
