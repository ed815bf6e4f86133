/**
 * AEAD behind one interface (RFC 5116 §2): the ESP transforms of DESIGN §2.2.
 *  - 'aes-gcm-16': AES-GCM with a 16-octet ICV (RFC 4106), 128/192/256-bit key.
 *  - 'chacha20-poly1305': ChaCha20-Poly1305 (RFC 8439 §2.8, used by ESP per RFC 7634), 256-bit key.
 *
 * Three implementations, chosen per hot path by measurement: node:crypto (OpenSSL), @noble/ciphers, and
 * 'keyed' (wire/aes-gcm-keyed.ts, AES-GCM only: AES key schedule and GHASH table built once per key).
 * `node dist/bench/bench.js --only firmware` (results.firmware.aead; also part of `npm run bench`) measures
 * µs per seal+open of a 48-byte payload, 8-byte AAD. One run on this machine (2 shared cores, Node 20.20):
 *     aes-128-gcm        keyed 1.67 | node 7.45 | noble 28.1
 *     aes-256-gcm        keyed 1.96 | node 7.19 | noble 28.6
 *     chacha20-poly1305               | node 7.21 | noble 14.3
 * so 'keyed' is the default for AES-GCM (per packet, node:crypto builds an OpenSSL context and key schedule,
 * noble a key schedule and GHASH table) and 'node' for ChaCha20-Poly1305. The node key is a cached KeyObject
 * (createSecretKey), not a raw buffer parsed per packet.
 *
 * Keys are given WITHOUT the 4-byte salt: the salt belongs to the nonce, which the ESP layer builds
 * (RFC 4106 §4, RFC 7634 §2).
 */
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from 'node:crypto';
import { gcm } from '@noble/ciphers/aes.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import type { EspTransform } from './sa.js';
import { UsageError } from '../common/errors.js';
import { KeyedAesGcm } from './aes-gcm-keyed.js';

/**
 * 'node': node:crypto (OpenSSL), a cipher context and key schedule per packet.
 * 'noble': @noble/ciphers, key expansion and GHASH table per packet.
 * 'keyed': AES-GCM only (wire/aes-gcm-keyed.ts): key schedule and GHASH table built once per key, so a
 *          packet costs only CTR + GHASH. ChaCha20-Poly1305 has no 'keyed' variant: asking for it gives 'node'.
 * 'keyed-small': 'keyed' with GHASH's 256-byte nibble table instead of its 4 KiB byte table (about twice the
 *          GHASH work per block): for a holder of thousands of keys that each carry a few packets per poll
 *          interval (the station daemon's sessions, issue 16). ChaCha20-Poly1305 again gives 'node'.
 */
export type AeadImpl = 'node' | 'noble' | 'keyed' | 'keyed-small';

export const AEAD_TAG_LENGTH = 16;
export const AEAD_NONCE_LENGTH = 12;

export interface Aead {
  readonly tagLength: 16;
  /** Returns ciphertext || tag. Never call twice with the same nonce under one key. */
  seal(nonce12: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array;
  /** Returns the plaintext, or null when the tag does not verify (nothing is released then). */
  open(nonce12: Uint8Array, aad: Uint8Array, ctAndTag: Uint8Array): Uint8Array | null;
  /**
   * Optional: do ahead, in idle time, the nonce-only work of one coming seal/open of `length` bytes under
   * this nonce, and the AAD's share of the tag when `aad` is given (the keyed AES-GCM has it); a call with
   * any other nonce or AAD is unaffected.
   */
  prepare?(nonce12: Uint8Array, length: number, aad?: Uint8Array): void;
  /**
   * Optional: seal buf[at, at + length) where it lies and write the tag right after it, at buf[at + length];
   * the same bytes as seal(), without a second array (the keyed AES-GCM has it).
   */
  sealInPlace?(nonce12: Uint8Array, aad: Uint8Array, buf: Uint8Array, at: number, length: number): void;
  /**
   * Optional: open() of buf[at, buf.length) (ciphertext || tag) where it lies, without a view of it; the same
   * result as open() (the keyed AES-GCM has it).
   */
  openAt?(nonce12: Uint8Array, aad: Uint8Array, buf: Uint8Array, at: number): Uint8Array | null;
}

/** Key lengths in bytes each transform accepts (RFC 4106 §8.1: 128, 192, 256 bits; RFC 8439: 256). */
export const AEAD_KEY_LENGTHS: Record<EspTransform, readonly number[]> = {
  'aes-gcm-16': [16, 24, 32],
  'chacha20-poly1305': [32],
};

export function createAead(transform: EspTransform, key: Uint8Array, impl: AeadImpl = 'keyed'): Aead {
  const lengths = AEAD_KEY_LENGTHS[transform];
  if (lengths === undefined) throw new UsageError('E_USAGE', `unknown ESP transform ${JSON.stringify(transform)}`);
  if (!(key instanceof Uint8Array) || !lengths.includes(key.length)) {
    throw new UsageError(
      'E_USAGE',
      `${transform} needs a ${lengths.join('/')}-byte key without salt, got ${key instanceof Uint8Array ? key.length : typeof key}`,
    );
  }
  if (impl === 'node') return new NodeAead(transform, key);
  if (impl === 'noble') return new NobleAead(transform, key);
  if (impl === 'keyed') {
    // Only AES-GCM has a keyed implementation; ChaCha20-Poly1305 falls back to node:crypto.
    return transform === 'aes-gcm-16' ? new KeyedAesGcm(key) : new NodeAead(transform, key);
  }
  if (impl === 'keyed-small') return transform === 'aes-gcm-16' ? new KeyedAesGcm(key, true) : new NodeAead(transform, key);
  throw new UsageError('E_USAGE', `unknown AEAD implementation ${JSON.stringify(impl)}; use 'node', 'noble', 'keyed' or 'keyed-small'`);
}

function checkNonce(nonce: Uint8Array): void {
  if (nonce.length !== AEAD_NONCE_LENGTH) {
    throw new UsageError('E_USAGE', `expected a 12-byte nonce, got ${nonce.length}`);
  }
}

/** A Buffer returned by node:crypto, seen as a plain Uint8Array (same memory, no copy). */
function plain(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

type NodeAlgorithm = 'aes-128-gcm' | 'aes-192-gcm' | 'aes-256-gcm' | 'chacha20-poly1305';

class NodeAead implements Aead {
  readonly tagLength = 16 as const;
  readonly #algorithm: NodeAlgorithm;
  readonly #key: KeyObject;

  constructor(transform: EspTransform, key: Uint8Array) {
    this.#algorithm =
      transform === 'chacha20-poly1305' ? 'chacha20-poly1305' : (`aes-${key.length * 8}-gcm` as NodeAlgorithm);
    this.#key = createSecretKey(key); // copies the key: later changes to `key` do not leak in
  }

  seal(nonce12: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    checkNonce(nonce12);
    // The cast picks one overload; both GCM and ChaCha20-Poly1305 ciphers have setAAD/getAuthTag.
    const c = createCipheriv(this.#algorithm as 'aes-128-gcm', this.#key, nonce12, { authTagLength: 16 });
    c.setAAD(aad);
    const head = c.update(plaintext);
    const tail = c.final(); // empty for AEAD stream modes, kept for completeness
    const tag = c.getAuthTag();
    const out = new Uint8Array(head.length + tail.length + AEAD_TAG_LENGTH);
    out.set(head, 0);
    out.set(tail, head.length);
    out.set(tag, head.length + tail.length);
    return out;
  }

  open(nonce12: Uint8Array, aad: Uint8Array, ctAndTag: Uint8Array): Uint8Array | null {
    checkNonce(nonce12);
    if (ctAndTag.length < AEAD_TAG_LENGTH) return null;
    const split = ctAndTag.length - AEAD_TAG_LENGTH;
    const d = createDecipheriv(this.#algorithm as 'aes-128-gcm', this.#key, nonce12, { authTagLength: 16 });
    d.setAuthTag(ctAndTag.subarray(split));
    d.setAAD(aad);
    const head = d.update(ctAndTag.subarray(0, split));
    try {
      d.final(); // throws "Unsupported state or unable to authenticate data" on a bad tag
    } catch {
      return null;
    }
    return plain(head);
  }
}

class NobleAead implements Aead {
  readonly tagLength = 16 as const;
  readonly #make: (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) => {
    encrypt(p: Uint8Array): Uint8Array;
    decrypt(c: Uint8Array): Uint8Array;
  };
  readonly #key: Uint8Array;

  constructor(transform: EspTransform, key: Uint8Array) {
    this.#make = transform === 'chacha20-poly1305' ? chacha20poly1305 : gcm;
    this.#key = key.slice();
  }

  seal(nonce12: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    checkNonce(nonce12);
    return this.#make(this.#key, nonce12, aad).encrypt(plaintext);
  }

  open(nonce12: Uint8Array, aad: Uint8Array, ctAndTag: Uint8Array): Uint8Array | null {
    checkNonce(nonce12);
    if (ctAndTag.length < AEAD_TAG_LENGTH) return null;
    try {
      // noble verifies the tag (constant time) before it decrypts anything.
      return this.#make(this.#key, nonce12, aad).decrypt(ctAndTag);
    } catch {
      return null;
    }
  }
}
