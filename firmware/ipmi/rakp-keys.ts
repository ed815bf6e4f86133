/**
 * The RAKP key-exchange codes and session keys (IPMI v2.0 §13.31, §13.32; cat. §4.2-4.5). All inputs are in
 * wire order: session IDs as their 4 little-endian wire bytes, random numbers and the GUID as the opaque
 * 16 bytes that travel.
 *
 *   RAKP 2 code  = HMAC_Kuid( SID_M | SID_C | R_M | R_C | GUID_C | ROLE_M | ULEN_M | UNAME_M )   full digest
 *   RAKP 3 code  = HMAC_Kuid( R_C | SID_M | ROLE_M | ULEN_M | UNAME_M )                          full digest
 *   SIK          = HMAC_KG( R_M | R_C | ROLE_M | ULEN_M | UNAME_M )       KG = Kuid while the BMC key is 0
 *   K1, K2       = HMAC_SIK( 01h x 20 ), HMAC_SIK( 02h x 20 )     (20 bytes for SHA-256 too, cat. §4.5)
 *   RAKP 4 ICV   = HMAC_SIK( R_M | SID_C | GUID_C ), truncated to 12 (SHA-1) / 16 (SHA-256) bytes
 *   AuthCode     = HMAC_K1( session header .. next header ), truncated the same way (§13.28.4)
 *
 * ROLE_M is the whole RAKP 1 byte 24, name-only-lookup bit included (cat. §4.2). K_UID is the user's
 * password; HMAC pads a key shorter than its block with zeros, so the raw password and ipmitool's 20-byte
 * zero-padded copy give the same codes.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CipherSuite } from './cipher-suites.js';
import { putU32le } from './_le.js';

export interface RakpTranscript {
  /** Remote console session ID (Open Session Request bytes 4-7). */
  sidM: number;
  /** Managed system (BMC) session ID (Open Session Response bytes 8-11). */
  sidC: number;
  /** Remote console random number R_M (RAKP 1). */
  rM: Uint8Array;
  /** Managed system random number R_C (RAKP 2). */
  rC: Uint8Array;
  /** Managed system GUID (RAKP 2). */
  guid: Uint8Array;
  /** RAKP 1 byte 24, as sent. */
  roleM: number;
  /** The user name bytes of RAKP 1 (ULEN_M = its length). */
  userName: Uint8Array;
}

function sid(v: number): Uint8Array {
  const b = new Uint8Array(4);
  putU32le(b, 0, v);
  return b;
}

function hmac(hash: CipherSuite['hash'], key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac(hash, key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

const roleAndName = (t: RakpTranscript) => [Uint8Array.of(t.roleM, t.userName.length), t.userName];

/** RAKP 2 Key Exchange Authentication Code (§13.21): the BMC proves it knows K_UID. */
export function rakp2AuthCode(suite: CipherSuite, kuid: Uint8Array, t: RakpTranscript): Uint8Array {
  return hmac(suite.hash, kuid, sid(t.sidM), sid(t.sidC), t.rM, t.rC, t.guid, ...roleAndName(t));
}

/** RAKP 3 Key Exchange Authentication Code (§13.22): the console proves it knows K_UID. */
export function rakp3AuthCode(suite: CipherSuite, kuid: Uint8Array, t: RakpTranscript): Uint8Array {
  return hmac(suite.hash, kuid, t.rC, sid(t.sidM), ...roleAndName(t));
}

/** Session Integrity Key (§13.31). `kg` is the BMC key K_G when it is non-zero, else K_UID. */
export function sessionIntegrityKey(suite: CipherSuite, kg: Uint8Array, t: RakpTranscript): Uint8Array {
  return hmac(suite.hash, kg, t.rM, t.rC, ...roleAndName(t));
}

/** K1 (n = 1, integrity key) or K2 (n = 2; AES-CBC-128 takes its first 16 bytes) (§13.32). */
export function additionalKey(suite: CipherSuite, sik: Uint8Array, n: 1 | 2): Uint8Array {
  return hmac(suite.hash, sik, new Uint8Array(20).fill(n));
}

/** RAKP 4 Integrity Check Value (§13.23). */
export function rakp4Icv(suite: CipherSuite, sik: Uint8Array, t: RakpTranscript): Uint8Array {
  return hmac(suite.hash, sik, t.rM, sid(t.sidC), t.guid).slice(0, suite.authCodeLength);
}

/** Integrity AuthCode over `covered` (AuthType byte through Next Header) (§13.28.4). */
export function integrityAuthCode(suite: CipherSuite, k1: Uint8Array, covered: Uint8Array): Uint8Array {
  return hmac(suite.hash, k1, covered).slice(0, suite.authCodeLength);
}

/** Constant-time comparison of two codes (false, not an exception, on a length mismatch). */
export function codesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
