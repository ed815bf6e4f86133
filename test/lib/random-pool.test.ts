import assert from 'node:assert/strict';
import { pooledRandom } from '../../lib/random-pool.js';

describe('lib/random-pool: the NICs\' CSPRNG draws', () => {
  it('hands out copies of the requested length, never the same bytes twice, across refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const b = pooledRandom(16);
      assert.equal(b.length, 16);
      const h = Buffer.from(b).toString('hex');
      assert.ok(!seen.has(h), 'a repeated 16-byte draw');
      seen.add(h);
    }
    const a = pooledRandom(4);
    const copy = Uint8Array.from(a);
    for (let i = 0; i < 600; i++) pooledRandom(16); // refills the pool under a
    assert.deepEqual(a, copy, 'a draw is a copy, not a view of the pool');
  });

  it('large and empty draws; bad lengths are a RangeError', () => {
    assert.equal(pooledRandom(5000).length, 5000);
    assert.equal(pooledRandom(0).length, 0);
    assert.throws(() => pooledRandom(-1), RangeError);
    assert.throws(() => pooledRandom(1.5), RangeError);
  });
});
