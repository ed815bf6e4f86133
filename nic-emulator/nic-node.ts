/**
 * One emulated NIC as the emulator process hosts it: the I/O shell around the NIC machine (firmware/nic-machine.ts),
 * which decides everything. This file moves bytes, time and files: it opens the UDP ports the machine asks for
 * (623 clear, 664 secure once the NIC holds an SA, the host agent's IKE port while the host OS is up and the NIC is
 * enrolled), keeps one timer at the machine's next deadline, reads the NIC's EEPROM file at each boot, and performs
 * the machine's effects in order (sends, the execution log, log lines). IPMI lanplus shares the clear port with
 * ASF: the machine tells the two apart (RMCP class 7 or 6).
 *
 * A port is either a socket of the NIC's own (bound to its address and port) or, in a fleet with shared sockets
 * (shared-ports.ts), a flag: the fleet's one socket per port number hands the NIC the datagrams sent to its
 * address while the flag is up, and sends its answers from that address.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { NicMachine, NicDownError, type NicEffect, type NicPort, type ExecutedCommand, type LabEvent, type NicRunState } from '../firmware/nic-machine.js';
import { EEPROM_SIZE, type NicConfig } from '../firmware/eeprom-image.js';
import { newSerial } from '../firmware/system-guid.js';
import type { IpmiUsersConfig } from '../firmware/ipmi/ipmi-users-record.js';
import type { HostState } from '../firmware/host-state.js';
import { LifelineError } from '../common/errors.js';
import type { SaPair } from '../wire/sa.js';
import { FileEepromDevice } from './file-eeprom-device.js';
import { pooledRandom } from '../lib/random-pool.js';
import type { NicAddress } from './addressing.js';
import type { Logger } from '../lib/log.js';
import type { BusyPoll } from './busy-poll.js';
import { FleetTally } from './fleet-tally.js';
import { batchCounters, bindDatagramSocket, defaultUdpIo, ipv4Value, type DatagramSocket, type Sender, type UdpIo } from '../lib/batch-udp.js';
import type { SharedPorts, SharedPortsNic } from './shared-ports.js';

export type { NicRunState };

/** A NIC whose EEPROM file cannot be written logs that at most this often. */
const EEPROM_FAILURE_LOG_INTERVAL_MS = 60_000;
/** The execution log the control API serves keeps this many entries. */
const EXEC_LOG_MAX = 10_000;

/** An executed command as the control API shows it (`at` as an ISO time). */
export type ExecLogEntry = Omit<ExecutedCommand, 'at'> & { at: string };

export interface NicNodeOptions {
  addr: NicAddress;
  dataDir: string;
  bootDelayMs: number;
  initialConfig: NicConfig;
  /**
   * The fleet's IPMI users (`start --ipmi-user`): written into a new image at format, and into an existing one at
   * start when it holds other users (so a restart with --ipmi-user enables lanplus on NICs made without it).
   * Absent: each NIC keeps what its EEPROM holds.
   */
  ipmiUsers?: IpmiUsersConfig;
  /** The host starts in this state when the emulator starts a NIC (default: up). */
  initialHostState: HostState;
  checkpointBlock?: number;
  /** Host agent: how long a pending SA waits for SA_ACK (DESIGN §2.5). */
  commitTimeoutMs?: number;
  log: Logger;
  /** The process's adaptive busy polling (nic-emulator/busy-poll.ts), told of every datagram. */
  busyPoll?: BusyPoll;
  /** How the NIC's 623/664 sockets move datagrams (lib/batch-udp.ts); default: batched where it is built. */
  udpIo?: UdpIo;
  /** The fleet's datagram and command counts (fleet-tally.ts, the emulator's /metrics); default: this NIC's own. */
  tally?: FleetTally;
  /** The fleet's shared sockets (shared-ports.ts): the NIC then binds none of its own. */
  shared?: SharedPorts;
  /**
   * Whether the data directory held this NIC's EEPROM file when the fleet listed it (fleet.ts: one readdir instead
   * of a stat per NIC); undefined: not listed, the NIC looks for its file itself.
   */
  fileListed?: (id: string) => boolean | undefined;
}

export class NicNode implements SharedPortsNic {
  readonly id: string;
  readonly addr: NicAddress;
  readonly eepromPath: string;
  readonly machine: NicMachine;
  execLog: ExecLogEntry[] = [];
  private sockets: { clear?: DatagramSocket; secure?: DatagramSocket; ike?: dgram.Socket } = {};
  private binding: Partial<Record<NicPort, boolean>> = {};
  /** Shared sockets: the ports this NIC listens on now (what it would have sockets bound for). */
  private listening: Record<NicPort, boolean> = { clear: false, secure: false, ike: false };
  /** This NIC's address as a host-order integer (the shared sockets' source address). */
  private readonly local: number;
  private timer: NodeJS.Timeout | null = null;
  /** The deadline `timer` was armed for. */
  private timerAt = 0;
  private stopped = false;
  /** A secure answer was handed to the socket: prepare the next packet's keystream once it has left. */
  private prepareWanted = false;
  private lastEepromFailureLog = -Infinity;
  private readonly log: Logger;
  private readonly tally: FleetTally;

  constructor(private readonly opts: NicNodeOptions) {
    this.tally = opts.tally ?? new FleetTally();
    this.id = opts.addr.id;
    this.addr = opts.addr;
    this.eepromPath = join(opts.dataDir, `${this.id}.eeprom`);
    this.local = ipv4Value(opts.addr.address);
    opts.shared?.add(this.local, this);
    this.log = opts.log.child({ nic: this.id });
    this.machine = new NicMachine({
      id: this.id,
      address: this.addr.address,
      ports: { clear: this.addr.clearPort, secure: this.addr.securePort, ike: this.addr.ikePort },
      openDevice: (first) => this.openDevice(first),
      deviceName: this.eepromPath,
      initialConfig: opts.initialConfig,
      initialIpmiUsers: opts.ipmiUsers,
      initialHostState: opts.initialHostState,
      bootDelayMs: opts.bootDelayMs,
      random: pooledRandom,
      newSerial: () => newSerial(pooledRandom),
      checkpointBlock: opts.checkpointBlock,
      commitTimeoutMs: opts.commitTimeoutMs,
    });
  }

  get runState(): NicRunState {
    return this.machine.runState;
  }

  get hostState(): HostState {
    return this.machine.hostState;
  }

  get error(): string | null {
    return this.machine.error;
  }

  /** The EEPROM file, opened at every boot: created blank on a NIC's first start, never re-created after. */
  private openDevice(first: boolean): { device: FileEepromDevice; fresh: boolean } {
    // The fleet listed the data directory once (fleet.ts): no stat per NIC. A file named there is opened, and one
    // gone since then fails the open with E_EEPROM_IO naming it, as a file gone between boots does.
    const listed = this.opts.fileListed?.(this.id);
    const fresh = first && (listed === undefined ? !existsSync(this.eepromPath) : !listed);
    const device = fresh ? FileEepromDevice.create(this.eepromPath, EEPROM_SIZE) : FileEepromDevice.open(this.eepromPath);
    device.onWriteError = (e) => this.eepromWriteFailed(e);
    return { device, fresh };
  }

  /** Boot the NIC from its EEPROM file (creating it on first start) and bind its sockets. */
  async start(): Promise<void> {
    this.boot();
    if (this.machine.runState === 'failed') return;
    await this.reconcileSockets();
  }

  /** Not booted yet: a fleet that boots lazily (fleet.ts) has registered it but not read its EEPROM. */
  get booted(): boolean {
    return this.machine.runState !== 'starting';
  }

  /**
   * Lazy boot (fleet.ts): boot now unless the NIC already has (or the emulator is stopping). Synchronous: with
   * shared sockets a port is a flag, set by the boot's effects before this returns, so the datagram or the control
   * call that asked is handled by the booted NIC, as it would have been after an eager boot.
   */
  ensureBooted(): void {
    if (this.machine.runState === 'starting' && !this.stopped) this.boot();
  }

  /** powerOn from the EEPROM file, the --ipmi-user users written if they differ, the boot's preloaded copy dropped. */
  private boot(): void {
    this.apply(this.machine.powerOn(Date.now()));
    const want = this.opts.ipmiUsers;
    if (want && this.machine.runState === 'running' && !sameIpmiUsers(this.machine.ipmiUsers, want)) {
      try {
        this.setIpmiUsers(want);
      } catch (e) {
        // A NIC whose EEPROM cannot take the write (read-only file, torn) keeps running with what it holds: say so.
        this.log.log('error', 'cannot write the --ipmi-user users into the EEPROM', { file: this.eepromPath, error: (e as Error).message });
      }
    }
    (this.machine.device as FileEepromDevice | null)?.release(); // boot is over: reads go to the file from now on
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const ike = this.sockets.ike;
    await Promise.all([this.sockets.clear?.close(), this.sockets.secure?.close(), ike && new Promise<void>((r) => ike.close(() => r()))]);
    this.sockets = {};
    this.listening = { clear: false, secure: false, ike: false };
    (this.machine.device as FileEepromDevice | null)?.close();
    if (this.machine.runState !== 'failed') this.machine.runState = 'stopped';
  }

  // ------------------------------------------------------------------ effects, time, sockets

  private apply(fx: NicEffect[]): void {
    for (const e of fx) {
      switch (e.kind) {
        case 'send':
          this.tally.sent[e.port]++;
          if (this.opts.shared) {
            if (e.port === 'secure') this.prepareWanted = true;
            this.opts.shared.send(e.port, e.bytes, e.to, this.local, this, e.port === 'secure');
          } else if (e.port === 'ike') this.sockets.ike?.send(e.bytes, e.to.port, e.to.address);
          else {
            const s = e.port === 'clear' ? this.sockets.clear : this.sockets.secure;
            s?.send(e.bytes, e.to.port, e.to.address);
            if (e.port === 'secure') this.prepareWanted = true;
          }
          break;
        case 'executed':
          this.tally.commandExecuted(e.entry.command, e.entry.via);
          this.execLog.push({ ...e.entry, at: new Date(e.entry.at).toISOString() });
          if (this.execLog.length > EXEC_LOG_MAX) this.execLog.splice(0, this.execLog.length - EXEC_LOG_MAX);
          break;
        case 'log':
          this.log.log(e.level, e.msg, e.fields);
          break;
      }
    }
    this.schedule();
    void this.reconcileSockets();
  }

  private schedule(): void {
    const at = this.stopped ? null : this.machine.pollTimeout();
    // A timer armed for no later than the machine's deadline is kept: firing early costs one handleTimeout that finds
    // nothing due and arms again. (An IPMI session's idle deadline moves with each of its packets; re-arming a timer
    // per datagram cost about 15 µs of a lanplus answer's time.)
    if (this.timer && at !== null && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (at === null) return;
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.apply(this.machine.handleTimeout(Date.now()));
    }, Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  /**
   * Bind or close the sockets as the machine now needs them. Called after every batch of effects, so calls overlap:
   * a port being bound (`binding`) is left to the call that binds it, which stores the socket before it clears the
   * flag; one that is being closed likewise.
   */
  private async reconcileSockets(again = true): Promise<void> {
    if (this.stopped) return;
    const m = this.machine;
    if (this.opts.shared) {
      // Shared sockets: opening or closing a port is a flag, at once; as with sockets of its own, 623 and 664 stay
      // open once opened (the firmware counts what reaches a NIC without power, nic_unpowered), the IKE port follows
      // the host agent.
      if (m.runState === 'running') this.listening.clear = true;
      if (m.wantsSecurePort) this.listening.secure = true;
      this.listening.ike = m.wantsIkePort;
      return;
    }
    const jobs: Promise<void>[] = [];
    if (m.runState === 'running' && !this.sockets.clear && !this.binding.clear) jobs.push(this.bindOnce('clear', () => this.bindUdp(this.addr.clearPort, 'clear')));
    if (m.wantsSecurePort && !this.sockets.secure && !this.binding.secure) jobs.push(this.bindOnce('secure', () => this.bindUdp(this.addr.securePort, 'secure')));
    if (!this.binding.ike) {
      if (m.wantsIkePort && !this.sockets.ike) jobs.push(this.bindOnce('ike', () => this.bindIke()));
      else if (!m.wantsIkePort && this.sockets.ike) {
        // Nothing answers on the IKE port of a host that is not up (DESIGN §2.4).
        const s = this.sockets.ike;
        this.sockets.ike = undefined;
        this.binding.ike = true;
        jobs.push(new Promise<void>((r) => s.close(() => r())).finally(() => (this.binding.ike = false)));
      }
    }
    if (jobs.length === 0) return;
    await Promise.all(jobs);
    // The machine may have moved on while we bound or closed (the host went down, an SA was committed): once more
    // (not in a loop: a port that cannot be bound is tried again at the next batch of effects, not at once).
    if (again) await this.reconcileSockets(false);
  }

  private async bindOnce(port: NicPort, bind: () => Promise<DatagramSocket | dgram.Socket>): Promise<void> {
    this.binding[port] = true;
    try {
      const s = await bind();
      if (this.stopped) await closeAny(s);
      else (this.sockets as Record<string, unknown>)[port] = s;
    } catch (e) {
      const p = port === 'clear' ? this.addr.clearPort : port === 'secure' ? this.addr.securePort : this.addr.ikePort;
      this.log.log('error', port === 'ike' ? 'host agent cannot bind its IKE port' : `cannot bind the ${port} port`, { port: p, error: (e as Error).message });
    } finally {
      this.binding[port] = false;
    }
  }

  private bindUdp(port: number, which: 'clear' | 'secure'): Promise<DatagramSocket> {
    return bindDatagramSocket(this.opts.udpIo ?? defaultUdpIo(), this.addr.address, port, {
      message: (msg, from) => this.onDatagram(which, msg, from),
      error: (err) => this.log.log('warn', 'socket error', { port, error: err.message }),
      sent: () => this.answersSent(),
    });
  }

  private async bindIke(): Promise<dgram.Socket> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind({ address: this.addr.address, port: this.addr.ikePort, exclusive: true }, () => {
        s.removeListener('error', reject);
        resolve();
      });
    });
    s.on('error', (e) => this.log.log('warn', 'IKE socket error', { error: e.message }));
    s.on('message', (msg, rinfo) => {
      this.tally.received.ike++;
      this.apply(this.machine.receive('ike', rinfo, new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength), Date.now()));
    });
    return s;
  }

  /** A datagram to this NIC's address on a shared socket: false (a counted drop) when the NIC has not opened that port. */
  onSharedDatagram(port: NicPort, msg: Buffer, from: Sender): boolean {
    if (this.machine.runState === 'starting') this.ensureBooted(); // lazy boot: its first datagram boots it
    if (!this.listening[port]) return false;
    if (port === 'ike') {
      this.tally.received.ike++;
      this.apply(this.machine.receive('ike', from, msg, Date.now()));
    } else this.onDatagram(port, msg, from);
    return true;
  }

  private onDatagram(port: 'clear' | 'secure', msg: Buffer, from: Sender): void {
    this.opts.busyPoll?.onDatagram();
    this.tally.received[port]++;
    // A Sender is an Endpoint (address, port): no copy per datagram.
    const fx = this.machine.receive(port, from, msg, Date.now());
    if (fx.length > 0) this.apply(fx);
  }

  /**
   * The socket has sent the answers of the datagrams it just delivered (a batch of them under --udp-io batch):
   * the time until the station's next packet is idle, spent on that packet's keystream. Not before: under
   * batching the answer leaves at the end of the batch, and this would delay it.
   */
  answersSent(): void {
    if (!this.prepareWanted) return;
    this.prepareWanted = false;
    try {
      this.machine.prepareNext();
    } catch (e) {
      // Only an optimisation (the next packet is then processed in full), but it should never fail: say so.
      this.log.log('error', 'keystream preparation failed', { error: (e as Error).message });
    }
  }

  /**
   * An EEPROM write failed (read-only file, full disk, ...): the NIC stays up but drops every secure packet whose
   * checkpoint cannot be stored (counted as eeprom_io), so say why in the log; the first time, then once a minute.
   */
  private eepromWriteFailed(e: Error): void {
    const now = Date.now();
    if (now - this.lastEepromFailureLog < EEPROM_FAILURE_LOG_INTERVAL_MS) return;
    this.lastEepromFailureLog = now;
    this.log.log('error', 'EEPROM file cannot be written; secure packets are dropped (eeprom_io) until it can', {
      file: this.eepromPath, error: e.message,
    });
  }

  // ------------------------------------------------------------------ the control API's operations

  /** Drive the host from the lab (control API). Illegal events throw UsageError and change nothing. */
  applyHostEvent(event: LabEvent): { from: HostState; to: HostState } {
    this.ensureBooted();
    const r = this.machine.hostEvent(event, Date.now());
    this.apply(r.effects);
    return { from: r.from, to: r.to };
  }

  /** Manual keying (RFC 4301 §4.5): the host driver writes a complete SA and commits it at once. */
  async installSa(sa: SaPair): Promise<{ generation: number }> {
    const r = this.admin(() => this.machine.installSa(sa, Date.now()));
    this.apply(r.effects);
    await this.reconcileSockets();
    return { generation: r.generation };
  }

  setTrustAnchor(psk: Uint8Array): void {
    this.apply(this.admin(() => this.machine.setTrustAnchor(psk, Date.now())));
  }

  setClearManagement(commands: string[]): void {
    this.admin(() => this.machine.setClearManagement(commands, Date.now()));
  }

  /** The NIC's IPMI users and lanplus switch, written to its EEPROM (control API; `start --ipmi-user` per fleet). */
  setIpmiUsers(config: IpmiUsersConfig): void {
    const r = this.admin(() => this.machine.setIpmiUsers(config, Date.now()));
    this.apply(r.effects);
  }

  setClusterPolicy(text: string, source: string): void {
    this.admin(() => this.machine.setClusterPolicy(text, source, Date.now()));
    this.apply([]);
  }

  /** The machine's reboot after a write torn under an administrative call is performed before the error goes on. */
  private admin<T>(f: () => T): T {
    this.ensureBooted();
    try {
      return f();
    } catch (e) {
      if (e instanceof NicDownError) this.apply(e.effects);
      throw e;
    }
  }

  tearNextEepromWrite(atByte: number): void {
    this.ensureBooted();
    // A NIC without power opens its EEPROM anew when power returns: a fault armed now would be lost unseen.
    const dev = this.machine.device;
    if (!(dev instanceof FileEepromDevice) || this.machine.runState !== 'running') {
      throw new LifelineError('E_NIC_DOWN', `${this.id} is ${this.machine.runState}; arm the fault once it runs`);
    }
    dev.tearNextWrite(atByte);
  }

  /** What the control API shows; a NIC not booted yet (lazy boot) boots first, so it shows what its EEPROM holds. */
  status(): Record<string, unknown> {
    this.ensureBooted();
    const s = this.machine.status(Date.now());
    const owner = this.machine.owner;
    const hb = s.heartbeat as { failovers?: { at: number }[] } | null;
    return {
      ...s,
      eeprom: this.eepromPath,
      executed: this.execLog.length,
      owner: owner && { ...owner, at: new Date(owner.at).toISOString() },
      heartbeat: hb && { ...hb, failovers: (hb.failovers ?? []).map((f) => ({ ...f, at: new Date(f.at).toISOString() })) },
      udp: this.udpStatus(),
    };
  }

  /** The socket layer and what it dropped without a datagram being wrong (lib/batch-udp.ts), since the sockets were bound. */
  private udpStatus(): { io: UdpIo; shared?: true; truncated: number; sendQueueFull: number } {
    const shared = this.opts.shared;
    // Shared sockets: their counts are the fleet's, not this NIC's.
    if (shared) return { io: 'batch', shared: true, ...shared.udpCounters() };
    const out = { io: this.opts.udpIo ?? defaultUdpIo(), truncated: 0, sendQueueFull: 0 };
    for (const s of [this.sockets.clear, this.sockets.secure]) {
      const c = s ? batchCounters(s) : null;
      if (c) {
        out.truncated += c.truncated;
        out.sendQueueFull += c.sendQueueFull;
      }
    }
    return out;
  }
}

/** Same users, passwords and switch (the record's order counts: it fixes the IPMI user IDs). */
function sameIpmiUsers(a: Readonly<IpmiUsersConfig> | null, b: IpmiUsersConfig): boolean {
  if (!a || a.enabled !== b.enabled || a.users.length !== b.users.length) return false;
  return a.users.every((u, i) => {
    const v = b.users[i];
    return u.name === v.name && u.password === v.password && u.privilege === v.privilege && u.enabled === v.enabled;
  });
}

function closeAny(s: unknown): Promise<void> {
  if (s && typeof (s as dgram.Socket).close === 'function' && s instanceof dgram.Socket) return new Promise<void>((r) => s.close(() => r()));
  return Promise.resolve((s as DatagramSocket | undefined)?.close()).then(() => undefined);
}
