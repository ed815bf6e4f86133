/**
 * IKEv2 key material (RFC 7296 §2.13-2.15, §2.17) and X25519 (RFC 7748, RFC 8031).
 *
 *   prf      = HMAC-SHA2-256 (PRF_HMAC_SHA2_256, RFC 4868); SHA-1 only for the published vector
 *   prf+     (K,S) = T1 | T2 | ...,  T1 = prf(K, S | 0x01),  Tn = prf(K, Tn-1 | S | n)    §2.13
 *   SKEYSEED = prf(Ni | Nr, g^ir)                                                           §2.14
 *   {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
 *   KEYMAT   = prf+(SK_d, [g^ir (new) |] Ni | Nr)                                         §2.17
 *   AUTH     = prf(prf(PSK, "Key Pad for IKEv2"), <SignedOctets>)                           §2.15
 *
 * All functions are pure; node:crypto provides HMAC and X25519 on injected private bytes.
 */
import { createHmac, createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { concat } from '../../common/bytes.js';
import { ProtocolError, UsageError } from '../../common/errors.js';

export type PrfHash = 'sha256' | 'sha1';

function assertBytes(name: string, b: unknown): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) throw new UsageError('E_USAGE', `${name}: expected a Uint8Array`);
}

export function prf(key: Uint8Array, data: Uint8Array, hash: PrfHash = 'sha256'): Uint8Array {
  assertBytes('prf key', key);
  assertBytes('prf data', data);
  return new Uint8Array(createHmac(hash, key).update(data).digest());
}

/** §2.13. At most 255 iterations of the PRF ("this function is limited to 255 times the size of the prf"). */
export function prfPlus(key: Uint8Array, seed: Uint8Array, length: number, hash: PrfHash = 'sha256'): Uint8Array {
  if (!Number.isInteger(length) || length < 0) throw new RangeError('expected integer length >= 0, got ' + length);
  const blockLen = hash === 'sha256' ? 32 : 20;
  const blocks = Math.ceil(length / blockLen);
  if (blocks > 255) throw new RangeError(`prf+ cannot produce ${length} octets (255 blocks max, §2.13)`);
  const out = new Uint8Array(blocks * blockLen);
  let t: Uint8Array = new Uint8Array(0);
  for (let n = 1; n <= blocks; n++) {
    t = prf(key, concat(t, seed, new Uint8Array([n])), hash);
    out.set(t, (n - 1) * blockLen);
  }
  return out.subarray(0, length);
}

export function skeyseed(ni: Uint8Array, nr: Uint8Array, gir: Uint8Array, hash: PrfHash = 'sha256'): Uint8Array {
  return prf(concat(ni, nr), gir, hash);
}

export interface IkeSaKeys {
  skD: Uint8Array;
  skAi: Uint8Array;
  skAr: Uint8Array;
  /** Encryption keys including the 4-octet salt for AEAD ciphers (RFC 5282 §7.1). */
  skEi: Uint8Array;
  skEr: Uint8Array;
  skPi: Uint8Array;
  skPr: Uint8Array;
}

/** Octet lengths of the SK_* keys: SK_d/SK_p = PRF key size, SK_a = 0 for AEAD (RFC 5282 §7.1). */
export interface IkeKeyLengths {
  prf: number;
  integ: number;
  encr: number;
}

/** AES-GCM-16 with a 128-bit key: 16 + 4 salt; PRF_HMAC_SHA2_256: 32 (RFC 4868 §2.1.2). */
export const GCM128_SHA256_LENGTHS: IkeKeyLengths = { prf: 32, integ: 0, encr: 20 };

export function deriveIkeSaKeys(p: {
  ni: Uint8Array;
  nr: Uint8Array;
  gir: Uint8Array;
  spiI: Uint8Array;
  spiR: Uint8Array;
  lengths?: IkeKeyLengths;
  hash?: PrfHash;
}): { skeyseed: Uint8Array; keys: IkeSaKeys } {
  const L = p.lengths ?? GCM128_SHA256_LENGTHS;
  const hash = p.hash ?? 'sha256';
  const seed = skeyseed(p.ni, p.nr, p.gir, hash);
  const total = 3 * L.prf + 2 * L.integ + 2 * L.encr;
  const km = prfPlus(seed, concat(p.ni, p.nr, p.spiI, p.spiR), total, hash);
  let o = 0;
  const take = (n: number): Uint8Array => km.slice(o, (o += n));
  const keys: IkeSaKeys = {
    skD: take(L.prf),
    skAi: take(L.integ),
    skAr: take(L.integ),
    skEi: take(L.encr),
    skEr: take(L.encr),
    skPi: take(L.prf),
    skPr: take(L.prf),
  };
  return { skeyseed: seed, keys };
}

/** §2.17: KEYMAT for a Child SA; `gir` is the new shared secret of a PFS CREATE_CHILD_SA. */
export function childKeymat(
  skD: Uint8Array,
  ni: Uint8Array,
  nr: Uint8Array,
  length: number,
  gir?: Uint8Array,
  hash: PrfHash = 'sha256',
): Uint8Array {
  const seed = gir ? concat(gir, ni, nr) : concat(ni, nr);
  return prfPlus(skD, seed, length, hash);
}

const KEY_PAD = new TextEncoder().encode('Key Pad for IKEv2');

/**
 * §2.15 shared-key AUTH. For the initiator: realMessage = its IKE_SA_INIT request,
 * peerNonce = Nr, skP = SK_pi, idBody = its IDi body; for the responder: the IKE_SA_INIT
 * response, Ni, SK_pr, IDr body.
 */
export function pskAuth(
  psk: Uint8Array,
  realMessage: Uint8Array,
  peerNonce: Uint8Array,
  skP: Uint8Array,
  idBody: Uint8Array,
  hash: PrfHash = 'sha256',
): Uint8Array {
  if (psk.length === 0) throw new UsageError('E_USAGE', 'the pre-shared key is empty');
  const macedId = prf(skP, idBody, hash);
  return prf(prf(psk, KEY_PAD, hash), concat(realMessage, peerNonce, macedId), hash);
}

// X25519 through node:crypto. Keys are imported as JWK (RFC 8037 OKP), not PKCS#8 DER: OpenSSL 3's DER decoder
// was most of an exchange's cost; the switch took `npm run bench` (refresh section, full exchanges/s) from 150/s
// to over 1,000/s (docs/PERFORMANCE.md "Fixes made for the targets"). For a private
// JWK Node derives the public value from `d` itself; `x` must be present but is not used (checked in tests
// against RFC 7748 §6.1).
const JWK_X_UNUSED = Buffer.alloc(32).toString('base64url');

/** The KeyObject of each private value is kept with its array: it is used twice (public value, then g^ir). */
const keyObjects = new WeakMap<Uint8Array, { bytes: string; key: KeyObject }>();

function privateKey(priv: Uint8Array): KeyObject {
  assertBytes('X25519 private key', priv);
  if (priv.length !== 32) throw new UsageError('E_USAGE', `X25519 private key must be 32 octets, got ${priv.length}`);
  const d = Buffer.from(priv.buffer, priv.byteOffset, 32).toString('base64url');
  const hit = keyObjects.get(priv);
  if (hit && hit.bytes === d) return hit.key; // same array, unchanged contents
  const key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d, x: JWK_X_UNUSED }, format: 'jwk' });
  keyObjects.set(priv, { bytes: d, key });
  return key;
}

/** RFC 7748 §6.1: the public value X25519(k, 9). */
export function x25519PublicKey(priv: Uint8Array): Uint8Array {
  const x = privateKey(priv).export({ format: 'jwk' }).x;
  return new Uint8Array(Buffer.from(String(x), 'base64url'));
}

/**
 * The shared secret g^ir. A peer value that is not 32 octets, or that gives the all-zero
 * output (a small-order point), is rejected as RFC 8031 §2 requires.
 */
export function x25519SharedSecret(priv: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  if (peerPublic.length !== 32) {
    throw new ProtocolError('E_IKE_SYNTAX', `Curve25519 KE data must be 32 octets (RFC 8031 §2), got ${peerPublic.length}`);
  }
  let out: Uint8Array;
  try {
    const pub = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerPublic.buffer, peerPublic.byteOffset, 32).toString('base64url') }, format: 'jwk' });
    out = new Uint8Array(diffieHellman({ privateKey: privateKey(priv), publicKey: pub }));
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new ProtocolError('E_IKE_SYNTAX', 'X25519 with the peer KE value failed (small-order point, RFC 8031 §2)');
  }
  if (out.every((x) => x === 0)) {
    throw new ProtocolError('E_IKE_SYNTAX', 'X25519 shared secret is all zero (RFC 8031 §2)');
  }
  return out;
}
