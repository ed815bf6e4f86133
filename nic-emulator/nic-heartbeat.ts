/**
 * The NIC's heartbeats towards its station cluster (DESIGN §2.3, §5 "NIC-side failover"), as the emulator
 * runs them: the pure HeartbeatMonitor (wire/heartbeat-frame.ts) decides, this shell keeps its one timer, sends
 * its probes from the NIC's secure socket, feeds it answers and liveness, and follows owner notices.
 * Only NICs whose EEPROM policy asks for heartbeats (INSTANT or DEFERRED) have a monitor or a timer.
 */
import { randomBytes } from 'node:crypto';
import { HeartbeatMonitor } from '../firmware/heartbeat-monitor.js';
import { parseClusterPolicy, stationOrder, type ClusterPolicy } from '../firmware/cluster-policy.js';
import type { SaPair } from '../wire/sa.js';
import type { Logger } from '../lib/log.js';

export interface NicHeartbeatOptions {
  nicId: string;
  log: Logger;
  send: (to: { address: string; port: number }, bytes: Uint8Array) => void;
  activeSa: () => SaPair | null;
  lookupSa: (toNicSpi: number) => SaPair | null;
}

export class NicHeartbeat {
  private monitor: HeartbeatMonitor | null = null;
  private policy: ClusterPolicy | null = null;
  private timer: NodeJS.Timeout | null = null;
  private saGeneration = -1;
  readonly failovers: { at: string; from: string; to: string; reason: string }[] = [];

  constructor(private readonly o: NicHeartbeatOptions) {}

  /** (Re)configure from the EEPROM's policy text; '' = no heartbeats. Throws E_POLICY on a bad policy. */
  configure(text: string, source = 'EEPROM policy'): void {
    this.stop();
    this.policy = text.trim() ? parseClusterPolicy(text, source) : null;
    if (!this.policy || this.policy.heartbeat === 'NONE') return;
    const now = Date.now();
    this.monitor = new HeartbeatMonitor({ policy: this.policy, stations: stationOrder(this.policy, this.o.nicId), random: (n) => new Uint8Array(randomBytes(n)), now });
    this.syncSa(now);
    this.schedule();
  }

  get current(): string | null {
    return this.monitor?.current ?? null;
  }

  /** An authenticated station packet arrived (liveness for DEFERRED / HeartbeatDeferTime). */
  noteReceived(): void {
    if (!this.monitor) return;
    const now = Date.now();
    this.syncSa(now); // the first packet under a newly committed SA switches probes to it
    this.monitor.noteReceived(now);
    this.schedule();
  }

  /** The NIC has something to send to its station (DEFERRED probes only then). */
  noteTrafficToSend(): void {
    if (!this.monitor) return;
    this.monitor.noteTrafficToSend(Date.now());
    this.schedule();
  }

  /**
   * A heartbeat datagram from a station: an answer to one of our probes, or a forgery the monitor counts.
   * Returns the drop reason when there is nothing to give it to (no heartbeats configured, too short, no such
   * SA), so the NIC counts it with its other drops.
   */
  onAnswer(bytes: Uint8Array): string | null {
    if (!this.monitor) return 'unexpected_heartbeat';
    if (bytes.length < 8) return 'short';
    const spi = ((bytes[4] << 24) | (bytes[5] << 16) | (bytes[6] << 8) | bytes[7]) >>> 0;
    const sa = this.o.lookupSa(spi);
    if (!sa) return 'spi';
    this.monitor.handleAnswer(bytes, Date.now(), sa);
    this.schedule();
    return null;
  }

  /** A station that took the NIC over said so (owner notice): use it. */
  setOwner(station: string): void {
    if (!this.monitor) return;
    this.syncSa(Date.now());
    this.monitor.setOwner(station, Date.now());
    this.schedule();
  }

  private syncSa(now: number): void {
    const sa = this.o.activeSa();
    const g = sa?.generation ?? 0;
    if (g !== this.saGeneration && this.monitor) {
      this.saGeneration = g;
      this.monitor.useSa(sa, now);
    }
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const at = this.monitor?.pollTimeout();
    if (at === null || at === undefined) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = null;
    const m = this.monitor;
    if (!m) return;
    const now = Date.now();
    this.syncSa(now);
    for (const e of m.handleTimeout(now)) {
      if (e.kind === 'send-probe') {
        const i = e.to.lastIndexOf(':');
        this.o.send({ address: e.to.slice(0, i), port: Number(e.to.slice(i + 1)) }, e.bytes);
      } else {
        this.failovers.push({ at: new Date(now).toISOString(), from: e.from, to: e.to, reason: e.reason });
        if (this.failovers.length > 100) this.failovers.shift();
        this.o.log.log('warn', 'heartbeat failover', { from: e.from, to: e.to, reason: e.reason });
      }
    }
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.monitor = null;
    this.saGeneration = -1;
  }

  status(): Record<string, unknown> | null {
    const m = this.monitor;
    if (!this.policy) return null;
    return {
      mode: this.policy.heartbeat,
      responseTimeS: this.policy.heartbeatResponseTime,
      deferTimeS: this.policy.heartbeatDeferTime,
      randomize: this.policy.randomize,
      stations: m ? [...m.stations] : this.policy.clusters.flatMap((c) => c.stations),
      current: m?.current ?? null,
      counters: m?.counters ?? null,
      failovers: this.failovers.slice(-10),
    };
  }
}
