/**
 * Random bytes for the NIC machines' injected `random` (session IDs, nonces, IVs, IKE keys): node:crypto's CSPRNG,
 * drawn 4 KiB at a time and handed out in copies. randomBytes(n) costs about 3 µs a call here (a call into OpenSSL
 * and its fork check); a lanplus session set-up draws three times and every in-session answer once (its AES-CBC IV),
 * on the NIC's answer path. Same generator, fewer calls; a draw larger than the pool goes to randomBytes directly.
 * One pool per process (the emulator's NICs share one event loop, so there is no concurrent use).
 */
import { randomBytes, randomFillSync } from 'node:crypto';

const POOL = 4096;
const pool = new Uint8Array(POOL);
let used = POOL;

export function pooledRandom(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0) throw new RangeError('expected integer n >= 0, got ' + n);
  if (n > POOL / 4) return new Uint8Array(randomBytes(n));
  if (used + n > POOL) {
    randomFillSync(pool);
    used = 0;
  }
  const out = pool.slice(used, used + n);
  pool.fill(0, used, used + n); // a byte handed out is not kept
  used += n;
  return out;
}
