import assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import { crc32 } from '../../firmware/crc32.js';

const ascii = (s: string) => new TextEncoder().encode(s);

describe('CRC-32 (IEEE 802.3, reflected 0xEDB88320)', () => {
  it('check value of the reveng catalogue: "123456789" -> 0xCBF43926', () => {
    assert.equal(crc32(ascii('123456789')), 0xcbf43926);
  });

  it('empty input -> 0, "The quick brown fox jumps over the lazy dog" -> 0x414FA339', () => {
    assert.equal(crc32(new Uint8Array(0)), 0);
    assert.equal(crc32(ascii('The quick brown fox jumps over the lazy dog')), 0x414fa339);
  });

  it('continues over split input: crc32(b, crc32(a)) === crc32(a || b)', () => {
    const all = ascii('123456789');
    for (let i = 0; i <= all.length; i++) assert.equal(crc32(all.subarray(i), crc32(all.subarray(0, i))), 0xcbf43926);
  });

  it('agrees with zlib on pseudo-random buffers', function () {
    const z = (zlib as unknown as { crc32?: (b: Uint8Array) => number }).crc32;
    if (!z) this.skip();
    let x = 0x12345678;
    for (let n = 1; n < 600; n += 37) {
      const b = new Uint8Array(n).map(() => ((x = (x * 1103515245 + 12345) >>> 0) >>> 24));
      assert.equal(crc32(b), z!(b));
    }
  });

  it('rejects what is not bytes or not a 32-bit running value', () => {
    assert.throws(() => crc32('123' as unknown as Uint8Array), TypeError);
    assert.throws(() => crc32(new Uint8Array(1), -1), RangeError);
    assert.throws(() => crc32(new Uint8Array(1), 2 ** 32), RangeError);
  });
});
