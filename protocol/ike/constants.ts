/**
 * IKEv2 numbers used by Lifeline (RFC 7296 §3 and the IANA "IKEv2 Parameters" registry).
 * Only the subset of DESIGN §2.4 is named here; everything else is "unknown" to the codec.
 */

/** Major version 2, minor 0 (§3.1). */
export const IKE_VERSION = 0x20;
export const IKE_HEADER_LENGTH = 28;
export const GENERIC_HEADER_LENGTH = 4;
/** UDP port for IKE (§2.23); the NIC emulator makes it configurable per NIC. */
export const IKE_PORT = 500;

/** Exchange types (§3.1). */
export const EXCHANGE = {
  IKE_SA_INIT: 34,
  IKE_AUTH: 35,
  CREATE_CHILD_SA: 36,
  INFORMATIONAL: 37,
} as const;
export type ExchangeType = (typeof EXCHANGE)[keyof typeof EXCHANGE];

export function exchangeName(x: number): string {
  for (const [k, v] of Object.entries(EXCHANGE)) if (v === x) return k;
  return `EXCHANGE(${x})`;
}

/** Header flags (§3.1): Initiator (bit 3), Version (bit 4), Response (bit 5). */
export const FLAG_INITIATOR = 0x08;
export const FLAG_VERSION = 0x10;
export const FLAG_RESPONSE = 0x20;

/** Payload types (§3.2). */
export const PAYLOAD = {
  NONE: 0,
  SA: 33,
  KE: 34,
  IDi: 35,
  IDr: 36,
  CERT: 37,
  CERTREQ: 38,
  AUTH: 39,
  NONCE: 40,
  NOTIFY: 41,
  DELETE: 42,
  VENDOR: 43,
  TSi: 44,
  TSr: 45,
  SK: 46,
  CP: 47,
  EAP: 48,
} as const;

/** Types RFC 7296 defines; anything else is "unrecognized" for the critical bit (§2.5). */
export function isKnownPayloadType(t: number): boolean {
  return t >= PAYLOAD.SA && t <= PAYLOAD.EAP;
}

/** Protocol IDs in proposals, notifies and deletes (§3.3.1). */
export const PROTO_IKE = 1;
export const PROTO_AH = 2;
export const PROTO_ESP = 3;

/** Transform types (§3.3.2). */
export const TRANSFORM = { ENCR: 1, PRF: 2, INTEG: 3, DH: 4, ESN: 5 } as const;

/** Transform IDs used here (§3.3.2, RFC 5282, RFC 7634, RFC 8031). */
export const ENCR_AES_GCM_16 = 20;
export const ENCR_CHACHA20_POLY1305 = 28;
export const PRF_HMAC_SHA2_256 = 5;
export const DH_CURVE25519 = 31;
export const ESN_NONE = 0;
export const ESN_YES = 1;

/** Transform attribute "Key Length" (§3.3.5), always TV format (AF bit set). */
export const ATTR_KEY_LENGTH = 14;
export const ATTR_FORMAT_TV = 0x8000;

/** Identification types (§3.5) and authentication methods (§3.8). */
export const ID_FQDN = 2;
export const AUTH_SHARED_KEY_MIC = 2;

/** Traffic selector type (§3.13.1). */
export const TS_IPV4_ADDR_RANGE = 7;

/** X25519 public value length (RFC 8031 §2). */
export const CURVE25519_KE_LENGTH = 32;

/** Nonce length we send, and the bounds we accept (§3.9: 16..256 octets). */
export const NONCE_LENGTH = 32;
export const NONCE_MIN = 16;
export const NONCE_MAX = 256;
