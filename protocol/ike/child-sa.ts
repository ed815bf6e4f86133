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

export function buildSaPair(p: ChildParams, keymat: Uint8Array, generation: number): SaPair {
  const k = espKeyLength(p.transform);
  const ah = p.policy === 'esp+ah';
  const ahBase = 2 * k;
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

function covers(ts: TrafficSelector[], want: TrafficSelector): boolean {
  return ts.some(
    (s) =>
      s.tsType === TS_IPV4_ADDR_RANGE &&
      (s.ipProtocol === 0 || s.ipProtocol === want.ipProtocol) &&
      s.startPort <= want.startPort &&
      s.endPort >= want.endPort,
  );
}

/**
 * Responder narrowing (§2.9): the offer must include UDP to port 664 on the NIC side and UDP
 * on the station side; the answer is exactly our two selectors. Else TS_UNACCEPTABLE.
 */
export function narrowSelectors(tsi: TrafficSelector[], tsr: TrafficSelector[]): boolean {
  return covers(tsr, NIC_TS) && tsi.some((s) => s.tsType === TS_IPV4_ADDR_RANGE && (s.ipProtocol === 0 || s.ipProtocol === IPPROTO_UDP));
}

/** Initiator check of the answer: it must still contain port 664 on the NIC side. */
export function selectorsAnswerOk(tsi: TrafficSelector[], tsr: TrafficSelector[]): boolean {
  return covers(tsr, NIC_TS) && tsi.length > 0;
}
