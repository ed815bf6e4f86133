/**
 * Rekeying the IKE SA with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18, §2.8.2), both roles, as pure
 * functions; the machines (ike-initiator.ts, ike-responder.ts) keep the SAs:
 *
 *   old IKE SA:  CREATE_CHILD_SA { SA(IKE, SPI = new SPIi), Ni, KEi } -->
 *                                       <-- { SA(IKE, SPI = new SPIr), Nr, KEr }
 *   new SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)                                  §2.18
 *   {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
 *   old IKE SA:  INFORMATIONAL { D(IKE) } -->   <-- { }   (sent by the rekey's initiator, §2.18)
 *
 * The initiator of the rekey is the "original initiator" of the new IKE SA (its I flag), whose
 * Message IDs start at 0 (§2.2); Child SAs move to the new IKE SA. No TSi/TSr, no REKEY_SA (§1.3.2).
 * Collisions (§2.8.2): when both ends rekeyed, the new IKE SA made with the lowest of the four
 * nonces is deleted by the end that made it; the other is kept and its initiator deletes the old.
 */
import { concat, hex } from '../../common/bytes.js';
import { ProtocolError, type ErrorCode } from '../../common/errors.js';
import { CURVE25519_KE_LENGTH, DH_CURVE25519, NONCE_LENGTH, PAYLOAD, PROTO_IKE } from './constants.js';
import { prf, prfPlus, x25519PublicKey, x25519SharedSecret, GCM128_SHA256_LENGTHS, type IkeSaKeys } from './ike-crypto.js';
import type { EncodedPayload, RawPayload } from './ike-message.js';
import { decodeKe, decodeNonce, encodeKe, encodeNonce } from './ike-payloads.js';
import { NOTIFY } from './notify.js';
import { describeError, errorCodeFor, firstError, maybe, need, notifiesOf } from './payload-helpers.js';
import { answerMatchesOffer, chooseIkeProposal, ikeOffer } from './proposals.js';
import { decodeSa, encodeSa } from './sa-payload.js';

/** A new IKE SA out of a rekey: SPIs, nonces and keys; `weInitiated` = we are its original initiator. */
export interface RekeyedIkeSa {
  spiI: Uint8Array;
  spiR: Uint8Array;
  ni: Uint8Array;
  nr: Uint8Array;
  keys: IkeSaKeys;
  weInitiated: boolean;
}

/** §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr), then the SK_* as in §2.14 with the new SPIs. */
export function deriveRekeyedKeys(p: { skDOld: Uint8Array; gir: Uint8Array; ni: Uint8Array; nr: Uint8Array; spiI: Uint8Array; spiR: Uint8Array }): IkeSaKeys {
  const seed = prf(p.skDOld, concat(p.gir, p.ni, p.nr));
  const L = GCM128_SHA256_LENGTHS;
  const km = prfPlus(seed, concat(p.ni, p.nr, p.spiI, p.spiR), 3 * L.prf + 2 * L.integ + 2 * L.encr);
  let o = 0;
  const take = (n: number): Uint8Array => km.slice(o, (o += n));
  return { skD: take(L.prf), skAi: take(L.integ), skAr: take(L.integ), skEi: take(L.encr), skEr: take(L.encr), skPi: take(L.prf), skPr: take(L.prf) };
}

function newSpi(random: (n: number) => Uint8Array, inUse: (hexSpi: string) => boolean): Uint8Array {
  let spi = random(8);
  while (spi.every((b) => b === 0) || inUse(hex(spi))) spi = random(8);
  return spi;
}

/** Is this CREATE_CHILD_SA request a rekey of the IKE SA (an SA payload with an IKE proposal, §1.3.2)? */
export function isIkeRekey(inner: RawPayload[]): boolean {
  const sa = maybe(inner, PAYLOAD.SA);
  if (!sa) return false;
  return decodeSa(sa).some((p) => p.protocol === PROTO_IKE);
}

export interface IkeRekeyOffer {
  spi: Uint8Array;
  ni: Uint8Array;
  kePriv: Uint8Array;
}

/** The rekey initiator's request: SA (IKE proposal with our new SPI), Ni, KEi. */
export function makeIkeRekeyRequest(random: (n: number) => Uint8Array, inUse: (hexSpi: string) => boolean): { offer: IkeRekeyOffer; payloads: EncodedPayload[] } {
  const spi = newSpi(random, inUse);
  const ni = random(NONCE_LENGTH);
  const kePriv = random(32);
  const offer = ikeOffer();
  offer[0].spi = spi;
  return { offer: { spi, ni, kePriv }, payloads: [encodeSa(offer), encodeNonce(ni), encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(kePriv))] };
}

/** The rekey responder: choose, derive the new IKE SA, answer SA, Nr, KEr; or the Notify to refuse with. */
export function answerIkeRekey(
  inner: RawPayload[],
  p: { skDOld: Uint8Array; random: (n: number) => Uint8Array; inUse: (hexSpi: string) => boolean },
): { refuse: number; data?: Uint8Array } | { sa: RekeyedIkeSa; payloads: EncodedPayload[] } {
  const proposals = decodeSa(need(inner, PAYLOAD.SA));
  const ni = new Uint8Array(decodeNonce(need(inner, PAYLOAD.NONCE)));
  const ke = decodeKe(need(inner, PAYLOAD.KE));
  const chosen = chooseIkeProposal(proposals, 8);
  if (!chosen) return { refuse: NOTIFY.NO_PROPOSAL_CHOSEN };
  if (ke.group !== DH_CURVE25519 || ke.data.length !== CURVE25519_KE_LENGTH) return { refuse: NOTIFY.INVALID_KE_PAYLOAD, data: new Uint8Array([0, DH_CURVE25519]) };
  const kePriv = p.random(32);
  let gir: Uint8Array;
  try {
    gir = x25519SharedSecret(kePriv, ke.data);
  } catch {
    return { refuse: NOTIFY.INVALID_KE_PAYLOAD, data: new Uint8Array([0, DH_CURVE25519]) };
  }
  const spiI = new Uint8Array(chosen.spi);
  const spiR = newSpi(p.random, p.inUse);
  const nr = p.random(NONCE_LENGTH);
  const keys = deriveRekeyedKeys({ skDOld: p.skDOld, gir, ni, nr, spiI, spiR });
  return {
    sa: { spiI, spiR, ni, nr, keys, weInitiated: false },
    payloads: [encodeSa([{ ...chosen, spi: spiR }]), encodeNonce(nr), encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(kePriv))],
  };
}

/** The rekey initiator reads the answer. `notify` is the refusing error Notify type, if any. */
export function readIkeRekeyAnswer(
  inner: RawPayload[],
  offer: IkeRekeyOffer,
  skDOld: Uint8Array,
): { ok: true; sa: RekeyedIkeSa } | { ok: false; code: ErrorCode; message: string; notify: number | null } {
  try {
    const err = firstError(notifiesOf(inner));
    if (err) {
      const code = err.notifyType === NOTIFY.TEMPORARY_FAILURE ? 'E_IKE_BUSY' : errorCodeFor(err.notifyType);
      return { ok: false, code, message: `IKE SA rekey refused: ${describeError(err)}`, notify: err.notifyType };
    }
    const mine = ikeOffer();
    mine[0].spi = offer.spi;
    const a = answerMatchesOffer(decodeSa(need(inner, PAYLOAD.SA)), mine);
    if (!a || a.spi.length !== 8 || a.spi.every((b) => b === 0)) return { ok: false, code: 'E_IKE_PROPOSAL', message: 'IKE SA rekey answered with a proposal we did not offer (§2.7)', notify: null };
    const nr = new Uint8Array(decodeNonce(need(inner, PAYLOAD.NONCE)));
    const ke = decodeKe(need(inner, PAYLOAD.KE));
    if (ke.group !== DH_CURVE25519) throw new ProtocolError('E_IKE_SYNTAX', 'KEr is not a Curve25519 value');
    const gir = x25519SharedSecret(offer.kePriv, ke.data);
    const spiR = new Uint8Array(a.spi);
    const keys = deriveRekeyedKeys({ skDOld, gir, ni: offer.ni, nr, spiI: offer.spi, spiR });
    return { ok: true, sa: { spiI: offer.spi, spiR, ni: offer.ni, nr, keys, weInitiated: true } };
  } catch (e) {
    return { ok: false, code: 'E_IKE_SYNTAX', message: `IKE SA rekey answer malformed: ${(e as Error).message}`, notify: null };
  }
}

/**
 * §2.8.1 / §2.8.2: "the SA created with the lowest of the four nonces ... SHOULD be closed by the
 * endpoint that created it. 'Lowest' means an octet-by-octet comparison ... If you reach the end of
 * one nonce, that nonce is the lower one." True when our exchange holds the lowest nonce (we lost).
 */
export function weLostCollision(ours: { ni: Uint8Array; nr: Uint8Array }, theirs: { ni: Uint8Array; nr: Uint8Array }): boolean {
  const low = (a: Uint8Array, b: Uint8Array): Uint8Array => (lowerNonce(a, b) ? a : b);
  const ourLow = low(ours.ni, ours.nr);
  const theirLow = low(theirs.ni, theirs.nr);
  return lowerNonce(ourLow, theirLow);
}

/** Is `a` lower than `b` in the §2.8.1 sense (ties: the shorter is lower)? */
export function lowerNonce(a: Uint8Array, b: Uint8Array): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i];
  return a.length <= b.length;
}
