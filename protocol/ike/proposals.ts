/**
 * What Lifeline offers and accepts in SA payloads (RFC 7296 §2.7, §3.3), DESIGN §2.4:
 *  - IKE SA: ENCR_AES_GCM_16 with Key Length 128, PRF_HMAC_SHA2_256, DH group 31 (Curve25519).
 *    No integrity transform: AEAD (RFC 5282 §8: INTEG omitted or NONE).
 *  - Child SA (ESP): ENCR_AES_GCM_16/128 or ENCR_CHACHA20_POLY1305, ESN none|yes, and
 *    DH 31 in a CREATE_CHILD_SA with a KE payload (PFS). IKE_AUTH proposals carry no DH
 *    (§1.2: no KE in IKE_AUTH).
 * The responder picks one proposal and one transform of each type present in it (§2.7);
 * the initiator checks that the answer is a subset of its offer (§3.3.6).
 */
import { u32 } from '../../common/bytes.js';
import { ESP_TRANSFORM_ID, type EspTransform } from '../../wire/sa.js';
import {
  DH_CURVE25519,
  ENCR_AES_GCM_16,
  ENCR_CHACHA20_POLY1305,
  ESN_NONE,
  ESN_YES,
  PRF_HMAC_SHA2_256,
  PROTO_ESP,
  PROTO_IKE,
  TRANSFORM,
} from './constants.js';
import type { Proposal, Transform } from './sa-payload.js';

const ENCR_GCM128: Transform = { type: TRANSFORM.ENCR, id: ENCR_AES_GCM_16, keyLength: 128 };

export function ikeOffer(): Proposal[] {
  return [
    {
      num: 1,
      protocol: PROTO_IKE,
      spi: new Uint8Array(0),
      transforms: [ENCR_GCM128, { type: TRANSFORM.PRF, id: PRF_HMAC_SHA2_256 }, { type: TRANSFORM.DH, id: DH_CURVE25519 }],
    },
  ];
}

function acceptableIke(t: Transform): boolean {
  if (t.unusable) return false;
  switch (t.type) {
    case TRANSFORM.ENCR:
      return t.id === ENCR_AES_GCM_16 && t.keyLength === 128;
    case TRANSFORM.PRF:
      return t.id === PRF_HMAC_SHA2_256 && t.keyLength === undefined;
    case TRANSFORM.DH:
      return t.id === DH_CURVE25519 && t.keyLength === undefined;
    case TRANSFORM.INTEG:
      return t.id === 0 && t.keyLength === undefined; // NONE with an AEAD cipher
    default:
      return false;
  }
}

/**
 * Picks one transform of every type present in `p` from `accept`, or null when a type has no
 * acceptable transform, or when the proposal has a type outside `types` (§3.3.6).
 */
function pickEach(p: Proposal, types: number[], accept: (t: Transform) => boolean): Transform[] | null {
  const present = new Set(p.transforms.map((t) => t.type));
  for (const ty of present) if (!types.includes(ty)) return null;
  const out: Transform[] = [];
  for (const ty of types) {
    if (!present.has(ty)) continue;
    const t = p.transforms.find((x) => x.type === ty && accept(x));
    if (!t) return null;
    out.push({ type: t.type, id: t.id, keyLength: t.keyLength });
  }
  return out;
}

/**
 * The IKE proposal to answer with, or null -> NO_PROPOSAL_CHOSEN. `spiSize` is 0 in IKE_SA_INIT and
 * 8 in a CREATE_CHILD_SA rekeying the IKE SA (§1.3.2, §3.3.1: the sender's new IKE SPI).
 */
export function chooseIkeProposal(offered: Proposal[], spiSize = 0): Proposal | null {
  for (const p of offered) {
    if (p.protocol !== PROTO_IKE || p.spi.length !== spiSize) continue;
    const picked = pickEach(p, [TRANSFORM.ENCR, TRANSFORM.PRF, TRANSFORM.INTEG, TRANSFORM.DH], acceptableIke);
    if (!picked) continue;
    const has = (ty: number) => picked.some((t) => t.type === ty);
    if (!has(TRANSFORM.ENCR) || !has(TRANSFORM.PRF) || !has(TRANSFORM.DH)) continue;
    return { num: p.num, protocol: PROTO_IKE, spi: p.spi, transforms: picked };
  }
  return null;
}

function sameTransform(a: Transform, b: Transform): boolean {
  return a.type === b.type && a.id === b.id && a.keyLength === b.keyLength;
}

/** §2.7 / §3.3.6: exactly one proposal, from our offer, one transform per offered type. */
export function answerMatchesOffer(answer: Proposal[], offer: Proposal[]): Proposal | null {
  if (answer.length !== 1) return null;
  const a = answer[0];
  const o = offer.find((p) => p.num === a.num && p.protocol === a.protocol);
  if (!o) return null;
  const offeredTypes = new Set(o.transforms.map((t) => t.type));
  const seen = new Set<number>();
  for (const t of a.transforms) {
    if (t.unusable || seen.has(t.type)) return null;
    seen.add(t.type);
    if (!o.transforms.some((x) => sameTransform(x, t))) return null;
  }
  for (const ty of offeredTypes) if (!seen.has(ty)) return null;
  return a;
}

function encrTransform(t: EspTransform): Transform {
  return t === 'aes-gcm-16' ? ENCR_GCM128 : { type: TRANSFORM.ENCR, id: ENCR_CHACHA20_POLY1305 };
}

function espFromTransform(t: Transform): EspTransform | null {
  if (t.id === ENCR_AES_GCM_16 && t.keyLength === 128) return 'aes-gcm-16';
  if (t.id === ENCR_CHACHA20_POLY1305 && t.keyLength === undefined) return 'chacha20-poly1305';
  return null;
}

/** One ESP proposal: our inbound SPI, the ciphers in preference order, ESN choice, DH for PFS. */
export function espOffer(spi: number, transforms: EspTransform[], esn: boolean, pfs: boolean): Proposal[] {
  const spiBytes = new Uint8Array([spi >>> 24, (spi >>> 16) & 0xff, (spi >>> 8) & 0xff, spi & 0xff]);
  const ts: Transform[] = transforms.map(encrTransform);
  ts.push({ type: TRANSFORM.ESN, id: esn ? ESN_YES : ESN_NONE });
  if (pfs) ts.push({ type: TRANSFORM.DH, id: DH_CURVE25519 });
  return [{ num: 1, protocol: PROTO_ESP, spi: spiBytes, transforms: ts }];
}

export interface EspChoice {
  proposal: Proposal;
  transform: EspTransform;
  esn: boolean;
  /** The SPI the peer put in its proposal: its inbound SPI. */
  peerSpi: number;
  /** A DH transform was negotiated (PFS): the exchange must carry a matching KE. */
  dh: boolean;
}

export interface EspPolicy {
  transforms: EspTransform[];
  allowEsn: boolean;
}

/** A peer ESP SPI we can install: not 0, not the IANA-reserved 1..255, not the heartbeat SPI. */
export function usableEspSpi(spi: number): boolean {
  return spi >= 256 && spi !== 0xffffffff;
}

/**
 * Responder side: pick an ESP proposal. `withKe` says whether the request carried a KE
 * payload (CREATE_CHILD_SA with PFS); DH must then be chosen, and must be absent otherwise.
 */
export function chooseEspProposal(offered: Proposal[], policy: EspPolicy, withKe: boolean): EspChoice | null {
  for (const p of offered) {
    if (p.protocol !== PROTO_ESP || p.spi.length !== 4) continue;
    const peerSpi = u32(p.spi, 0);
    if (!usableEspSpi(peerSpi)) continue;
    const accept = (t: Transform): boolean => {
      if (t.unusable) return false;
      if (t.type === TRANSFORM.ENCR) {
        const e = espFromTransform(t);
        return e !== null && policy.transforms.includes(e);
      }
      if (t.type === TRANSFORM.ESN) return t.id === ESN_NONE || (t.id === ESN_YES && policy.allowEsn);
      if (t.type === TRANSFORM.DH) return withKe ? t.id === DH_CURVE25519 : t.id === 0;
      return false;
    };
    const picked = pickEach(p, [TRANSFORM.ENCR, TRANSFORM.ESN, TRANSFORM.DH], accept);
    if (!picked) continue;
    const encr = picked.find((t) => t.type === TRANSFORM.ENCR);
    if (!encr) continue;
    const dhT = picked.find((t) => t.type === TRANSFORM.DH);
    const dh = !!dhT && dhT.id !== 0;
    if (withKe !== dh) continue;
    const esnT = picked.find((t) => t.type === TRANSFORM.ESN);
    return {
      proposal: { num: p.num, protocol: PROTO_ESP, spi: p.spi, transforms: picked },
      transform: espFromTransform(encr) as EspTransform,
      esn: esnT?.id === ESN_YES,
      peerSpi,
      dh,
    };
  }
  return null;
}

/** Initiator side: read the responder's ESP answer against our offer. */
export function readEspAnswer(answer: Proposal[], offer: Proposal[]): EspChoice | null {
  const a = answerMatchesOffer(answer, offer);
  if (!a || a.protocol !== PROTO_ESP || a.spi.length !== 4) return null;
  const peerSpi = u32(a.spi, 0);
  if (!usableEspSpi(peerSpi)) return null;
  const encr = a.transforms.find((t) => t.type === TRANSFORM.ENCR);
  const e = encr ? espFromTransform(encr) : null;
  if (!e) return null;
  const dhT = a.transforms.find((t) => t.type === TRANSFORM.DH);
  return {
    proposal: a,
    transform: e,
    esn: a.transforms.some((t) => t.type === TRANSFORM.ESN && t.id === ESN_YES),
    peerSpi,
    dh: !!dhT && dhT.id !== 0,
  };
}

/** IANA name check used in logs. */
export function espTransformId(t: EspTransform): number {
  return ESP_TRANSFORM_ID[t];
}
