/**
 * The cipher suites this BMC offers: 3 and 17 only (DESIGN §9; IPMI v2.0 §22.15.2, table 22-19; cat. §1.3).
 *
 *   suite  authentication       integrity              confidentiality
 *     3    RAKP-HMAC-SHA1 (01h)  HMAC-SHA1-96 (01h)     AES-CBC-128 (01h)
 *    17    RAKP-HMAC-SHA256 (03h) HMAC-SHA256-128 (04h) AES-CBC-128 (01h)
 *
 * Suite 0 (RAKP-none, no integrity, no confidentiality) lets any password in (CVE-2013-4782 and the other
 * "cipher zero" entries, cat. §9); it and every suite without integrity and confidentiality are refused with
 * RMCP+ status 11h and never listed.
 */

export type CipherSuiteId = 3 | 17;

export interface CipherSuite {
  id: CipherSuiteId;
  /** Algorithm numbers as they appear in Open Session (bits 5:0). */
  auth: number;
  integrity: number;
  confidentiality: number;
  /** node:crypto hash of the RAKP HMACs, SIK, K1/K2 and the integrity AuthCode (§13.28, §13.28.4). */
  hash: 'sha1' | 'sha256';
  /** RAKP 2 / RAKP 3 Key Exchange Authentication Code: the full HMAC (§13.21, §13.22). */
  digestLength: 20 | 32;
  /** Integrity AuthCode and RAKP 4 ICV: HMAC-SHA1-96 = 12, HMAC-SHA256-128 = 16 (§13.28.4, §13.23). */
  authCodeLength: 12 | 16;
}

export const AUTH_RAKP_NONE = 0x00;
export const AUTH_RAKP_HMAC_SHA1 = 0x01;
export const AUTH_RAKP_HMAC_SHA256 = 0x03;
export const INTEGRITY_NONE = 0x00;
export const INTEGRITY_HMAC_SHA1_96 = 0x01;
export const INTEGRITY_HMAC_SHA256_128 = 0x04;
export const CONFIDENTIALITY_NONE = 0x00;
export const CONFIDENTIALITY_AES_CBC_128 = 0x01;

export const CIPHER_SUITES: Readonly<Record<CipherSuiteId, CipherSuite>> = {
  3: {
    id: 3, auth: AUTH_RAKP_HMAC_SHA1, integrity: INTEGRITY_HMAC_SHA1_96, confidentiality: CONFIDENTIALITY_AES_CBC_128,
    hash: 'sha1', digestLength: 20, authCodeLength: 12,
  },
  17: {
    id: 17, auth: AUTH_RAKP_HMAC_SHA256, integrity: INTEGRITY_HMAC_SHA256_128, confidentiality: CONFIDENTIALITY_AES_CBC_128,
    hash: 'sha256', digestLength: 32, authCodeLength: 16,
  },
};

export const DEFAULT_CIPHER_SUITES: readonly CipherSuiteId[] = [3, 17];

/** The offered suite with exactly these three algorithms, or null. */
export function findCipherSuite(offered: readonly CipherSuiteId[], auth: number, integrity: number, confidentiality: number): CipherSuite | null {
  for (const id of offered) {
    const s = CIPHER_SUITES[id];
    if (s.auth === auth && s.integrity === integrity && s.confidentiality === confidentiality) return s;
  }
  return null;
}

/** RAKP-none, or no integrity, or no confidentiality: the cipher-zero family that gives the BMC away. */
export function isCipherZeroFamily(auth: number, integrity: number, confidentiality: number): boolean {
  return auth === AUTH_RAKP_NONE || integrity === INTEGRITY_NONE || confidentiality === CONFIDENTIALITY_NONE;
}

/**
 * Get Channel Cipher Suites record stream (§22.15, table 22-18; cat. §2.2), "list by cipher suite": per suite
 * C0h (standard record), suite ID, then the authentication (tag 00b), integrity (tag 01b) and confidentiality
 * (tag 10b) algorithm bytes. Suite 3 = C0 03 01 41 81, suite 17 = C0 11 03 44 81.
 */
export function cipherSuiteRecords(offered: readonly CipherSuiteId[]): Uint8Array {
  const out: number[] = [];
  for (const id of offered) {
    const s = CIPHER_SUITES[id];
    out.push(0xc0, s.id, s.auth, 0x40 | s.integrity, 0x80 | s.confidentiality);
  }
  return Uint8Array.from(out);
}

/** "List supported algorithms" (request byte 3 bit 7 = 0): each algorithm once, tagged, in tag order. */
export function supportedAlgorithms(offered: readonly CipherSuiteId[]): Uint8Array {
  const suites = offered.map((id) => CIPHER_SUITES[id]);
  const uniq = (xs: number[]) => [...new Set(xs)];
  return Uint8Array.from([
    ...uniq(suites.map((s) => s.auth)),
    ...uniq(suites.map((s) => 0x40 | s.integrity)),
    ...uniq(suites.map((s) => 0x80 | s.confidentiality)),
  ]);
}
