/**
 * One emulated management NIC and its host as a single sans-I/O machine (DESIGN §1, §7; in the manner of
 * quinn-proto's Connection): it owns the firmware and its EEPROM image, the resynchronisation, the executed-command
 * record, the host's power/OS state and its boot deadline, the host's IKE agent (the NIC side of the commit), the
 * heartbeat monitor, the owner, the link and the NIC's power, and — when the EEPROM enables it — the IPMI 2.0 RMCP+
 * ("lanplus") responder beside ASF on the clear port (DESIGN §9, firmware/ipmi/). Bytes and events go in with the
 * time; effects come out:
 *
 *   receive(port, from, bytes, now)  hostEvent(event, now)  handleTimeout(now)  pollTimeout()
 *   -> NicEffect[]: send (port, to, bytes), executed (a host command ran: the execution log), log
 *
 * Storage is injected (an EepromDevice: a file in the emulator, memory in tests and the simulator), so are
 * randomness and time; there is no socket, clock or timer here. The shell (nic-emulator/nic-node.ts) binds the
 * sockets this machine says it needs (wantsSecurePort, wantsIkePort), keeps one timer at pollTimeout(), and performs
 * the effects in order.
 *
 * Failure model: an EEPROM write that throws (a torn write: power lost mid-write, injected; or an unwritable file)
 * abandons what the call was doing — nothing it would have sent goes out, so nothing is announced or acknowledged
 * that the EEPROM does not hold — and the NIC boots again from its EEPROM at once (powerFailure).
 */
import { LifelineError, UsageError } from '../common/errors.js';
import { TornWriteError, type EepromDevice } from './eeprom-device.js';
import { EepromImage, CLEAR_COMMAND_BITS, CLUSTER_POLICY_MAX, type NicConfig } from './eeprom-image.js';
import { ExecRecord } from './exec-record.js';
import { SaDatabase } from './sa-database.js';
import { SecureChannel } from './secure-channel.js';
import { NicFirmware, type FirmwareEffect, type Endpoint } from './nic-firmware.js';
import { NicSync } from './nic-sync.js';
import { HostAgent, AgentWriteError, type AgentOutput } from './host-agent.js';
import { StationHeartbeats } from './station-heartbeats.js';
import { parseClusterPolicy } from './cluster-policy.js';
import { transition, hostAgentAlive, type HostEvent, type HostState } from './host-state.js';
import { carriesInbound, inboundSpis, type SaPair } from '../wire/sa.js';
import { EepromIpmiUsers } from './eeprom-ipmi-users.js';
import { encodeIpmiUsers, type IpmiUsersConfig } from './ipmi/ipmi-users-record.js';
import { IpmiLan, type IpmiEffect } from './ipmi/ipmi-lan.js';
import { systemGuid, systemUuidText } from './system-guid.js';
import type { AeadImpl } from '../wire/aead.js';
import { mutated } from '../common/mutation.js';
import { addCounts, addFirmwareCounters, addFirmwareTotals, addIpmiCounters, addIpmiTotals, newFirmwareTotals, newIpmiTotals, type NicTotals } from './nic-totals.js';
import { RMCP_SEQ_NO_ACK } from '../wire/rmcp.js';
import { AlertSender, type AlertPath } from './alert-sender.js';
import { SNMP_TRAP_PORT, type AlertEvent } from '../wire/pet.js';
import { systemUuid } from './system-guid.js';

export type { Endpoint };
export type NicRunState = 'starting' | 'running' | 'unpowered' | 'failed' | 'stopped';
export type NicPort = 'clear' | 'secure' | 'ike';
export type LabEvent = HostEvent | 'power-restore' | 'cable-pull' | 'cable-plug';

export interface ExecutedCommand {
  /** ms, the time given with the datagram. */
  at: number;
  command: string;
  /** The path it came in on: clear ASF (623), secure ASF (664), or IPMI lanplus (623, RMCP class 7). */
  via: 'clear' | 'secure' | 'ipmi';
  rmcpSeq: number;
  tag: number;
  generation: number;
  /** The sync epoch of a secure command's transmission (wire/sync-frame.ts); null in the clear. */
  epoch: number | null;
  /** The epoch it was first sent under (its identity's); null in the clear. */
  firstEpoch: number | null;
  from: string;
  hostBefore: HostState;
  hostAfter: HostState;
  /** An IPMI command's user, session (BMC session ID, hex) and request, e.g. 'chassis control: power down'. */
  ipmi?: { user: string; sessionId: string; request: string };
}

export type NicEffect =
  | { kind: 'send'; port: NicPort; to: Endpoint; bytes: Uint8Array }
  | { kind: 'executed'; entry: ExecutedCommand }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> };

/** An administrative write did not take effect: the NIC lost power during it and rebooted (`effects`: the reboot's). */
export class NicDownError extends LifelineError {
  constructor(message: string, readonly effects: NicEffect[]) {
    super('E_NIC_DOWN', message);
  }
}

export interface NicMachineOptions {
  id: string;
  address: string;
  ports: { clear: number; secure: number; ike: number };
  /**
   * The EEPROM, opened at every boot (`first`: the machine's first power-on). `fresh`: a new, blank part that the
   * boot formats with `initialConfig` (only on a first boot; a missing image later is an error the opener throws).
   */
  openDevice: (first: boolean) => { device: EepromDevice; fresh: boolean };
  /** How messages name the EEPROM (its file). */
  deviceName: string;
  /** Written when the device is new. */
  initialConfig: NicConfig;
  /** The IPMI users record written when the device is new (default: lanplus off, no users). */
  initialIpmiUsers?: IpmiUsersConfig;
  /** The host's state when the machine first powers on. */
  initialHostState: HostState;
  bootDelayMs: number;
  random: (n: number) => Uint8Array;
  /**
   * The serial a new EEPROM image gets (system-guid.ts newSerial: the emulator draws one per NIC). Absent: the NIC id,
   * as before serials were their own value; the simulator and unit tests, whose ids are unique in their one world,
   * keep their random streams (and GUIDs) that way.
   */
  newSerial?: () => string;
  checkpointBlock?: number;
  /** Host agent: how long a pending SA waits for SA_ACK (DESIGN §2.5). */
  commitTimeoutMs?: number;
  aeadImpl?: AeadImpl;
  /** Observer of the datagrams the NIC accepted as station packets (the simulator's replay check); absent: none. */
  onAccepted?: (bytes: Uint8Array) => void;
}

interface Booted {
  image: EepromImage;
  db: SaDatabase;
  exec: ExecRecord;
  channel: SecureChannel;
  sync: NicSync;
  firmware: NicFirmware;
  ipmiUsers: EepromIpmiUsers;
  /** The lanplus responder: made on the first class-7 datagram while lanplus is on (no tables for idle NICs). */
  lan: IpmiLan | null;
  /** ASF alerts to the owning station (alert-sender.ts): RAM only, so a boot starts with an empty queue. */
  alerts: AlertSender;
}

export class NicMachine {
  readonly id: string;
  runState: NicRunState = 'starting';
  error: string | null = null;
  hostState: HostState;
  link = true;
  linkDrops = 0;
  powerDrops = 0;
  /** The station that announced it owns this NIC (owner notice), since the NIC booted. */
  owner: { station: string; epoch: number; at: number } | null = null;
  private b: Booted | null = null;
  /** The serial of the image last booted (status keeps showing it while the NIC is down). */
  private lastSerial: string | null = null;
  /** The EEPROM as last opened (the shell arms its fault injection on it). */
  device: EepromDevice | null = null;
  private bootAt: number | null = null;
  /** The time of the call being handled (drops raise security alerts with it). */
  private clock = 0;
  private readonly agent: HostAgent;
  private readonly heartbeats: StationHeartbeats;
  private readonly local: Endpoint;
  /**
   * What the firmware and lanplus responders of earlier boots counted, and the EEPROM's page writes as last seen
   * (addTotals: totals since the NIC started, which never go down while it reboots).
   */
  private readonly past = { firmware: newFirmwareTotals(), ipmi: newIpmiTotals(), eepromWrites: {} as Record<string, number> };

  constructor(private readonly o: NicMachineOptions) {
    this.id = o.id;
    this.hostState = o.initialHostState;
    this.local = { address: o.address, port: o.ports.secure };
    this.agent = new HostAgent({
      nicId: o.id, random: o.random, commitTimeoutMs: o.commitTimeoutMs,
      db: () => (this.runState === 'running' ? this.b?.db ?? null : null),
      psk: () => (this.b && this.b.image.config.trustAnchor.kind === 'psk' ? this.b.image.config.trustAnchor.key : null),
      policy: () => (this.b && this.b.image.config.securityPolicy !== 'none' ? this.b.image.config.securityPolicy : 'esp'),
    });
    this.heartbeats = new StationHeartbeats({
      nicId: o.id, random: o.random,
      activeSa: () => this.b?.db.active ?? null,
      lookupSa: (spi) => this.b?.db.lookupInbound(spi) ?? null,
    });
  }

  // ------------------------------------------------------------------ power

  /** Boot from the EEPROM (formatting a blank part as a new NIC). A corrupt image leaves the NIC 'failed'. */
  powerOn(now: number): NicEffect[] {
    const fx: NicEffect[] = [];
    const first = this.runState === 'starting';
    this.boot(now, fx, first);
    if (first && this.runState === 'running') this.setHost(this.hostState, this.hostState === 'pre-boot', now, fx);
    return fx;
  }

  private boot(now: number, fx: NicEffect[], first: boolean): void {
    const name = this.o.deviceName;
    try {
      const { device: dev, fresh } = this.o.openDevice(first);
      this.device = dev;
      let image: EepromImage;
      if (fresh && first) image = EepromImage.format(dev, this.o.newSerial?.() ?? this.id, this.o.initialConfig, name, this.o.initialIpmiUsers, this.id);
      else {
        image = EepromImage.load(dev, name);
        // The image names the NIC it was formatted for (identity record; an earlier release's image by its serial):
        // another NIC's image would give two NICs one SA and one sequence space (the same AES-GCM nonces under one key).
        if (image.nicId !== this.id) {
          throw new LifelineError('E_EEPROM_FOREIGN', `${name}: this image belongs to NIC '${image.nicId}' (serial ${image.serial}), not ${this.id}; put each NIC's own file back, or delete this one to start ${this.id} blank`);
        }
        for (const r of image.recoveredRecords) fx.push({ kind: 'log', level: 'warn', msg: 'EEPROM record recovered from older copy', fields: { record: r } });
      }
      const exec = ExecRecord.load(dev, name);
      for (const r of exec.recovered) fx.push({ kind: 'log', level: 'warn', msg: 'EEPROM record recovered', fields: { record: r } });
      const ipmiUsers = EepromIpmiUsers.load(dev, name);
      for (const r of ipmiUsers.recovered) fx.push({ kind: 'log', level: 'warn', msg: 'EEPROM record recovered', fields: { record: r } });
      const db = new SaDatabase(image, { checkpointBlock: this.o.checkpointBlock });
      const channel = new SecureChannel(db, this.local, this.o.aeadImpl);
      const sync = new NicSync(db, exec, channel, this.o.random);
      const firmware = new NicFirmware(
        channel,
        () => ({ clearManagement: image.config.clearManagement, allowedClearCommands: image.config.allowedClearCommands }),
        { firstEpoch: (id) => sync.firstEpochOf(id), executed: (id) => exec.find(id) !== null, cancelled: (id) => sync.isCancelled(id) },
        () => ipmiUsers.config.enabled,
      );
      firmware.hostState = this.hostState;
      const alerts = new AlertSender({ nicId: this.id, address: this.o.address, guid: systemUuid(image.serial), random: this.o.random, bootAt: now });
      firmware.onDrop = (reason) => {
        if (reason === 'replay') alerts.noteBadPacket('replay', this.clock);
        else if (reason === 'icv' || reason === 'ah_icv') alerts.noteBadPacket('icv', this.clock);
      };
      this.b = { image, db, exec, channel, sync, firmware, ipmiUsers, lan: null, alerts };
      this.lastSerial = image.serial;
      // (Mutation check only: the NIC keeps its last epoch across a boot, as it kept its counters before issue 14.)
      if (mutated('boot-keeps-epoch') && db.syncEpoch > 0 && db.active) channel.addEpoch(db.syncEpoch, db.active.generation, db.inboundFloor(db.active.generation), now, false);
      this.runState = 'running';
      this.error = null;
      this.owner = null;
      try {
        this.heartbeats.configure(image.config.clusterPolicy, `${name} (cluster policy)`, now);
      } catch (e) {
        fx.push({ kind: 'log', level: 'warn', msg: 'cluster policy in the EEPROM is invalid; heartbeats off', fields: { error: (e as Error).message } });
      }
    } catch (e) {
      this.fail(e, fx);
    }
  }

  private fail(e: unknown, fx: NicEffect[]): void {
    this.runState = 'failed';
    this.error = e instanceof Error ? e.message : String(e);
    this.retire();
    this.heartbeats.stop();
    fx.push({ kind: 'log', level: 'error', msg: 'NIC stopped', fields: { error: this.error, code: (e as LifelineError).code } });
  }

  /**
   * An EEPROM write did not complete (mains power lost mid-write, injected; or the file refused it): the NIC goes
   * down and boots again from its EEPROM. Whatever the interrupted call would have sent is dropped.
   */
  private powerFailure(e: unknown, now: number): NicEffect[] {
    const fx: NicEffect[] = [];
    const what = e instanceof TornWriteError ? 'EEPROM write torn (injected power loss)' : 'EEPROM write failed';
    fx.push({ kind: 'log', level: 'warn', msg: `${what}; rebooting NIC from its EEPROM`, fields: { error: (e as Error).message } });
    this.runState = 'unpowered';
    this.retire();
    this.agent.reset();
    this.heartbeats.stop();
    this.boot(now, fx, false);
    return fx;
  }

  /**
   * Run `f`; an EEPROM write failure anywhere in it abandons what it would have sent. A torn write (power lost) and
   * any failed write of the host agent reboot the NIC; a write the file refused (E_EEPROM_IO: read-only, disk full)
   * drops the datagram, counted: the NIC stays up, acting on nothing it could not record.
   */
  private guarded(now: number, f: (fx: NicEffect[]) => void): NicEffect[] {
    const fx: NicEffect[] = [];
    try {
      f(fx);
      return fx;
    } catch (e) {
      if (e instanceof AgentWriteError) return [...toEffects(e.done, 'ike'), ...this.powerFailure(e.cause, now)];
      if (e instanceof TornWriteError) return this.powerFailure(e, now);
      if (e instanceof LifelineError && this.b) {
        this.b.firmware.drop(e); // E_EEPROM_IO, E_SEQ_EXHAUSTED, E_EEPROM_FULL: counted by code
        return [];
      }
      throw e;
    }
  }

  // ------------------------------------------------------------------ datagrams

  /** A datagram arrived on one of the NIC's ports. */
  receive(port: NicPort, from: Endpoint, bytes: Uint8Array, now: number): NicEffect[] {
    if (!this.link) {
      this.linkDrops++;
      return [];
    }
    const b = this.b;
    if (!b || this.runState !== 'running') {
      this.powerDrops++;
      return [];
    }
    if (port === 'ike') return this.receiveIke(from, bytes, now);
    this.clock = now;
    const fx = this.guarded(now, (fx) => {
      const out = port === 'clear' ? b.firmware.receiveClear(from, bytes) : b.firmware.receiveSecure(from, bytes, now);
      if (this.o.onAccepted && out[0]?.kind === 'station-packet') this.o.onAccepted(bytes);
      this.perform(out, now, fx);
    });
    // Alerts raised by what this datagram did, or waiting for the path a station packet just opened. Guarded on their
    // own: an alert that cannot be sealed (no sequence number left) must not take the datagram's answers with it.
    if (b.alerts.pending > 0 && this.b === b) fx.push(...this.guarded(now, (g) => this.sendAlerts(b, now, g)));
    return fx;
  }

  private receiveIke(from: Endpoint, bytes: Uint8Array, now: number): NicEffect[] {
    // Nothing answers on the IKE port of a host that is not up, nor of a NIC that was never enrolled (DESIGN §2.4).
    if (!this.wantsIkePort) {
      this.powerDrops++;
      return [];
    }
    return this.guarded(now, (fx) => fx.push(...toEffects(this.agent.receive(bytes, from, now), 'ike')));
  }

  private perform(out: FirmwareEffect[], now: number, fx: NicEffect[]): void {
    const b = this.b!;
    for (const e of out) {
      switch (e.kind) {
        case 'send':
          fx.push(e);
          break;
        case 'log':
          fx.push(e);
          break;
        case 'host-command': {
          const before = this.hostState;
          const t = transition(before, e.command);
          // Recorded before it runs (exec-record.ts): a torn write throws, the command does not run, no ACK goes out.
          if (e.identity) b.exec.append({ ...e.identity, via: 'secure', saGeneration: e.generation, hostBefore: before, hostAfter: t.to });
          this.setHost(t.to, t.startBootTimer, now, fx, e.command);
          fx.push({
            kind: 'executed',
            entry: {
              at: now, command: e.command, via: e.via, rmcpSeq: e.rmcpSeq, tag: e.tag, generation: e.generation,
              epoch: e.identity?.epoch ?? null, firstEpoch: e.identity?.firstEpoch ?? null, from: `${e.from.address}:${e.from.port}`, hostBefore: before, hostAfter: t.to,
            },
          });
          break;
        }
        case 'heartbeat': {
          const reason = this.heartbeats.onAnswer(e.bytes, now);
          if (reason) b.firmware.count(reason);
          break;
        }
        case 'sync': {
          if (!e.sa) {
            b.firmware.count('spi');
            break;
          }
          try {
            for (const bytes of b.sync.receive(e.sa, e.bytes, now)) fx.push({ kind: 'send', port: 'secure', to: e.from, bytes });
          } catch (err) {
            b.firmware.drop(err); // a torn write is rethrown by drop(): the reboot follows
          }
          break;
        }
        case 'ipmi': {
          const lan = this.lan(b);
          this.performIpmi(lan.receive(e.from, e.bytes, now, { state: this.hostState }), e.from, now, fx);
          break;
        }
        case 'unsynced': {
          const hint = b.sync.hint(e.sa, now);
          if (hint) fx.push({ kind: 'send', port: 'secure', to: e.from, bytes: hint });
          break;
        }
        case 'station-packet':
          this.heartbeats.noteReceived(now);
          break;
        case 'alert-ack':
          b.alerts.ack(e.ack);
          break;
        case 'owner':
          this.owner = { station: `${e.notice.address}:${e.notice.port}`, epoch: e.notice.epoch, at: now };
          this.heartbeats.setOwner(this.owner.station, now);
          fx.push({ kind: 'log', level: 'info', msg: 'new owner station', fields: { station: this.owner.station, epoch: e.notice.epoch } });
          break;
      }
    }
  }

  /** The lanplus responder, made when first needed (the firmware hands on class 7 only while lanplus is on). */
  private lan(b: Booted): IpmiLan {
    b.lan ??= new IpmiLan({ users: b.ipmiUsers.config.users, guid: systemGuid(b.image.serial), random: this.o.random });
    return b.lan;
  }

  /**
   * The responder's effects: answers leave on the clear port; a chassis command moves the host exactly as an ASF
   * command does (host-state.ts transition(), the boot deadline included) and goes into the execution log. It is
   * not written to the executed-command record: lanplus has no command identities, retransmissions or syncs to
   * answer (the side-by-side in docs/IPMI.md).
   */
  private performIpmi(out: IpmiEffect[], from: Endpoint | null, now: number, fx: NicEffect[]): void {
    for (const e of out) {
      if (e.kind === 'send') fx.push({ kind: 'send', port: 'clear', to: e.to, bytes: e.bytes });
      else if (e.kind === 'log') fx.push(e);
      else {
        const before = this.hostState;
        const t = transition(before, e.command);
        this.setHost(t.to, t.startBootTimer, now, fx, e.command);
        fx.push({
          kind: 'executed',
          entry: {
            at: now, command: e.command, via: 'ipmi', rmcpSeq: RMCP_SEQ_NO_ACK, tag: 0, generation: 0, epoch: null, firstEpoch: null,
            from: from ? `${from.address}:${from.port}` : '', hostBefore: before, hostAfter: t.to,
            ipmi: { user: e.user, sessionId: e.sessionId.toString(16).padStart(8, '0'), request: e.ipmi },
          },
        });
      }
    }
  }

  /** Idle time after answers went out: the secure channel's next keystreams (SaEndpoint.prepareNext). */
  prepareNext(): void {
    this.b?.firmware.prepareNext();
  }

  /**
   * Memory for what is in use: drop the secure channel's per-key tables after `idleMs` without a secure packet
   * (SecureChannel.releaseIdle; rebuilt by the next). Called by the emulator's periodic sweep, not by a deadline of
   * the machine's own: it changes no behaviour, so the simulator need not run it. True when something was dropped.
   */
  releaseIdle(now: number, idleMs: number): boolean {
    return this.b?.channel.releaseIdle(now, idleMs) ?? false;
  }

  // ------------------------------------------------------------------ time

  /**
   * The earliest deadline: the host's boot, a heartbeat, the host agent's retransmission or commit timeout, an IPMI
   * session's idle or half-open timeout.
   */
  pollTimeout(): number | null {
    if (this.runState !== 'running') return this.bootAt;
    let t = this.bootAt;
    for (const d of [this.heartbeats.pollTimeout(), this.wantsIkePort ? this.agent.pollTimeout() : null, this.b?.lan?.pollTimeout() ?? null, this.b?.alerts.pollTimeout() ?? null]) {
      if (d !== null && (t === null || d < t)) t = d;
    }
    return t;
  }

  handleTimeout(now: number): NicEffect[] {
    const fx: NicEffect[] = [];
    if (this.bootAt !== null && now >= this.bootAt) {
      this.bootAt = null;
      this.event('boot-complete', now, fx);
    }
    if (this.runState !== 'running') return fx;
    const hb = this.heartbeats.pollTimeout();
    if (hb !== null && now >= hb) {
      const r = this.heartbeats.handleTimeout(now);
      if (this.link) for (const p of r.probes) fx.push({ kind: 'send', port: 'secure', to: p.to, bytes: p.bytes });
      for (const f of r.failovers) fx.push({ kind: 'log', level: 'warn', msg: 'heartbeat failover', fields: { from: f.from, to: f.to, reason: f.reason } });
    }
    const ike = this.wantsIkePort ? this.agent.pollTimeout() : null;
    if (ike !== null && now >= ike) fx.push(...this.guarded(now, (g) => g.push(...toEffects(this.agent.handleTimeout(now), 'ike'))));
    const lan = this.b?.lan;
    const ipmi = lan?.pollTimeout() ?? null;
    if (lan && ipmi !== null && now >= ipmi) this.performIpmi(lan.handleTimeout(now), null, now, fx);
    const b = this.b;
    const alert = b?.alerts.pollTimeout() ?? null;
    if (b && alert !== null && now >= alert) {
      this.clock = now;
      fx.push(...this.guarded(now, (g) => this.sendAlerts(b, now, g)));
    }
    return this.link ? fx : fx.filter((e) => e.kind !== 'send');
  }

  // ------------------------------------------------------------------ host and lab

  /** Drive the host or the NIC from the lab (control API). Illegal events throw UsageError and change nothing. */
  hostEvent(event: LabEvent, now: number): { from: HostState; to: HostState; effects: NicEffect[] } {
    const from = this.hostState;
    const fx: NicEffect[] = [];
    this.clock = now;
    if (event === 'cable-pull' || event === 'cable-plug') {
      const was = this.link;
      this.link = event === 'cable-plug';
      // Raised when it happens, sent once the link is back (the pull's PET keeps the time it happened).
      if (was !== this.link) this.raiseAlert(event, now, fx);
      return { from, to: from, effects: fx };
    }
    if (event === 'power-restore') {
      if (this.runState !== 'unpowered') throw new UsageError('E_ILLEGAL_TRANSITION', `${this.id} has power; power-restore only follows power-loss`);
      this.boot(now, fx, false);
      // The NIC was down with its host and could tell nobody: it reports the loss, then its return.
      this.raiseAlert('power-loss', now, fx);
      this.raiseAlert('power-restore', now, fx);
      return { from, to: this.hostState, effects: fx };
    }
    this.event(event, now, fx);
    const b = this.b;
    if (b && b.alerts.pending > 0) fx.push(...this.guarded(now, (g) => this.sendAlerts(b, now, g)));
    return { from, to: this.hostState, effects: fx };
  }

  private event(event: HostEvent, now: number, fx: NicEffect[]): void {
    const t = transition(this.hostState, event);
    if (event === 'power-loss') {
      // Host and NIC lose power: RAM is gone (sync state, caches, the agent's IKE SAs); the EEPROM stays.
      this.heartbeats.stop();
      this.retire();
      this.runState = 'unpowered';
    }
    this.setHost(t.to, t.startBootTimer, now, fx, event);
  }

  private setHost(state: HostState, startBoot: boolean, now: number, fx: NicEffect[], cause: string | null = null): void {
    const was = this.hostState;
    this.hostState = state;
    if (this.b) this.b.firmware.hostState = state;
    // A transition that stays in pre-boot (power-up while booting) keeps the boot running: without its deadline the
    // host would never come up (found by the simulator, seed 268).
    this.bootAt = startBoot ? now + this.o.bootDelayMs : state === 'pre-boot' && was === 'pre-boot' ? this.bootAt : null;
    if (!hostAgentAlive(state)) this.agent.reset();
    if (was !== state) {
      fx.push({ kind: 'log', level: 'info', msg: 'host state', fields: { from: was, to: state, agent: hostAgentAlive(state) } });
      // A host state change is an event the NIC reports to its station (an ASF alert): traffic to send, which is
      // what DEFERRED heartbeats wait for (DESIGN §2.3).
      if (this.runState === 'running') this.heartbeats.noteTrafficToSend(now);
    }
    const alert = cause === null ? null : hostAlert(was, state, cause);
    if (alert && this.runState === 'running') this.b?.alerts.raise(alert, now);
  }

  // ------------------------------------------------------------------ alerts (docs/ALERTS.md)

  /** Queue an alert and send what can go now (a lab event's: the link or power just changed). */
  private raiseAlert(event: AlertEvent, now: number, fx: NicEffect[]): void {
    const b = this.b;
    if (!b || this.runState !== 'running') return;
    b.alerts.raise(event, now);
    fx.push(...this.guarded(now, (g) => this.sendAlerts(b, now, g)));
  }

  /**
   * Where alerts go now: under the SA to the station process of the live epoch heard from last (its owner's
   * daemon); with no such epoch and clear management enabled in the EEPROM, a plain trap to UDP 162 of the owner
   * or the cluster policy's current station; else nowhere yet (they wait). Nothing while the link is down.
   */
  private alertPath(b: Booted): AlertPath {
    if (!this.link) return null;
    const t = b.channel.alertTarget();
    if (t) return { kind: 'secure', epoch: t.epoch, generation: t.generation, to: t.to, seal: (inner) => b.channel.sealAlert(t.epoch, inner, t.to) };
    if (!b.image.config.clearManagement) return null;
    const station = this.owner?.station ?? this.heartbeats.current;
    const address = station ? station.slice(0, station.lastIndexOf(':')) : null;
    return address ? { kind: 'clear', to: { address, port: SNMP_TRAP_PORT } } : null;
  }

  /** Send the alerts due now; with a path, those that waited for one too. Runs inside guarded(). */
  private sendAlerts(b: Booted, now: number, fx: NicEffect[]): void {
    const path = this.alertPath(b);
    if (path && b.alerts.waiting) b.alerts.wake(now);
    for (const d of b.alerts.due(now, path)) fx.push({ kind: 'send', port: d.port, to: d.to, bytes: d.bytes });
  }

  // ------------------------------------------------------------------ sockets the shell should hold

  /** UDP 664 is needed once the NIC holds an SA: before that nothing could authenticate there (file descriptors). */
  get wantsSecurePort(): boolean {
    const db = this.b?.db;
    return this.runState === 'running' && !!db && (db.active !== null || db.previous !== null);
  }

  /** The IKE port is bound while the OS is up and the NIC was enrolled (trust anchor written). */
  get wantsIkePort(): boolean {
    return this.runState === 'running' && this.link && hostAgentAlive(this.hostState) && this.b?.image.config.trustAnchor.kind === 'psk';
  }

  // ------------------------------------------------------------------ administration (host driver, admin)

  private requireBooted(): Booted {
    if (!this.b || this.runState !== 'running') throw new LifelineError('E_NIC_DOWN', `${this.id} is ${this.runState}${this.error ? ': ' + this.error : ''}`);
    return this.b;
  }

  /**
   * An EEPROM write the control API asked for: when it fails (a torn write: injected power loss) the NIC reboots
   * from its EEPROM, and the caller gets E_NIC_DOWN (the write did not take effect) with the reboot's effects.
   */
  private admin<T>(what: string, now: number, write: (b: Booted) => T): { result: T; effects: NicEffect[] } {
    const b = this.requireBooted();
    try {
      return { result: write(b), effects: [] };
    } catch (e) {
      if (!(e instanceof TornWriteError)) throw e;
      throw new NicDownError(`${this.id} lost power while ${what} (injected); it rebooted from ${this.o.deviceName} as it was before`, this.powerFailure(e, now));
    }
  }

  /** Manual keying (RFC 4301 §4.5): the host driver writes a complete SA and commits it at once. */
  installSa(sa: SaPair, now: number): { generation: number; effects: NicEffect[] } {
    const db = this.requireBooted().db;
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
    const r = this.admin('installing an SA', now, () => {
      db.writePending({ ...sa, generation });
      db.commitPending();
    });
    // The host agent numbers the SAs it negotiates from the generation it last saw: past this one now.
    this.agent.noteGenerationUsed(generation);
    return { generation, effects: r.effects };
  }

  /**
   * Enrolment: the admin writes the station's pre-shared key into the NIC configuration (trust anchor, DESIGN §3).
   * A running host agent deletes its IKE SAs, authenticated under the old key, with a D(IKE) each (§1.4.1).
   */
  setTrustAnchor(psk: Uint8Array, now: number): NicEffect[] {
    // The EEPROM's trust anchor field holds 32 bytes (eeprom-image.ts).
    if (psk.length !== 32) throw new UsageError('E_USAGE', `the pre-shared key must be 32 bytes (64 hex digits), got ${psk.length}; make one with: head -c 32 /dev/urandom | xxd -p -c 64`);
    const agentUp = this.wantsIkePort;
    this.admin('writing the trust anchor', now, (b) => b.image.writeConfig({ ...b.image.config, trustAnchor: { kind: 'psk', key: psk.slice() } }));
    if (!agentUp) {
      this.agent.reset();
      return [];
    }
    return this.guarded(now, (fx) => fx.push(...toEffects(this.agent.shutdown(now), 'ike')));
  }

  /** The NIC's clear-management option (the seed's cold-boot option, DESIGN §2.1), as the admin configures it. */
  setClearManagement(commands: string[], now: number): void {
    this.requireBooted();
    let bits = 0;
    for (const c of commands) {
      const bit = (CLEAR_COMMAND_BITS as Record<string, number>)[c];
      if (!bit) throw new UsageError('E_USAGE', `unknown clear command '${c}'; use reset, power-up, power-down, power-cycle`);
      bits |= bit;
    }
    this.admin('writing the clear-management option', now, (b) => b.image.writeConfig({ ...b.image.config, clearManagement: bits !== 0, allowedClearCommands: bits }));
  }

  /** Write the station-cluster policy (seed INI syntax) into the EEPROM and start heartbeats per it. */
  setClusterPolicy(text: string, source: string, now: number): void {
    this.requireBooted();
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > CLUSTER_POLICY_MAX) throw new UsageError('E_POLICY', `${source}: the policy is ${bytes} bytes; the NIC's EEPROM holds at most ${CLUSTER_POLICY_MAX}`);
    parseClusterPolicy(text, source); // E_POLICY with file and line before anything is written
    this.admin('writing the cluster policy', now, (b) => b.image.writeConfig({ ...b.image.config, clusterPolicy: text }));
    this.heartbeats.configure(text, source, now);
  }

  /**
   * The NIC's IPMI users and the lanplus switch (DESIGN §9), as the admin configures them: written to the EEPROM's
   * users record (eeprom-ipmi-users.ts). Every IPMI session ends (its user may be gone or its password changed); off
   * drops the responder. Bad users are E_USAGE and change nothing; a torn write is E_NIC_DOWN (NicDownError) and the
   * NIC rebooted with the record it had.
   */
  setIpmiUsers(config: IpmiUsersConfig, now: number): { effects: NicEffect[] } {
    this.requireBooted();
    encodeIpmiUsers(config); // E_USAGE before anything is written
    this.admin('writing the IPMI users', now, (b) => b.ipmiUsers.write(config));
    const b = this.b!;
    const fx: NicEffect[] = [];
    if (b.lan && !config.enabled) {
      fx.push({ kind: 'log', level: 'info', msg: 'IPMI lanplus disabled', fields: { sessionsEnded: (b.lan.status().sessions as unknown[]).length } });
      addIpmiCounters(this.past.ipmi, b.lan.counters);
      b.lan = null;
    } else if (b.lan) this.performIpmi(b.lan.setUsers(b.ipmiUsers.config.users, now), null, now, fx);
    fx.push({ kind: 'log', level: 'info', msg: 'IPMI users written', fields: { lanplus: config.enabled, users: config.users.map((u) => `${u.name}:${u.privilege}${u.enabled ? '' : ' (disabled)'}`) } });
    return { effects: fx };
  }

  /** The IPMI users record as the EEPROM holds it (passwords included: for the shell's comparison, never for status). */
  get ipmiUsers(): Readonly<IpmiUsersConfig> | null {
    return this.b?.ipmiUsers.config ?? null;
  }

  // ------------------------------------------------------------------ status

  /** The booted state is gone (power lost, a torn write, a corrupt image): keep what it counted (addTotals). */
  private retire(): void {
    const b = this.b;
    this.b = null;
    if (!b) return;
    addFirmwareCounters(this.past.firmware, b.firmware.counters);
    if (b.lan) addIpmiCounters(this.past.ipmi, b.lan.counters);
    this.past.eepromWrites = eepromWrites(b.image, b.exec, b.ipmiUsers).byRegion;
  }

  /**
   * This NIC added to a fleet's totals (the emulator's /metrics, firmware/nic-totals.ts): its states, and its
   * counters since it started, over its reboots. Cheap and allocation-free for an idle NIC: a scrape adds every NIC.
   */
  addTotals(t: NicTotals, now: number): void {
    t.runState[this.runState] = (t.runState[this.runState] ?? 0) + 1;
    t.host[this.hostState] = (t.host[this.hostState] ?? 0) + 1;
    if (!this.link) t.linkDown++;
    const f = t.firmware;
    addFirmwareTotals(f, this.past.firmware);
    if (this.linkDrops) f.dropped.link_down = (f.dropped.link_down ?? 0) + this.linkDrops;
    if (this.powerDrops) f.dropped.nic_unpowered = (f.dropped.nic_unpowered ?? 0) + this.powerDrops;
    addIpmiTotals(t.ipmi, this.past.ipmi);
    const b = this.b;
    if (b) {
      addFirmwareCounters(f, b.firmware.counters);
      if (b.db.active) t.withSa++;
      const w = t.eepromPageWrites;
      const img = b.image.pageWrites.byRegion;
      for (const k in img) w[k] = (w[k] ?? 0) + img[k as keyof typeof img];
      w.exec = (w.exec ?? 0) + b.exec.pageWrites;
      w.ipmiUsers = (w.ipmiUsers ?? 0) + b.ipmiUsers.pageWrites;
      if (b.ipmiUsers.config.enabled) t.ipmi.enabled++;
      if (b.lan) {
        addIpmiCounters(t.ipmi, b.lan.counters);
        t.ipmi.activeSessions += b.lan.activeSessions;
      }
    } else addCounts(t.eepromPageWrites, this.past.eepromWrites);
    this.agent.addTotals(t.ike, this.wantsIkePort, now);
  }

  /** What `nic-emulator status` shows; `now` (the shell's clock) says whether the host agent demands cookies. */
  status(now?: number): Record<string, unknown> {
    const b = this.b;
    const fw = b?.firmware;
    const img = b?.image;
    return {
      id: this.id,
      serial: this.serial,
      systemGuid: this.serial !== null ? systemUuidText(this.serial) : null,
      address: this.o.address,
      ports: { ...this.o.ports },
      state: this.runState,
      error: this.error,
      host: this.hostState,
      link: this.link ? 'up' : 'down',
      eeprom: this.o.deviceName,
      config: img ? { securityPolicy: img.config.securityPolicy, clearManagement: img.config.clearManagement, allowedClearCommands: img.config.allowedClearCommands } : null,
      sa: b ? b.db.summary() : null,
      sync: b ? b.sync.status() : null,
      counters: fw ? { ...fw.counters, dropped: { ...fw.counters.dropped, link_down: this.linkDrops, nic_unpowered: this.powerDrops } } : null,
      eepromWrites: img && b ? eepromWrites(img, b.exec, b.ipmiUsers) : null,
      executedRecorded: b ? b.exec.count : null,
      hostAgent: this.agent.status(this.wantsIkePort, now),
      owner: this.owner,
      heartbeat: this.heartbeats.status(),
      alerts: b ? b.alerts.status() : null,
      ipmi: b ? ipmiStatus(b) : null,
    };
  }

  /** The EEPROM's serial number (eeprom-image.ts), as of the last boot that read it; null before one did. */
  get serial(): string | null {
    return this.b?.image.serial ?? this.lastSerial;
  }

  /** The configuration as the EEPROM holds it (null when not booted). */
  get config(): Readonly<NicConfig> | null {
    return this.b?.image.config ?? null;
  }
}

/**
 * The alert a host transition raises (docs/ALERTS.md): `cause` is the lab event or command that moved it. A reset
 * or power cycle of a host already booting is reported too (the boot starts again); the power loss itself is
 * reported when power returns (hostEvent 'power-restore'), a crash as a warm reset.
 */
function hostAlert(was: HostState, to: HostState, cause: string): AlertEvent | null {
  if (cause === 'power-loss') return null;
  if (was === to && !(to === 'pre-boot' && (cause === 'reset' || cause === 'power-cycle'))) return null;
  switch (to) {
    case 'hung': return 'os-hang';
    case 'suspend': return 'sleep';
    case 'up': return was === 'pre-boot' ? 'os-boot' : 'wake';
    case 'off': return 'power-down';
    case 'pre-boot': return was === 'off' ? 'power-up' : cause === 'crash' ? 'warm-reset' : 'boot-initiated';
  }
  return null;
}

function toEffects(out: AgentOutput, port: NicPort): NicEffect[] {
  const fx: NicEffect[] = out.sends.map((s) => ({ kind: 'send', port, to: s.to, bytes: s.bytes }));
  for (const l of out.logs) fx.push({ kind: 'log', ...l });
  return fx;
}

function eepromWrites(img: EepromImage, exec: ExecRecord, ipmi: EepromIpmiUsers): { total: number; byRegion: Record<string, number> } {
  const w = img.pageWrites;
  return { total: w.total + exec.pageWrites + ipmi.pageWrites, byRegion: { ...w.byRegion, exec: exec.pageWrites, ipmiUsers: ipmi.pageWrites } };
}

/** lanplus as status shows it: the switch, the users without their passwords, and the responder's sessions and counters. */
function ipmiStatus(b: Booted): Record<string, unknown> {
  const c = b.ipmiUsers.config;
  const { users: _count, ...responder } = b.lan ? b.lan.status() : { sessions: [], halfOpen: 0, counters: null };
  return { lanplus: c.enabled, users: c.users.map((u) => ({ name: u.name, privilege: u.privilege, enabled: u.enabled })), ...responder };
}
