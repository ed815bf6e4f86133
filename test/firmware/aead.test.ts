import assert from 'node:assert/strict';
import { createAead, type AeadImpl } from '../../wire/aead.js';
import { fromHex } from '../../common/bytes.js';
import { prng } from '../support/prng.js';

const IMPLS: AeadImpl[] = ['node', 'noble', 'keyed', 'keyed-small'];

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 4 (AES-128), 10 (AES-192)
// and 16 (AES-256): 60-byte plaintext, 20-byte AAD, 96-bit IV.
const GCM_P = fromHex(
  'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72' +
    '1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
);
const GCM_A = fromHex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
const GCM_IV = fromHex('cafebabefacedbaddecaf888');
const GCM_CASES = [
  {
    name: 'test case 4 (AES-128, with AAD)',
    key: fromHex('feffe9928665731c6d6a8f9467308308'),
    ct: fromHex(
      '42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e' +
        '21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091',
    ),
    tag: fromHex('5bc94fbc3221a5db94fae95ae7121a47'),
  },
  {
    name: 'test case 10 (AES-192, with AAD)',
    key: fromHex('feffe9928665731c6d6a8f9467308308feffe9928665731c'),
    ct: fromHex(
      '3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c' +
        '7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710',
    ),
    tag: fromHex('2519498e80f1478f37ba55bd6d27618c'),
  },
  {
    name: 'test case 16 (AES-256, with AAD)',
    key: fromHex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308'),
    ct: fromHex(
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa' +
        '8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
    ),
    tag: fromHex('76fc6ece0f4e1768cddf8853bb2d551b'),
  },
];

// RFC 8439 §2.8.2: AEAD_CHACHA20_POLY1305 example.
const RFC8439 = {
  key: fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f'),
  nonce: fromHex('070000004041424344454647'),
  aad: fromHex('50515253c0c1c2c3c4c5c6c7'),
  plaintext: new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  ),
  ct: fromHex(
    'd31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6' +
      '3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36' +
      '92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc' +
      '3ff4def08e4b7a9de576d26586cec64b6116',
  ),
  tag: fromHex('1ae10b594f09e26a7e902ecbd0600691'),
};

function cat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function flip(b: Uint8Array, i: number): Uint8Array {
  const c = b.slice();
  c[i] ^= 0x01;
  return c;
}

for (const impl of IMPLS) {
  describe(`AEAD (${impl})`, () => {
    for (const v of GCM_CASES) {
      it(`McGrew-Viega GCM ${v.name}: seal gives ciphertext || tag`, () => {
        const aead = createAead('aes-gcm-16', v.key, impl);
        assert.deepEqual(aead.seal(GCM_IV, GCM_A, GCM_P), cat(v.ct, v.tag));
      });

      it(`McGrew-Viega GCM ${v.name}: open returns the plaintext, null on any flipped bit`, () => {
        const aead = createAead('aes-gcm-16', v.key, impl);
        const sealed = cat(v.ct, v.tag);
        assert.deepEqual(aead.open(GCM_IV, GCM_A, sealed), GCM_P);
        assert.equal(aead.open(GCM_IV, GCM_A, flip(sealed, sealed.length - 1)), null, 'tag');
        assert.equal(aead.open(GCM_IV, GCM_A, flip(sealed, 0)), null, 'ciphertext');
        assert.equal(aead.open(GCM_IV, flip(GCM_A, 3), sealed), null, 'AAD');
        assert.equal(aead.open(flip(GCM_IV, 11), GCM_A, sealed), null, 'nonce');
      });
    }

    it('McGrew-Viega GCM test cases 1 and 2 (AES-128, zero key and IV, no AAD, 0 and 16 bytes)', () => {
      const aead = createAead('aes-gcm-16', new Uint8Array(16), impl);
      const nonce = new Uint8Array(12);
      assert.deepEqual(aead.seal(nonce, new Uint8Array(0), new Uint8Array(0)), fromHex('58e2fccefa7e3061367f1d57a4e7455a'));
      const sealed = fromHex('0388dace60b6a392f328c2b971b2fe78' + 'ab6e47d42cec13bdf53a67b21257bddf');
      assert.deepEqual(aead.seal(nonce, new Uint8Array(0), new Uint8Array(16)), sealed);
      assert.deepEqual(aead.open(nonce, new Uint8Array(0), sealed), new Uint8Array(16));
    });

    it('RFC 8439 §2.8.2 ChaCha20-Poly1305 AEAD: seal and open', () => {
      const aead = createAead('chacha20-poly1305', RFC8439.key, impl);
      const sealed = aead.seal(RFC8439.nonce, RFC8439.aad, RFC8439.plaintext);
      assert.deepEqual(sealed, cat(RFC8439.ct, RFC8439.tag));
      assert.deepEqual(aead.open(RFC8439.nonce, RFC8439.aad, sealed), RFC8439.plaintext);
      assert.equal(aead.open(RFC8439.nonce, RFC8439.aad, flip(sealed, 5)), null);
    });

    it('open returns null for input shorter than the tag', () => {
      const aead = createAead('aes-gcm-16', GCM_CASES[0].key, impl);
      assert.equal(aead.open(GCM_IV, GCM_A, new Uint8Array(15)), null);
    });

    it('seals and opens an empty plaintext (tag only)', () => {
      const aead = createAead('chacha20-poly1305', RFC8439.key, impl);
      const sealed = aead.seal(RFC8439.nonce, RFC8439.aad, new Uint8Array(0));
      assert.equal(sealed.length, 16);
      assert.deepEqual(aead.open(RFC8439.nonce, RFC8439.aad, sealed), new Uint8Array(0));
    });

    it('rejects wrong key and nonce lengths with E_USAGE', () => {
      assert.throws(() => createAead('aes-gcm-16', new Uint8Array(20), impl), { code: 'E_USAGE' });
      assert.throws(() => createAead('chacha20-poly1305', new Uint8Array(16), impl), { code: 'E_USAGE' });
      const aead = createAead('aes-gcm-16', GCM_CASES[0].key, impl);
      assert.throws(() => aead.seal(new Uint8Array(8), GCM_A, GCM_P), { code: 'E_USAGE' });
    });

    it('keeps its own copy of the key', () => {
      const key = GCM_CASES[0].key.slice();
      const aead = createAead('aes-gcm-16', key, impl);
      key.fill(0);
      assert.deepEqual(aead.seal(GCM_IV, GCM_A, GCM_P), cat(GCM_CASES[0].ct, GCM_CASES[0].tag));
    });
  });
}

describe('AEAD implementations agree', () => {
  it('node seals, noble opens, and the reverse, for both transforms', () => {
    const nonce = fromHex('a0a1a2a30000000000000007');
    const aad = fromHex('0000100100000007');
    const plaintext = new Uint8Array(48).map((_, i) => i * 7);
    for (const [transform, key] of [
      ['aes-gcm-16', new Uint8Array(16).fill(3)],
      ['aes-gcm-16', new Uint8Array(32).fill(4)],
      ['chacha20-poly1305', new Uint8Array(32).fill(5)],
    ] as const) {
      const a = createAead(transform, key, 'node');
      const b = createAead(transform, key, 'noble');
      assert.deepEqual(b.open(nonce, aad, a.seal(nonce, aad, plaintext)), plaintext);
      assert.deepEqual(a.open(nonce, aad, b.seal(nonce, aad, plaintext)), plaintext);
    }
  });
});

describe("AES-GCM 'keyed' (and 'keyed-small') against 'node' and 'noble'", () => {
  // Seeded pseudo-random bytes, so a failing case can be replayed from its description.
  const rand = prng(0x9e3779b9).bytes;
  const KEY_LENGTHS = [16, 24, 32] as const;
  const PLAIN_LENGTHS = Array.from({ length: 101 }, (_, i) => i); // 0..100: covers 0, 15, 16, 17, 31, 32, 33, 48, 64
  const TAMPER_LENGTHS = [0, 1, 15, 16, 17, 31, 32, 33, 48, 64, 100];

  function same(a: Uint8Array | null, b: Uint8Array, what: string): void {
    assert.ok(a !== null, `${what}: open returned null`);
    assert.equal(Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)), 0, what);
  }

  it('seals byte for byte like node and noble, and each opens the others (16/24/32-byte keys, AAD 0..40, text 0..100)', () => {
    let cases = 0;
    for (const kl of KEY_LENGTHS) {
      for (const len of PLAIN_LENGTHS) {
        for (const aadLen of [len % 41, (len * 13 + 5) % 41]) {
          const key = rand(kl);
          const nonce = rand(12);
          const aad = rand(aadLen);
          const plaintext = rand(len);
          const what = `key ${kl}, aad ${aadLen}, text ${len}`;
          const impls = (['keyed', 'node', 'noble', 'keyed-small'] as const).map((i) => createAead('aes-gcm-16', key, i));
          const sealed = impls.map((a) => a.seal(nonce, aad, plaintext));
          assert.equal(sealed[0].length, len + 16, what);
          same(sealed[0], sealed[1], `${what}: keyed vs node`);
          same(sealed[0], sealed[2], `${what}: keyed vs noble`);
          same(sealed[3], sealed[1], `${what}: keyed-small vs node`);
          for (const a of impls) for (const s of sealed) same(a.open(nonce, aad, s), plaintext, `${what}: cross open`);
          cases++;
        }
      }
    }
    assert.equal(cases, 3 * 101 * 2);
  });

  it('open returns null when any single byte of ciphertext or tag, the AAD, or the nonce is changed', () => {
    for (const kl of KEY_LENGTHS) {
      for (const len of TAMPER_LENGTHS) {
        const key = rand(kl);
        const nonce = rand(12);
        const aad = rand(len % 41 || 8);
        const plaintext = rand(len);
        const aead = createAead('aes-gcm-16', key, 'keyed');
        const sealed = aead.seal(nonce, aad, plaintext);
        const what = `key ${kl}, text ${len}`;
        for (let i = 0; i < sealed.length; i++) {
          const bad = sealed.slice();
          bad[i] ^= 1 << (i % 8);
          assert.equal(aead.open(nonce, aad, bad), null, `${what}: byte ${i} of ciphertext||tag`);
        }
        for (let i = 0; i < aad.length; i++) {
          const bad = aad.slice();
          bad[i] ^= 0x80 >>> (i % 8);
          assert.equal(aead.open(nonce, bad, sealed), null, `${what}: AAD byte ${i}`);
        }
        assert.equal(aead.open(nonce, aad.subarray(1), sealed), null, `${what}: AAD one byte shorter`);
        assert.equal(aead.open(nonce, cat(aad, new Uint8Array(1)), sealed), null, `${what}: AAD with a zero byte appended`);
        assert.equal(aead.open(flip(nonce, 5), aad, sealed), null, `${what}: nonce`);
        assert.equal(aead.open(nonce, aad, sealed.subarray(1)), null, `${what}: first byte cut`);
        assert.equal(aead.open(nonce, aad, sealed.subarray(0, sealed.length - 1)), null, `${what}: last byte cut`);
        assert.equal(aead.open(nonce, aad, cat(sealed, new Uint8Array(1))), null, `${what}: zero byte appended`);
        // A different key of the same length must not verify either.
        assert.equal(createAead('aes-gcm-16', flip(key, 0), 'keyed').open(nonce, aad, sealed), null, `${what}: key`);
        same(aead.open(nonce, aad, sealed), plaintext, `${what}: untouched`);
      }
    }
  });

  it('one object over many packets in a row, bad ones interleaved, matches a fresh node object every time', () => {
    for (const kl of KEY_LENGTHS) {
      const key = rand(kl);
      const keyed = createAead('aes-gcm-16', key, 'keyed');
      for (let p = 0; p < 400; p++) {
        const nonce = rand(12);
        const aad = rand(p % 41);
        const plaintext = rand((p * 37) % 101);
        const what = `key ${kl}, packet ${p}`;
        const expected = createAead('aes-gcm-16', key, 'node').seal(nonce, aad, plaintext);
        const sealed = keyed.seal(nonce, aad, plaintext);
        same(sealed, expected, `${what}: seal`);
        if (p % 3 === 0) assert.equal(keyed.open(nonce, aad, flip(sealed, p % sealed.length)), null, `${what}: bad open`);
        same(keyed.open(nonce, aad, expected), plaintext, `${what}: open`);
        if (p % 5 === 0) assert.equal(keyed.open(nonce, aad, new Uint8Array(p % 16)), null, `${what}: short input`);
      }
    }
  });

  it('does not modify its inputs (seal, open, failed open)', () => {
    for (const kl of KEY_LENGTHS) {
      const aead = createAead('aes-gcm-16', rand(kl), 'keyed');
      for (const len of TAMPER_LENGTHS) {
        const nonce = rand(12);
        const aad = rand(len % 41);
        const plaintext = rand(len);
        const copies = [nonce.slice(), aad.slice(), plaintext.slice()];
        const sealed = aead.seal(nonce, aad, plaintext);
        const sealedCopy = sealed.slice();
        const bad = flip(sealed, 0);
        const badCopy = bad.slice();
        same(aead.open(nonce, aad, sealed), plaintext, `text ${len}`);
        assert.equal(aead.open(nonce, aad, bad), null);
        assert.deepEqual([nonce, aad, plaintext], copies);
        assert.deepEqual(sealed, sealedCopy);
        assert.deepEqual(bad, badCopy);
      }
    }
  });

  it('accepts unaligned subarray views and Buffers for nonce, AAD, plaintext and ciphertext', () => {
    // Views at odd byte offsets into one backing buffer, and Node Buffers (pooled, so also at arbitrary offsets).
    function oddView(b: Uint8Array, offset: number): Uint8Array {
      const backing = rand(b.length + offset + 3);
      backing.set(b, offset);
      return backing.subarray(offset, offset + b.length);
    }
    for (const kl of KEY_LENGTHS) {
      const key = rand(kl);
      const keyed = createAead('aes-gcm-16', oddView(key, 3), 'keyed');
      const node = createAead('aes-gcm-16', key, 'node');
      for (const len of [0, 1, 15, 16, 17, 33, 48, 64, 100]) {
        const nonce = rand(12);
        const aad = rand((len % 40) + 1);
        const plaintext = rand(len);
        const expected = node.seal(nonce, aad, plaintext);
        const what = `key ${kl}, text ${len}`;
        const variants: [string, (b: Uint8Array) => Uint8Array][] = [
          ['odd view 1', (b) => oddView(b, 1)],
          ['odd view 5', (b) => oddView(b, 5)],
          ['Buffer', (b) => Buffer.from(b)],
          ['Buffer subarray', (b) => Buffer.concat([Buffer.alloc(7), b]).subarray(7)],
        ];
        for (const [name, wrap] of variants) {
          const sealed = keyed.seal(wrap(nonce), wrap(aad), wrap(plaintext));
          same(sealed, expected, `${what}, ${name}: seal`);
          same(keyed.open(wrap(nonce), wrap(aad), wrap(expected)), plaintext, `${what}, ${name}: open`);
          assert.equal(keyed.open(wrap(nonce), wrap(aad), wrap(flip(expected, expected.length - 1))), null, `${what}, ${name}: bad tag`);
        }
      }
    }
  });

  it('prepare(): the prepared call gives the same bytes; other nonces, longer texts and second uses are unaffected', () => {
    for (const keyLength of KEY_LENGTHS) {
      const key = rand(keyLength);
      const keyed = createAead('aes-gcm-16', key, 'keyed');
      const ref = createAead('aes-gcm-16', key, 'node');
      assert.ok(keyed.prepare, 'keyed has prepare()');
      for (const len of [0, 1, 15, 16, 17, 24, 40, 48, 64, 100, 128, 129]) {
        const nonce = rand(12);
        const other = rand(12);
        const aad = rand(8);
        const plain = rand(len);
        const expected = ref.seal(nonce, aad, plain);
        const what = `key ${keyLength}, ${len} bytes`;
        // Prepared for this nonce and length (or longer): used by the next seal, once.
        keyed.prepare!(nonce, len);
        same(keyed.seal(nonce, aad, plain), expected, `${what}: prepared seal`);
        same(keyed.seal(nonce, aad, plain), expected, `${what}: second seal (preparation spent)`);
        keyed.prepare!(nonce, len + 16);
        same(keyed.open(nonce, aad, expected), plain, `${what}: prepared open (prepared longer)`);
        // A bad tag stays bad with a preparation, and the preparation is spent by the failed open.
        keyed.prepare!(nonce, len);
        assert.equal(keyed.open(nonce, aad, flip(expected, expected.length - 1)), null, `${what}: prepared open of a bad tag`);
        same(keyed.open(nonce, aad, expected), plain, `${what}: open after the failed one`);
        // With the AAD prepared too (its GHASH share), and with an AAD that differs from the prepared one.
        keyed.prepare!(nonce, len, aad);
        same(keyed.seal(nonce, aad, plain), expected, `${what}: seal, AAD prepared`);
        keyed.prepare!(nonce, len, aad);
        same(keyed.open(nonce, aad, expected), plain, `${what}: open, AAD prepared`);
        const aad2 = flip(aad, 7);
        keyed.prepare!(nonce, len, aad);
        same(keyed.seal(nonce, aad2, plain), ref.seal(nonce, aad2, plain), `${what}: seal, another AAD prepared`);
        keyed.prepare!(nonce, len, aad);
        assert.equal(keyed.open(nonce, aad2, expected), null, `${what}: open under another AAD than sealed, prepared AAD`);
        keyed.prepare!(nonce, len, rand(12));
        same(keyed.open(nonce, aad, expected), plain, `${what}: open, a 12-byte AAD prepared`);
        // Prepared for another nonce, or for a shorter text: ignored.
        keyed.prepare!(other, len);
        same(keyed.seal(nonce, aad, plain), expected, `${what}: seal, another nonce prepared`);
        same(keyed.open(other, aad, ref.seal(other, aad, plain)), plain, `${what}: the other nonce's open still uses it`);
        if (len > 0) {
          keyed.prepare!(nonce, len - 1);
          same(keyed.seal(nonce, aad, plain), expected, `${what}: seal, prepared too short`);
        }
      }
      // sealInPlace(): the same bytes as seal(), written over the plaintext, with or without a preparation.
      for (const len of [0, 5, 16, 24, 33, 64]) {
        const nonce = rand(12);
        const aad = rand(8);
        const plain = rand(len);
        const expected = ref.seal(nonce, aad, plain);
        for (const prep of [false, true]) {
          const buf = new Uint8Array(3 + len + 16 + 2).fill(0xaa);
          buf.set(plain, 3);
          if (prep) keyed.prepare!(nonce, len);
          keyed.sealInPlace!(nonce, aad, buf, 3, len);
          same(buf.subarray(3, 3 + len + 16), expected, `key ${keyLength}, ${len} bytes in place${prep ? ', prepared' : ''}`);
          assert.deepEqual([...buf.subarray(0, 3), ...buf.subarray(3 + len + 16)], [0xaa, 0xaa, 0xaa, 0xaa, 0xaa], 'bytes around untouched');
        }
        assert.throws(() => keyed.sealInPlace!(nonce, aad, new Uint8Array(len + 15), 0, len), { code: 'E_USAGE' });
        // openAt(): open() of the bytes from an offset on (as ESP opens after its header), prepared or not.
        const framed = new Uint8Array(5 + expected.length).fill(0x55);
        framed.set(expected, 5);
        for (const prep of [false, true]) {
          if (prep) keyed.prepare!(nonce, len, aad);
          same(keyed.openAt!(nonce, aad, framed, 5)!, plain, `key ${keyLength}, ${len} bytes opened at offset 5${prep ? ', prepared' : ''}`);
        }
        assert.equal(keyed.openAt!(nonce, aad, flip(framed, framed.length - 1), 5), null, 'openAt: bad tag');
        assert.equal(keyed.openAt!(nonce, aad, flip(framed, 5), 5), null, 'openAt: first byte after the offset tampered');
        assert.equal(keyed.openAt!(nonce, aad, framed, framed.length - 15), null, 'openAt: fewer than 16 bytes from the offset');
        assert.throws(() => keyed.openAt!(nonce, aad, framed, framed.length + 1), { code: 'E_USAGE' });
        assert.throws(() => keyed.openAt!(nonce, aad, framed, -1), { code: 'E_USAGE' });
      }
      // After prepare() calls (the preparation buffer in use) every length still matches node.
      for (const len of PLAIN_LENGTHS) {
        const nonce = rand(12);
        const aad = rand(len % 41);
        const plain = rand(len);
        const expected = ref.seal(nonce, aad, plain);
        same(keyed.seal(nonce, aad, plain), expected, `key ${keyLength}, ${len} bytes, byte table: seal`);
        same(keyed.open(nonce, aad, expected), plain, `key ${keyLength}, ${len} bytes, byte table: open`);
        assert.equal(keyed.open(nonce, aad, flip(expected, len >> 1)), null, `key ${keyLength}, ${len} bytes, byte table: tampered`);
      }
      // Out-of-range lengths are ignored rather than refused: preparation is only an optimisation.
      keyed.prepare!(rand(12), -1);
      keyed.prepare!(rand(12), 1.5);
      assert.throws(() => keyed.prepare!(new Uint8Array(11), 16), { code: 'E_USAGE' });
    }
  });

  it("falls back to 'node' for ChaCha20-Poly1305 and rejects bad AES key lengths", () => {
    const a = createAead('chacha20-poly1305', RFC8439.key, 'keyed');
    assert.deepEqual(a.seal(RFC8439.nonce, RFC8439.aad, RFC8439.plaintext), cat(RFC8439.ct, RFC8439.tag));
    for (const n of [0, 15, 17, 20, 31, 33]) {
      assert.throws(() => createAead('aes-gcm-16', new Uint8Array(n), 'keyed'), { code: 'E_USAGE' }, `${n}-byte key`);
    }
    const aead = createAead('aes-gcm-16', new Uint8Array(16), 'keyed');
    assert.throws(() => aead.open(new Uint8Array(13), new Uint8Array(0), new Uint8Array(16)), { code: 'E_USAGE' });
  });
});
