import assert from 'node:assert/strict';
import { createAead, type AeadImpl } from '../../firmware/aead.js';
import { fromHex } from '../../firmware/bytes.js';

const IMPLS: AeadImpl[] = ['node', 'noble'];

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 4 (AES-128) and 16
// (AES-256): 60-byte plaintext, 20-byte AAD, 96-bit IV.
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
