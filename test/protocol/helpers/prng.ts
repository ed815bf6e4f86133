/** Deterministic randomness for tests: the machines take `random(n)`, tests pass a seeded one. */
import { createHash } from 'node:crypto';

/** SHA-256 in counter mode over a seed string: reproducible, well distributed bytes. */
export function seededRandom(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  let pool = new Uint8Array(0);
  return (n: number): Uint8Array => {
    while (pool.length < n) {
      const block = createHash('sha256').update(`${seed}/${counter++}`).digest();
      const next = new Uint8Array(pool.length + block.length);
      next.set(pool);
      next.set(block, pool.length);
      pool = next;
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    return out;
  };
}
