/**
 * Child SA negotiation (RFC 7296 §1.3, §2.7, §2.9, §2.17), the part IKE_AUTH and
 * CREATE_CHILD_SA share, for both ends and either exchange role: offer (the exchange's
 * initiator), answer (its responder, narrowing selectors, §2.9), read the answer. `side` says
 * whether we are the station or the host side (TSi/TSr sides, §2.17 key order). Randomness and
 * keys come in as arguments.
 *
 *   station offer  IKE_AUTH:        N(USE_TRANSPORT_MODE), SA, TSi, TSr
 *                  CREATE_CHILD_SA: [N(REKEY_SA),] N(USE_TRANSPORT_MODE), SA, Ni, [KEi,] TSi, TSr
 *   host answer    IKE_AUTH:        [N(USE_TRANSPORT_MODE),] SA, TSi, TSr
 *                  CREATE_CHILD_SA: [N(USE_TRANSPORT_MODE),] SA, Nr, [KEr,] TSi, TSr
 *   KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); the IKE_AUTH Child SA uses the IKE_SA_INIT
 *   nonces, a CREATE_CHILD_SA its own (§2.17).
 */
import type { ErrorCode } from '../../common/errors.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../../wire/sa.js';
import { buildSaPair, keymatLength, NIC_TS, selectorsAnswerOk, STATION_TS, narrowSelectors } from './child-sa.js';
import { DH_CURVE25519, PAYLOAD, PROTO_ESP } from './constants.js';
import { childKeymat, x25519PublicKey, x25519SharedSecret } from './ike-crypto.js';
import type { EncodedPayload, RawPayload } from './ike-message.js';
import { decodeKe, decodeNonce, decodeTs, encodeKe, encodeNonce, encodeNotify, encodeTs, type KePayload, type TrafficSelector } from './ike-payloads.js';
import { NOTIFY } from './notify.js';
import { describeError, errorCodeFor, findNotify, firstError, maybe, need, notifiesOf, spi4 } from './payload-helpers.js';
import { chooseEspProposal, espOffer, readEspAnswer, type EspPolicy } from './proposals.js';
import { decodeSa, encodeSa, type Proposal } from './sa-payload.js';

/** Which end of the Lifeline link we are: the station's side or the host/NIC side (§2.17 key order, TS sides). */
export type Side = 'station' | 'host';

/** What the exchange initiator remembers about its own offer until the answer comes. */
export interface ChildOffer {
  role: 'new' | 'rekey';
  offer: Proposal[];
  /** The SPI we chose for our inbound SA (the station's fromNic, the host's toNic). */
  ourSpi: number;
  /** The initiator nonce for KEYMAT: Ni of IKE_SA_INIT in IKE_AUTH, the fresh Ni of CREATE_CHILD_SA. */
  ni: Uint8Array;
  /** Private X25519 value for the PFS exchange, or null (IKE_AUTH, or pfs off). */
  kePriv: Uint8Array | null;
  /** The SA this one rekeys (REKEY_SA, §1.3.3), as our inbound SPI. */
  rekeySpi: number | null;
}

/** TSi, TSr of an exchange started by `side` (TSi is always the exchange initiator's side, §2.9). */
function tsPayloads(side: Side, nic: TrafficSelector[], station: TrafficSelector[]): EncodedPayload[] {
  return side === 'station'
    ? [encodeTs(PAYLOAD.TSi, station), encodeTs(PAYLOAD.TSr, nic)]
    : [encodeTs(PAYLOAD.TSi, nic), encodeTs(PAYLOAD.TSr, station)];
}

export function makeChildOffer(p: {
  /** Who makes the offer (default the station). */
  side?: Side;
  inAuth: boolean;
  ourSpi: number;
  transforms: EspTransform[];
  esn: boolean;
  /** IKE_AUTH: the IKE_SA_INIT Ni; CREATE_CHILD_SA: a fresh nonce. */
  ni: Uint8Array;
  kePriv: Uint8Array | null;
  /** CREATE_CHILD_SA rekeying this inbound SPI (§1.3.3: the SPI we expect inbound on the old SA). */
  rekeySpi: number | null;
  /** Extra status notifies to put before the Child SA part (IKE_AUTH: N(COMMIT_SUPPORTED)). */
  notifies?: EncodedPayload[];
}): { offer: ChildOffer; payloads: EncodedPayload[] } {
  const side = p.side ?? 'station';
  const kePriv = p.inAuth ? null : p.kePriv; // §1.2: no KE in IKE_AUTH
  const offer = espOffer(p.ourSpi, p.transforms, p.esn, kePriv !== null);
  const payloads: EncodedPayload[] = [];
  if (p.rekeySpi !== null) payloads.push(encodeNotify(NOTIFY.REKEY_SA, new Uint8Array(0), PROTO_ESP, spi4(p.rekeySpi)));
  payloads.push(...(p.notifies ?? []));
  payloads.push(encodeNotify(NOTIFY.USE_TRANSPORT_MODE), encodeSa(offer));
  if (!p.inAuth) payloads.push(encodeNonce(p.ni));
  if (kePriv) payloads.push(encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(kePriv)));
  payloads.push(...tsPayloads(side, [NIC_TS], [STATION_TS]));
  return { offer: { role: p.rekeySpi === null ? 'new' : 'rekey', offer, ourSpi: p.ourSpi, ni: p.ni, kePriv, rekeySpi: p.rekeySpi }, payloads };
}

export type ChildResult =
  | { ok: true; sa: SaPair; transportMode: boolean; nr: Uint8Array }
  | { ok: false; code: ErrorCode; message: string; notify: number | null };

/**
 * Exchange initiator: verify the answer against our offer (error Notify, SA a subset of the offer,
 * selectors, KEr) and derive the SA pair (generation 0: the host names it in SA_READY, or the
 * caller numbers it).
 */
export function readChildAnswer(
  inner: RawPayload[],
  x: ChildOffer,
  p: { side?: Side; inAuth: boolean; ikeNr: Uint8Array; skD: Uint8Array; policy: SecurityPolicy },
): ChildResult {
  const side = p.side ?? 'station';
  try {
    const ns = notifiesOf(inner);
    const err = firstError(ns);
    if (err) return { ok: false, code: errorCodeFor(err.notifyType), message: `Child SA refused: ${describeError(err)}`, notify: err.notifyType };
    const choice = readEspAnswer(decodeSa(need(inner, PAYLOAD.SA)), x.offer);
    const nr = p.inAuth ? p.ikeNr : decodeNonce(need(inner, PAYLOAD.NONCE));
    const tsi = decodeTs(need(inner, PAYLOAD.TSi));
    const tsr = decodeTs(need(inner, PAYLOAD.TSr));
    const tsOk = side === 'station' ? selectorsAnswerOk(tsr, tsi) : selectorsAnswerOk(tsi, tsr);
    if (!choice || !tsOk || (x.kePriv !== null) !== choice.dh) {
      return { ok: false, code: 'E_IKE_PROPOSAL', message: 'peer answered a Child SA we did not offer (§2.7, §2.9)', notify: null };
    }
    let gir: Uint8Array | undefined;
    if (x.kePriv) {
      const keBody = maybe(inner, PAYLOAD.KE);
      const ke = keBody ? decodeKe(keBody) : null;
      if (!ke || ke.group !== DH_CURVE25519) return { ok: false, code: 'E_IKE_PROPOSAL', message: 'CREATE_CHILD_SA answer lacks a Curve25519 KEr', notify: null };
      gir = x25519SharedSecret(x.kePriv, ke.data);
    }
    const keymat = childKeymat(p.skD, x.ni, nr, keymatLength(choice.transform, p.policy), gir);
    const spis = side === 'station' ? { spiToNic: choice.peerSpi, spiFromNic: x.ourSpi } : { spiToNic: x.ourSpi, spiFromNic: choice.peerSpi };
    const sa = buildSaPair({ transform: choice.transform, esn: choice.esn, policy: p.policy, ...spis }, keymat, 0, side === 'station');
    return { ok: true, sa, transportMode: !!findNotify(ns, NOTIFY.USE_TRANSPORT_MODE), nr: new Uint8Array(nr) };
  } catch (e) {
    return { ok: false, code: 'E_IKE_SYNTAX', message: `Child SA answer malformed: ${(e as Error).message}`, notify: null };
  }
}

/** The Child SA part of a request, as the exchange responder reads it. */
export interface ChildRequest {
  proposals: Proposal[];
  tsi: TrafficSelector[];
  tsr: TrafficSelector[];
  /** The exchange initiator's Ni for KEYMAT (IKE_SA_INIT's in IKE_AUTH). */
  ni: Uint8Array;
  ke: KePayload | null;
  transportMode: boolean;
}

/**
 * Exchange responder: choose a proposal, narrow the selectors to what was offered (§2.9), derive
 * KEYMAT, build the answer payloads. Returns the Notify type to refuse with instead
 * (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, INVALID_KE_PAYLOAD).
 */
export function answerChild(
  req: ChildRequest,
  p: {
    /** Who answers (default the host). */
    side?: Side;
    inAuth: boolean;
    accept: EspPolicy;
    policy: SecurityPolicy;
    skD: Uint8Array;
    /** Our Nr for KEYMAT (IKE_SA_INIT's in IKE_AUTH, fresh otherwise). */
    nr: Uint8Array;
    kePriv: Uint8Array | null;
    /** Our new inbound SPI (the host's toNic, the station's fromNic). */
    ourSpi: number;
    generation: number;
    /** Status notifies to put first (IKE_AUTH: N(COMMIT_SUPPORTED)). */
    notifies?: EncodedPayload[];
  },
): { refuse: number } | { sa: SaPair; payloads: EncodedPayload[] } {
  const side = p.side ?? 'host';
  const choice = chooseEspProposal(req.proposals, p.accept, req.ke !== null);
  if (!choice) return { refuse: NOTIFY.NO_PROPOSAL_CHOSEN };
  // TSi is the exchange initiator's side: the station's when we are the host, and vice versa.
  const ts = side === 'host' ? narrowSelectors(req.tsr, req.tsi) : narrowSelectors(req.tsi, req.tsr);
  if (!ts) return { refuse: NOTIFY.TS_UNACCEPTABLE };
  let gir: Uint8Array | undefined;
  if (req.ke) {
    if (!p.kePriv) return { refuse: NOTIFY.INVALID_KE_PAYLOAD };
    try {
      gir = x25519SharedSecret(p.kePriv, req.ke.data);
    } catch {
      return { refuse: NOTIFY.INVALID_KE_PAYLOAD };
    }
  }
  const keymat = childKeymat(p.skD, req.ni, p.nr, keymatLength(choice.transform, p.policy), gir);
  const spis = side === 'host' ? { spiToNic: p.ourSpi, spiFromNic: choice.peerSpi } : { spiToNic: choice.peerSpi, spiFromNic: p.ourSpi };
  const sa = buildSaPair({ transform: choice.transform, esn: choice.esn, policy: p.policy, ...spis }, keymat, p.generation, side === 'host');
  const payloads: EncodedPayload[] = [...(p.notifies ?? [])];
  if (req.transportMode) payloads.push(encodeNotify(NOTIFY.USE_TRANSPORT_MODE)); // §1.3.1: echo to accept
  payloads.push(encodeSa([{ ...choice.proposal, spi: spi4(p.ourSpi) }]));
  if (!p.inAuth) payloads.push(encodeNonce(p.nr));
  if (gir && p.kePriv) payloads.push(encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(p.kePriv)));
  // Answer in the request's order: TSi is the exchange initiator's side (the peer's).
  payloads.push(...tsPayloads(side === 'host' ? 'station' : 'host', ts.nic, ts.station));
  return { sa, payloads };
}
