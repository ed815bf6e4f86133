/**
 * Session framing (IPMI v2.0 §13.6, table 13-8), the integrity trailer (§13.28.4), AES-CBC-128 padding
 * (§13.29) and IPMI messages (§13.8), with the byte strings the catalogue captured from ipmitool (cat. §1.2,
 * §2.2, §3.1) and the bad inputs each decoder must refuse with a ProtocolError.
 */
import assert from 'node:assert/strict';
import { fromHex, hex } from '../../common/bytes.js';
import { ProtocolError } from '../../common/errors.js';
import { decodeSessionPacket, encodeIpmi15Sessionless, encodeRmcpPlus, verifyIntegrity } from '../../firmware/ipmi/rmcpplus-codec.js';
import { decodeIpmiRequest, encodeIpmiResponse } from '../../firmware/ipmi/ipmi-message.js';
import { AesCbc128, decryptPayload, encryptPayload } from '../../firmware/ipmi/aes-cbc-128.js';
import { CIPHER_SUITES, cipherSuiteRecords, supportedAlgorithms } from '../../firmware/ipmi/cipher-suites.js';
import { decodeOpenSessionRequest, decodeRakp1, encodeOpenSessionResponse, encodeRakp2 } from '../../firmware/ipmi/rakp-messages.js';

const throwsCode = (f: () => unknown, code: string) =>
  assert.throws(f, (e: unknown) => e instanceof ProtocolError && e.code === code, `expected ProtocolError ${code}`);

describe('IPMI session framing (IPMI v2.0 §13.6, table 13-8)', () => {
  it('cat. §1.2: ipmitool\'s Get Channel Authentication Capabilities is an IPMI 1.5 sessionless packet', () => {
    const d = fromHex('0600ff07 00 00000000 00000000 09 2018c8810038 8e04 b5');
    const p = decodeSessionPacket(d);
    assert.equal(p.format, 'ipmi-1.5');
    if (p.format !== 'ipmi-1.5') return;
    assert.deepEqual([p.authType, p.sequence, p.sessionId], [0, 0, 0]);
    const rq = decodeIpmiRequest(p.message);
    assert.deepEqual([rq.rsAddr, rq.netFn, rq.rqAddr, rq.rqSeq, rq.cmd, hex(rq.data)], [0x20, 0x06, 0x81, 0, 0x38, '8e04']);
  });

  it('cat. §2.2: ipmitool\'s pre-session Get Channel Cipher Suites is RMCP+ payload 00h, session 0, no trailer', () => {
    const p = decodeSessionPacket(fromHex('0600ff07 06 00 00000000 00000000 0a00 2018c8810454 0e0080 99'));
    assert.equal(p.format, 'rmcp+');
    if (p.format !== 'rmcp+') return;
    assert.deepEqual([p.payloadType, p.sessionId, p.sequence, p.authenticated, p.encrypted, p.trailer.length], [0, 0, 0, false, false, 0]);
    const rq = decodeIpmiRequest(p.payload);
    assert.deepEqual([rq.netFn, rq.cmd, rq.rqSeq, hex(rq.data)], [0x06, 0x54, 1, '0e0080']);
  });

  it('cat. §3.1: ipmitool\'s Open Session Request for suite 3 (SID_M A0A2A3A4h, privilege 0 = highest)', () => {
    const d = fromHex('0600ff07 06 10 00000000 00000000 2000 00000000 a4a3a2a0 0000000801000000 0100000801000000 0200000801000000');
    const p = decodeSessionPacket(d);
    assert.ok(p.format === 'rmcp+' && p.payloadType === 0x10);
    const rq = decodeOpenSessionRequest(p.payload);
    assert.deepEqual(rq, { tag: 0, requestedPrivilege: 0, sidM: 0xa0a2a3a4, auth: 1, integrity: 1, confidentiality: 1 });
  });

  it('Open Session Response: 36 bytes with the suite\'s algorithm records; 8 bytes (tag, status, SID_M) on an error', () => {
    const ok = encodeOpenSessionResponse(7, 0, 0xa0a2a3a4, { maxPrivilege: 4, sidC: 0x01020304, suite: CIPHER_SUITES[17] });
    assert.equal(hex(ok), '07000400' + 'a4a3a2a0' + '04030201' + '0000000803000000' + '0100000804000000' + '0200000801000000');
    assert.equal(hex(encodeOpenSessionResponse(7, 0x11, 0xa0a2a3a4)), '07110000a4a3a2a0');
  });

  it('RAKP 1 keeps the raw role byte and the name length as sent; RAKP 2 on an error carries no HMAC', () => {
    const r = decodeRakp1(fromHex('05000000 04030201' + '00'.repeat(16) + '14 0000 05' + hex(new TextEncoder().encode('admin'))));
    assert.deepEqual([r.tag, r.sidC, r.roleM, r.nameLength, new TextDecoder().decode(r.userName)], [5, 0x01020304, 0x14, 5, 'admin']);
    assert.equal(hex(encodeRakp2(5, 0x0d, 0xa0a2a3a4)), '050d0000a4a3a2a0');
  });

  it('refuses what it cannot read, with a ProtocolError code', () => {
    throwsCode(() => decodeSessionPacket(fromHex('0600ff')), 'E_SHORT');
    throwsCode(() => decodeSessionPacket(fromHex('0600ff06 0000')), 'E_CLASS'); // ASF class is not the IPMI responder's
    throwsCode(() => decodeSessionPacket(fromHex('0600ff07 07 00')), 'E_TYPE'); // AuthType 07h does not exist
    throwsCode(() => decodeSessionPacket(fromHex('0600ff07 06 00 00000000 00000000 0a00 2018')), 'E_SHORT'); // length overruns
    throwsCode(() => decodeSessionPacket(fromHex('0600ff07 06 02 00000000 00000000 0000')), 'E_TYPE'); // OEM explicit
    throwsCode(() => decodeOpenSessionRequest(new Uint8Array(31)), 'E_SHORT');
    throwsCode(() => decodeRakp1(new Uint8Array(27)), 'E_SHORT');
  });

  it('an IPMI 1.5 packet with an AuthCode decodes far enough to be refused (its message is not read)', () => {
    const d = fromHex('0600ff07 02 01000000 78563412' + '11'.repeat(16) + '01 ff');
    const p = decodeSessionPacket(d);
    assert.ok(p.format === 'ipmi-1.5');
    assert.deepEqual([p.authType, p.sessionId, p.message.length], [2, 0x12345678, 0]);
  });
});

describe('IPMI integrity trailer (IPMI v2.0 §13.28.4; cat. §5.1)', () => {
  for (const id of [3, 17] as const) {
    const suite = CIPHER_SUITES[id];
    const k1 = Uint8Array.from({ length: suite.digestLength }, (_, i) => i * 3);
    it(`suite ${id}: for payloads of 0..20 bytes the AuthCode input is a multiple of 4 bytes and verifies`, () => {
      for (let n = 0; n <= 20; n++) {
        const d = encodeRmcpPlus({ payloadType: 0, sessionId: 0x1234, sequence: 9, payload: new Uint8Array(n).fill(0xab), encrypted: true, integrity: { suite, k1 } });
        const covered = d.length - 4 - suite.authCodeLength;
        assert.equal(covered % 4, 0, `payload ${n}`);
        assert.equal(d[d.length - suite.authCodeLength - 1], 0x07, 'next header 07h');
        const pad = d[d.length - suite.authCodeLength - 2];
        assert.ok(pad <= 3);
        const p = decodeSessionPacket(d);
        assert.ok(p.format === 'rmcp+' && p.authenticated && p.encrypted);
        assert.equal(verifyIntegrity(d, p, suite, k1), true);
      }
    });
    it(`suite ${id}: any flipped bit, a non-FFh pad byte or a wrong pad length fails verification`, () => {
      const d = encodeRmcpPlus({ payloadType: 0, sessionId: 0x1234, sequence: 9, payload: new Uint8Array(5), encrypted: true, integrity: { suite, k1 } });
      for (let i = 4; i < d.length; i++) {
        const t = Uint8Array.from(d);
        t[i] ^= 0x01;
        let p;
        try {
          p = decodeSessionPacket(t);
        } catch {
          continue; // a length byte flipped: not even a packet
        }
        assert.ok(p.format === 'rmcp+');
        assert.equal(verifyIntegrity(t, p, suite, k1), false, `byte ${i}`);
      }
      const wrongKey = Uint8Array.from(k1, (x) => x ^ 1);
      const p = decodeSessionPacket(d);
      assert.ok(p.format === 'rmcp+');
      assert.equal(verifyIntegrity(d, p, suite, wrongKey), false);
    });
  }

  it('an IPMI 1.5 sessionless answer is AuthType 00h, sequence 0, session 0, then the length', () => {
    assert.equal(hex(encodeIpmi15Sessionless(fromHex('aabbcc'))), '0600ff07' + '00' + '00000000' + '00000000' + '03' + 'aabbcc');
  });
});

describe('AES-CBC-128 confidentiality (IPMI v2.0 §13.29, table 13-20; cat. §5.2)', () => {
  const k2 = Uint8Array.from({ length: 20 }, (_, i) => 0x40 + i);
  const iv = Uint8Array.from({ length: 16 }, (_, i) => 0x90 + i);

  it('pads with 01h, 02h, .. N then N so the plaintext fills whole blocks, for every length 0..40', () => {
    for (let n = 0; n <= 40; n++) {
      const plain = Uint8Array.from({ length: n }, (_, i) => i);
      const c = encryptPayload(k2, iv, plain);
      assert.equal((c.length - 16) % 16, 0);
      assert.equal(c.length - 16, Math.ceil((n + 1) / 16) * 16, `length ${n}`);
      assert.deepEqual(decryptPayload(k2, c), plain);
    }
  });

  it('refuses a payload that is not IV + whole blocks, and a pad that is not 01h..N N', async () => {
    const { createCipheriv } = await import('node:crypto');
    throwsCode(() => decryptPayload(k2, new Uint8Array(31)), 'E_PAD');
    throwsCode(() => decryptPayload(k2, new Uint8Array(16)), 'E_PAD');
    const seal = (block: Uint8Array) => {
      const c = createCipheriv('aes-128-cbc', k2.subarray(0, 16), iv).setAutoPadding(false);
      return new Uint8Array(Buffer.concat([iv, c.update(block), c.final()]));
    };
    const good = Uint8Array.from([...new Array(13).fill(0xaa), 1, 2, 2]);
    assert.equal(decryptPayload(k2, seal(good)).length, 13);
    throwsCode(() => decryptPayload(k2, seal(Uint8Array.from([...new Array(13).fill(0xaa), 2, 2, 2]))), 'E_PAD'); // PKCS#7-style
    throwsCode(() => decryptPayload(k2, seal(Uint8Array.from([...new Array(15).fill(0xaa), 16]))), 'E_PAD'); // pad length 16
  });

  it("a session's one context each way gives, packet after packet, the bytes of a fresh CBC context under each packet's IV", async () => {
    const { createCipheriv, createDecipheriv, randomBytes } = await import('node:crypto');
    const aes = new AesCbc128(k2);
    const fresh = (ivx: Uint8Array, padded: Uint8Array) => {
      const c = createCipheriv('aes-128-cbc', k2.subarray(0, 16), ivx).setAutoPadding(false);
      return new Uint8Array(Buffer.concat([ivx, c.update(padded), c.final()]));
    };
    for (let i = 0; i < 60; i++) {
      const n = (i * 7) % 45;
      const plain = new Uint8Array(randomBytes(n));
      const ivx = new Uint8Array(randomBytes(16));
      const sealed = aes.encrypt(ivx, plain);
      const pad = (16 - ((n + 1) % 16)) % 16;
      const padded = Uint8Array.from([...plain, ...Array.from({ length: pad }, (_, j) => j + 1), pad]);
      assert.deepEqual(sealed, fresh(ivx, padded), `packet ${i} out`);
      // In: what a console sealed with its own context, and packets that fail (the chain must stay right after them).
      assert.deepEqual(aes.decrypt(fresh(ivx, padded)), plain, `packet ${i} in`);
      if (i % 5 === 0) throwsCode(() => aes.decrypt(fresh(ivx, Uint8Array.from([...new Array(15).fill(0xaa), 16]))), 'E_PAD');
      if (i % 7 === 0) throwsCode(() => aes.decrypt(new Uint8Array(40)), 'E_PAD');
      const d = createDecipheriv('aes-128-cbc', k2.subarray(0, 16), ivx).setAutoPadding(false);
      assert.deepEqual(new Uint8Array(Buffer.concat([d.update(sealed.subarray(16)), d.final()])), padded, `packet ${i} opened by a fresh context`);
    }
  });
});

describe('IPMI LAN messages (IPMI v2.0 §13.8; cat. §6)', () => {
  it('a response echoes rqAddr, rsAddr, rqSeq, LUNs and cmd, with netFn + 1 and both checksums', () => {
    const rq = decodeIpmiRequest(fromHex('2018c881043b043c')); // cat. §5.3: Set Session Privilege Level, rqSeq 1
    const rs = encodeIpmiResponse(rq, 0, Uint8Array.of(4));
    assert.equal(hex(rs), '811c63' + '20043b' + '00' + '04' + '9d');
    assert.equal(rs.subarray(0, 3).reduce((s, x) => s + x, 0) & 0xff, 0);
    assert.equal(rs.subarray(3).reduce((s, x) => s + x, 0) & 0xff, 0);
  });

  it('refuses bad checksums, responses and short messages', () => {
    throwsCode(() => decodeIpmiRequest(fromHex('2018c781043b043c')), 'E_CHECKSUM');
    throwsCode(() => decodeIpmiRequest(fromHex('2018c881043b043d')), 'E_CHECKSUM');
    throwsCode(() => decodeIpmiRequest(fromHex('201cc481043b043c')), 'E_TYPE');
    throwsCode(() => decodeIpmiRequest(fromHex('2018c881043b')), 'E_SHORT');
  });
});

describe('Get Channel Cipher Suites records (IPMI v2.0 §22.15, table 22-18; cat. §2.2)', () => {
  it('suite 3 = C0 03 01 41 81, suite 17 = C0 11 03 44 81; the algorithm list tags each algorithm once', () => {
    assert.equal(hex(cipherSuiteRecords([3, 17])), 'c003014181' + 'c011034481');
    assert.equal(hex(supportedAlgorithms([3, 17])), '0103' + '4144' + '81');
  });
});
