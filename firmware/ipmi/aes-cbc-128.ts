/**
 * AES-CBC-128 payload confidentiality (IPMI v2.0 §13.29, table 13-20; cat. §5.2):
 *
 *   payload = IV(16) | AES-128-CBC_{K2[0..15]}( plaintext | 01h 02h .. Nh | N )
 *
 * N (0-15) is the number of pad bytes that makes plaintext + pad + the pad-length byte a multiple of 16;
 * the pad bytes count up from 01h (not PKCS#7). ipmitool asserts (core dump) on any other pad and
 * FreeIPMI drops the packet, so the pad is exact on the way out and checked on the way in. The IV is fresh
 * for every packet, from the caller's randomness.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { ProtocolError, UsageError } from '../../common/errors.js';

export const AES_BLOCK = 16;

/** Encrypts `plaintext` under `k2` (at least 16 bytes; its first 16 are the AES key) with the given IV. */
export function encryptPayload(k2: Uint8Array, iv: Uint8Array, plaintext: Uint8Array): Uint8Array {
  if (k2.length < AES_BLOCK) throw new UsageError('E_USAGE', `AES-CBC-128 needs K2 of at least 16 bytes, got ${k2.length}`);
  if (iv.length !== AES_BLOCK) throw new UsageError('E_USAGE', `AES-CBC-128 needs a 16-byte IV, got ${iv.length}`);
  const n = (AES_BLOCK - ((plaintext.length + 1) % AES_BLOCK)) % AES_BLOCK;
  const padded = new Uint8Array(plaintext.length + n + 1);
  padded.set(plaintext, 0);
  for (let i = 1; i <= n; i++) padded[plaintext.length + i - 1] = i;
  padded[padded.length - 1] = n;
  const c = createCipheriv('aes-128-cbc', k2.subarray(0, AES_BLOCK), iv).setAutoPadding(false);
  const body = Buffer.concat([c.update(padded), c.final()]);
  const out = new Uint8Array(AES_BLOCK + body.length);
  out.set(iv, 0);
  out.set(body, AES_BLOCK);
  return out;
}

/** Decrypts an IV | ciphertext payload; a bad length or pad throws ProtocolError('E_PAD'). */
export function decryptPayload(k2: Uint8Array, payload: Uint8Array): Uint8Array {
  if (payload.length < 2 * AES_BLOCK || payload.length % AES_BLOCK !== 0) {
    throw new ProtocolError('E_PAD', `an AES-CBC-128 payload is IV + whole blocks, got ${payload.length} bytes: drop it`);
  }
  const d = createDecipheriv('aes-128-cbc', k2.subarray(0, AES_BLOCK), payload.subarray(0, AES_BLOCK)).setAutoPadding(false);
  const p = new Uint8Array(Buffer.concat([d.update(payload.subarray(AES_BLOCK)), d.final()]));
  const n = p[p.length - 1];
  if (n >= AES_BLOCK || n + 1 > p.length) throw new ProtocolError('E_PAD', `confidentiality pad length ${n} is not 0-15: drop it`);
  const end = p.length - 1 - n;
  for (let i = 1; i <= n; i++) {
    if (p[end + i - 1] !== i) throw new ProtocolError('E_PAD', 'confidentiality pad bytes are not 01h, 02h, ..: drop it');
  }
  return p.slice(0, end);
}
