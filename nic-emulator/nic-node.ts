/**
 * One emulated NIC and its host, as the emulator process hosts it: the EEPROM file, the UDP sockets
 * (623 clear, 664 secure, the host agent's IKE port), the emulated host's power/OS state with its boot
 * timer, and the lab faults (NIC power loss, cable pull, torn EEPROM writes). All protocol decisions are
 * the firmware's (firmware/nic-firmware.ts); this file only moves bytes and time.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NicFirmware, type NicEffect, type Endpoint } from '../firmware/nic-firmware.js';
import { transition, hostAgentAlive, type HostEvent, type HostState } from '../firmware/host-state.js';
import { EepromImage, EEPROM_SIZE, CLEAR_COMMAND_BITS, CLUSTER_POLICY_MAX, type NicConfig } from '../firmware/eeprom-image.js';
import { TornWriteError } from '../firmware/eeprom-device.js';
import { SaDatabase } from '../firmware/sa-database.js';
import { SecureChannel } from '../firmware/secure-channel.js';
import { carriesInbound, inboundSpis, type SaPair } from '../wire/sa.js';
import { LifelineError, UsageError } from '../common/errors.js';
import { FileEepromDevice } from './file-eeprom-device.js';
import { HostAgent } from './host-agent.js';
import { NicHeartbeat } from './nic-heartbeat.js';
import { parseClusterPolicy } from '../firmware/cluster-policy.js';
import type { NicAddress } from './addressing.js';
import type { Logger } from '../lib/log.js';
import type { BusyPoll } from './busy-poll.js';
import { batchCounters, bindDatagramSocket, defaultUdpIo, type DatagramSocket, type Sender, type UdpIo } from '../lib/batch-udp.js';

/** A NIC whose EEPROM file cannot be written logs that at most this often. */
const EEPROM_FAILURE_LOG_INTERVAL_MS = 60_000;

export type NicRunState = 'starting' | 'running' | 'unpowered' | 'failed' | 'stopped';

export interface ExecutedCommand { at: string; command: string; via: 'clear' | 'secure'; rmcpSeq: number; tag: number; generation: number; from: string; hostBefore: HostState; hostAfter: HostState }

export interface NicNodeOptions {
  addr: NicAddress;
  dataDir: string;
  bootDelayMs: number;
  initialConfig: NicConfig;
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
}

export class NicNode {
  readonly id: string;
  readonly addr: NicAddress;
  readonly eepromPath: string;
  runState: NicRunState = 'starting';
  error: string | null = null;
  hostState: HostState;
  link = true;
  execLog: ExecutedCommand[] = [];
  linkDrops = 0;
  powerDrops = 0;
  private device: FileEepromDevice | null = null;
  private image: EepromImage | null = null;
  private db: SaDatabase | null = null;
  private firmware: NicFirmware | null = null;
  private sockets: { clear?: DatagramSocket; secure?: DatagramSocket } = {};
  private bootTimer: NodeJS.Timeout | null = null;
  private secureBinding = false;
  /** A secure answer was handed to the socket: prepare the next packet's keystream once it has left. */
  private prepareWanted = false;
  private lastEepromFailureLog = -Infinity;
  private readonly log: Logger;
  readonly agent: HostAgent;
  readonly heartbeat: NicHeartbeat;
  /** The station that announced it owns this NIC (owner notice), if any since the NIC booted. */
  owner: { station: string; epoch: number; at: string } | null = null;

  constructor(private readonly opts: NicNodeOptions) {
    this.id = opts.addr.id;
    this.addr = opts.addr;
    this.eepromPath = join(opts.dataDir, `${this.id}.eeprom`);
    this.hostState = opts.initialHostState;
    this.log = opts.log.child({ nic: this.id });
    this.agent = new HostAgent({
      nicId: this.id,
      address: this.addr.address,
      port: this.addr.ikePort,
      db: () => (this.runState === 'running' ? this.db : null),
      psk: () => (this.image && this.image.config.trustAnchor.kind === 'psk' ? this.image.config.trustAnchor.key : null),
      policy: () => (this.image && this.image.config.securityPolicy !== 'none' ? this.image.config.securityPolicy : 'esp'),
      log: this.log,
      commitTimeoutMs: opts.commitTimeoutMs,
      onEepromFailure: (e) => this.powerFailure(e),
      onCommit: () => void this.ensureSecureSocket(),
    });
    this.heartbeat = new NicHeartbeat({
      nicId: this.id,
      log: this.log,
      send: (to, bytes) => {
        if (this.link && this.runState === 'running') this.sockets.secure?.send(bytes, to.port, to.address);
      },
      activeSa: () => this.db?.active ?? null,
      lookupSa: (spi) => this.db?.lookupInbound(spi) ?? null,
    });
  }

  /** Boot the NIC from its EEPROM file (creating it on first start) and bind its sockets. */
  async start(): Promise<void> {
    this.powerOnFirmware(true);
    if (this.runState === 'failed') return;
    await this.bindSockets();
    this.setHost(this.hostState, this.hostState === 'pre-boot');
  }

  async stop(): Promise<void> {
    this.heartbeat.stop();
    await this.agent.stop();
    if (this.bootTimer) clearTimeout(this.bootTimer);
    this.bootTimer = null;
    await Promise.all(Object.values(this.sockets).map((s) => s?.close()));
    this.sockets = {};
    this.device?.close();
    this.device = null;
    if (this.runState !== 'failed') this.runState = 'stopped';
  }

  // ------------------------------------------------------------------ firmware lifecycle

  private powerOnFirmware(createIfMissing: boolean): void {
    try {
      this.device?.close();
      const fresh = !existsSync(this.eepromPath);
      if (fresh && !createIfMissing) throw new LifelineError('E_EEPROM_IO', `EEPROM file ${this.eepromPath} disappeared`);
      this.device = fresh ? FileEepromDevice.create(this.eepromPath, EEPROM_SIZE) : FileEepromDevice.open(this.eepromPath);
      this.device.onWriteError = (e) => this.eepromWriteFailed(e);
      if (fresh) this.image = EepromImage.format(this.device, this.id, this.opts.initialConfig);
      else {
        this.image = EepromImage.load(this.device, this.eepromPath);
        this.device.release();
        // The serial is the NIC's id, written at format: another NIC's image would give two NICs one SA and one
        // sequence space (the same AES-GCM nonces under one key).
        if (this.image.serial !== this.id) {
          throw new LifelineError('E_EEPROM_FOREIGN', `${this.eepromPath}: this image belongs to NIC '${this.image.serial}' (its serial), not ${this.id}; put each NIC's own file back, or delete this one to start ${this.id} blank`);
        }
        for (const r of this.image.recoveredRecords) this.log.log('warn', 'EEPROM record recovered from older copy', { record: r });
      }
      this.db = new SaDatabase(this.image, { checkpointBlock: this.opts.checkpointBlock });
      const channel = new SecureChannel(this.db, { address: this.addr.address, port: this.addr.securePort });
      const image = this.image;
      this.firmware = new NicFirmware(channel, () => ({ clearManagement: image.config.clearManagement, allowedClearCommands: image.config.allowedClearCommands }));
      this.firmware.hostState = this.hostState;
      this.runState = 'running';
      this.error = null;
      this.owner = null;
      try {
        this.heartbeat.configure(this.image.config.clusterPolicy, `${this.eepromPath} (cluster policy)`);
      } catch (e) {
        this.log.log('warn', 'cluster policy in the EEPROM is invalid; heartbeats off', { error: (e as Error).message });
      }
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * An EEPROM write did not complete (mains power lost mid-write, injected; or the host agent's write refused):
   * the NIC goes down and boots again from its file.
   */
  private powerFailure(e: unknown): void {
    const what = e instanceof TornWriteError ? 'EEPROM write torn (injected power loss)' : 'EEPROM write failed';
    this.log.log('warn', `${what}; rebooting NIC from its file`, { error: (e as Error).message });
    this.runState = 'unpowered';
    this.agent.resetTrust();
    this.powerOnFirmware(false);
  }

  private fail(e: unknown): void {
    this.runState = 'failed';
    this.error = e instanceof Error ? e.message : String(e);
    this.firmware = null;
    this.log.log('error', 'NIC stopped', { error: this.error, code: (e as LifelineError).code });
  }

  // ------------------------------------------------------------------ sockets

  private async bindSockets(): Promise<void> {
    this.sockets.clear = await this.bindUdp(this.addr.clearPort, (m, r) => this.onDatagram('clear', m, r));
    await this.ensureSecureSocket();
  }

  /**
   * UDP 664 is bound once the NIC holds an SA: before that nothing could authenticate there, and a fleet of
   * 10,000 fresh NICs then needs one socket per NIC, not two (file descriptors are the fleet's limit).
   */
  private async ensureSecureSocket(): Promise<void> {
    if (this.sockets.secure || this.secureBinding || !this.db || (!this.db.active && !this.db.previous)) return;
    this.secureBinding = true;
    try {
      this.sockets.secure = await this.bindUdp(this.addr.securePort, (m, r) => this.onDatagram('secure', m, r));
    } catch (e) {
      this.log.log('error', 'cannot bind the secure port', { port: this.addr.securePort, error: (e as Error).message });
    } finally {
      this.secureBinding = false;
    }
  }

  private bindUdp(port: number, onMessage: (msg: Buffer, from: Sender) => void): Promise<DatagramSocket> {
    return bindDatagramSocket(this.opts.udpIo ?? defaultUdpIo(), this.addr.address, port, {
      message: onMessage,
      error: (err) => this.log.log('warn', 'socket error', { port, error: err.message }),
      sent: () => this.answersSent(),
    });
  }

  private onDatagram(port: 'clear' | 'secure', msg: Buffer, rinfo: Sender): void {
    this.opts.busyPoll?.onDatagram();
    if (!this.link) {
      this.linkDrops++;
      return;
    }
    const fw = this.firmware;
    if (!fw || this.runState !== 'running') {
      this.powerDrops++;
      return;
    }
    const from: Endpoint = rinfo; // a Sender is an Endpoint (address, port): no copy per datagram
    let effects: NicEffect[];
    const accepted = fw.counters.accepted.secure;
    try {
      effects = port === 'clear' ? fw.receiveClear(from, msg) : fw.receiveSecure(from, msg);
      if (fw.counters.accepted.secure !== accepted) this.heartbeat.noteReceived();
    } catch (e) {
      if (e instanceof TornWriteError) {
        this.powerFailure(e);
        return;
      }
      this.log.log('error', 'firmware error', { error: (e as Error).message });
      return;
    }
    this.perform(effects);
    if (port === 'secure' && effects.length > 0) this.prepareWanted = true;
  }

  /**
   * The socket has sent the answers of the datagrams it just delivered (a batch of them under --udp-io batch):
   * the time until the station's next packet is idle, spent on that packet's keystream. Not before: under
   * batching the answer leaves at the end of the batch, and this would delay it.
   */
  private answersSent(): void {
    if (!this.prepareWanted) return;
    this.prepareWanted = false;
    try {
      this.firmware?.prepareNext();
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

  private perform(effects: NicEffect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'send': {
          const s = e.port === 'clear' ? this.sockets.clear : this.sockets.secure;
          s?.send(e.bytes, e.to.port, e.to.address);
          break;
        }
        case 'host-command': {
          const before = this.hostState;
          const t = transition(this.hostState, e.command);
          this.setHost(t.to, t.startBootTimer);
          this.execLog.push({
            at: new Date().toISOString(), command: e.command, via: e.via, rmcpSeq: e.rmcpSeq, tag: e.tag,
            generation: e.generation, from: `${e.from.address}:${e.from.port}`, hostBefore: before, hostAfter: t.to,
          });
          if (this.execLog.length > 10000) this.execLog.splice(0, this.execLog.length - 10000);
          break;
        }
        case 'log':
          this.log.log(e.level, e.msg, e.fields);
          break;
        case 'heartbeat': {
          const reason = this.heartbeat.onAnswer(e.bytes);
          const d = this.firmware?.counters.dropped;
          if (reason && d) d[reason] = (d[reason] ?? 0) + 1;
          break;
        }
        case 'owner':
          this.owner = { station: `${e.notice.address}:${e.notice.port}`, epoch: e.notice.epoch, at: new Date().toISOString() };
          this.heartbeat.setOwner(this.owner.station);
          this.log.log('info', 'new owner station', { station: this.owner.station, epoch: e.notice.epoch });
          break;
      }
    }
  }

  // ------------------------------------------------------------------ host

  private setHost(state: HostState, startBoot: boolean): void {
    const was = this.hostState;
    this.hostState = state;
    if (this.firmware) this.firmware.hostState = state;
    if (this.bootTimer) {
      clearTimeout(this.bootTimer);
      this.bootTimer = null;
    }
    if (startBoot) {
      this.bootTimer = setTimeout(() => {
        this.bootTimer = null;
        this.applyHostEvent('boot-complete');
      }, this.opts.bootDelayMs);
      this.bootTimer.unref();
    }
    if (hostAgentAlive(state) && this.runState === 'running' && this.image?.config.trustAnchor.kind === 'psk') {
      // The IKE port is bound only once the NIC was enrolled (trust anchor written): nothing to negotiate before.
      this.agent.start().catch((e) => this.log.log('error', 'host agent cannot bind its IKE port', { port: this.addr.ikePort, error: (e as Error).message }));
    } else if (!hostAgentAlive(state)) {
      void this.agent.stop();
    }
    if (was !== state) {
      this.log.log('info', 'host state', { from: was, to: state, agent: hostAgentAlive(state) });
      // A host state change is an event the NIC reports to its station (an ASF alert): traffic to send, which is
      // what DEFERRED heartbeats wait for (DESIGN §2.3).
      this.heartbeat.noteTrafficToSend();
    }
  }

  /** Drive the host from the lab (control API). Illegal events throw UsageError and change nothing. */
  applyHostEvent(event: HostEvent | 'power-restore' | 'cable-pull' | 'cable-plug'): { from: HostState; to: HostState } {
    const from = this.hostState;
    if (event === 'cable-pull' || event === 'cable-plug') {
      this.link = event === 'cable-plug';
      return { from, to: from };
    }
    if (event === 'power-restore') {
      if (this.runState !== 'unpowered') throw new UsageError('E_ILLEGAL_TRANSITION', `${this.id} has power; power-restore only follows power-loss`);
      this.powerOnFirmware(false);
      return { from, to: this.hostState };
    }
    const t = transition(this.hostState, event);
    if (event === 'power-loss') {
      this.heartbeat.stop();
      this.firmware?.powerLost();
      this.firmware = null;
      this.runState = 'unpowered';
    }
    this.setHost(t.to, t.startBootTimer);
    return { from, to: t.to };
  }

  // ------------------------------------------------------------------ SA installation (host driver / manual keying)

  /** Manual keying (RFC 4301 §4.5): the host driver writes a complete SA and commits it at once. */
  async installSa(sa: SaPair): Promise<{ generation: number }> {
    const db = this.requireDb();
    // The NIC finds an SA by the SPI of an inbound packet (SaDatabase.lookupInbound, active first): an SA whose
    // inbound SPI another held SA already carries could never be reached, and packets meant for either would
    // be checked against the wrong keys.
    for (const held of [db.active, db.previous]) {
      if (!held) continue;
      const clash = inboundSpis(sa).find((spi) => carriesInbound(held, spi));
      if (clash !== undefined) {
        throw new UsageError('E_SPI_IN_USE', `${this.id} already holds inbound SPI ${clash} (0x${clash.toString(16)}) in its SA of generation ${held.generation}; give the new SA another toNic SPI`);
      }
      // The station finds the SA of an answer by its SPI too (mgmt-station/udp-mux.ts).
      if (sa.fromNic.spi === held.fromNic.spi) {
        throw new UsageError('E_SPI_IN_USE', `${this.id} already sends under SPI ${sa.fromNic.spi} (0x${sa.fromNic.spi.toString(16)}) in its SA of generation ${held.generation}; give the new SA another fromNic SPI`);
      }
    }
    const generation = db.nextGeneration();
    this.writingEeprom('installing an SA', () => {
      db.writePending({ ...sa, generation });
      db.commitPending();
    });
    // The host agent numbers the SAs it negotiates from the generation it last saw: past this one now.
    this.agent.noteGenerationUsed(generation);
    await this.ensureSecureSocket();
    return { generation };
  }

  private requireDb(): SaDatabase {
    if (!this.db || this.runState !== 'running') throw new LifelineError('E_NIC_DOWN', `${this.id} is ${this.runState}${this.error ? ': ' + this.error : ''}`);
    return this.db;
  }

  /** Enrolment: the admin writes the station's pre-shared key into the NIC configuration (trust anchor, DESIGN §3). */
  setTrustAnchor(psk: Uint8Array): void {
    // The EEPROM's trust anchor field holds 32 bytes (eeprom-image.ts).
    if (psk.length !== 32) throw new UsageError('E_USAGE', `the pre-shared key must be 32 bytes (64 hex digits), got ${psk.length}; make one with: head -c 32 /dev/urandom | xxd -p -c 64`);
    if (!this.image || this.runState !== 'running') throw new LifelineError('E_NIC_DOWN', `${this.id} is ${this.runState}`);
    const image = this.image;
    this.writingEeprom('writing the trust anchor', () => image.writeConfig({ ...image.config, trustAnchor: { kind: 'psk', key: psk.slice() } }));
    this.agent.resetTrust();
    if (hostAgentAlive(this.hostState)) this.agent.start().catch((e) => this.log.log('error', 'host agent cannot bind its IKE port', { port: this.addr.ikePort, error: (e as Error).message }));
  }

  /** The NIC's clear-management option (the seed's cold-boot option, DESIGN §2.1), as the admin configures it. */
  setClearManagement(commands: string[]): void {
    if (!this.image || this.runState !== 'running') throw new LifelineError('E_NIC_DOWN', `${this.id} is ${this.runState}`);
    let bits = 0;
    for (const c of commands) {
      const b = (CLEAR_COMMAND_BITS as Record<string, number>)[c];
      if (!b) throw new UsageError('E_USAGE', `unknown clear command '${c}'; use reset, power-up, power-down, power-cycle`);
      bits |= b;
    }
    const image = this.image;
    this.writingEeprom('writing the clear-management option', () => image.writeConfig({ ...image.config, clearManagement: bits !== 0, allowedClearCommands: bits }));
  }

  /** Write the station-cluster policy (seed INI syntax) into the EEPROM and start heartbeats per it. */
  setClusterPolicy(text: string, source: string): void {
    if (!this.image || this.runState !== 'running') throw new LifelineError('E_NIC_DOWN', `${this.id} is ${this.runState}`);
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > CLUSTER_POLICY_MAX) throw new UsageError('E_POLICY', `${source}: the policy is ${bytes} bytes; the NIC's EEPROM holds at most ${CLUSTER_POLICY_MAX}`);
    parseClusterPolicy(text, source); // E_POLICY with file and line before anything is written
    const image = this.image;
    this.writingEeprom('writing the cluster policy', () => image.writeConfig({ ...image.config, clusterPolicy: text }));
    this.heartbeat.configure(text, source);
  }

  /**
   * An EEPROM write the control API asked for: when it is torn (injected power loss) the NIC reboots from its
   * file, as after a torn write of its own, and the caller gets E_NIC_DOWN (the write did not take effect).
   */
  private writingEeprom(what: string, write: () => void): void {
    try {
      write();
    } catch (e) {
      if (!(e instanceof TornWriteError)) throw e;
      this.powerFailure(e);
      throw new LifelineError('E_NIC_DOWN', `${this.id} lost power while ${what} (injected); it rebooted from ${this.eepromPath} as it was before`);
    }
  }

  tearNextEepromWrite(atByte: number): void {
    // A NIC without power opens its EEPROM anew when power returns: a fault armed now would be lost unseen.
    if (!this.device || this.runState !== 'running') throw new LifelineError('E_NIC_DOWN', `${this.id} is ${this.runState}; arm the fault once it runs`);
    this.device.tearNextWrite(atByte);
  }

  status(): Record<string, unknown> {
    const fw = this.firmware;
    const img = this.image;
    return {
      id: this.id,
      address: this.addr.address,
      ports: { clear: this.addr.clearPort, secure: this.addr.securePort, ike: this.addr.ikePort },
      state: this.runState,
      error: this.error,
      host: this.hostState,
      link: this.link ? 'up' : 'down',
      eeprom: this.eepromPath,
      config: img ? { securityPolicy: img.config.securityPolicy, clearManagement: img.config.clearManagement, allowedClearCommands: img.config.allowedClearCommands } : null,
      sa: this.db ? this.db.summary() : null,
      counters: fw ? { ...fw.counters, dropped: { ...fw.counters.dropped, link_down: this.linkDrops, nic_unpowered: this.powerDrops } } : null,
      eepromWrites: img ? img.pageWrites : null,
      executed: this.execLog.length,
      hostAgent: this.agent.status(),
      owner: this.owner,
      heartbeat: this.heartbeat.status(),
      udp: this.udpStatus(),
    };
  }

  /** The socket layer and what it dropped without a datagram being wrong (lib/batch-udp.ts), since the sockets were bound. */
  private udpStatus(): { io: UdpIo; truncated: number; sendQueueFull: number } {
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
