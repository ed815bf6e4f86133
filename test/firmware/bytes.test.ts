import assert from 'node:assert/strict';
import { high32, low32, putU64, u64 } from '../../common/bytes.js';

describe('bytes: 64-bit sequence number halves', () => {
  // low32/high32 use JS numbers up to 2^53 - 1 and BigInt above: both sides of that boundary, and the ends.
  const cases = [0n, 1n, 0xffffffffn, 0x1_0000_0000n, 0x1_2345_6789n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 0xdead_beef_0000_0001n, 2n ** 64n - 1n];
  for (const v of cases) {
    it(`splits ${v} as BigInt arithmetic does`, () => {
      assert.equal(low32(v), Number(v & 0xffffffffn));
      assert.equal(high32(v), Number(v >> 32n));
      const b = new Uint8Array(8);
      putU64(b, 0, v);
      assert.equal(u64(b, 0), v);
    });
  }
});
