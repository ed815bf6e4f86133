/**
 * IKE_SA_INIT (RFC 7296 §1.2), both ends, as pure functions:
 *
 *   HDR(SPIi, 0), [N(COOKIE),] SA, KEi, Ni  -->
 *                            <--  HDR(SPIi, SPIr), SA, KEr, Nr
 *                            <--  HDR(SPIi, 0), N(NO_PROPOSAL_CHOSEN | INVALID_KE_PAYLOAD | COOKIE)
 *
 * Then both sides hold SKEYSEED and SK_* (§2.14). Nothing here is encrypted; malformed input
 * throws ProtocolError and the caller drops it (INVALID_SYNTAX cannot be sent unprotected, §2.21).
 */
import { hex } from '../../common/bytes.js';
import { ProtocolError, type ErrorCode } from '../../common/errors.js';
import { CURVE25519_KE_LENGTH, DH_CURVE25519, EXCHANGE, IKE_HEADER_LENGTH, NONCE_LENGTH, PAYLOAD } from './constants.js';
import { deriveIkeSaKeys, x25519PublicKey, x25519SharedSecret, type IkeSaKeys } from './ike-crypto.js';
import { decodePayloadChain, encodeMessage, unsupportedCritical, type EncodedPayload, type IkeHeader } from './ike-message.js';
import { decodeKe, decodeNonce, encodeKe, encodeNonce, encodeNotify, type KePayload } from './ike-payloads.js';
import { NOTIFY } from './notify.js';
import { describeError, errorCodeFor, findNotify, firstError, need, notifiesOf } from './payload-helpers.js';
import { answerMatchesOffer, chooseIkeProposal, ikeOffer } from './proposals.js';
import { decodeSa, encodeSa, type Proposal } from './sa-payload.js';

const ZERO_SPI = new Uint8Array(8);

// ---- initiator --------------------------------------------------------------------------------

export function buildInitRequest(p: { spiI: Uint8Array; kePriv: Uint8Array; ni: Uint8Array; cookie: Uint8Array | null }): Uint8Array {
  const payloads: EncodedPayload[] = [];
  if (p.cookie) payloads.push(encodeNotify(NOTIFY.COOKIE, p.cookie)); // §2.6: COOKIE first
  payloads.push(encodeSa(ikeOffer()), encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(p.kePriv)), encodeNonce(p.ni));
  return encodeMessage({ spiI: p.spiI, spiR: ZERO_SPI, exchange: EXCHANGE.IKE_SA_INIT, initiator: true, response: false, messageId: 0 }, payloads);
}

export type InitAnswer =
  | { kind: 'cookie'; cookie: Uint8Array }
  | { kind: 'refused'; code: ErrorCode; message: string }
  | { kind: 'ok'; spiR: Uint8Array; nr: Uint8Array; keys: IkeSaKeys };

/**
 * Reads the responder's IKE_SA_INIT answer. Error notifies are unauthenticated (§2.21.1); a lab
 * has no one to forge them, so they are believed at once.
 */
export function readInitResponse(h: IkeHeader, bytes: Uint8Array, p: { spiI: Uint8Array; kePriv: Uint8Array; ni: Uint8Array }): InitAnswer {
  const top = decodePayloadChain(h.nextPayload, bytes, IKE_HEADER_LENGTH, bytes.length);
  if (unsupportedCritical(top) !== null) throw new ProtocolError('E_IKE_SYNTAX', 'unsupported critical payload in IKE_SA_INIT response');
  const ns = notifiesOf(top);
  const cookie = findNotify(ns, NOTIFY.COOKIE);
  if (cookie) {
    if (cookie.data.length < 1 || cookie.data.length > 64) throw new ProtocolError('E_IKE_SYNTAX', 'COOKIE must be 1..64 octets (§2.6)');
    return { kind: 'cookie', cookie: new Uint8Array(cookie.data) };
  }
  const err = firstError(ns);
  if (err) {
    const message = err.notifyType === NOTIFY.INVALID_KE_PAYLOAD && err.data.length === 2
      ? `host wants DH group ${(err.data[0] << 8) | err.data[1]}, Lifeline only does 31 (Curve25519)`
      : describeError(err);
    return { kind: 'refused', code: errorCodeFor(err.notifyType), message: `IKE_SA_INIT refused: ${message}` };
  }
  if (h.spiR.every((b) => b === 0)) throw new ProtocolError('E_SPI', 'IKE_SA_INIT response with SPIr 0 and no error');
  if (!answerMatchesOffer(decodeSa(need(top, PAYLOAD.SA)), ikeOffer())) {
    return { kind: 'refused', code: 'E_IKE_PROPOSAL', message: 'host chose an IKE proposal we did not offer (§2.7)' };
  }
  const ke = decodeKe(need(top, PAYLOAD.KE));
  if (ke.group !== DH_CURVE25519 || ke.data.length !== CURVE25519_KE_LENGTH) throw new ProtocolError('E_IKE_SYNTAX', 'KEr is not a Curve25519 value');
  const nr = new Uint8Array(decodeNonce(need(top, PAYLOAD.NONCE)));
  const gir = x25519SharedSecret(p.kePriv, ke.data);
  const spiR = new Uint8Array(h.spiR);
  const { keys } = deriveIkeSaKeys({ ni: p.ni, nr, gir, spiI: p.spiI, spiR });
  return { kind: 'ok', spiR, nr, keys };
}

// ---- responder --------------------------------------------------------------------------------

export type InitReply =
  /** An unencrypted refusal; no state is created (§1.2, §2.5). */
  | { kind: 'refuse'; bytes: Uint8Array; message: string }
  | { kind: 'ok'; spiR: Uint8Array; ni: Uint8Array; nr: Uint8Array; keys: IkeSaKeys; response: Uint8Array };

/** An unencrypted error answer to a request (SPIr 0). */
export function plainErrorAnswer(h: IkeHeader, notifyType: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return encodeMessage(
    { spiI: h.spiI, spiR: ZERO_SPI, exchange: h.exchange, initiator: false, response: true, messageId: h.messageId },
    [encodeNotify(notifyType, data)],
  );
}

/** An IKE_SA_INIT request read far enough to decide on it, before any DH (RFC 8019 §4). */
export interface InitRequest {
  h: IkeHeader;
  ni: Uint8Array;
  ke: KePayload;
  proposals: Proposal[];
  /** N(COOKIE) data, when the initiator returned one (§2.6). */
  cookie: Uint8Array | null;
}

/** Parses an IKE_SA_INIT request (throws ProtocolError on bad syntax: dropped) or refuses it statelessly. */
export function readInitRequest(h: IkeHeader, bytes: Uint8Array): InitRequest | { kind: 'refuse'; bytes: Uint8Array; message: string } {
  const top = decodePayloadChain(h.nextPayload, bytes, IKE_HEADER_LENGTH, bytes.length);
  const crit = unsupportedCritical(top);
  if (crit !== null) {
    return { kind: 'refuse', bytes: plainErrorAnswer(h, NOTIFY.UNSUPPORTED_CRITICAL_PAYLOAD, new Uint8Array([crit])), message: `unsupported critical payload ${crit}` };
  }
  const proposals = decodeSa(need(top, PAYLOAD.SA));
  const ke = decodeKe(need(top, PAYLOAD.KE));
  const ni = new Uint8Array(decodeNonce(need(top, PAYLOAD.NONCE)));
  const cookie = findNotify(notifiesOf(top), NOTIFY.COOKIE);
  return { h, ni, ke, proposals, cookie: cookie ? new Uint8Array(cookie.data) : null };
}

/** Answers an IKE_SA_INIT request: choose the proposal, check KE, derive SK_* (the one DH of the exchange). */
export function answerInit(r: InitRequest, random: (n: number) => Uint8Array, spiInUse: (hexSpi: string) => boolean): InitReply {
  const { h, ke, ni } = r;
  const chosen = chooseIkeProposal(r.proposals);
  if (!chosen) {
    const message = 'IKE_SA_INIT offered nothing we accept (AES-GCM-16/128, HMAC-SHA2-256, Curve25519)';
    return { kind: 'refuse', bytes: plainErrorAnswer(h, NOTIFY.NO_PROPOSAL_CHOSEN), message };
  }
  if (ke.group !== DH_CURVE25519) {
    // §1.2: the KE must be for the chosen group; say which one (2 octets).
    return { kind: 'refuse', bytes: plainErrorAnswer(h, NOTIFY.INVALID_KE_PAYLOAD, new Uint8Array([0, DH_CURVE25519])), message: `KE group ${ke.group}, we want 31` };
  }
  if (ke.data.length !== CURVE25519_KE_LENGTH) throw new ProtocolError('E_IKE_SYNTAX', 'Curve25519 KE data must be 32 octets');
  const kePriv = random(32);
  const gir = x25519SharedSecret(kePriv, ke.data); // small-order point: throws, nothing created
  let spiR = random(8);
  while (spiR.every((b) => b === 0) || spiInUse(hex(spiR))) spiR = random(8);
  const nr = random(NONCE_LENGTH);
  const spiI = new Uint8Array(h.spiI);
  const { keys } = deriveIkeSaKeys({ ni, nr, gir, spiI, spiR });
  const response = encodeMessage({ spiI, spiR, exchange: EXCHANGE.IKE_SA_INIT, initiator: false, response: true, messageId: 0 }, [
    encodeSa([chosen]),
    encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(kePriv)),
    encodeNonce(nr),
  ]);
  return { kind: 'ok', spiR, ni, nr, keys, response };
}
