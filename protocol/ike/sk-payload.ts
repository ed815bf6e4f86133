/**
 * The Encrypted and Authenticated payload (SK, RFC 7296 §3.14) with AES-GCM and a 16-octet
 * ICV, as RFC 5282 defines it for IKEv2 (ENCR_AES_GCM_16, transform 20):
 *
 *   SK generic header(4) | IV(8) | Ciphertext(inner payloads | Padding | Pad Length) | ICV(16)
 *
 *   - SK_e is key | 4-octet salt (RFC 5282 §7.1); nonce = salt | IV (§4 / RFC 4106 §4).
 *   - AAD = the IKE header .. the end of the SK generic header (§5.1): nothing is encrypted
 *     before the ICV is checked.
 *   - The IV must never repeat under one key (§3.1): callers pass a per-SA counter.
 *   - Padding is not needed for a stream mode; we send Pad Length 0, accept any (§3).
 * This is exactly the framing tshark 4.0 decrypts (reference/tshark README §5).
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { concat, putU16 } from '../../common/bytes.js';
import { ProtocolError, UsageError } from '../../common/errors.js';
import { GENERIC_HEADER_LENGTH, IKE_HEADER_LENGTH, PAYLOAD } from './constants.js';
import {
  decodePayloadChain,
  encodeHeader,
  encodePayloadChain,
  type EncodedPayload,
  type HeaderFields,
  type IkeHeader,
  type RawPayload,
} from './ike-message.js';

export const SK_IV_LENGTH = 8;
export const SK_ICV_LENGTH = 16;
const SALT_LENGTH = 4;

type GcmName = 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm';

function cipherFor(skE: Uint8Array): GcmName {
  switch (skE.length - SALT_LENGTH) {
    case 16:
      return 'aes-128-gcm';
    case 24:
      return 'aes-192-gcm';
    case 32:
      return 'aes-256-gcm';
    default:
      throw new UsageError('E_USAGE', `SK_e for AES-GCM must be 20, 28 or 36 octets (key | salt), got ${skE.length}`);
  }
}

/** Builds a whole message whose only payload is SK{inner}. */
export function sealSk(f: HeaderFields, inner: EncodedPayload[], skE: Uint8Array, iv: Uint8Array): Uint8Array {
  if (iv.length !== SK_IV_LENGTH) throw new UsageError('E_USAGE', 'the SK IV must be 8 octets');
  const alg = cipherFor(skE);
  const chain = encodePayloadChain(inner);
  const plain = concat(chain.bytes, new Uint8Array([0])); // Pad Length 0
  const skLen = GENERIC_HEADER_LENGTH + SK_IV_LENGTH + plain.length + SK_ICV_LENGTH;
  const header = encodeHeader(f, PAYLOAD.SK, IKE_HEADER_LENGTH + skLen);
  const skHeader = new Uint8Array(GENERIC_HEADER_LENGTH);
  skHeader[0] = chain.first;
  putU16(skHeader, 2, skLen);
  const key = skE.subarray(0, skE.length - SALT_LENGTH);
  const nonce = concat(skE.subarray(skE.length - SALT_LENGTH), iv);
  const c = createCipheriv(alg, key, nonce, { authTagLength: SK_ICV_LENGTH });
  c.setAAD(concat(header, skHeader));
  const ct = concat(c.update(plain), c.final());
  return concat(header, skHeader, iv, ct, c.getAuthTag());
}

/**
 * Verifies the ICV and decrypts. `sk` is the SK payload found by decodePayloadChain (it is the
 * last payload, so its generic header starts at message.length - 4 - body.length).
 * Throws E_ICV when the ICV does not verify; E_IKE_SYNTAX for framing errors.
 * Returns the inner plaintext without padding, and the first inner payload type.
 */
export function openSk(message: Uint8Array, sk: RawPayload, skE: Uint8Array): { first: number; plain: Uint8Array } {
  const alg = cipherFor(skE);
  if (sk.type !== PAYLOAD.SK || sk.innerFirst === undefined) throw new UsageError('E_USAGE', 'openSk needs the SK payload');
  const body = sk.body;
  if (body.length < SK_IV_LENGTH + 1 + SK_ICV_LENGTH) {
    throw new ProtocolError('E_IKE_SYNTAX', `SK payload body of ${body.length} octets is too short for IV, pad length and ICV`);
  }
  const aadEnd = message.length - body.length;
  const iv = body.subarray(0, SK_IV_LENGTH);
  const ct = body.subarray(SK_IV_LENGTH, body.length - SK_ICV_LENGTH);
  const icv = body.subarray(body.length - SK_ICV_LENGTH);
  const key = skE.subarray(0, skE.length - SALT_LENGTH);
  const nonce = concat(skE.subarray(skE.length - SALT_LENGTH), iv);
  let plain: Uint8Array;
  try {
    const d = createDecipheriv(alg, key, nonce, { authTagLength: SK_ICV_LENGTH });
    d.setAAD(message.subarray(0, aadEnd));
    d.setAuthTag(icv);
    plain = concat(d.update(ct), d.final());
  } catch {
    throw new ProtocolError('E_ICV', 'SK payload ICV does not verify (RFC 5282): wrong keys or a forged message');
  }
  const padLength = plain[plain.length - 1];
  if (padLength + 1 > plain.length) throw new ProtocolError('E_PAD', `SK Pad Length ${padLength} exceeds the plaintext`);
  return { first: sk.innerFirst, plain: plain.subarray(0, plain.length - 1 - padLength) };
}

/** Decodes the payloads inside a verified SK payload (a syntax error here earns INVALID_SYNTAX). */
export function decodeInner(opened: { first: number; plain: Uint8Array }): RawPayload[] {
  const inner = decodePayloadChain(opened.first, opened.plain, 0, opened.plain.length);
  if (inner.some((p) => p.type === PAYLOAD.SK)) throw new ProtocolError('E_IKE_SYNTAX', 'SK payload nested in SK');
  return inner;
}

/**
 * The SK payload of an IKE_AUTH / CREATE_CHILD_SA / INFORMATIONAL message. Lifeline sends no
 * unencrypted payloads in these exchanges, and accepts none (§3.14 would allow some before SK).
 */
export function onlySkPayload(header: IkeHeader, message: Uint8Array): RawPayload {
  const top = decodePayloadChain(header.nextPayload, message, IKE_HEADER_LENGTH, message.length);
  if (top.length !== 1 || top[0].type !== PAYLOAD.SK) throw new ProtocolError('E_IKE_SYNTAX', 'expected SK as the only payload');
  return top[0];
}

/** Convenience for tests and tools: header check + decrypt + inner decode. */
export function openMessage(message: Uint8Array, header: IkeHeader, top: RawPayload[], skE: Uint8Array): RawPayload[] {
  const sk = top[top.length - 1];
  if (header.nextPayload !== PAYLOAD.SK || top.length !== 1 || !sk) {
    throw new ProtocolError('E_IKE_SYNTAX', 'expected a message whose only payload is SK');
  }
  return decodeInner(openSk(message, sk, skE));
}
