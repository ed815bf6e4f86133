/**
 * RAKP codes and session keys (IPMI v2.0 §13.31, §13.32; cat. §4.2-4.5), integrity AuthCodes (§13.28.4) and
 * AES-CBC-128 payloads (§13.29) against vectors from two independent sources:
 *  - captured: ipmitool 1.8.19 -vvvv printed its own RAKP 2/3/4 codes, SIK, K1, K2 and per-packet AuthCode
 *    inputs and outputs in a session with this BMC (user admin / password secret-pw, GUID 01..10), once per suite;
 *  - formula: Python's hmac/hashlib applied to the spec's formulas for a transcript with the longest user name
 *    (16 bytes) and password (20 bytes) and a username+privilege lookup role (03h).
 */
import assert from 'node:assert/strict';
import { fromHex, hex } from '../../common/bytes.js';
import { CIPHER_SUITES } from '../../firmware/ipmi/cipher-suites.js';
import {
  additionalKey, integrityAuthCode, rakp2AuthCode, rakp3AuthCode, rakp4Icv, sessionIntegrityKey, type RakpTranscript,
} from '../../firmware/ipmi/rakp-keys.js';
import { decryptPayload, encryptPayload } from '../../firmware/ipmi/aes-cbc-128.js';
import { decodeIpmiRequest } from '../../firmware/ipmi/ipmi-message.js';

const enc = new TextEncoder();
const GUID_01_10 = fromHex('0102030405060708090a0b0c0d0e0f10');

interface Vector {
  name: string;
  suite: 3 | 17;
  key: string;
  t: RakpTranscript;
  rakp2: string;
  rakp3: string;
  sik: string;
  k1: string;
  k2: string;
  rakp4: string;
}

const VECTORS: Vector[] = [
  {
    name: 'captured from ipmitool 1.8.19 -C 17 -vvvv',
    suite: 17, key: 'secret-pw',
    t: {
      sidM: 0xa0a2a3a4, sidC: 0x3acf6461, rM: fromHex('edd98fca18c3bc52be1e7512a6261336'), rC: fromHex('908ad1d80c5167a204ca5702e1254a5b'),
      guid: GUID_01_10, roleM: 0x14, userName: enc.encode('admin'),
    },
    rakp2: 'a82ceb4751d6429b456d055fe05f06102083031163b885f4ecb4b0f7c551fc23',
    rakp3: '22d5e5a6b0fb9020c89baa25e750adda7eb1849bdc66e2923f2f62fb5741bbb0',
    sik: '3273efce8adc2630161565254fa9f1f428f479229096823e6bfe86a713c5579a',
    k1: 'f20f40f3ac5a60583be2269982c3e3f2d786f60be95dfc873d86b3517d8a571d',
    k2: '827945c4f4e1fe245b8bf6897dead29f28c0e87084df7b89c1ff8b8691e6e328',
    rakp4: 'df4dc29ae9826da554d4646c2afc517c',
  },
  {
    name: 'captured from ipmitool 1.8.19 -C 3 -vvvv',
    suite: 3, key: 'secret-pw',
    t: {
      sidM: 0xa0a2a3a4, sidC: 0x826c8511, rM: fromHex('2e0da5809caaf27987d5881ce5af3540'), rC: fromHex('e40abd9fed51e87f21a464aca57ed595'),
      guid: GUID_01_10, roleM: 0x14, userName: enc.encode('admin'),
    },
    rakp2: '84e5141fe3ada7f25969cbf04cff039a9456315e',
    rakp3: '9545f9d716ffe54eb9107717c61910cee01ce385',
    sik: '9873b0bf8304aaba799bf3b87d1daa44f0082fde',
    k1: '1fef928440bd8f79bf8bc5149159d9a88ad37e24',
    k2: '4201c391d0a91f2923025d20b7bf7fcc3ab82fc6',
    rakp4: 'b93cea803b01cb9b6e9ec7a8',
  },
  ...([3, 17] as const).map((suite): Vector => ({
    name: 'formula (Python hmac), 16-byte name, 20-byte password, role 03h',
    suite, key: 'twenty-byte-password',
    t: {
      sidM: 0x11223344, sidC: 0x8899aabb, rM: Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i), rC: Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i),
      guid: fromHex('00112233445566778899aabbccddeeff'), roleM: 0x03, userName: enc.encode('sixteen-chars-ab'),
    },
    ...(suite === 3
      ? {
          rakp2: 'd954a5304edb5cda3eab17b63445f70a8555e90e', rakp3: 'c51c8d513b2a64896058174429278193ff83d5a6',
          sik: 'be8750c6c76ea72ea4cf9aa17b04d5e8b7ca33e5', k1: '6e146a0821875fd6e2047ea11d5aac8f684e1736',
          k2: 'f135c905016db3196078b6e38a64f9dc32b66b3e', rakp4: 'a3ffa86263cfca6c7e3f1c73',
        }
      : {
          rakp2: 'f3e69e99280caa01f66ee53881e044ee90098d90ab43057fa7c9a8a2b5c6e12b',
          rakp3: 'f25bda794d6bffccb4fb103f43757f1c9f66b0bed1a2960c4f4a255fba14fcbe',
          sik: 'eaa1b8bf70a6d0a0c07babe1f71da8b563ac3a8ec1445fbf8b0c01ae3ae6f9f0',
          k1: 'e550c9846c660c067e5015b6d5acf7ddc374e1363d111c7b86e248ab3a3e8d1f',
          k2: '5e50e35bb7420409eaf46dd66965651d88dca01490c2e7bd30f01bf23fad7f60',
          rakp4: '6add6d699a75ce156ebc34e153faf3a6',
        }),
  })),
];

describe('IPMI RAKP codes and session keys (IPMI v2.0 §13.31, §13.32)', () => {
  for (const v of VECTORS) {
    describe(`suite ${v.suite}: ${v.name}`, () => {
      const suite = CIPHER_SUITES[v.suite];
      const kuid = enc.encode(v.key);
      it('RAKP 2 Key Exchange Authentication Code = HMAC_Kuid(SID_M | SID_C | R_M | R_C | GUID_C | ROLE_M | ULEN_M | UNAME_M), full length', () => {
        const code = rakp2AuthCode(suite, kuid, v.t);
        assert.equal(code.length, suite.digestLength);
        assert.equal(hex(code), v.rakp2);
      });
      it('RAKP 3 Key Exchange Authentication Code = HMAC_Kuid(R_C | SID_M | ROLE_M | ULEN_M | UNAME_M)', () => {
        assert.equal(hex(rakp3AuthCode(suite, kuid, v.t)), v.rakp3);
      });
      it('SIK = HMAC_KG(R_M | R_C | ROLE_M | ULEN_M | UNAME_M) with K_G = K_UID; K1/K2 = HMAC_SIK(01h/02h x 20)', () => {
        const sik = sessionIntegrityKey(suite, kuid, v.t);
        assert.equal(hex(sik), v.sik);
        assert.equal(hex(additionalKey(suite, sik, 1)), v.k1);
        assert.equal(hex(additionalKey(suite, sik, 2)), v.k2);
      });
      it(`RAKP 4 ICV = HMAC_SIK(R_M | SID_C | GUID_C) truncated to ${suite.authCodeLength} bytes`, () => {
        const icv = rakp4Icv(suite, fromHex(v.sik), v.t);
        assert.equal(icv.length, suite.authCodeLength);
        assert.equal(hex(icv), v.rakp4);
      });
      it('a zero-padded 20-byte K_UID (as ipmitool keeps it) gives the same codes as the raw password', () => {
        const padded = new Uint8Array(20);
        padded.set(kuid);
        assert.equal(hex(rakp2AuthCode(suite, padded, v.t)), v.rakp2);
      });
    });
  }
});

describe('IPMI integrity AuthCode and AES-CBC-128 payloads, captured from ipmitool 1.8.19 (§13.28.4, §13.29)', () => {
  // ipmitool's first in-session packet (Set Session Privilege Level to ADMINISTRATOR, session seq 3): "authcode
  // input" is AuthType .. Next Header; the 32-byte payload is IV | one AES block.
  const CAPTURED = [
    {
      suite: 17 as const, k1: VECTORS[0].k1, k2: VECTORS[0].k2,
      covered: '06c06164cf3a03000000200066e7b64de19d2fa7ffd14a3d272a1e3926964e7997c20952d442331167cc5aadffff0207',
      authCode: 'b9b29a0608c038b41a62451938cef124',
    },
    {
      suite: 3 as const, k1: VECTORS[1].k1, k2: VECTORS[1].k2,
      covered: '06c011856c82030000002000e7a46e456c3361bb208c8f35f4d4b79d8e287b6a72b34a19cbff06ec987eddafffff0207',
      authCode: '7a4322778c5745a144312226',
    },
  ];
  for (const c of CAPTURED) {
    it(`suite ${c.suite}: AuthCode over the captured header..next header matches ipmitool's`, () => {
      assert.equal(hex(integrityAuthCode(CIPHER_SUITES[c.suite], fromHex(c.k1), fromHex(c.covered))), c.authCode);
    });
    it(`suite ${c.suite}: the captured payload decrypts under K2 to Set Session Privilege Level (ADMINISTRATOR), pad 01..07 07`, () => {
      const payload = fromHex(c.covered).subarray(12, 44);
      const plain = decryptPayload(fromHex(c.k2), payload);
      assert.equal(hex(plain), '2018c881043b043c');
      const rq = decodeIpmiRequest(plain);
      assert.deepEqual([rq.netFn, rq.cmd, [...rq.data]], [0x06, 0x3b, [0x04]]);
      // and the same IV re-encrypts to the captured bytes (the pad is IPMI's, not PKCS#7)
      assert.equal(hex(encryptPayload(fromHex(c.k2), payload.subarray(0, 16), plain)), hex(payload));
    });
  }
});
