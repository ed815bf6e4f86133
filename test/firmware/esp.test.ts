import assert from 'node:assert/strict';
import { createAead, type AeadImpl } from '../../wire/aead.js';
import { fromHex, putU32 } from '../../common/bytes.js';
import {
  EspReceiver,
  EspSender,
  decodeInnerUdp,
  encodeInnerUdp,
  espPadLength,
  espSpi,
  sealEspPacket,
  NEXT_HEADER_NONE,
} from '../../wire/esp.js';
import { ReplayWindow } from '../../wire/replay-window.js';
import type { EspTransform, SaDirection } from '../../wire/sa.js';

const IMPLS: AeadImpl[] = ['keyed', 'keyed-small', 'node', 'noble'];

// Vectors from shared/reference/tshark/esp_pcap.py (python cryptography 48), which tshark 4.0.17
// decrypts with esp.icv_good == 1 (frames 1, 5) and esp.icv_bad == 1 (frame 2).
const GCM128 = fromHex('000102030405060708090a0b0c0d0e0f' + 'a0a1a2a3'); // key || salt
const GCM256 = fromHex('202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f' + 'b0b1b2b3');
/** Inner packet: UDP 40002 -> 623, length 20, checksum 0, then an ASF Presence Ping (tag 0x21). */
const PING = fromHex('9c42026f00140000' + '0600ff06000011be80210000');
const FRAME1 = fromHex(
  '00001001000000010000000000000001da331e9d6c907750816cb911db0485d891d3198397f782b383a59cfbdacfdfa9ac19fe432a5fb3ff',
);
const FRAME2 = fromHex(
  '000010010000000200000000000000023d646412b152abc70ba044309d029db7c5a1512d3a95b876d967cd27c1d17ff088b7775daff388d3',
);
const FRAME5 = fromHex(
  '00003003000000010000000000000005bcf4cb6a9a0834845e73ef4b068fee5f57a2a8c18f36f47fb724cd627ee07454b2bfa79c1a6cf112',
);
// The same framing, made with python cryptography in a scratch script (.build/esp/py/vectors.py):
// ESN AES-GCM-128 at seq 2^32 + 1, AAD = SPI || 00000001 || 00000001 (RFC 4106 §5);
const ESN_GCM = fromHex(
  '000010010000000100000001000000010f2ad664d5ed5aa2d1ef6ff01993021d39ecfe6388fada1b8569f7ae7b3d84b78a696144d1c06d1c',
);
// ChaCha20-Poly1305 (RFC 7634), key 80..9f, salt c0c1c2c3, SPI 0x5005, seq 1 and ESN seq 2^32 + 7.
const CHACHA = fromHex('808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f' + 'c0c1c2c3');
const CHACHA_1 = fromHex(
  '00005005000000010000000000000001ae4e415331d45062cf5af768b6ca19920c90be8c524981c38ec9c53f1ed932c92b0aa33ee37b69a7',
);
const CHACHA_ESN = fromHex(
  '000050050000000700000001000000075637b133124fc4138e0bf00b90e5a9be11630b387ce8b946306fed974082d7f1b3a6ec709799ff74',
);

const TWO32 = 1n << 32n;

function dir(spi: number, encKey: Uint8Array): SaDirection {
  return { spi, encKey, ahSpi: 0, ahKey: new Uint8Array(0) };
}

function flip(b: Uint8Array, i: number): Uint8Array {
  const c = b.slice();
  c[i] ^= 0x01;
  return c;
}

/** An ESP packet around an arbitrary plaintext (trailer included), to build malformed trailers. */
function rawEsp(spi: number, seq: number, encKey: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const aead = createAead('aes-gcm-16', encKey.subarray(0, 16));
  const head = new Uint8Array(16);
  putU32(head, 0, spi);
  putU32(head, 4, seq);
  putU32(head, 12, seq);
  const nonce = new Uint8Array(12);
  nonce.set(encKey.subarray(16), 0);
  nonce.set(head.subarray(8), 4);
  const sealed = aead.seal(nonce, head.subarray(0, 8), plaintext);
  const out = new Uint8Array(16 + sealed.length);
  out.set(head);
  out.set(sealed, 16);
  return out;
}

function receiver(spi: number, key: Uint8Array, opts: { esn?: boolean; window?: ReplayWindow; impl?: AeadImpl } = {}) {
  const transform: EspTransform = key === CHACHA ? 'chacha20-poly1305' : 'aes-gcm-16';
  return new EspReceiver(dir(spi, key), transform, opts.esn ?? false, opts.window ?? new ReplayWindow(), opts.impl);
}

for (const impl of IMPLS) {
  describe(`ESP (RFC 4303) with ${impl} AEAD`, () => {
    it('RFC 4106 AES-GCM-128: seal() of the ping at seq 1 is byte-identical to esp_pcap.py frame 1', () => {
      const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, 1n, impl);
      assert.deepEqual(s.seal(PING), FRAME1);
      assert.equal(s.nextSeq, 2n);
    });

    it('RFC 4106 AES-GCM-256: esp_pcap.py frame 5 (explicit IV 5) is reproduced and opened', () => {
      const iv = fromHex('0000000000000005');
      assert.deepEqual(sealEspPacket('aes-gcm-16', GCM256, 0x3003, 1n, false, iv, PING, 17, impl), FRAME5);
      const got = receiver(0x3003, GCM256, { impl }).open(FRAME5);
      assert.deepEqual(got, { payload: PING, nextHeader: 17, seq: 1n });
    });

    it('opens frame 1; refuses frame 2 (ICV corrupted) and a bit-flipped frame 1 with E_ICV', () => {
      const r = receiver(0x1001, GCM128, { impl });
      assert.throws(() => r.open(FRAME2), { name: 'ProtocolError', code: 'E_ICV' });
      for (const i of [4, 9, 16, FRAME1.length - 17, FRAME1.length - 1]) {
        // sequence number (AAD), IV (nonce), first/last ciphertext byte, ICV
        assert.throws(() => r.open(flip(FRAME1, i)), { code: 'E_ICV' }, `byte ${i}`);
      }
      assert.deepEqual(r.open(FRAME1).payload, PING);
    });

    it('RFC 7634 ChaCha20-Poly1305: seal() matches the python reference and opens', () => {
      const s = new EspSender(dir(0x5005, CHACHA), 'chacha20-poly1305', false, 1n, impl);
      assert.deepEqual(s.seal(PING), CHACHA_1);
      assert.deepEqual(receiver(0x5005, CHACHA, { impl }).open(CHACHA_1).payload, PING);
    });

    it('round trip of payloads 0..19 bytes: 4-byte alignment, default padding 1, 2, 3', () => {
      const s = new EspSender(dir(0x2222, GCM256), 'aes-gcm-16', false, 1n, impl);
      const r = receiver(0x2222, GCM256, { impl });
      for (let n = 0; n < 20; n++) {
        const payload = new Uint8Array(n).fill(0xaa);
        const packet = s.seal(payload);
        assert.equal((packet.length - 16 - 16) % 4, 0);
        assert.equal(packet.length, 16 + n + espPadLength(n) + 2 + 16);
        assert.deepEqual(r.open(packet).payload, payload);
      }
    });
  });
}

describe('ESP receive order (RFC 4303 §3.4)', () => {
  it('refuses a short packet with E_SHORT and a foreign SPI with E_SPI before anything else', () => {
    const r = receiver(0x1001, GCM128);
    assert.throws(() => r.open(FRAME1.subarray(0, 35)), { code: 'E_SHORT' });
    assert.throws(() => receiver(0x1002, GCM128).open(FRAME1), { code: 'E_SPI' });
    assert.equal(espSpi(FRAME1), 0x1001);
    assert.throws(() => espSpi(new Uint8Array(3)), { code: 'E_SHORT' });
  });

  it('a replayed packet with a corrupted ICV reports E_REPLAY: the window is checked before crypto', () => {
    const r = receiver(0x1001, GCM128);
    r.open(FRAME1);
    assert.throws(() => r.open(FRAME1), { code: 'E_REPLAY' });
    assert.throws(() => r.open(flip(FRAME1, FRAME1.length - 1)), { code: 'E_REPLAY' });
  });

  it('a fresh packet with a bad ICV does not move the window; the genuine one is accepted after it', () => {
    const w = new ReplayWindow();
    const r = receiver(0x1001, GCM128, { window: w });
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, 1n);
    const p1 = s.seal(PING);
    const p2 = s.seal(PING);
    r.open(p1);
    assert.throws(() => r.open(flip(p2, p2.length - 3)), { code: 'E_ICV' });
    assert.equal(w.highest, 1n);
    assert.equal(w.check(2n), true);
    assert.equal(r.open(p2).seq, 2n);
  });

  it('releaseCrypto() drops the AEAD only: counter and window go on, the next packet makes it again (issue 16)', () => {
    const w = new ReplayWindow();
    const r = receiver(0x1001, GCM128, { window: w });
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, 1n);
    const p1 = s.seal(PING);
    s.releaseCrypto();
    const p2 = s.seal(PING);
    assert.equal(r.open(p1).seq, 1n);
    r.releaseCrypto();
    assert.equal(r.open(p2).seq, 2n);
    r.releaseCrypto();
    assert.throws(() => r.open(p2), { code: 'E_REPLAY' });
    assert.deepEqual(r.open(s.seal(PING)).payload, PING);
  });

  it('accepts out-of-order packets within the window and refuses those left of it', () => {
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, 1n);
    const packets = Array.from({ length: 140 }, () => s.seal(PING));
    const r = receiver(0x1001, GCM128, { window: new ReplayWindow(128) });
    r.open(packets[139]); // seq 140
    assert.equal(r.open(packets[12]).seq, 13n); // 140 - 13 = 127 < 128
    assert.throws(() => r.open(packets[11]), { code: 'E_REPLAY', message: /older than the 128-packet window/ });
  });

  it('a window restored with a floor refuses packets captured before the restart', () => {
    const r = receiver(0x1001, GCM128, { window: new ReplayWindow(1024, 1n) });
    assert.throws(() => r.open(FRAME1), { code: 'E_REPLAY', message: /restart checkpoint/ });
  });

  it('E_PAD for padding other than 1, 2, 3..., a pad length beyond the plaintext, or misalignment', () => {
    const r = receiver(0x1001, GCM128);
    const wrongBytes = fromHex('aabbccdd' + '0109' + '02' + '11'); // pad 01 09, pad length 2, next header 17
    const tooLong = fromHex('0102' + 'ff' + '11'); // pad length 255 in a 4-byte plaintext
    const misaligned = fromHex('aabbcc' + '00' + '11'); // 5-byte plaintext
    assert.throws(() => r.open(rawEsp(0x1001, 1, GCM128, wrongBytes)), { code: 'E_PAD', message: /padding byte 2/ });
    assert.throws(() => r.open(rawEsp(0x1001, 2, GCM128, tooLong)), { code: 'E_PAD' });
    assert.throws(() => r.open(rawEsp(0x1001, 3, GCM128, misaligned)), { code: 'E_PAD' });
    // A 2-byte plaintext cannot be 4-aligned: refused by length, before any cryptography.
    assert.throws(() => r.open(rawEsp(0x1001, 4, GCM128, fromHex('0011'))), { code: 'E_SHORT' });
    assert.equal(r.open(rawEsp(0x1001, 5, GCM128, fromHex('aabbccdd' + '0102' + '02' + '11'))).payload.length, 4);
  });

  it('an authentic packet with a bad trailer still consumes its sequence number', () => {
    const r = receiver(0x1001, GCM128);
    const p = rawEsp(0x1001, 9, GCM128, fromHex('0102' + '0311'));
    assert.throws(() => r.open(p), { code: 'E_PAD' });
    assert.throws(() => r.open(p), { code: 'E_REPLAY' });
  });

  it('E_NEXT_HEADER for a dummy packet (59) or a protocol the SA does not carry', () => {
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, 1n);
    const r = receiver(0x1001, GCM128);
    assert.throws(() => r.open(s.seal(new Uint8Array(0), NEXT_HEADER_NONE)), { code: 'E_NEXT_HEADER', message: /dummy/ });
    assert.throws(() => r.open(s.seal(PING, 6)), { code: 'E_NEXT_HEADER' });
    const tcpToo = new EspReceiver(dir(0x1001, GCM128), 'aes-gcm-16', false, new ReplayWindow(), 'node', [17, 6]);
    assert.equal(tcpToo.open(s.seal(PING, 6)).nextHeader, 6);
  });
});

describe('ESP Extended Sequence Numbers (RFC 4303 §2.2.1, RFC 4106 §5)', () => {
  it('seals across 2^32 and the receiver follows; seq 2^32 + 1 matches the python ESN vector', () => {
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', true, TWO32 - 2n);
    const r = receiver(0x1001, GCM128, { esn: true, window: new ReplayWindow(1024, TWO32 - 3n) });
    const packets = [0, 1, 2, 3].map(() => s.seal(PING));
    assert.deepEqual(packets[3], ESN_GCM);
    assert.deepEqual(
      packets.map((p) => r.open(p).seq),
      [TWO32 - 2n, TWO32 - 1n, TWO32, TWO32 + 1n],
    );
    // The wire carries only the low half; the IV carries the full 64-bit counter.
    assert.deepEqual(packets[2].subarray(4, 16), fromHex('00000000' + '0000000100000000'));
  });

  it('a late packet from below 2^32 is placed in the previous subspace once the edge has crossed', () => {
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', true, TWO32 - 1n);
    const late = s.seal(PING);
    const next = s.seal(PING);
    const r = receiver(0x1001, GCM128, { esn: true, window: new ReplayWindow(1024, TWO32 - 5n) });
    assert.equal(r.open(next).seq, TWO32);
    assert.equal(r.open(late).seq, TWO32 - 1n);
  });

  it('the AAD carries the high half: the same bytes fail E_ICV when inferred in another subspace', () => {
    assert.throws(() => receiver(0x1001, GCM128, { esn: true }).open(ESN_GCM), { code: 'E_ICV' });
    assert.throws(() => receiver(0x1001, GCM128).open(ESN_GCM), { code: 'E_ICV' }, 'without ESN');
    const r = receiver(0x1001, GCM128, { esn: true, window: new ReplayWindow(1024, TWO32) });
    assert.equal(r.open(ESN_GCM).seq, TWO32 + 1n);
  });

  it('ChaCha20-Poly1305 with ESN (RFC 7634 §2.1 AAD) matches the python vector', () => {
    const s = new EspSender(dir(0x5005, CHACHA), 'chacha20-poly1305', true, TWO32 + 7n);
    assert.deepEqual(s.seal(PING), CHACHA_ESN);
    const r = receiver(0x5005, CHACHA, { esn: true, window: new ReplayWindow(1024, TWO32) });
    assert.equal(r.open(CHACHA_ESN).seq, TWO32 + 7n);
  });
});

describe('ESP sequence counter never cycles (RFC 4303 §3.3.3)', () => {
  it('without ESN: 2^32 - 1 is the last number, then E_SEQ_EXHAUSTED and the counter stays', () => {
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, TWO32 - 1n);
    const last = s.seal(PING);
    assert.deepEqual(last.subarray(4, 8), fromHex('ffffffff'));
    assert.equal(s.exhausted, true);
    assert.throws(() => s.seal(PING), { name: 'ProtocolError', code: 'E_SEQ_EXHAUSTED' });
    assert.throws(() => s.seal(PING), { code: 'E_SEQ_EXHAUSTED' });
    assert.equal(s.nextSeq, TWO32);
  });

  it('with ESN: 2^64 - 1 is the last number', () => {
    const max = (1n << 64n) - 1n;
    const s = new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', true, max);
    s.seal(PING);
    assert.throws(() => s.seal(PING), { code: 'E_SEQ_EXHAUSTED' });
  });

  it('rejects a first sequence number of 0, a bad key length or a reserved SPI with E_USAGE', () => {
    assert.throws(() => new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, 0n), { code: 'E_USAGE' });
    assert.throws(() => new EspSender(dir(0x1001, GCM128), 'aes-gcm-16', false, TWO32 + 1n), { code: 'E_USAGE' });
    assert.throws(() => new EspSender(dir(0x1001, GCM128.subarray(0, 16)), 'aes-gcm-16', false, 1n), { code: 'E_USAGE' });
    assert.throws(() => new EspSender(dir(0x1001, GCM128), 'chacha20-poly1305', false, 1n), { code: 'E_USAGE' });
    assert.throws(() => new EspSender(dir(0, GCM128), 'aes-gcm-16', false, 1n), { code: 'E_USAGE' });
    assert.throws(() => new EspSender(dir(0xffffffff, GCM128), 'aes-gcm-16', false, 1n), { code: 'E_USAGE' });
  });
});

describe('inner UDP header (DESIGN §2.2)', () => {
  it('encodes srcPort, dstPort 623, length, checksum 0, as in the tshark reference', () => {
    const body = fromHex('0600ff06000011be80210000');
    assert.deepEqual(encodeInnerUdp(40002, 623, body), PING);
    assert.deepEqual(decodeInnerUdp(PING), { srcPort: 40002, dstPort: 623, body });
  });

  it('E_LENGTH when the length field disagrees, E_SHORT below 8 bytes', () => {
    assert.throws(() => decodeInnerUdp(PING.subarray(0, 19)), { code: 'E_LENGTH' });
    assert.throws(() => decodeInnerUdp(PING.subarray(0, 7)), { code: 'E_SHORT' });
    assert.throws(() => encodeInnerUdp(70000, 623, new Uint8Array(0)), { code: 'E_USAGE' });
  });
});
