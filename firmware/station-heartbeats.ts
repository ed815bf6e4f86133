/**
 * The NIC's heartbeats towards its station cluster (DESIGN §2.3, §5 "NIC-side failover"): the monitor of
 * heartbeat-monitor.ts, configured from the EEPROM's cluster policy, told which SA is in use, fed answers and
 * liveness, and moved by owner notices. Pure: time is an argument, randomness injected; the NIC machine
 * (nic-machine.ts) sends the probes and asks for the one deadline. Only a policy that asks for heartbeats
 * (INSTANT or DEFERRED) has a monitor.
 */
import { HeartbeatMonitor } from './heartbeat-monitor.js';
import { parseClusterPolicy, stationOrder, type ClusterPolicy } from './cluster-policy.js';
import type { SaPair } from '../wire/sa.js';

export interface ProbeSend { to: { address: string; port: number }; bytes: Uint8Array }
/** `at`: ms, as given to handleTimeout. */
export interface Failover { at: number; from: string; to: string; reason: string }

export interface StationHeartbeatsOptions {
  nicId: string;
  random: (n: number) => Uint8Array;
  activeSa: () => SaPair | null;
  lookupSa: (toNicSpi: number) => SaPair | null;
}

export class StationHeartbeats {
  private monitor: HeartbeatMonitor | null = null;
  private policy: ClusterPolicy | null = null;
  private saGeneration = -1;
  readonly failovers: Failover[] = [];

  constructor(private readonly o: StationHeartbeatsOptions) {}

  /** (Re)configure from the EEPROM's policy text; '' = no heartbeats. Throws E_POLICY on a bad policy. */
  configure(text: string, source: string, now: number): void {
    this.stop();
    this.policy = text.trim() ? parseClusterPolicy(text, source) : null;
    if (!this.policy || this.policy.heartbeat === 'NONE') return;
    this.monitor = new HeartbeatMonitor({ policy: this.policy, stations: stationOrder(this.policy, this.o.nicId), random: this.o.random, now });
    this.syncSa(now);
  }

  get current(): string | null {
    return this.monitor?.current ?? null;
  }

  /** An authenticated station packet arrived (liveness for DEFERRED / HeartbeatDeferTime). */
  noteReceived(now: number): void {
    if (!this.monitor) return;
    this.syncSa(now); // the first packet under a newly committed SA switches probes to it
    this.monitor.noteReceived(now);
  }

  /** The NIC has something to send to its station (DEFERRED probes only then). */
  noteTrafficToSend(now: number): void {
    this.monitor?.noteTrafficToSend(now);
  }

  /**
   * A heartbeat datagram from a station: an answer to one of our probes, or a forgery the monitor counts.
   * Returns the drop reason when there is nothing to give it to (no heartbeats configured, too short, no such
   * SA), so the NIC counts it with its other drops.
   */
  onAnswer(bytes: Uint8Array, now: number): string | null {
    if (!this.monitor) return 'unexpected_heartbeat';
    if (bytes.length < 8) return 'short';
    const spi = ((bytes[4] << 24) | (bytes[5] << 16) | (bytes[6] << 8) | bytes[7]) >>> 0;
    const sa = this.o.lookupSa(spi);
    if (!sa) return 'spi';
    this.monitor.handleAnswer(bytes, now, sa);
    return null;
  }

  /** A station that took the NIC over said so (owner notice): use it. */
  setOwner(station: string, now: number): void {
    if (!this.monitor) return;
    this.syncSa(now);
    this.monitor.setOwner(station, now);
  }

  pollTimeout(): number | null {
    return this.monitor?.pollTimeout() ?? null;
  }

  /** The deadline came: probes to send; failovers are recorded here and returned for the log. */
  handleTimeout(now: number): { probes: ProbeSend[]; failovers: Failover[] } {
    const out = { probes: [] as ProbeSend[], failovers: [] as Failover[] };
    const m = this.monitor;
    if (!m) return out;
    this.syncSa(now);
    for (const e of m.handleTimeout(now)) {
      if (e.kind === 'send-probe') {
        const i = e.to.lastIndexOf(':');
        out.probes.push({ to: { address: e.to.slice(0, i), port: Number(e.to.slice(i + 1)) }, bytes: e.bytes });
      } else {
        const f = { at: now, from: e.from, to: e.to, reason: e.reason };
        this.failovers.push(f);
        if (this.failovers.length > 100) this.failovers.shift();
        out.failovers.push(f);
      }
    }
    return out;
  }

  /** Heartbeats stop (the NIC lost power); configure() starts them again. */
  stop(): void {
    this.monitor = null;
    this.saGeneration = -1;
  }

  private syncSa(now: number): void {
    const sa = this.o.activeSa();
    const g = sa?.generation ?? 0;
    if (g !== this.saGeneration && this.monitor) {
      this.saGeneration = g;
      this.monitor.useSa(sa, now);
    }
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
