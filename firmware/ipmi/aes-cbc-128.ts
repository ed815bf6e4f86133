/**
 * AES-CBC-128 payload confidentiality (IPMI v2.0 §13.29, table 13-20; cat. §5.2):
 *
 *   payload = IV(16) | AES-128-CBC_{K2[0..15]}( plaintext | 01h 02h .. Nh | N )
 *
 * N (0-15) is the number of pad bytes that makes plaintext + pad + the pad-length byte a multiple of 16;
 * the pad bytes count up from 01h (not PKCS#7). ipmitool asserts (core dump) on any other pad and
 * FreeIPMI drops the packet, so the pad is exact on the way out and checked on the way in. The IV is fresh
 * for every packet, from the caller's randomness.
 *
 * A session seals and opens every packet under the same K2, so it keeps one `AesCbc128`: one OpenSSL CBC context
 * each way, made at the session's first packet and fed every packet after, instead of a createCipheriv /
 * createDecipheriv per packet (their set-up, an EVP cipher fetch and key schedule, cost more than the 1-3 blocks
 * they then encrypt: docs/PERFORMANCE.md, "IPMI lanplus"). A CBC context never finalised carries its chain on: the
 * block before the next one it processes is the last ciphertext block it saw (`encLast`, `decLast`). A packet with
 * its own IV is therefore the same computation with the first block corrected by IV ^ last: on the way out the
 * first plaintext block is XORed with it before the update (E(P1 ^ IV ^ last ^ last) = E(P1 ^ IV)), on the way in
 * the first plaintext block after it (D(C1) ^ last ^ (IV ^ last) = D(C1) ^ IV). The bytes are exactly those of a
 * fresh CBC context under that IV (test/ipmi/codec.test.ts compares them packet by packet).
 */
import { createCipheriv, createDecipheriv, type Cipher, type Decipher } from 'node:crypto';
import { ProtocolError, UsageError } from '../../common/errors.js';

export const AES_BLOCK = 16;

/** AES-CBC-128 under one K2, for every packet of a session (see the file comment). */
export class AesCbc128 {
  private readonly key: Buffer;
  private enc: Cipher | null = null;
  private dec: Decipher | null = null;
  /** The last ciphertext block each context processed (its CBC chain state); zero before the first. */
  private readonly encLast = new Uint8Array(AES_BLOCK);
  private readonly decLast = new Uint8Array(AES_BLOCK);

  /** `k2`: at least 16 bytes, its first 16 are the AES key (copied: the caller may reuse its buffer). */
  constructor(k2: Uint8Array) {
    if (k2.length < AES_BLOCK) throw new UsageError('E_USAGE', `AES-CBC-128 needs K2 of at least 16 bytes, got ${k2.length}`);
    this.key = Buffer.from(k2.subarray(0, AES_BLOCK));
  }

  /** IV | ciphertext of `plaintext` with the IPMI pad, under the given 16-byte IV. */
  encrypt(iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (iv.length !== AES_BLOCK) throw new UsageError('E_USAGE', `AES-CBC-128 needs a 16-byte IV, got ${iv.length}`);
    const n = (AES_BLOCK - ((plaintext.length + 1) % AES_BLOCK)) % AES_BLOCK;
    const padded = Buffer.allocUnsafe(plaintext.length + n + 1);
    padded.set(plaintext, 0);
    for (let i = 1; i <= n; i++) padded[plaintext.length + i - 1] = i;
    padded[padded.length - 1] = n;
    const last = this.encLast;
    for (let i = 0; i < AES_BLOCK; i++) padded[i] ^= iv[i] ^ last[i];
    this.enc ??= createCipheriv('aes-128-cbc', this.key, last).setAutoPadding(false);
    const body = this.enc.update(padded);
    if (body.length !== padded.length) throw new Error(`AES-CBC-128: the context returned ${body.length} of ${padded.length} bytes`);
    last.set(body.subarray(body.length - AES_BLOCK));
    const out = new Uint8Array(AES_BLOCK + body.length);
    out.set(iv, 0);
    out.set(body, AES_BLOCK);
    return out;
  }

  /** The plaintext of an IV | ciphertext payload; a bad length or pad throws ProtocolError('E_PAD'). */
  decrypt(payload: Uint8Array): Uint8Array {
    if (payload.length < 2 * AES_BLOCK || payload.length % AES_BLOCK !== 0) {
      throw new ProtocolError('E_PAD', `an AES-CBC-128 payload is IV + whole blocks, got ${payload.length} bytes: drop it`);
    }
    const last = this.decLast;
    this.dec ??= createDecipheriv('aes-128-cbc', this.key, last).setAutoPadding(false);
    const p = this.dec.update(payload.subarray(AES_BLOCK));
    if (p.length !== payload.length - AES_BLOCK) throw new Error(`AES-CBC-128: the context returned ${p.length} of ${payload.length - AES_BLOCK} bytes`);
    for (let i = 0; i < AES_BLOCK; i++) p[i] ^= payload[i] ^ last[i];
    last.set(payload.subarray(payload.length - AES_BLOCK));
    const n = p[p.length - 1];
    if (n >= AES_BLOCK || n + 1 > p.length) throw new ProtocolError('E_PAD', `confidentiality pad length ${n} is not 0-15: drop it`);
    const end = p.length - 1 - n;
    for (let i = 1; i <= n; i++) {
      if (p[end + i - 1] !== i) throw new ProtocolError('E_PAD', 'confidentiality pad bytes are not 01h, 02h, ..: drop it');
    }
    return new Uint8Array(p.buffer, p.byteOffset, end);
  }
}

/** Encrypts `plaintext` under `k2` (at least 16 bytes; its first 16 are the AES key) with the given IV: one packet. */
export function encryptPayload(k2: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return new AesCbc128(k2).encrypt(iv, plaintext);
}

/** Decrypts one IV | ciphertext payload under `k2`; a bad length or pad throws ProtocolError('E_PAD'). */
export function decryptPayload(k2: Uint8Array, payload: Uint8Array): Uint8Array {
  return new AesCbc128(k2).decrypt(payload);
}
