/**
 * Key material per RFC 7296 §2.13-2.15/§2.17 against published vectors and an independent
 * computation written here with node:crypto HMAC directly; X25519 against RFC 7748 §6.1.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { fromHex, hex } from '../../common/bytes.js';
import { ProtocolError } from '../../common/errors.js';
import {
  childKeymat,
  deriveIkeSaKeys,
  prf,
  prfPlus,
  pskAuth,
  skeyseed,
  x25519PublicKey,
  x25519SharedSecret,
} from '../../protocol/ike/ike-crypto.js';

/** prf+ written straight from the §2.13 text, without sharing code with the module. */
function referencePrfPlus(hash: 'sha1' | 'sha256', key: Buffer, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  let t = Buffer.alloc(0);
  for (let n = 1; Buffer.concat(out).length < length; n++) {
    t = createHmac(hash, key).update(Buffer.concat([t, seed, Buffer.from([n])])).digest();
    out.push(t);
  }
  return Buffer.concat(out).subarray(0, length);
}

describe('IKEv2 key derivation (RFC 7296 §2.13, §2.14, §2.17)', () => {
  // NIST CAVP SP 800-135 "IKEv2" KDF sample, SHA-1, DKM 1056 bits, as reproduced in
  // libreswan's CAVP harness (programs/cavp/cavp_ikev2 sample run).
  const cavp = {
    gir: fromHex('4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52'),
    girNew: fromHex('863f3c9d06efd39d2b907b97f8699e5dd5251ef64a2a176f36ee40c87d4f9330'),
    ni: fromHex('32b50d5f4a3763f3'),
    nr: fromHex('9206a04b26564cb1'),
    spii: fromHex('34c9e7c188868785'),
    spir: fromHex('3ff77d760d2b2199'),
    skeyseed: 'a9a7b222b59f8f48645f28a1db5b5f5d7479cba7',
    dkm:
      'a14293677cc80ff8f9cc0eee30d895da9d8f405666e30ef0dfcb63c634a46002a2a63080e514a062768b76606f9fa5e992204fc5a670bde3f10d6b027113936a5c55b648a194ae587b0088d52204b702c979fa280870d2ed41efa9c549fd11198af1670b143d384bd275c5f594cf266b05ebadca855e4249520a441a81157435a7a56cc4',
    dkmChild:
      '8059e3ee8810e6c3a91bc8bcd2a7a41151b8d0e6ae239c7b38093ad85ef4c5811a8e7b5d1cdabd9560b2d5e092d1f24e2d4b85eccdf0ad0dc9abd94b51ee71814ca6dbc8bb51b6309f5b9545c7eb35cf5580b1e521a8fe20754a2d883ba0c2cf285f524aea6545b33106bc03e614296d319d41d4b50b3f510b1c0a22f3e664994d234cb4',
    dkmChildDh:
      'bb43244c1860ad65ee1e211ffe8bb3661750c8f89cb9f547df7f4fa61d37301628190e38c66232eab4b3ab14c400a5197dd3730ed4820a8a10394d51e1c0400052f63ebd36b0e7ef53aaed31eba4a5080d7d4b5666023a8bbb5ffb7857240f9a05884d1b7d2f933708450b7b3288f1fc863ab49fa901227cffc06e27899c7054d56fd74c',
    skeyseedRekey: '63e81194946ebd05df7df5ebf5d8750056bf1f1d',
  };

  it('NIST CAVP SP 800-135 IKEv2 (SHA-1): SKEYSEED, DKM, DKM(Child SA), DKM(Child SA D-H), SKEYSEED(Rekey)', () => {
    const seed = skeyseed(cavp.ni, cavp.nr, cavp.gir, 'sha1');
    assert.equal(hex(seed), cavp.skeyseed);
    const dkm = prfPlus(seed, new Uint8Array([...cavp.ni, ...cavp.nr, ...cavp.spii, ...cavp.spir]), 132, 'sha1');
    assert.equal(hex(dkm), cavp.dkm);
    const skD = dkm.subarray(0, 20);
    assert.equal(hex(childKeymat(skD, cavp.ni, cavp.nr, 132, undefined, 'sha1')), cavp.dkmChild);
    assert.equal(hex(childKeymat(skD, cavp.ni, cavp.nr, 132, cavp.girNew, 'sha1')), cavp.dkmChildDh);
    // §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
    assert.equal(hex(prf(skD, new Uint8Array([...cavp.girNew, ...cavp.ni, ...cavp.nr]), 'sha1')), cavp.skeyseedRekey);
  });

  it('prf+ with HMAC-SHA2-256 equals an independent §2.13 implementation for 0..300 octets', () => {
    const key = Buffer.from('k'.repeat(32));
    const seed = Buffer.from('seed material | Ni | Nr');
    for (const n of [0, 1, 31, 32, 33, 64, 100, 164, 300]) {
      assert.equal(hex(prfPlus(key, seed, n)), referencePrfPlus('sha256', key, seed, n).toString('hex'), `length ${n}`);
    }
  });

  it('prf+ refuses more than 255 blocks (§2.13)', () => {
    assert.throws(() => prfPlus(new Uint8Array(32), new Uint8Array(1), 255 * 32 + 1), RangeError);
    assert.equal(prfPlus(new Uint8Array(32), new Uint8Array(1), 255 * 32).length, 255 * 32);
  });

  it('SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr for AES-GCM-16/128 + PRF_HMAC_SHA2_256 (RFC 5282 §7.1)', () => {
    const ni = fromHex('00'.repeat(16) + '11'.repeat(16));
    const nr = fromHex('22'.repeat(32));
    const gir = fromHex('33'.repeat(32));
    const spiI = fromHex('0102030405060708');
    const spiR = fromHex('1112131415161718');
    const { skeyseed: seed, keys } = deriveIkeSaKeys({ ni, nr, gir, spiI, spiR });
    const refSeed = createHmac('sha256', Buffer.concat([ni, nr])).update(gir).digest();
    assert.equal(hex(seed), refSeed.toString('hex'));
    const km = referencePrfPlus('sha256', refSeed, Buffer.concat([ni, nr, spiI, spiR]), 32 + 0 + 0 + 20 + 20 + 32 + 32);
    assert.equal(hex(keys.skD), km.subarray(0, 32).toString('hex'));
    assert.equal(keys.skAi.length + keys.skAr.length, 0, 'AEAD: no integrity keys');
    assert.equal(hex(keys.skEi), km.subarray(32, 52).toString('hex'));
    assert.equal(hex(keys.skEr), km.subarray(52, 72).toString('hex'));
    assert.equal(hex(keys.skPi), km.subarray(72, 104).toString('hex'));
    assert.equal(hex(keys.skPr), km.subarray(104, 136).toString('hex'));
  });

  it('§2.15 shared-key AUTH = prf(prf(PSK, "Key Pad for IKEv2"), RealMessage | Nonce | prf(SK_p, ID body))', () => {
    const psk = Buffer.from('secret');
    const real = Buffer.from('IKE_SA_INIT bytes');
    const nonce = Buffer.from('n'.repeat(32));
    const skP = Buffer.from('p'.repeat(32));
    const id = Buffer.from([2, 0, 0, 0, ...Buffer.from('station.lab')]);
    const inner = createHmac('sha256', psk).update('Key Pad for IKEv2').digest();
    const maced = createHmac('sha256', skP).update(id).digest();
    const expected = createHmac('sha256', inner).update(Buffer.concat([real, nonce, maced])).digest();
    assert.equal(hex(pskAuth(psk, real, nonce, skP, id)), expected.toString('hex'));
  });
});

describe('X25519 (RFC 7748, RFC 8031)', () => {
  it('RFC 7748 §6.1: Alice and Bob public keys and the shared secret', () => {
    const a = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    const b = fromHex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
    const aPub = x25519PublicKey(a);
    const bPub = x25519PublicKey(b);
    assert.equal(hex(aPub), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
    assert.equal(hex(bPub), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
    const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
    assert.equal(hex(x25519SharedSecret(a, bPub)), k);
    assert.equal(hex(x25519SharedSecret(b, aPub)), k);
  });

  it('RFC 8031 §2: a small-order peer value (all-zero result) and a wrong length are rejected', () => {
    const a = fromHex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
    assert.throws(() => x25519SharedSecret(a, new Uint8Array(32)), (e: unknown) => e instanceof ProtocolError && e.code === 'E_IKE_SYNTAX');
    const one = new Uint8Array(32);
    one[0] = 1;
    assert.throws(() => x25519SharedSecret(a, one), ProtocolError);
    assert.throws(() => x25519SharedSecret(a, new Uint8Array(31)), ProtocolError);
  });
});
