/**
 * IKEv2 framing and the SK payload against the reference messages that tshark 4.0.17 dissected
 * (/work/shared/reference/tshark/ikev2_pcap.py, README §5): RFC 5282 AES-GCM in SK, salt from
 * SK_e, AAD = IKE header | SK generic header.
 */
import assert from 'node:assert/strict';
import { fromHex, hex } from '../../common/bytes.js';
import { ProtocolError } from '../../common/errors.js';
import { EXCHANGE, FLAG_INITIATOR, FLAG_RESPONSE, PAYLOAD, TRANSFORM } from '../../protocol/ike/constants.js';
import { describeMessage } from '../../protocol/ike/describe.js';
import { decodeHeader, decodeMessage, encodeMessage, unsupportedCritical } from '../../protocol/ike/ike-message.js';
import {
  decodeAuth,
  decodeDelete,
  decodeId,
  decodeKe,
  decodeNonce,
  decodeNotify,
  decodeTs,
  encodeAuth,
  encodeDelete,
  encodeId,
  encodeKe,
  encodeNonce,
  encodeNotify,
  encodeTs,
  ipv4Selector,
} from '../../protocol/ike/ike-payloads.js';
import { chooseIkeProposal, ikeOffer } from '../../protocol/ike/proposals.js';
import { decodeSa, encodeSa } from '../../protocol/ike/sa-payload.js';
import { openMessage, sealSk } from '../../protocol/ike/sk-payload.js';
import { ikev2DecryptionTableLine } from '../../protocol/ike/wireshark-uat.js';

// Frames 1-5 and 10 printed by `python3 ikev2_pcap.py` (deterministic).
const F1 = fromHex('010203040506070800000000000000002120220800000000000000902200002800000024010100030300000c01000014800e00800300000802000005000000080400001f28000028001f0000c3813b395de4bba4c09b44dfec39ae029e51b1b23d09e8e2f2695738a633a976000000248add3b19fbd74664ff95f3ef5fa8575dab62b01d55e3199a693d481b2f065e91');
const F2 = fromHex('010203040506070811121314151617182120222000000000000000902200002800000024010100030300000c01000014800e00800300000802000005000000080400001f28000028001f00003d9373360bf4bfa27aa41ab6ebe3040a06634684ff8dcba46eb955bfaeb3d64600000024b706429e299ec427661dcb19ec02583f2e788378513e0f1c00277e0eefc15198');
const F3 = fromHex('010203040506070811121314151617182e202308000000010000008f230000731495a1e5a2872ae84b0fa5ba5ae7072a0fa3812f96921932bf2a136bef5c9b73ca3fb3a1e9e0d8fee567a84f88dbe5f744268f5706eb000368d246394432e996fde7bb236918ecc0cf89084eb61b456c83fd4427fbca218dbfa62d6026875c497e4015e352874d5909590571e6c836');
const F4 = fromHex('010203040506070811121314151617182e202320000000010000007e24000062dd10ac86f03ae101306d4feeda906e8781883ce0980988d27518b0df9379795a68ff4f83231ec262a55a2b514c1dfd296e5764d24a56cbb99f82fa89ed1da05f687fabcafbc1af987477f21ef9fd89aa2d0230b55001aa646facae7479d9');
const F5 = fromHex('010203040506070811121314151617182e202308000000020000008f2300007354fc6abd10baddad1c6320b086456db7cc6180e8f6720176b187c46d0be41680e679e1fd93c893ae964db437016a32cf0e41eb6ad180537d960bb827928eea09fe140185ae966f8da2e81e778495d2ea53f433e31f6c4a129422d3cce00af7f8e93142a1ce0c0591b06fd4a4ef6351');
const F10 = fromHex('414243444546474851525354555657582e202308000000010000008f2300007330fc6c1c9c70814eee79453fdef9868458dc0ebaca0710bbd57a2a768811f87ffcce585e5946e3a2d4dff706a98a9b4be8f98e971d22018952ecc015a8171faef9eca94ae79ad4ab9b7f841d2a6f580c7cdf3121e4ed38a076871910e4301a0e25cafe1d7d4d8c97858f929e5a75c9');
const range = (a: number, b: number) => Uint8Array.from({ length: b - a }, (_, i) => a + i);
const SK_EI1 = new Uint8Array([...range(0x00, 0x10), 0xc0, 0xc1, 0xc2, 0xc3]);
const SK_ER1 = new Uint8Array([...range(0x10, 0x20), 0xd0, 0xd1, 0xd2, 0xd3]);
const SK_EI3 = new Uint8Array([...range(0xa0, 0xc0), 0xe0, 0xe1, 0xe2, 0xe3]);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe('IKEv2 message codec (RFC 7296 §3) on the tshark reference frames', () => {
  it('frame 1: IKE_SA_INIT request { SA(ENCR 20/128, PRF 5, DH 31), KE(31, 32 octets), Nonce(32) }', () => {
    const { header, payloads } = decodeMessage(F1);
    assert.equal(hex(header.spiI), '0102030405060708');
    assert.equal(hex(header.spiR), '0000000000000000');
    assert.equal(header.exchange, EXCHANGE.IKE_SA_INIT);
    assert.equal(header.flags, FLAG_INITIATOR);
    assert.equal(header.majorVersion, 2);
    assert.deepEqual(payloads.map((p) => p.type), [PAYLOAD.SA, PAYLOAD.KE, PAYLOAD.NONCE]);
    const [prop] = decodeSa(payloads[0].body);
    assert.deepEqual(prop.transforms, [
      { type: TRANSFORM.ENCR, id: 20, keyLength: 128 },
      { type: TRANSFORM.PRF, id: 5 },
      { type: TRANSFORM.DH, id: 31 },
    ]);
    const ke = decodeKe(payloads[1].body);
    assert.equal(ke.group, 31);
    assert.equal(ke.data.length, 32);
    assert.equal(decodeNonce(payloads[2].body).length, 32);
    assert.ok(chooseIkeProposal([prop]), 'our responder accepts it');
    // Our encoder produces the identical bytes from the same values.
    const again = encodeMessage(
      { spiI: header.spiI, spiR: header.spiR, exchange: EXCHANGE.IKE_SA_INIT, initiator: true, response: false, messageId: 0 },
      [encodeSa(ikeOffer()), encodeKe(PAYLOAD.KE, 31, ke.data), encodeNonce(decodeNonce(payloads[2].body))],
    );
    assert.equal(hex(again), hex(F1));
    assert.equal(describeMessage(F1), 'IKE_SA_INIT request #0 { SA, KEi, Ni }');
    assert.equal(describeMessage(F2), 'IKE_SA_INIT response #0 { SA, KEr, Nr }');
    assert.equal(decodeHeader(F2).flags, FLAG_RESPONSE);
  });

  it('frame 3: IKE_AUTH request, SK with AES-GCM-128 (RFC 5282) opens to { IDi(console.example), AUTH(2), N(40960) }', () => {
    const { header, payloads } = decodeMessage(F3);
    assert.deepEqual(payloads.map((p) => p.type), [PAYLOAD.SK]);
    const inner = openMessage(F3, header, payloads, SK_EI1);
    assert.deepEqual(inner.map((p) => p.type), [PAYLOAD.IDi, PAYLOAD.AUTH, PAYLOAD.NOTIFY]);
    const id = decodeId(inner[0].body);
    assert.equal(id.idType, 2);
    assert.equal(text(id.data), 'console.example');
    const auth = decodeAuth(inner[1].body);
    assert.equal(auth.method, 2);
    assert.equal(hex(auth.data), '00'.repeat(32));
    const n = decodeNotify(inner[2].body);
    assert.equal(n.notifyType, 40960);
    assert.equal(text(n.data), 'oob-nic-private');
    // Sealing the same payloads with the frame's IV reproduces the frame byte for byte.
    const resealed = sealSk(
      { spiI: header.spiI, spiR: header.spiR, exchange: EXCHANGE.IKE_AUTH, initiator: true, response: false, messageId: 1 },
      [encodeId(PAYLOAD.IDi, 2, id.data), encodeAuth(2, auth.data), encodeNotify(40960, n.data)],
      SK_EI1,
      F3.subarray(32, 40),
    );
    assert.equal(hex(resealed), hex(F3));
    assert.equal(describeMessage(F3, { skEi: SK_EI1, skEr: SK_ER1 }), 'IKE_AUTH request #1 { IDi, AUTH, N(SA_READY) }');
  });

  it('frame 4: IKE_AUTH response under SK_er opens to { IDr(nic.example), AUTH, N(40961) }', () => {
    const { header, payloads } = decodeMessage(F4);
    const inner = openMessage(F4, header, payloads, SK_ER1);
    assert.equal(text(decodeId(inner[0].body).data), 'nic.example');
    assert.equal(hex(decodeAuth(inner[1].body).data), hex(range(0, 32)));
    assert.equal(decodeNotify(inner[2].body).notifyType, 40961);
  });

  it('frame 5 (ICV corrupted) fails with E_ICV before anything is decrypted; the wrong key too', () => {
    const m5 = decodeMessage(F5);
    assert.throws(() => openMessage(F5, m5.header, m5.payloads, SK_EI1), (e: unknown) => e instanceof ProtocolError && e.code === 'E_ICV');
    const m4 = decodeMessage(F4);
    assert.throws(() => openMessage(F4, m4.header, m4.payloads, SK_EI1), (e: unknown) => e instanceof ProtocolError && e.code === 'E_ICV');
  });

  it('frame 10: AES-GCM-256 SK (SK_e of 36 octets) opens as well', () => {
    const { header, payloads } = decodeMessage(F10);
    const inner = openMessage(F10, header, payloads, SK_EI3);
    assert.equal(text(decodeId(inner[0].body).data), 'console.example');
  });

  it('the UAT line for the reference IKE SA #1 is exactly ikev2_uat_lines.txt line 1', () => {
    const line = ikev2DecryptionTableLine({ spiI: fromHex('0102030405060708'), spiR: fromHex('1112131415161718'), skEi: SK_EI1, skEr: SK_ER1 });
    assert.equal(
      line,
      '0102030405060708,1112131415161718,000102030405060708090a0b0c0d0e0fc0c1c2c3,101112131415161718191a1b1c1d1e1fd0d1d2d3,"AES-GCM-128 with 16 octet ICV [RFC5282]",,,"NONE [RFC4306]"',
    );
  });

  it('payload bodies round-trip: TS, Delete, Notify with SPI', () => {
    const ts = decodeTs(encodeTs(PAYLOAD.TSr, [ipv4Selector(17, 664, 664)]).body);
    assert.deepEqual([ts[0].tsType, ts[0].ipProtocol, ts[0].startPort, ts[0].endPort, hex(ts[0].endAddress)], [7, 17, 664, 664, 'ffffffff']);
    const d = decodeDelete(encodeDelete(3, [fromHex('00001001'), fromHex('00002002')]).body);
    assert.deepEqual([d.protocol, d.spis.map(hex)], [3, ['00001001', '00002002']]);
    const n = decodeNotify(encodeNotify(16393, new Uint8Array(0), 3, fromHex('0000abcd')).body);
    assert.deepEqual([n.protocol, hex(n.spi), n.notifyType, n.data.length], [3, '0000abcd', 16393, 0]);
  });

  it('malformed framing is a coded ProtocolError: wrong Length, payload past the end, trailing octets, bad proposal', () => {
    const code = (f: () => unknown, c: string) => assert.throws(f, (e: unknown) => e instanceof ProtocolError && e.code === c);
    code(() => decodeHeader(F1.subarray(0, 20)), 'E_SHORT');
    code(() => decodeHeader(F1.subarray(0, 100)), 'E_IKE_SYNTAX');
    const longPayload = new Uint8Array(F1);
    longPayload[30] = 0xff; // SA payload length
    code(() => decodeMessage(longPayload), 'E_IKE_SYNTAX');
    const trailing = new Uint8Array([...F1, 0, 0, 0, 0]);
    trailing[27] += 4; // Length field
    code(() => decodeMessage(trailing), 'E_IKE_SYNTAX');
    code(() => decodeSa(fromHex('0000000801010001')), 'E_IKE_SYNTAX'); // 1 transform announced, none present
    code(() => decodeTs(fromHex('00000000')), 'E_IKE_SYNTAX');
    code(() => decodeNonce(new Uint8Array(15)), 'E_IKE_SYNTAX');
  });

  it('§2.5: an unrecognized payload with the critical bit is reported, without it skipped', () => {
    const m = new Uint8Array([...fromHex('0102030405060708' + '00'.repeat(8) + 'c8202208' + '00000000' + '00000024'), 0, 0x80, 0, 8, 1, 2, 3, 4]);
    const { payloads } = decodeMessage(m);
    assert.equal(unsupportedCritical(payloads), 200);
    m[29] = 0;
    assert.equal(unsupportedCritical(decodeMessage(m).payloads), null);
  });
});
