/**
 * AES-GCM (NIST SP 800-38D) for the ESP hot path, with every per-key computation done once, when the
 * object is built: the AES key schedule, the hash subkey H and a byte-wide multiplication table for GHASH. Per
 * packet only the counter-mode encryption (GCTR, §6.5, plus E_K(J0) for the tag) and GHASH (§6.4) remain.
 *
 * Only what ESP needs (RFC 4106): a 96-bit nonce (4-byte salt || 8-byte IV, RFC 4106 §4), a full
 * 128-bit tag (the 16-octet ICV, RFC 4106 §6), and 128/192/256-bit keys (RFC 4106 §8.1).
 *
 * The AES block function is @noble/ciphers' low-level core (`unsafe.expandKeyLE` / `unsafe.encrypt`);
 * this file does not implement AES. Its calling contract: a 16-byte block goes in and comes out as four
 * 32-bit words, each a little-endian read of 4 consecutive bytes (word 0 = bytes 0..3). The words are
 * built and taken apart byte by byte here, so the code does not depend on the machine's endianness and
 * accepts any Uint8Array view (Buffers, subarrays at odd offsets) without copying.
 *
 * GHASH is written here from SP 800-38D §6.3-6.4. GCM's bit order: in a 128-bit block X = x_0 x_1 ...
 * x_127, x_0 is the most significant bit of byte 0 and x_i is the coefficient of x^i in GF(2^128) modulo
 * x^128 + x^7 + x^2 + x + 1. Blocks are held as four 32-bit big-endian words (word 0 = bytes 0..3), so
 * "multiply by x" is a right shift of the 128-bit number by one bit, XORing R = 0xe1 || 0^120 in when
 * x_127 was 1 (§6.3, Algorithm 1, step 3). Multiplication by H uses Shoup's table method with a byte-wide
 * table: per key, T8[b] = b·H for the 256 byte values (4 KiB), built once from the 16 nibble multiples
 * M[v] = v·H; X·H is evaluated by Horner's rule one byte at a time, multiplying the running value by x^8 (an
 * 8-bit right shift whose 8 dropped bits are folded back through the shared 256-entry table RED8) and XORing
 * T8[byte] in.
 *
 * prepare() lets a caller with idle time do the nonce-only part of the next seal or open ahead: E_K(J0), the
 * keystream, and the AAD's GHASH share. A call whose nonce (and AAD) match uses it once; any other ignores it.
 *
 * Side channels: like noble's table-driven AES, the table lookups are indexed by secret-dependent
 * bytes, so the code is not constant-time against a cache-timing attacker on the same machine. The tag
 * comparison in open() is constant-time (it does not stop at the first difference).
 */
import { unsafe } from '@noble/ciphers/aes.js';
import type { Aead } from './aead.js';
import { UsageError } from '../common/errors.js';

const aesExpandKey = unsafe.expandKeyLE;
const aesEncrypt = unsafe.encrypt;

const TAG_LENGTH = 16;
const NONCE_LENGTH = 12;
/** SP 800-38D §5.2.1.1: len(P) <= 2^39 - 256 bits, i.e. 2^36 - 32 bytes. */
const MAX_TEXT_BYTES = 2 ** 36 - 32;
/** The 32-bit counter field (last 4 bytes, big-endian) of J0 = IV || 0^31 || 1 for a 96-bit IV (§7.1 step 2). */
const J0_COUNTER = 1;

/**
 * RED[r]: the reduction term for multiplying by x^4. When a block is shifted right by 4 bits, its last
 * 4 bits x_124..x_127 (r, with x_124 as the value-8 bit) would become the coefficients of x^128..x^131.
 * Since x^128 = 1 + x + x^2 + x^7, x^(128+j) = x^j·(1 + x + x^2 + x^7): the block R = 0xe1 || 0^120 shifted
 * right by j bits. Those terms only reach the first 11 bits, so one word (word 0) suffices.
 */
const RED = /* @__PURE__ */ (() => {
  const red = new Uint32Array(16);
  for (let r = 0; r < 16; r++) {
    let w = 0;
    for (let j = 0; j < 4; j++) if (r & (8 >>> j)) w ^= 0xe1000000 >>> j;
    red[r] = w;
  }
  return red;
})();

/** Four bytes at o as a little-endian word (noble's AES input/output layout). */
function le32(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}

/** Four bytes at o as a big-endian word (this file's GHASH layout). */
function be32(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

/** Like be32, but bytes at or past `end` read as zero (the 0^v / 0^u padding of §7.1 step 5). */
function be32Padded(b: Uint8Array, o: number, end: number): number {
  let w = 0;
  for (let i = 0; i < 4; i++) w |= (o + i < end ? b[o + i] : 0) << (24 - 8 * i);
  return w;
}

function putBe32(b: Uint8Array, o: number, w: number): void {
  b[o] = w >>> 24;
  b[o + 1] = w >>> 16;
  b[o + 2] = w >>> 8;
  b[o + 3] = w;
}

/** Byte order reversal: converts between the little-endian word of noble's AES and a big-endian word. */
function bswap32(w: number): number {
  return (w << 24) | ((w & 0xff00) << 8) | ((w >>> 8) & 0xff00) | (w >>> 24);
}

/** dst[d..d+3] = src[s..s+3] XOR the 4 bytes of little-endian keystream word k (a Uint8Array store keeps the low 8 bits). */
function xor4(src: Uint8Array, so: number, dst: Uint8Array, d: number, k: number): void {
  dst[d] = src[so] ^ k;
  dst[d + 1] = src[so + 1] ^ (k >>> 8);
  dst[d + 2] = src[so + 2] ^ (k >>> 16);
  dst[d + 3] = src[so + 3] ^ (k >>> 24);
}

/**
 * Per-key state, one Uint32Array (one allocation, to keep the per-key footprint small):
 *   st[0..3]   the GHASH accumulator Y (scratch, reset by every seal/open),
 *   st[4..7]   the keystream words of a final partial block (scratch),
 *   st[8..]    the AES round keys (44/52/60 words for 128/192/256-bit keys), used through a subarray view.
 */
const ST_Y = 0;
const ST_KS = 4;
const ST_XK = 8;

/**
 * RED8[r]: the reduction term for multiplying by x^8, as RED is for x^4: the 8 bits x_120..x_127 dropped by
 * a right shift of 8 (r, x_120 as the value-128 bit) fold back as XORs of R shifted right by 0..7 bits,
 * which stay within word 0.
 */
const RED8 = /* @__PURE__ */ (() => {
  const red = new Uint32Array(256);
  for (let r = 0; r < 256; r++) {
    let w = 0;
    for (let j = 0; j < 8; j++) if (r & (0x80 >>> j)) w ^= 0xe1000000 >>> j;
    red[r] = w;
  }
  return red;
})();

/**
 * The byte-wide table of Shoup's method: T8[b] = b·H for the 256 byte values (four words each, 4 KiB), from
 * the nibble multiples m (M[v] = v·H, four words each): a byte's high nibble holds its coefficients of
 * x^0..x^3 and its low nibble those of x^4..x^7, so b·H = M[hi] ⊕ M[lo]·x^4.
 */
function table8(m: Uint32Array): Uint32Array {
  const t = new Uint32Array(256 * 4);
  for (let b = 0; b < 256; b++) {
    const hi = (b >>> 4) << 2;
    const lo = (b & 15) << 2;
    let z0 = m[lo];
    let z1 = m[lo + 1];
    let z2 = m[lo + 2];
    let z3 = m[lo + 3];
    const r = z3 & 15;
    z3 = (z3 >>> 4) | (z2 << 28);
    z2 = (z2 >>> 4) | (z1 << 28);
    z1 = (z1 >>> 4) | (z0 << 28);
    z0 = (z0 >>> 4) ^ RED[r];
    t[b * 4] = z0 ^ m[hi];
    t[b * 4 + 1] = z1 ^ m[hi + 1];
    t[b * 4 + 2] = z2 ^ m[hi + 2];
    t[b * 4 + 3] = z3 ^ m[hi + 3];
  }
  return t;
}

/**
 * One GHASH step (§6.4): Y ← (Y ⊕ X)·H, with Y in st[ST_Y..] and X = (w0, w1, w2, w3), big-endian words.
 * Horner's rule over the 16 bytes of Y ⊕ X: byte k holds the coefficients of x^(8k)..x^(8k+7), so
 * Z = (...((B_15·H)·x^8 ⊕ B_14·H)·x^8 ...)·x^8 ⊕ B_0·H, from the last byte (low byte of word 3) to the first.
 * Each step is Z ← Z·x^8 (shift right by 8, fold the dropped byte back through RED8) ⊕ T8[byte]. The 4 steps
 * per word are written out because V8 does not unroll the loop.
 */
function ghashBlock(st: Uint32Array, t: Uint32Array, w0: number, w1: number, w2: number, w3: number): void {
  const x0 = st[ST_Y] ^ w0;
  const x1 = st[ST_Y + 1] ^ w1;
  const x2 = st[ST_Y + 2] ^ w2;
  const x3 = st[ST_Y + 3] ^ w3;
  let z0 = 0;
  let z1 = 0;
  let z2 = 0;
  let z3 = 0;
  let r = 0;
  let i = 0;
  for (let w = 3; w >= 0; w--) {
    let x = w === 3 ? x3 : w === 2 ? x2 : w === 1 ? x1 : x0; // consumed from its low byte up
    r = z3 & 255; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ RED8[r];
    i = (x & 255) << 2; x >>>= 8; z0 ^= t[i]; z1 ^= t[i + 1]; z2 ^= t[i + 2]; z3 ^= t[i + 3];
    r = z3 & 255; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ RED8[r];
    i = (x & 255) << 2; x >>>= 8; z0 ^= t[i]; z1 ^= t[i + 1]; z2 ^= t[i + 2]; z3 ^= t[i + 3];
    r = z3 & 255; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ RED8[r];
    i = (x & 255) << 2; x >>>= 8; z0 ^= t[i]; z1 ^= t[i + 1]; z2 ^= t[i + 2]; z3 ^= t[i + 3];
    r = z3 & 255; z3 = (z3 >>> 8) | (z2 << 24); z2 = (z2 >>> 8) | (z1 << 24); z1 = (z1 >>> 8) | (z0 << 24); z0 = (z0 >>> 8) ^ RED8[r];
    i = (x & 255) << 2; z0 ^= t[i]; z1 ^= t[i + 1]; z2 ^= t[i + 2]; z3 ^= t[i + 3];
  }
  st[ST_Y] = z0;
  st[ST_Y + 1] = z1;
  st[ST_Y + 2] = z2;
  st[ST_Y + 3] = z3;
}

/**
 * ghashBlock with the nibble table M (256 bytes) instead of T8 (4 KiB): T8[b] = M[b & 15]·x^4 ⊕ M[b >> 4], so
 * each byte step Z ← Z·x^8 ⊕ T8[b] is two nibble steps, Z ← (Z·x^4 ⊕ M[b & 15])·x^4 ⊕ M[b >> 4] (Shoup's 4-bit
 * method). Twice the steps per block, for a table a sixteenth the size: the small tables of a station that holds
 * SAs for thousands of NICs (issue 16), where a key's packets are a few per poll interval.
 */
function ghashBlock4(st: Uint32Array, t: Uint32Array, w0: number, w1: number, w2: number, w3: number): void {
  const x0 = st[ST_Y] ^ w0;
  const x1 = st[ST_Y + 1] ^ w1;
  const x2 = st[ST_Y + 2] ^ w2;
  const x3 = st[ST_Y + 3] ^ w3;
  let z0 = 0;
  let z1 = 0;
  let z2 = 0;
  let z3 = 0;
  let r = 0;
  let i = 0;
  for (let w = 3; w >= 0; w--) {
    let x = w === 3 ? x3 : w === 2 ? x2 : w === 1 ? x1 : x0; // consumed from its low byte up
    for (let k = 0; k < 4; k++) {
      r = z3 & 15; z3 = (z3 >>> 4) | (z2 << 28); z2 = (z2 >>> 4) | (z1 << 28); z1 = (z1 >>> 4) | (z0 << 28); z0 = (z0 >>> 4) ^ RED[r];
      i = (x & 15) << 2; z0 ^= t[i]; z1 ^= t[i + 1]; z2 ^= t[i + 2]; z3 ^= t[i + 3];
      r = z3 & 15; z3 = (z3 >>> 4) | (z2 << 28); z2 = (z2 >>> 4) | (z1 << 28); z1 = (z1 >>> 4) | (z0 << 28); z0 = (z0 >>> 4) ^ RED[r];
      i = ((x >>> 4) & 15) << 2; x >>>= 8; z0 ^= t[i]; z1 ^= t[i + 1]; z2 ^= t[i + 2]; z3 ^= t[i + 3];
    }
  }
  st[ST_Y] = z0;
  st[ST_Y + 1] = z1;
  st[ST_Y + 2] = z2;
  st[ST_Y + 3] = z3;
}

/** The nibble table M has 16 entries of 4 words; T8 256. */
const M_WORDS = 16 * 4;

/** One GHASH step with either table (T8, or M for a small KeyedAesGcm). */
function ghashStep(st: Uint32Array, t: Uint32Array, w0: number, w1: number, w2: number, w3: number): void {
  if (t.length === M_WORDS) ghashBlock4(st, t, w0, w1, w2, w3);
  else ghashBlock(st, t, w0, w1, w2, w3);
}

/** Feeds b[at, at + len) to GHASH as whole blocks, the last one zero-padded (§7.1 step 5: A || 0^v, C || 0^u). */
function ghashBytes(st: Uint32Array, t8: Uint32Array, b: Uint8Array, at: number, len: number): void {
  const end = at + len;
  let o = at;
  if (t8.length === M_WORDS) {
    for (; o + 16 <= end; o += 16) ghashBlock4(st, t8, be32(b, o), be32(b, o + 4), be32(b, o + 8), be32(b, o + 12));
  } else {
    for (; o + 16 <= end; o += 16) ghashBlock(st, t8, be32(b, o), be32(b, o + 4), be32(b, o + 8), be32(b, o + 12));
  }
  if (o < end) {
    ghashStep(st, t8, be32Padded(b, o, end), be32Padded(b, o + 4, end), be32Padded(b, o + 8, end), be32Padded(b, o + 12, end));
  }
}

/** The final GHASH block [len(A)]_64 || [len(C)]_64, lengths in bits (§7.1 step 5). */
function ghashLengths(st: Uint32Array, t8: Uint32Array, aadBytes: number, textBytes: number): void {
  // bytes·8 split into two 32-bit words; `n << 3` keeps the low 32 bits of n·8 (ToInt32 is modulo 2^32).
  ghashStep(st, t8, Math.floor(aadBytes / 2 ** 29), aadBytes << 3, Math.floor(textBytes / 2 ** 29), textBytes << 3);
}

/**
 * GCTR (§6.5) from inc32(J0) (§7.1 step 3 / §7.2 step 7): dst[0..len) = src[0..len) XOR the keystream
 * E_K(inc32(J0)), E_K(inc32^2(J0)), ...; the last block uses only the leading bytes it needs (§6.5 step 7).
 * J0 = IV || 0^31 || 1, so the counter word starts at 2 and wraps modulo 2^32 (inc32, §6.2).
 */
function gctr(
  xk: Uint32Array,
  st: Uint32Array,
  n0: number,
  n1: number,
  n2: number,
  src: Uint8Array,
  sa: number,
  len: number,
  dst: Uint8Array,
  da: number,
  prepared: Uint32Array | null,
): void {
  // Offsets instead of subarray views: a view of a small (on-V8-heap) Uint8Array costs more than the cipher.
  if (prepared !== null) {
    // The keystream words of prepare(), from PRE_KS on, four per block: XOR byte by byte.
    for (let j = 0; j < len; j++) dst[da + j] = src[sa + j] ^ (prepared[PRE_KS + (j >> 2)] >>> ((j & 3) << 3));
    return;
  }
  let ctr = J0_COUNTER + 1;
  let o = 0;
  for (; o + 16 <= len; o += 16) {
    const k = aesEncrypt(xk, n0, n1, n2, bswap32(ctr));
    ctr = (ctr + 1) | 0;
    xor4(src, sa + o, dst, da + o, k.s0);
    xor4(src, sa + o + 4, dst, da + o + 4, k.s1);
    xor4(src, sa + o + 8, dst, da + o + 8, k.s2);
    xor4(src, sa + o + 12, dst, da + o + 12, k.s3);
  }
  if (o < len) {
    const k = aesEncrypt(xk, n0, n1, n2, bswap32(ctr));
    st[ST_KS] = k.s0;
    st[ST_KS + 1] = k.s1;
    st[ST_KS + 2] = k.s2;
    st[ST_KS + 3] = k.s3;
    for (let j = 0; o + j < len; j++) dst[da + o + j] = src[sa + o + j] ^ (st[ST_KS + (j >> 2)] >>> ((j & 3) << 3));
  }
}

/**
 * Work done ahead by prepare(), for one nonce: pre[0..2] the nonce words, pre[3] the byte length covered,
 * pre[4..7] E_K(J0) (the tag mask), pre[8] the AAD's length (or 0xffffffff: no AAD prepared), pre[9..12] the
 * AAD (at most one block, big-endian words, zero-padded), pre[13..16] the GHASH state after it,
 * pre[20..] the keystream E_K(inc32(J0)), E_K(inc32^2(J0)), ... as little-endian words. At most
 * PREPARE_MAX_BYTES of keystream (ESP packets on this channel are small).
 */
const PRE_LEN = 3;
const PRE_MASK = 4;
const PRE_AAD_LEN = 8;
const PRE_AAD = 9;
const PRE_Y_AAD = 13;
const PRE_KS = 20;
export const PREPARE_MAX_BYTES = 128;

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== NONCE_LENGTH) {
    throw new UsageError('E_USAGE', `expected a 12-byte nonce, got ${nonce.length}`);
  }
}

/**
 * AES-GCM with a 16-byte tag and 12-byte nonce (RFC 4106), key schedule and GHASH table precomputed.
 * Per key: the byte-wide GHASH table (4 KiB), one buffer of 208/240/272 bytes (scratch 32, round keys
 * 176/208/240) and the V8 objects (this object and the typed-array views); a key whose user calls prepare()
 * also gets the preparation buffer (208 bytes). Keys exist only for SAs that carry traffic: the NIC builds an
 * SA's crypto state on its first packet (firmware/secure-channel.ts). `node dist/bench/bench.js --only firmware`
 * measures results.firmware.keyMemory (KiB per AES-128 key, before and after prepare()).
 * Not re-entrant per object (shared scratch), which is fine on one JS thread: nothing here yields.
 */
export class KeyedAesGcm implements Aead {
  readonly tagLength = 16 as const;
  /** AES round keys (FIPS 197 §5.2), in noble's little-endian word layout: a view of st[ST_XK..]. */
  readonly #xk: Uint32Array;
  /** The per-call scratch and the round keys (layout above ST_Y). */
  readonly #st: Uint32Array;
  /** prepare()'s result (layout above PRE_LEN), allocated on first use; pre[PRE_LEN] = -1 when spent. */
  #pre: Uint32Array | null = null;
  /** The byte-wide GHASH table T8 (4 KiB), or, made `small`, the nibble table M (256 bytes; ghashBlock4). */
  readonly #t8: Uint32Array;

  /**
   * `small`: GHASH with the 256-byte nibble table instead of the 4 KiB byte table, about twice the GHASH work per
   * block: for a holder of many keys that each carry little traffic (the station's sessions, issue 16).
   */
  constructor(key: Uint8Array, small = false) {
    if (!(key instanceof Uint8Array) || (key.length !== 16 && key.length !== 24 && key.length !== 32)) {
      throw new UsageError('E_USAGE', `AES-GCM needs a 16/24/32-byte key, got ${key instanceof Uint8Array ? key.length : typeof key}`);
    }
    const copy = key.slice(); // aligned private copy: later changes to `key` do not leak in
    const roundKeys = aesExpandKey(copy);
    copy.fill(0);
    const st = new Uint32Array(ST_XK + roundKeys.length);
    st.set(roundKeys, ST_XK);
    roundKeys.fill(0);
    const xk = st.subarray(ST_XK);
    this.#xk = xk;

    // Hash subkey H = E_K(0^128) (§6.4 / §7.1 step 1), as big-endian words.
    const h = aesEncrypt(xk, 0, 0, 0, 0);
    let v0 = bswap32(h.s0);
    let v1 = bswap32(h.s1);
    let v2 = bswap32(h.s2);
    let v3 = bswap32(h.s3);

    // The nibble multiples first, T8 from them. A nibble v with bits (from its most significant) c0 c1 c2 c3
    // holds the coefficients of x^0..x^3 of its 4 block bits, so v·H = c0·H ⊕ c1·(H·x) ⊕ c2·(H·x^2) ⊕
    // c3·(H·x^3): M[8] = H, M[4] = H·x, M[2] = H·x^2, M[1] = H·x^3, and the other entries are XORs of those.
    const m = new Uint32Array(16 * 4);
    for (let bit = 8; bit >= 1; bit >>>= 1) {
      m[bit * 4] = v0;
      m[bit * 4 + 1] = v1;
      m[bit * 4 + 2] = v2;
      m[bit * 4 + 3] = v3;
      // V ← V·x (§6.3 Algorithm 1 step 3): right shift, XOR R when the dropped bit x_127 was 1 (masked, no branch).
      const carry = -(v3 & 1) & 0xe1000000;
      v3 = (v3 >>> 1) | (v2 << 31);
      v2 = (v2 >>> 1) | (v1 << 31);
      v1 = (v1 >>> 1) | (v0 << 31);
      v0 = (v0 >>> 1) ^ carry;
    }
    for (let v = 3; v < 16; v++) {
      const low = v & -v; // lowest set bit; v ^ low < v, so both entries exist already
      if (low === v) continue; // a power of two, set above
      for (let j = 0; j < 4; j++) m[v * 4 + j] = m[low * 4 + j] ^ m[(v ^ low) * 4 + j];
    }
    this.#t8 = small ? m : table8(m);
    this.#st = st;
  }

  /**
   * Does ahead of time the part of one coming seal() or open() that depends only on the nonce: E_K(J0) and
   * the counter-mode keystream for `length` bytes (§7.1 steps 2-3, 6). A caller with idle time (the NIC
   * after it sent an answer) prepares the next packet's nonce, which it can predict: ESP's IV is the
   * sequence number. The next call whose nonce matches uses the result once; any other call ignores it, so
   * a wrong guess costs only the time spent on it. Nothing secret leaves the object.
   */
  prepare(nonce12: Uint8Array, length: number, aad?: Uint8Array): void {
    checkNonce(nonce12);
    if (!Number.isInteger(length) || length < 0 || length > PREPARE_MAX_BYTES) return;
    const blocks = Math.ceil(length / 16);
    const pre = (this.#pre ??= new Uint32Array(PRE_KS + (PREPARE_MAX_BYTES / 16) * 4));
    const xk = this.#xk;
    const n0 = le32(nonce12, 0);
    const n1 = le32(nonce12, 4);
    const n2 = le32(nonce12, 8);
    pre[PRE_LEN] = -1; // not usable while half written
    for (let b = 0, ctr = J0_COUNTER; b <= blocks; b++, ctr = (ctr + 1) | 0) {
      const k = aesEncrypt(xk, n0, n1, n2, bswap32(ctr));
      const at = b === 0 ? PRE_MASK : PRE_KS + 4 * (b - 1);
      pre[at] = k.s0;
      pre[at + 1] = k.s1;
      pre[at + 2] = k.s2;
      pre[at + 3] = k.s3;
    }
    pre[PRE_AAD_LEN] = -1;
    if (aad !== undefined && aad.length <= 16) {
      // GHASH of the AAD block (§7.1 step 5 begins with A || 0^v): Y = A·H, kept for the call that has this AAD.
      const st = this.#st;
      st[ST_Y] = st[ST_Y + 1] = st[ST_Y + 2] = st[ST_Y + 3] = 0;
      ghashBytes(st, this.#t8, aad, 0, aad.length);
      for (let i = 0; i < 4; i++) {
        pre[PRE_AAD + i] = be32Padded(aad, 4 * i, aad.length);
        pre[PRE_Y_AAD + i] = st[ST_Y + i];
      }
      pre[PRE_AAD_LEN] = aad.length;
    }
    pre[0] = n0;
    pre[1] = n1;
    pre[2] = n2;
    pre[PRE_LEN] = length;
  }

  /** prepare()'s result if it was made for this nonce and covers `len` bytes; marked spent (one use). */
  #take(n0: number, n1: number, n2: number, len: number): Uint32Array | null {
    const pre = this.#pre;
    if (pre === null || pre[PRE_LEN] === 0xffffffff || pre[PRE_LEN] < len || pre[0] !== n0 >>> 0 || pre[1] !== n1 >>> 0 || pre[2] !== n2 >>> 0) return null;
    pre[PRE_LEN] = -1;
    return pre;
  }

  /** Starts GHASH with the AAD block(s): from prepare()'s state when it was made for these very bytes. */
  #ghashAad(aad: Uint8Array, pre: Uint32Array | null): void {
    const st = this.#st;
    const n = aad.length;
    if (
      pre !== null && pre[PRE_AAD_LEN] === n &&
      pre[PRE_AAD] === be32Padded(aad, 0, n) >>> 0 && pre[PRE_AAD + 1] === be32Padded(aad, 4, n) >>> 0 &&
      pre[PRE_AAD + 2] === be32Padded(aad, 8, n) >>> 0 && pre[PRE_AAD + 3] === be32Padded(aad, 12, n) >>> 0
    ) {
      for (let i = 0; i < 4; i++) st[ST_Y + i] = pre[PRE_Y_AAD + i];
      return;
    }
    st[ST_Y] = st[ST_Y + 1] = st[ST_Y + 2] = st[ST_Y + 3] = 0;
    ghashBytes(st, this.#t8, aad, 0, n);
  }

  /** E_K(J0) into the scratch words st[ST_KS..ST_KS+3] (which gctr() has finished with); returns st. */
  #tagMask(n0: number, n1: number, n2: number): Uint32Array {
    const st = this.#st;
    const e = aesEncrypt(this.#xk, n0, n1, n2, bswap32(J0_COUNTER));
    st[ST_KS] = e.s0;
    st[ST_KS + 1] = e.s1;
    st[ST_KS + 2] = e.s2;
    st[ST_KS + 3] = e.s3;
    return st;
  }

  /** GCM-AE (§7.1): returns C || T, T = GHASH_H(A, C) XOR E_K(J0). */
  seal(nonce12: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    const out = new Uint8Array(plaintext.length + TAG_LENGTH);
    this.#sealInto(nonce12, aad, plaintext, 0, plaintext.length, out, 0);
    return out;
  }

  /** seal() of buf[at, at + length), in place, with the tag written at buf[at + length] (Aead.sealInPlace). */
  sealInPlace(nonce12: Uint8Array, aad: Uint8Array, buf: Uint8Array, at: number, length: number): void {
    if (!Number.isInteger(at) || !Number.isInteger(length) || at < 0 || length < 0 || at + length + TAG_LENGTH > buf.length) {
      throw new UsageError('E_USAGE', `sealInPlace: ${length} bytes at ${at} and a 16-byte tag do not fit a ${buf.length}-byte buffer`);
    }
    this.#sealInto(nonce12, aad, buf, at, length, buf, at);
  }

  /** GCM-AE of src[sa, sa + len) into out[oa, oa + len), the tag after it; src may be out at the same offset. */
  #sealInto(nonce12: Uint8Array, aad: Uint8Array, src: Uint8Array, sa: number, len: number, out: Uint8Array, oa: number): void {
    checkNonce(nonce12);
    if (len > MAX_TEXT_BYTES) throw new UsageError('E_USAGE', `AES-GCM plaintext longer than 2^36 - 32 bytes`);
    const xk = this.#xk;
    const st = this.#st;
    const n0 = le32(nonce12, 0);
    const n1 = le32(nonce12, 4);
    const n2 = le32(nonce12, 8);

    const pre = this.#take(n0, n1, n2, len);
    gctr(xk, st, n0, n1, n2, src, sa, len, out, oa, pre); // each byte is read before it is written: in place is fine

    this.#ghashAad(aad, pre);
    ghashBytes(st, this.#t8, out, oa, len);
    ghashLengths(st, this.#t8, aad.length, len);

    // T = GCTR_K(J0, S) = S XOR E_K(J0) (§7.1 step 6; full 128-bit tag).
    const e = pre ?? this.#tagMask(n0, n1, n2);
    const m = pre ? PRE_MASK : ST_KS;
    const t = oa + len;
    putBe32(out, t, st[ST_Y] ^ bswap32(e[m]));
    putBe32(out, t + 4, st[ST_Y + 1] ^ bswap32(e[m + 1]));
    putBe32(out, t + 8, st[ST_Y + 2] ^ bswap32(e[m + 2]));
    putBe32(out, t + 12, st[ST_Y + 3] ^ bswap32(e[m + 3]));
  }

  /**
   * GCM-AD (§7.2): recomputes the tag over A and C first and compares it in constant time; decrypts only
   * when it matches. Returns null for a bad tag or an input shorter than the tag.
   */
  open(nonce12: Uint8Array, aad: Uint8Array, ctAndTag: Uint8Array): Uint8Array | null {
    return this.openAt(nonce12, aad, ctAndTag, 0);
  }

  /** open() of buf[at, buf.length) (Aead.openAt): offsets instead of a view, which would cost more than the cipher. */
  openAt(nonce12: Uint8Array, aad: Uint8Array, buf: Uint8Array, at: number): Uint8Array | null {
    checkNonce(nonce12);
    if (!Number.isInteger(at) || at < 0 || at > buf.length) throw new UsageError('E_USAGE', `openAt: offset ${at} is outside a ${buf.length}-byte buffer`);
    if (buf.length - at < TAG_LENGTH) return null;
    const len = buf.length - at - TAG_LENGTH;
    if (len > MAX_TEXT_BYTES) return null; // §7.2 step 1: such a C is rejected
    const xk = this.#xk;
    const st = this.#st;
    const n0 = le32(nonce12, 0);
    const n1 = le32(nonce12, 4);
    const n2 = le32(nonce12, 8);

    const pre = this.#take(n0, n1, n2, len);
    this.#ghashAad(aad, pre);
    ghashBytes(st, this.#t8, buf, at, len);
    ghashLengths(st, this.#t8, aad.length, len);

    // T' = S XOR E_K(J0) (§7.2 steps 5-7), compared with the received T by OR-ing the XOR of every word:
    // the time taken does not depend on where (or whether) they differ (§7.2 step 8).
    const e = pre ?? this.#tagMask(n0, n1, n2);
    const m = pre ? PRE_MASK : ST_KS;
    const t = at + len;
    const diff =
      (st[ST_Y] ^ bswap32(e[m]) ^ be32(buf, t)) |
      (st[ST_Y + 1] ^ bswap32(e[m + 1]) ^ be32(buf, t + 4)) |
      (st[ST_Y + 2] ^ bswap32(e[m + 2]) ^ be32(buf, t + 8)) |
      (st[ST_Y + 3] ^ bswap32(e[m + 3]) ^ be32(buf, t + 12));
    if (diff !== 0) return null;

    const out = new Uint8Array(len);
    gctr(xk, st, n0, n1, n2, buf, at, len, out, 0, pre);
    return out;
  }
}
