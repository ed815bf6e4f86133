/**
 * Turning a negotiated Child SA into the shared `SaPair` (wire/sa.ts), and the traffic
 * selectors of the one Child SA Lifeline negotiates.
 *
 * KEYMAT order (RFC 7296 §2.17): "all keys for SAs carrying data from the initiator to the
 * responder are taken before SAs going from the responder to the initiator", encryption key
 * before integrity key. The station is the IKE initiator, so initiator->responder is `toNic`.
 * AEAD transforms have no integrity key; each direction takes key | 4-octet salt
 * (RFC 4106 §8.1: 16+4; RFC 7634 §2: 32+4).
 *
 * Lifeline extension for the `esp+ah` policy (DESIGN §2.2): the AH HMAC-SHA-256-128 keys
 * (32 octets each, RFC 4868) follow the ESP keys in the same KEYMAT, toNic first, and the AH
 * SPI equals the ESP SPI of that direction (SPIs are per protocol, RFC 4301 §4.1). IKEv2 has no
 * AH+ESP bundle in one proposal, so both peers take the policy from their configuration.
 *
 * Traffic selectors (transport-mode-like, N(USE_TRANSPORT_MODE) §1.3.1): the station side is
 * UDP any port, the NIC side UDP port 664 (DESIGN §2.2); addresses are "any" because the lab
 * may put many NICs behind one address.
 */
import type { EspTransform, SaPair, SecurityPolicy } from '../../wire/sa.js';
import { ipv4Selector, type TrafficSelector } from './ike-payloads.js';
import { usableEspSpi } from './proposals.js';
import { u32 } from '../../common/bytes.js';
import { TS_IPV4_ADDR_RANGE } from './constants.js';

export const SECURE_RMCP_PORT = 664;
const IPPROTO_UDP = 17;
const AH_KEY_LENGTH = 32;

export const STATION_TS: TrafficSelector = ipv4Selector(IPPROTO_UDP, 0, 65535);
export const NIC_TS: TrafficSelector = ipv4Selector(IPPROTO_UDP, SECURE_RMCP_PORT, SECURE_RMCP_PORT);

export function espKeyLength(t: EspTransform): number {
  return t === 'aes-gcm-16' ? 20 : 36;
}

export function keymatLength(t: EspTransform, policy: SecurityPolicy): number {
  return 2 * espKeyLength(t) + (policy === 'esp+ah' ? 2 * AH_KEY_LENGTH : 0);
}

export interface ChildParams {
  transform: EspTransform;
  esn: boolean;
  policy: SecurityPolicy;
  /** The responder's (host/NIC's) inbound SPI. */
  spiToNic: number;
  /** The initiator's (station's) inbound SPI. */
  spiFromNic: number;
}

/**
 * `stationInitiated`: the Child SA exchange was started by the station (§2.17: the exchange
 * initiator's outbound keys come first, so toNic; a peer-started rekey puts fromNic first).
 */
export function buildSaPair(p: ChildParams, keymat: Uint8Array, generation: number, stationInitiated = true): SaPair {
  const k = espKeyLength(p.transform);
  const ah = p.policy === 'esp+ah';
  const ahBase = 2 * k;
  if (!stationInitiated) {
    // Same layout with the directions swapped: fromNic takes the first key of each kind.
    const swapped = buildSaPair({ ...p, spiToNic: p.spiFromNic, spiFromNic: p.spiToNic }, keymat, generation, true);
    return { ...swapped, toNic: swapped.fromNic, fromNic: swapped.toNic };
  }
  return {
    generation,
    transform: p.transform,
    esn: p.esn,
    policy: p.policy,
    toNic: {
      spi: p.spiToNic,
      encKey: keymat.slice(0, k),
      ahSpi: ah ? p.spiToNic : 0,
      ahKey: ah ? keymat.slice(ahBase, ahBase + AH_KEY_LENGTH) : new Uint8Array(0),
    },
    fromNic: {
      spi: p.spiFromNic,
      encKey: keymat.slice(k, 2 * k),
      ahSpi: ah ? p.spiFromNic : 0,
      ahKey: ah ? keymat.slice(ahBase + AH_KEY_LENGTH, ahBase + 2 * AH_KEY_LENGTH) : new Uint8Array(0),
    },
    origin: 'ike',
  };
}

/** A fresh inbound ESP SPI: 256..0xFFFFFFFE (RFC 4303 §2.1 reserves 1-255; 0xFFFFFFFF is the heartbeat). */
export function randomEspSpi(random: (n: number) => Uint8Array, avoid: (spi: number) => boolean): number {
  for (let i = 0; i < 64; i++) {
    const spi = u32(random(4), 0);
    if (usableEspSpi(spi) && !avoid(spi)) return spi;
  }
  throw new Error('random() keeps returning unusable SPIs: is it a real random source?');
}

function intersectRange(a0: number, a1: number, b0: number, b1: number): [number, number] | null {
  const lo = Math.max(a0, b0);
  const hi = Math.min(a1, b1);
  return lo <= hi ? [lo, hi] : null;
}

function cmpAddr(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/** The part of offered selector `s` inside our policy selector `mine` (§2.9), or null. */
function intersect(s: TrafficSelector, mine: TrafficSelector): TrafficSelector | null {
  if (s.tsType !== TS_IPV4_ADDR_RANGE || s.startAddress.length !== 4 || s.endAddress.length !== 4) return null;
  if (s.ipProtocol !== 0 && mine.ipProtocol !== 0 && s.ipProtocol !== mine.ipProtocol) return null;
  const ports = intersectRange(s.startPort, s.endPort, mine.startPort, mine.endPort);
  if (!ports) return null;
  const start = cmpAddr(s.startAddress, mine.startAddress) >= 0 ? s.startAddress : mine.startAddress;
  const end = cmpAddr(s.endAddress, mine.endAddress) <= 0 ? s.endAddress : mine.endAddress;
  if (cmpAddr(start, end) > 0) return null;
  return {
    tsType: TS_IPV4_ADDR_RANGE,
    ipProtocol: s.ipProtocol === 0 ? mine.ipProtocol : s.ipProtocol,
    startPort: ports[0],
    endPort: ports[1],
    startAddress: new Uint8Array(start),
    endAddress: new Uint8Array(end),
  };
}

function narrowList(offered: TrafficSelector[], mine: TrafficSelector): TrafficSelector[] {
  return offered.map((s) => intersect(s, mine)).filter((x): x is TrafficSelector => x !== null);
}

/**
 * Responder narrowing (§2.9): answer the intersection of what was offered with our policy (NIC
 * side UDP/664, station side UDP), never our own wider selectors. Null -> TS_UNACCEPTABLE.
 * `nic`/`station` are the offered selectors of each side (TSi/TSr by who started the exchange).
 */
export function narrowSelectors(nic: TrafficSelector[], station: TrafficSelector[]): { nic: TrafficSelector[]; station: TrafficSelector[] } | null {
  const n = narrowList(nic, NIC_TS);
  const s = narrowList(station, STATION_TS);
  return n.length && s.length ? { nic: n, station: s } : null;
}

/** Initiator check of the answer: the NIC side must still be UDP port 664, the station side UDP. */
export function selectorsAnswerOk(nic: TrafficSelector[], station: TrafficSelector[]): boolean {
  return narrowList(nic, NIC_TS).length > 0 && narrowList(station, STATION_TS).length > 0;
}
