/**
 * IKE_AUTH identity and shared-key authentication (RFC 7296 §2.15, §3.5, §3.8), both ends:
 *
 *   initiator AUTH = prf(prf(PSK, "Key Pad for IKEv2"), RealMessage1 | Nr | prf(SK_pi, IDi body))
 *   responder AUTH = prf(prf(PSK, "Key Pad for IKEv2"), RealMessage2 | Ni | prf(SK_pr, IDr body))
 *
 * RealMessage1/2 are the IKE_SA_INIT request/response exactly as sent. Identities are ID_FQDN.
 */
import { equalBytes } from '../../common/bytes.js';
import { AUTH_SHARED_KEY_MIC, ID_FQDN } from './constants.js';
import { pskAuth } from './ike-crypto.js';
import type { EncodedPayload } from './ike-message.js';
import { decodeAuth, decodeId, encodeAuth, encodeId } from './ike-payloads.js';

const utf8 = new TextEncoder();

/** Our ID payload (IDi or IDr, by `idPayloadType`) and the AUTH payload that proves it. */
export function authPayloads(p: {
  idPayloadType: number;
  id: string;
  psk: Uint8Array;
  /** Our IKE_SA_INIT message (request for the initiator, response for the responder). */
  realMessage: Uint8Array;
  /** The peer's nonce. */
  peerNonce: Uint8Array;
  /** SK_pi for the initiator, SK_pr for the responder. */
  skP: Uint8Array;
}): EncodedPayload[] {
  const id = encodeId(p.idPayloadType, ID_FQDN, utf8.encode(p.id));
  return [id, encodeAuth(AUTH_SHARED_KEY_MIC, pskAuth(p.psk, p.realMessage, p.peerNonce, p.skP, id.body))];
}

/**
 * Checks the peer's ID and AUTH payload bodies. Returns the peer's FQDN, or why it failed (a
 * wrong key and a wrong identity look the same to the peer: AUTHENTICATION_FAILED, §2.21.2).
 */
export function verifyPeerAuth(p: {
  idBody: Uint8Array;
  authBody: Uint8Array;
  psk: Uint8Array;
  /** The peer's IKE_SA_INIT message. */
  realMessage: Uint8Array;
  /** Our nonce. */
  ourNonce: Uint8Array;
  /** The peer's SK_p. */
  skP: Uint8Array;
  expectedId?: string;
}): { ok: true; peer: string } | { ok: false; peer: string; message: string } {
  const id = decodeId(p.idBody);
  const auth = decodeAuth(p.authBody);
  const peer = new TextDecoder().decode(id.data);
  if (auth.method !== AUTH_SHARED_KEY_MIC) return { ok: false, peer, message: `AUTH method ${auth.method}, only shared key MIC (2) is configured` };
  if (!equalBytes(auth.data, pskAuth(p.psk, p.realMessage, p.ourNonce, p.skP, id.body))) {
    return { ok: false, peer, message: `AUTH from '${peer}' does not verify (§2.15): the pre-shared keys differ` };
  }
  if (id.idType !== ID_FQDN || (p.expectedId !== undefined && peer !== p.expectedId)) {
    return { ok: false, peer, message: `peer identified as '${peer}', expected '${p.expectedId}'` };
  }
  return { ok: true, peer };
}
