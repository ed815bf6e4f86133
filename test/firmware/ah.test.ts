import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { AhReceiver, AhSender, ahPseudoHeader, type AhEndpoints } from '../../wire/ah.js';
import { concat, fromHex } from '../../common/bytes.js';
import { EspReceiver, EspSender, decodeInnerUdp, encodeInnerUdp } from '../../wire/esp.js';
import { ReplayWindow } from '../../wire/replay-window.js';

// shared/reference/tshark/ah_pcap.py: AH key 60..7f, SPI 0x4004, around esp_pcap.py frame 1.
const AH_KEY = fromHex('606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f');
const ESP1 = fromHex(
  '00001001000000010000000000000001da331e9d6c907750816cb911db0485d891d3198397f782b383a59cfbdacfdfa9ac19fe432a5fb3ff',
);
/** ah_pcap.py frame 1: ICV over AH header || ESP only (no pseudo-header; tshark does not check it). */
const AH_PCAP_FRAME1 = fromHex(
  '3205000000004004000000018b59f3ba207f84cc84f9955ac365d7fb' + '00001001000000010000000000000001',
);
const EP: AhEndpoints = { srcAddr: '127.0.0.1', dstAddr: '127.0.0.1', srcPort: 40003, dstPort: 664 };
// Ours, with the 12-byte pseudo-header 7f000001 7f000001 9c43 0298 in front (python hmac, scratch
// script .build/esp/py/vectors.py): seq 1, and ESN seq 2^32 + 3 (Seq high 00000001 appended).
const AH_1 = fromHex('3205000000004004000000016457d34583d6571b749c0a25578e715c');
const AH_ESN = fromHex('320500000000400400000003f7a423cc6a80b3a982caed443a99bf23');

const TWO32 = 1n << 32n;

function flip(b: Uint8Array, i: number): Uint8Array {
  const c = b.slice();
  c[i] ^= 0x01;
  return c;
}

describe('AH (RFC 4302) around ESP, HMAC-SHA-256-128 (RFC 4868)', () => {
  it('pseudo-header layout: src IPv4 | dst IPv4 | src port | dst port', () => {
    assert.deepEqual(
      ahPseudoHeader({ srcAddr: '10.1.2.3', dstAddr: '127.0.9.200', srcPort: 40003, dstPort: 664 }),
      fromHex('0a010203' + '7f0009c8' + '9c43' + '0298'),
    );
    assert.throws(() => ahPseudoHeader({ ...EP, srcAddr: '::1' }), { code: 'E_USAGE' });
    assert.throws(() => ahPseudoHeader({ ...EP, dstAddr: '1.2.3.256' }), { code: 'E_USAGE' });
  });

  it('wrap() gives next header 50, payload length 5, reserved 0, SPI, seq, ICV, then the ESP packet', () => {
    const packet = new AhSender(0x4004, AH_KEY, false, 1n).wrap(ESP1, EP);
    assert.deepEqual(packet, concat(AH_1, ESP1));
    // Same header bytes as the tshark reference; only the ICV differs (ours covers the pseudo-header).
    assert.deepEqual(packet.subarray(0, 12), AH_PCAP_FRAME1.subarray(0, 12));
    const icv = createHmac('sha256', AH_KEY)
      .update(concat(ahPseudoHeader(EP), packet.subarray(0, 12), new Uint8Array(16), ESP1))
      .digest()
      .subarray(0, 16);
    assert.deepEqual(packet.subarray(12, 28), new Uint8Array(icv));
  });

  it('round trip: unwrap() returns the ESP packet and the sequence number', () => {
    const s = new AhSender(0x4004, AH_KEY, false, 1n);
    const r = new AhReceiver(0x4004, AH_KEY, false, new ReplayWindow());
    for (let i = 1n; i <= 3n; i++) {
      const got = r.unwrap(s.wrap(ESP1, EP), EP);
      assert.deepEqual(got.espPacket, ESP1);
      assert.equal(got.seq, i);
    }
    assert.equal(s.nextSeq, 4n);
  });

  it('wrong key -> E_AH_ICV', () => {
    const packet = new AhSender(0x4004, AH_KEY, false, 1n).wrap(ESP1, EP);
    const other = AH_KEY.map((b) => b ^ 0xff);
    assert.throws(() => new AhReceiver(0x4004, other, false, new ReplayWindow()).unwrap(packet, EP), {
      name: 'ProtocolError',
      code: 'E_AH_ICV',
    });
  });

  it('a changed pseudo-header (dst port, src address) or any flipped bit -> E_AH_ICV', () => {
    const packet = new AhSender(0x4004, AH_KEY, false, 1n).wrap(ESP1, EP);
    const r = new AhReceiver(0x4004, AH_KEY, false, new ReplayWindow());
    assert.throws(() => r.unwrap(packet, { ...EP, dstPort: 665 }), { code: 'E_AH_ICV' });
    assert.throws(() => r.unwrap(packet, { ...EP, srcAddr: '127.0.0.2' }), { code: 'E_AH_ICV' });
    for (const i of [2, 12, 27, 28, packet.length - 1]) {
      // reserved (covered, RFC 4302 §2.3), ICV, ESP payload
      assert.throws(() => r.unwrap(flip(packet, i), EP), { code: 'E_AH_ICV' }, `byte ${i}`);
    }
    assert.equal(r.window.highest, 0n, 'failed packets leave the window alone');
    assert.equal(r.unwrap(packet, EP).seq, 1n);
  });

  it('replay -> E_REPLAY, checked before the ICV', () => {
    const packet = new AhSender(0x4004, AH_KEY, false, 1n).wrap(ESP1, EP);
    const r = new AhReceiver(0x4004, AH_KEY, false, new ReplayWindow());
    r.unwrap(packet, EP);
    assert.throws(() => r.unwrap(packet, EP), { code: 'E_REPLAY' });
    assert.throws(() => r.unwrap(flip(packet, 20), EP), { code: 'E_REPLAY' });
  });

  it('header checks: E_SHORT, E_NEXT_HEADER, E_LENGTH, E_SPI', () => {
    const packet = new AhSender(0x4004, AH_KEY, false, 1n).wrap(ESP1, EP);
    const r = new AhReceiver(0x4004, AH_KEY, false, new ReplayWindow());
    assert.throws(() => r.unwrap(packet.subarray(0, 27), EP), { code: 'E_SHORT' });
    const nh = packet.slice();
    nh[0] = 17;
    assert.throws(() => r.unwrap(nh, EP), { code: 'E_NEXT_HEADER' });
    const len = packet.slice();
    len[1] = 4;
    assert.throws(() => r.unwrap(len, EP), { code: 'E_LENGTH' });
    assert.throws(() => new AhReceiver(0x4005, AH_KEY, false, new ReplayWindow()).unwrap(packet, EP), { code: 'E_SPI' });
  });

  it('ESN: the high half is appended to the ICV input (RFC 4302 §2.5.1) and inferred on receipt', () => {
    const s = new AhSender(0x4004, AH_KEY, true, TWO32 + 3n);
    const packet = s.wrap(ESP1, EP);
    assert.deepEqual(packet, concat(AH_ESN, ESP1));
    const behind = new AhReceiver(0x4004, AH_KEY, true, new ReplayWindow());
    assert.throws(() => behind.unwrap(packet, EP), { code: 'E_AH_ICV' }, 'inferred as seq 3');
    const r = new AhReceiver(0x4004, AH_KEY, true, new ReplayWindow(1024, TWO32));
    assert.equal(r.unwrap(packet, EP).seq, TWO32 + 3n);
  });

  it('the counter never cycles: E_SEQ_EXHAUSTED after 2^32 - 1', () => {
    const s = new AhSender(0x4004, AH_KEY, false, TWO32 - 1n);
    s.wrap(ESP1, EP);
    assert.throws(() => s.wrap(ESP1, EP), { code: 'E_SEQ_EXHAUSTED' });
    assert.equal(s.nextSeq, TWO32);
  });

  it('rejects a key that is not 32 bytes and SPI 0 with E_USAGE', () => {
    assert.throws(() => new AhSender(0x4004, AH_KEY.subarray(0, 16), false, 1n), { code: 'E_USAGE' });
    assert.throws(() => new AhSender(0, AH_KEY, false, 1n), { code: 'E_USAGE' });
  });

  it('esp+ah policy end to end: UDP -> ESP seal -> AH wrap -> AH unwrap -> ESP open -> UDP', () => {
    const encKey = fromHex('000102030405060708090a0b0c0d0e0fa0a1a2a3');
    const sa = { spi: 0x1001, encKey, ahSpi: 0x4004, ahKey: AH_KEY };
    const espOut = new EspSender(sa, 'aes-gcm-16', false, 1n);
    const ahOut = new AhSender(sa.ahSpi, sa.ahKey, false, 1n);
    const espIn = new EspReceiver(sa, 'aes-gcm-16', false, new ReplayWindow());
    const ahIn = new AhReceiver(sa.ahSpi, sa.ahKey, false, new ReplayWindow());
    const rmcp = fromHex('0600ff06000011be80210000');
    const wire = ahOut.wrap(espOut.seal(encodeInnerUdp(40002, 623, rmcp)), EP);
    assert.deepEqual(wire.subarray(28), ESP1, 'the ESP inside is esp_pcap.py frame 1');
    const inner = decodeInnerUdp(espIn.open(ahIn.unwrap(wire, EP).espPacket).payload);
    assert.deepEqual(inner, { srcPort: 40002, dstPort: 623, body: rmcp });
  });
});
