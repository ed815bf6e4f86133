/**
 * Authenticated heartbeats (DESIGN §2.3) and the NIC's station-failover monitor (DESIGN §5 "NIC-side
 * failover", after the seed's VPN-gateway-cluster client).
 *
 * Wire format on UDP/664, ESP-framed with the reserved SPI so that it never reaches ESP decryption:
 *
 *   0xFFFFFFFF (4) | SPI (4) | nonce (8) | tag (16)                                  = 32 bytes
 *
 *  - probe,  NIC -> station: SPI = sa.fromNic.spi; answer, station -> NIC: SPI = sa.toNic.spi. Each is the
 *    SPI the *receiver* uses for that direction (RFC 4303 §2.1), so both sides find the SA by SPI as for ESP.
 *  - tag = HMAC-SHA-256 truncated to 128 bits (as RFC 4868 §2.1.1) over  label || the 16 bytes before it,
 *    label "lifeline heartbeat probe" or "lifeline heartbeat answer".
 *  - keys: HKDF-SHA-256 (RFC 5869), L = 32, from the SA pair's key material:
 *      IKM  = toNic.encKey || fromNic.encKey || toNic.ahKey || fromNic.ahKey
 *      salt = fromNic.spi || toNic.spi (big-endian)
 *      info = "lifeline heartbeat key nic->station" (probe) | "lifeline heartbeat key station->nic" (answer)
 *    HKDF's info separates these MAC keys from the ESP keys they come from and from each other.
 *  - The station answers every probe that verifies, echoing its nonce under the answer key. It keeps no
 *    state: a replayed probe only yields an answer to a nonce the NIC no longer waits for.
 *  - The NIC accepts an answer only if its nonce belongs to a probe of the current cycle under the same SA,
 *    and only once. So a forged answer (E_ICV), an answer under another SA (E_SPI) and a replayed or late
 *    one (E_REPLAY) never count as liveness (DESIGN §2.3 "must not keep a dead station alive").
 *
 * Monitor semantics (our reading of the seed's modes; times from the policy, `R` = HeartbeatResponseTime):
 *  - NONE: never probes, never fails over; `setOwner` still moves the NIC.
 *  - INSTANT: probes the current station every R regardless of traffic. The first probe goes out after a
 *    random fraction of R, so a fleet booted together does not probe in lock step.
 *  - DEFERRED: probes only when the NIC has traffic to send (`noteTrafficToSend`) and nothing has been
 *    received from the station (`noteReceived`) for HeartbeatDeferTime; traffic that is followed by any
 *    station packet needs no probe. A NIC that has heard nothing since it started probes on its first traffic.
 *  - A cycle: probe; no valid answer within R -> second probe; none within another R -> fail over to the
 *    next station in order, wrapping (with a single station the "next" is itself: the effect still says so).
 *    The new station is probed at once (in DEFERRED too: the traffic that found the old one dead still waits).
 *    Only a valid answer ends a cycle; other station packets feed DeferTime only.
 *  - `setOwner`: a station that took the NIC over (an authenticated message, DESIGN §5) becomes current;
 *    this is how a revived station is used again. Any cycle in progress is dropped.
 *  - No SA (`sa` null): nothing can be authenticated, so the monitor neither probes nor fails over.
 */
import { createHmac } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, equalBytes, hex, putU32, u32 } from './bytes.js';
import { ProtocolError, UsageError } from './errors.js';
import { assertClusterPolicy, type ClusterPolicy, type HeartbeatMode } from './cluster-policy.js';
import { HEARTBEAT_SPI, type SaPair } from './sa.js';

export const HEARTBEAT_NONCE_LENGTH = 8;
export const HEARTBEAT_TAG_LENGTH = 16;
export const HEARTBEAT_LENGTH = 4 + 4 + HEARTBEAT_NONCE_LENGTH + HEARTBEAT_TAG_LENGTH; // 32
export const HEARTBEAT_KEY_LENGTH = 32;

const utf8 = new TextEncoder();
const PROBE_INFO = utf8.encode('lifeline heartbeat key nic->station');
const ANSWER_INFO = utf8.encode('lifeline heartbeat key station->nic');
const PROBE_LABEL = utf8.encode('lifeline heartbeat probe');
const ANSWER_LABEL = utf8.encode('lifeline heartbeat answer');

export interface HeartbeatKeys {
  /** Key of probes, NIC -> station. */
  probe: Uint8Array;
  /** Key of answers, station -> NIC. */
  answer: Uint8Array;
}

/** A heartbeat's fields, unauthenticated. */
export interface HeartbeatFields {
  spi: number;
  nonce: Uint8Array;
  tag: Uint8Array;
}

/** Result of checking a datagram: network input is dropped and counted, never thrown (STYLE §4). */
export type HeartbeatVerdict = { ok: true; spi: number; nonce: Uint8Array } | { ok: false; error: ProtocolError };

function spiHex(spi: number): string {
  return '0x' + spi.toString(16).padStart(8, '0');
}

function assertSa(sa: SaPair): void {
  const ok =
    sa !== null &&
    typeof sa === 'object' &&
    [sa.toNic, sa.fromNic].every(
      (d) =>
        d !== null &&
        typeof d === 'object' &&
        Number.isInteger(d.spi) &&
        d.spi >= 1 &&
        d.spi < HEARTBEAT_SPI &&
        d.encKey instanceof Uint8Array &&
        d.encKey.length > 0 &&
        d.ahKey instanceof Uint8Array,
    );
  if (!ok) throw new UsageError('E_USAGE', 'heartbeat needs an SaPair with SPIs 1..0xFFFFFFFE and key material in both directions');
}

function assertNonce(nonce: Uint8Array): void {
  if (!(nonce instanceof Uint8Array) || nonce.length !== HEARTBEAT_NONCE_LENGTH) {
    throw new UsageError('E_USAGE', `heartbeat nonce must be ${HEARTBEAT_NONCE_LENGTH} bytes`);
  }
}

/** The two heartbeat keys of an SA pair (see the top of this file). */
export function heartbeatKeys(sa: SaPair): HeartbeatKeys {
  assertSa(sa);
  const ikm = concat(sa.toNic.encKey, sa.fromNic.encKey, sa.toNic.ahKey, sa.fromNic.ahKey);
  const salt = new Uint8Array(8);
  putU32(salt, 0, sa.fromNic.spi);
  putU32(salt, 4, sa.toNic.spi);
  return {
    probe: hkdf(sha256, ikm, salt, PROBE_INFO, HEARTBEAT_KEY_LENGTH),
    answer: hkdf(sha256, ikm, salt, ANSWER_INFO, HEARTBEAT_KEY_LENGTH),
  };
}

/** HMAC-SHA-256-128 over label || header (the 16 bytes before the tag). */
function computeTag(key: Uint8Array, label: Uint8Array, header: Uint8Array): Uint8Array {
  const mac = createHmac('sha256', key).update(label).update(header).digest();
  return new Uint8Array(mac.buffer, mac.byteOffset, HEARTBEAT_TAG_LENGTH);
}

function seal(key: Uint8Array, label: Uint8Array, spi: number, nonce: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEARTBEAT_LENGTH);
  putU32(out, 0, HEARTBEAT_SPI);
  putU32(out, 4, spi);
  out.set(nonce, 8);
  out.set(computeTag(key, label, out.subarray(0, 16)), 16);
  return out;
}

/** Splits a heartbeat datagram; throws ProtocolError (E_SHORT, E_LENGTH, E_SPI) if it is not one. */
export function decodeHeartbeat(bytes: Uint8Array): HeartbeatFields {
  if (!(bytes instanceof Uint8Array)) throw new UsageError('E_USAGE', 'heartbeat datagram must be a Uint8Array');
  if (bytes.length < HEARTBEAT_LENGTH) {
    throw new ProtocolError('E_SHORT', `heartbeat of ${bytes.length} bytes is shorter than ${HEARTBEAT_LENGTH}; dropped`);
  }
  if (bytes.length > HEARTBEAT_LENGTH) {
    throw new ProtocolError('E_LENGTH', `heartbeat of ${bytes.length} bytes is longer than ${HEARTBEAT_LENGTH}; dropped`);
  }
  if (u32(bytes, 0) !== HEARTBEAT_SPI) {
    throw new ProtocolError('E_SPI', `heartbeat must start with SPI 0xffffffff, got ${spiHex(u32(bytes, 0))}; dropped`);
  }
  return { spi: u32(bytes, 4), nonce: bytes.slice(8, 16), tag: bytes.slice(16, 32) };
}

function verify(bytes: Uint8Array, key: Uint8Array, label: Uint8Array, spi: number, what: string): HeartbeatVerdict {
  let f: HeartbeatFields;
  try {
    f = decodeHeartbeat(bytes);
  } catch (e) {
    if (e instanceof ProtocolError) return { ok: false, error: e };
    throw e;
  }
  if (f.spi !== spi) {
    return { ok: false, error: new ProtocolError('E_SPI', `heartbeat ${what} names SA ${spiHex(f.spi)}, expected ${spiHex(spi)}; dropped`) };
  }
  // Constant-time compare (bytes.ts equalBytes): the tag is a MAC.
  if (!equalBytes(computeTag(key, label, bytes.subarray(0, 16)), f.tag)) {
    return { ok: false, error: new ProtocolError('E_ICV', `heartbeat ${what} under SA ${spiHex(spi)} has a bad tag; dropped`) };
  }
  return { ok: true, spi: f.spi, nonce: f.nonce };
}

/** A probe (NIC -> station) under `sa`, carrying `nonce` (8 bytes). */
export function encodeProbe(sa: SaPair, nonce: Uint8Array): Uint8Array {
  assertNonce(nonce);
  return seal(heartbeatKeys(sa).probe, PROBE_LABEL, sa.fromNic.spi, nonce);
}

/** Checks a probe against `sa` (the SA the station found by the probe's SPI). */
export function verifyProbe(bytes: Uint8Array, sa: SaPair): HeartbeatVerdict {
  return verify(bytes, heartbeatKeys(sa).probe, PROBE_LABEL, sa.fromNic.spi, 'probe');
}

/** An answer (station -> NIC) under `sa`, echoing the probe's `nonce`. */
export function encodeAnswer(sa: SaPair, nonce: Uint8Array): Uint8Array {
  assertNonce(nonce);
  return seal(heartbeatKeys(sa).answer, ANSWER_LABEL, sa.toNic.spi, nonce);
}

/** Checks an answer against `sa`; whether its nonce is outstanding is the monitor's business. */
export function verifyAnswer(bytes: Uint8Array, sa: SaPair): HeartbeatVerdict {
  return verify(bytes, heartbeatKeys(sa).answer, ANSWER_LABEL, sa.toNic.spi, 'answer');
}

/** The station's side in one call: the answer to a probe that verifies under `sa`. */
export function answerProbe(
  probe: Uint8Array,
  sa: SaPair,
): { ok: true; bytes: Uint8Array } | { ok: false; error: ProtocolError } {
  const v = verifyProbe(probe, sa);
  return v.ok ? { ok: true, bytes: encodeAnswer(sa, v.nonce) } : v;
}

// ------------------------------------------------------------------------------------------ monitor

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
    effects.push({ kind: 'send-probe', to: this.#current, bytes: seal(sa.keys.probe, PROBE_LABEL, sa.spi, nonce) });
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
