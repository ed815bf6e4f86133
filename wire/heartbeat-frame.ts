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
import { concat, equalBytes, putU32, u32 } from '../common/bytes.js';
import { ProtocolError, UsageError } from '../common/errors.js';
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

/** A probe under already derived keys (the monitor keeps them per SA): `spi` = the SA's fromNic SPI. */
export function sealProbe(keys: HeartbeatKeys, spi: number, nonce: Uint8Array): Uint8Array {
  assertNonce(nonce);
  return seal(keys.probe, PROBE_LABEL, spi, nonce);
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
