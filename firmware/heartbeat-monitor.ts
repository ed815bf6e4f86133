/**
 * The NIC's station-failover monitor (DESIGN §5 "NIC-side failover", after the seed's VPN-gateway-cluster
 * client), over the authenticated heartbeat frames of wire/heartbeat-frame.ts (DESIGN §2.3). The semantics of
 * the modes are described at the top of that file.
 */
import { equalBytes, hex, u32 } from '../common/bytes.js';
import { ProtocolError, UsageError } from '../common/errors.js';
import { assertClusterPolicy, type ClusterPolicy, type HeartbeatMode } from './cluster-policy.js';
import type { SaPair } from '../wire/sa.js';
import { decodeHeartbeat, heartbeatKeys, sealProbe, verifyAnswer, HEARTBEAT_NONCE_LENGTH, type HeartbeatKeys, type HeartbeatVerdict } from '../wire/heartbeat-frame.js';

function spiHex(spi: number): string {
  return '0x' + spi.toString(16).padStart(8, '0');
}


export type HeartbeatEffect =
  | { kind: 'send-probe'; to: string; bytes: Uint8Array }
  | { kind: 'failover'; from: string; to: string; reason: string };

/** The one deadline the monitor is waiting for (timers are data). */
export interface HeartbeatTimer {
  /** `probe`: start a cycle; `second-probe`: first probe unanswered; `failover`: second probe unanswered. */
  name: 'probe' | 'second-probe' | 'failover';
  at: number;
}

export interface HeartbeatCounters {
  probesSent: number;
  answersAccepted: number;
  failovers: number;
  /** dropped[reason], reason = error code without E_, lower-case (icv, spi, replay, short, ...). */
  dropped: Record<string, number>;
}

export interface HeartbeatMonitorOptions {
  policy: ClusterPolicy;
  /** The policy's stations in the NIC's order (`stationOrder`); the first is used first. */
  stations: string[];
  random: (n: number) => Uint8Array;
  /** Milliseconds. */
  now: number;
  /** The SA pair probes go out under; may be given later with `useSa`. */
  sa?: SaPair | null;
}

interface Outstanding {
  /** The answer key and SPI of the SA this probe went out under. */
  answerKey: Uint8Array;
  spi: number;
}

interface Cycle {
  attempt: 1 | 2;
  /** When the latest probe of this cycle went out. */
  sentAt: number;
  probes: Map<string, Outstanding>;
}

function assertTime(now: number): void {
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new UsageError('E_USAGE', `now must be a finite number of ms, got ${String(now)}`);
}

export class HeartbeatMonitor {
  readonly mode: HeartbeatMode;
  /** HeartbeatResponseTime and HeartbeatDeferTime in ms. */
  readonly responseMs: number;
  readonly deferMs: number;
  readonly counters: HeartbeatCounters = { probesSent: 0, answersAccepted: 0, failovers: 0, dropped: {} };
  readonly #stations: readonly string[];
  readonly #random: (n: number) => Uint8Array;
  #now: number;
  #current: string;
  #sa: { spi: number; toNicSpi: number; keys: HeartbeatKeys } | null = null;
  #cycle: Cycle | null = null;
  /** INSTANT: when the next cycle starts. */
  #nextProbeAt = 0;
  /** DEFERRED: since when traffic has been waiting; null = none. */
  #trafficSince: number | null = null;
  /** Last authenticated packet from the current station; null = none since start or failover. */
  #lastReceived: number | null = null;

  constructor(o: HeartbeatMonitorOptions) {
    if (o === null || typeof o !== 'object') throw new UsageError('E_USAGE', 'HeartbeatMonitor needs options');
    assertClusterPolicy(o.policy);
    const s = o.stations;
    if (!Array.isArray(s) || s.length === 0 || s.some((x) => typeof x !== 'string' || x === '') || new Set(s).size !== s.length) {
      throw new UsageError('E_USAGE', 'HeartbeatMonitor needs one or more distinct station names (see stationOrder)');
    }
    if (typeof o.random !== 'function') throw new UsageError('E_USAGE', 'HeartbeatMonitor needs random(n)');
    assertTime(o.now);
    this.mode = o.policy.heartbeat;
    this.responseMs = o.policy.heartbeatResponseTime * 1000;
    this.deferMs = o.policy.heartbeatDeferTime * 1000;
    this.#stations = [...s];
    this.#random = o.random;
    this.#now = o.now;
    this.#current = s[0];
    if (o.sa) this.useSa(o.sa, o.now);
  }

  /** The station now in use. */
  get current(): string {
    return this.#current;
  }

  get stations(): readonly string[] {
    return this.#stations;
  }

  /** When the current station last proved alive (answer, any authenticated packet, takeover); null if never. */
  get lastReceivedAt(): number | null {
    return this.#lastReceived;
  }

  /** The pending deadline, by name; null when nothing is scheduled. */
  get timer(): HeartbeatTimer | null {
    if (this.mode === 'NONE' || this.#sa === null) return null;
    const c = this.#cycle;
    if (c !== null) return { name: c.attempt === 1 ? 'second-probe' : 'failover', at: c.sentAt + this.responseMs };
    if (this.mode === 'INSTANT') return { name: 'probe', at: this.#nextProbeAt };
    if (this.#trafficSince === null) return null;
    const quietFrom = this.#lastReceived === null ? this.#trafficSince : this.#lastReceived + this.deferMs;
    return { name: 'probe', at: Math.max(this.#trafficSince, quietFrom) };
  }

  /** When `handleTimeout` should next be called (ms), or null. May lie in the past: call it at once. */
  pollTimeout(): number | null {
    return this.timer?.at ?? null;
  }

  /** Probes go out under `sa` from now on; null stops probing (nothing could be authenticated). */
  useSa(sa: SaPair | null, now: number): void {
    this.#advance(now);
    if (sa === null) {
      this.#sa = null;
      this.#cycle = null;
      return;
    }
    const keys = heartbeatKeys(sa);
    const hadSa = this.#sa !== null;
    this.#sa = { spi: sa.fromNic.spi, toNicSpi: sa.toNic.spi, keys };
    // A cycle in progress goes on: its probes remember the SA they went out under.
    if (!hadSa && this.mode === 'INSTANT') this.#nextProbeAt = now + this.#jitter();
  }

  /** Any authenticated packet arrived from the station: it is alive, as far as DeferTime is concerned. */
  noteReceived(now: number): void {
    this.#advance(now);
    this.#lastReceived = now;
    if (this.#cycle === null) this.#trafficSince = null;
  }

  /** The NIC has something to send to its station (DEFERRED mode starts probing only then). */
  noteTrafficToSend(now: number): void {
    this.#advance(now);
    if (this.mode === 'DEFERRED' && this.#trafficSince === null) this.#trafficSince = now;
  }

  /**
   * A heartbeat answer arrived; `sa` is the SA the NIC holds for the answer's SPI. Order as RFC 4303
   * §3.4.3: replay check (nonce outstanding) -> authenticate -> mark (the cycle ends, its nonces are spent).
   */
  handleAnswer(bytes: Uint8Array, now: number, sa: SaPair): HeartbeatVerdict {
    this.#advance(now);
    let nonce: Uint8Array;
    try {
      nonce = decodeHeartbeat(bytes).nonce;
    } catch (e) {
      if (e instanceof ProtocolError) return this.#drop(e);
      throw e;
    }
    const cycle = this.#cycle;
    const probe = cycle?.probes.get(hex(nonce));
    if (cycle === null || probe === undefined) {
      return this.#drop(new ProtocolError('E_REPLAY', `heartbeat answer echoes nonce ${hex(nonce)}, which no probe of this cycle carries (replayed, late or forged); dropped`));
    }
    const v = verifyAnswer(bytes, sa);
    if (!v.ok) return this.#drop(v.error);
    if (probe.spi !== sa.toNic.spi || !equalBytes(probe.answerKey, heartbeatKeys(sa).answer)) {
      return this.#drop(new ProtocolError('E_SPI', `heartbeat answer came under SA ${spiHex(sa.toNic.spi)}, but its probe went out under SA ${spiHex(probe.spi)}; dropped`));
    }
    const sentAt = cycle.sentAt;
    this.#cycle = null;
    this.#lastReceived = now;
    this.#trafficSince = null;
    if (this.mode === 'INSTANT') this.#nextProbeAt = sentAt + this.responseMs;
    this.counters.answersAccepted++;
    return v;
  }

  /**
   * A station took the NIC over and said so in an authenticated message (DESIGN §5): use it. Returns
   * false, and changes nothing, if `station` is not one of this NIC's stations.
   */
  setOwner(station: string, now: number): boolean {
    this.#advance(now);
    if (!this.#stations.includes(station)) {
      this.counters.dropped['unlisted-station'] = (this.counters.dropped['unlisted-station'] ?? 0) + 1;
      return false;
    }
    this.#current = station;
    this.#cycle = null;
    this.#lastReceived = now; // the takeover message itself came from it
    this.#trafficSince = null;
    if (this.mode === 'INSTANT') this.#nextProbeAt = now + this.responseMs;
    return true;
  }

  /** Runs every deadline that is due at `now`. */
  handleTimeout(now: number): HeartbeatEffect[] {
    this.#advance(now);
    const effects: HeartbeatEffect[] = [];
    // Bounded: a probe moves the deadline to now + R (R >= 1 s) and a failover is followed by at most
    // one probe, so at most second-probe -> failover -> probe can be due at once.
    for (let step = 0; step < 3; step++) {
      const t = this.timer;
      if (t === null || t.at > now) break;
      switch (t.name) {
        case 'probe':
          this.#cycle = { attempt: 1, sentAt: now, probes: new Map() };
          if (this.mode === 'INSTANT') this.#nextProbeAt = now + this.responseMs; // replaced when answered
          this.#probe(now, effects);
          break;
        case 'second-probe':
          if (this.#cycle !== null) this.#cycle.attempt = 2;
          this.#probe(now, effects);
          break;
        case 'failover':
          this.#failover(now, effects);
          break;
      }
    }
    return effects;
  }

  #probe(now: number, effects: HeartbeatEffect[]): void {
    const sa = this.#sa;
    const c = this.#cycle;
    if (sa === null || c === null) throw new UsageError('E_INTERNAL', 'heartbeat probe without an SA or a cycle');
    let nonce = this.#randomBytes(HEARTBEAT_NONCE_LENGTH);
    while (c.probes.has(hex(nonce))) nonce = this.#randomBytes(HEARTBEAT_NONCE_LENGTH);
    c.probes.set(hex(nonce), { answerKey: sa.keys.answer, spi: sa.toNicSpi });
    c.sentAt = now;
    this.counters.probesSent++;
    effects.push({ kind: 'send-probe', to: this.#current, bytes: sealProbe(sa.keys, sa.spi, nonce) });
  }

  #failover(now: number, effects: HeartbeatEffect[]): void {
    const from = this.#current;
    const to = this.#stations[(this.#stations.indexOf(from) + 1) % this.#stations.length];
    this.#current = to;
    this.#cycle = null;
    this.#lastReceived = null;
    // Probe the new station at once: INSTANT always, DEFERRED because the traffic is still waiting.
    if (this.mode === 'INSTANT') this.#nextProbeAt = now;
    else this.#trafficSince = now;
    this.counters.failovers++;
    const r = this.responseMs / 1000;
    effects.push({ kind: 'failover', from, to, reason: `no valid answer to 2 heartbeat probes within ${r} s each` });
  }

  #drop(error: ProtocolError): HeartbeatVerdict {
    const reason = error.code.replace(/^E_/, '').toLowerCase();
    this.counters.dropped[reason] = (this.counters.dropped[reason] ?? 0) + 1;
    return { ok: false, error };
  }

  #advance(now: number): void {
    assertTime(now);
    if (now < this.#now) throw new UsageError('E_USAGE', `time went backwards: ${now} ms after ${this.#now} ms`);
    this.#now = now;
  }

  #randomBytes(n: number): Uint8Array {
    const b = this.#random(n);
    if (!(b instanceof Uint8Array) || b.length !== n) throw new UsageError('E_USAGE', `random(${n}) must return ${n} bytes`);
    return b;
  }

  /** 0 .. R-1 ms, uniform enough for spreading a fleet's first probes. */
  #jitter(): number {
    return Math.floor((u32(this.#randomBytes(4), 0) / 0x1_0000_0000) * this.responseMs);
  }
}
