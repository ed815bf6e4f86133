/**
 * Key wrapping for the store: AES-256-GCM (NIST SP 800-38D) under a sub-key of the cluster key.
 *
 *   blob = version(1) = 0x01 | key id(4) | nonce(12) | ciphertext | tag(16)
 *   AAD  = version | key id | JSON ["lifeline-wrap-v1", nic, generation, column]
 *
 * The AAD binds the row identity, so a ciphertext copied into another row (another NIC, another SA
 * generation, or the enc-key column into the ah-key column) fails authentication. The key id is
 * checked first so that "this station has the wrong cluster key" (E_KEYFILE) is told apart from
 * "this row was altered" (E_STORE). Nonces are 96 random bits: far below the 2^32 wraps per key
 * that SP 800-38D §8.3 allows for random nonces.
 */
import { createCipheriv, createDecipheriv, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { ProtocolError, UsageError } from '../../common/errors.js';
import type { ClusterKey } from './cluster-key.js';

const VERSION = 0x01;
const KEY_ID_BYTES = 4;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + KEY_ID_BYTES;
export const WRAP_OVERHEAD = HEADER_BYTES + NONCE_BYTES + TAG_BYTES;

/** The row a wrapped value belongs to. generation is 0 for per-NIC values such as the PSK. */
export interface WrapContext {
  nic: string;
  generation: number;
  column: string;
}

function describe(ctx: WrapContext): string {
  return `${ctx.column} of ${ctx.nic}` + (ctx.generation ? ` generation ${ctx.generation}` : '');
}

export class KeyWrapper {
  readonly keyId: string;
  /**
   * The wrapping key as a KeyObject, made once: createCipheriv with raw key bytes imports them again on every call
   * (a store call wraps or unwraps up to five keys a row).
   */
  readonly #key: KeyObject;
  /** version | key id: the header of every blob this wrapper writes. */
  readonly #header: Uint8Array;
  readonly #keySource: string;
  readonly #random: (n: number) => Uint8Array;

  constructor(clusterKey: ClusterKey, random: (n: number) => Uint8Array = (n) => new Uint8Array(randomBytes(n))) {
    const raw = clusterKey.subkey('store key wrap v1');
    this.#key = createSecretKey(raw);
    raw.fill(0);
    this.keyId = clusterKey.id;
    this.#header = new Uint8Array(HEADER_BYTES);
    this.#header[0] = VERSION;
    this.#header.set(Buffer.from(this.keyId, 'hex'), 1);
    this.#keySource = clusterKey.source;
    this.#random = random;
  }

  wrap(plain: Uint8Array, ctx: WrapContext): Uint8Array {
    if (!(plain instanceof Uint8Array)) throw new UsageError('E_USAGE', `wrap ${describe(ctx)}: expected bytes`);
    const header = this.#header;
    const nonce = this.#random(NONCE_BYTES);
    if (nonce.length !== NONCE_BYTES) throw new UsageError('E_INTERNAL', 'random source returned a short nonce');
    const c = createCipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    c.setAAD(aad(header, ctx));
    const ct = Buffer.concat([c.update(plain), c.final()]);
    return new Uint8Array(Buffer.concat([header, nonce, ct, c.getAuthTag()]));
  }

  unwrap(blob: Uint8Array, ctx: WrapContext): Uint8Array {
    if (!(blob instanceof Uint8Array) || blob.length < WRAP_OVERHEAD || blob[0] !== VERSION) {
      throw new ProtocolError('E_STORE', `stored ${describe(ctx)} is not a wrapped key (the row was altered); re-enroll the NIC or restore the store`);
    }
    const h = this.#header;
    if (blob[1] !== h[1] || blob[2] !== h[2] || blob[3] !== h[3] || blob[4] !== h[4]) {
      const blobKeyId = Buffer.from(blob.subarray(1, HEADER_BYTES)).toString('hex');
      throw new UsageError(
        'E_KEYFILE',
        `stored ${describe(ctx)} is wrapped under cluster key ${blobKeyId}, but this station has key ${this.keyId} (${this.#keySource}); use the cluster's key file`,
      );
    }
    const nonce = blob.subarray(HEADER_BYTES, HEADER_BYTES + NONCE_BYTES);
    const ct = blob.subarray(HEADER_BYTES + NONCE_BYTES, blob.length - TAG_BYTES);
    const tag = blob.subarray(blob.length - TAG_BYTES);
    const d = createDecipheriv('aes-256-gcm', this.#key, nonce, { authTagLength: TAG_BYTES });
    d.setAAD(aad(blob.subarray(0, HEADER_BYTES), ctx));
    d.setAuthTag(tag);
    try {
      return new Uint8Array(Buffer.concat([d.update(ct), d.final()]));
    } catch {
      throw new ProtocolError(
        'E_STORE',
        `stored ${describe(ctx)} failed AES-GCM authentication: the row was altered or moved from another row; re-enroll the NIC or restore the store`,
      );
    }
  }
}

function aad(header: Uint8Array, ctx: WrapContext): Uint8Array {
  const id = Buffer.from(JSON.stringify(['lifeline-wrap-v1', ctx.nic, ctx.generation, ctx.column]), 'utf8');
  return new Uint8Array(Buffer.concat([header, id]));
}
