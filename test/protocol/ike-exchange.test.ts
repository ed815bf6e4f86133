/**
 * Station (initiator) and host agent (responder) over an in-memory link, one message at a time
 * (RFC 7296 §1.2-1.4 flows, DESIGN §2.4-2.5).
 */
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { hex } from '../../common/bytes.js';
import { UsageError } from '../../common/errors.js';
import { DH_CURVE25519, EXCHANGE, PAYLOAD, PROTO_ESP, TRANSFORM } from '../../protocol/ike/constants.js';
import { decodeHeader, decodeMessage, encodeHeader, encodeMessage, type EncodedPayload } from '../../protocol/ike/ike-message.js';
import { decodeNotify, encodeKe, encodeNonce, encodeNotify, encodeTs } from '../../protocol/ike/ike-payloads.js';
import { NIC_TS, STATION_TS } from '../../protocol/ike/child-sa.js';
import { NOTIFY, encodeCommitId } from '../../protocol/ike/notify.js';
import { spi4 } from '../../protocol/ike/payload-helpers.js';
import { encodeSa } from '../../protocol/ike/sa-payload.js';
import { openMessage, sealSk } from '../../protocol/ike/sk-payload.js';
import { x25519PublicKey } from '../../protocol/ike/ike-crypto.js';
import { ikeOffer } from '../../protocol/ike/proposals.js';
import { Pair } from './helpers/pair.js';

/** A request the station never sends, sealed with the station's own keys (to probe the host). */
function craft(p: Pair, exchange: number, messageId: number, payloads: EncodedPayload[], ivSeed = 0xee): Uint8Array {
  const k = p.station.ikeKeys();
  assert.ok(k);
  return sealSk({ spiI: k.spiI, spiR: k.spiR, exchange, initiator: true, response: false, messageId }, payloads, k.skEi, new Uint8Array(8).fill(ivSeed));
}

/** CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, TSi, TSr } for the SA with this inbound (fromNic) SPI. */
function rekeyPayloads(oldSpi: number): EncodedPayload[] {
  return [
    encodeNotify(NOTIFY.REKEY_SA, new Uint8Array(0), PROTO_ESP, spi4(oldSpi)),
    encodeSa([{ num: 1, protocol: PROTO_ESP, spi: spi4(0x12345678), transforms: [{ type: TRANSFORM.ENCR, id: 20, keyLength: 128 }, { type: TRANSFORM.ESN, id: 0 }] }]),
    encodeNonce(new Uint8Array(32).fill(1)),
    encodeTs(PAYLOAD.TSi, [STATION_TS]),
    encodeTs(PAYLOAD.TSr, [NIC_TS]),
  ];
}

/** Decrypts a host->station datagram and lists its notify types. */
function notifyTypes(p: Pair, bytes: Uint8Array): number[] {
  const k = p.station.ikeKeys();
  assert.ok(k);
  const { header, payloads } = decodeMessage(bytes);
  return openMessage(bytes, header, payloads, k.skEr).filter((x) => x.type === PAYLOAD.NOTIFY).map((x) => decodeNotify(x.body).notifyType);
}

describe('IKEv2 exchanges between station and host agent (RFC 7296)', () => {
  it('IKE_SA_INIT + IKE_AUTH + the two-phase commit, one message at a time', () => {
    const p = new Pair();
    p.connect();
    /* IKE_SA_INIT { SA, KEi, Ni } --> */
    assert.equal(p.toHost(), 'IKE_SA_INIT request #0 { SA, KEi, Ni }');
    /* <-- IKE_SA_INIT { SA, KEr, Nr } */
    assert.equal(p.toStation(), 'IKE_SA_INIT response #0 { SA, KEr, Nr }');
    assert.equal(p.station.state, 'auth-sent');
    /* IKE_AUTH { IDi, AUTH, N(INITIAL_CONTACT), N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr } --> */
    assert.equal(p.toHost(), 'IKE_AUTH request #1 { IDi, AUTH, N(INITIAL_CONTACT), N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr }');
    assert.deepEqual(p.kinds(p.hostFx), ['established', 'nic-write-pending']);
    assert.equal(p.nic.pending?.generation, 1);
    /* <-- IKE_AUTH { IDr, AUTH, N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr } */
    assert.equal(p.toStation(), 'IKE_AUTH response #1 { IDr, AUTH, N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr }');
    assert.equal(p.station.state, 'established');
    assert.equal(p.station.commitState, 'staged');
    /* <-- INFORMATIONAL { N(SA_READY) }   (host-initiated: the host's own Message ID 0) */
    assert.equal(p.toStation(), 'INFORMATIONAL request #0 { N(SA_READY) }');
    assert.equal(p.station.commitState, 'acking');
    /* INFORMATIONAL { } --> */
    assert.equal(p.toHost(), 'INFORMATIONAL response #0 { }');
    /* INFORMATIONAL { N(SA_ACK) } --> */
    assert.equal(p.toHost(), 'INFORMATIONAL request #2 { N(SA_ACK) }');
    assert.equal(p.nic.active?.generation, 1);
    assert.equal(p.nic.pending, null);
    assert.equal(p.stationSa, null, 'the station must not switch before SA_CONFIRM');
    /* <-- INFORMATIONAL { N(SA_CONFIRM) } */
    assert.equal(p.toStation(), 'INFORMATIONAL response #2 { N(SA_CONFIRM) }');
    assert.deepEqual(p.kinds(p.stationFx), ['established', 'child-sa', 'switch-outbound']);
    assert.deepEqual(p.kinds(p.hostFx), ['established', 'nic-write-pending', 'nic-commit']);
    assert.equal(p.toHostQ.length + p.toStationQ.length, 0);

    // Both ends hold the same keys: what the station sends, the NIC can read.
    const sa = p.outbound();
    assert.ok(sa);
    assert.deepEqual(sa, p.nic.active);
    assert.equal(sa.transform, 'aes-gcm-16');
    assert.equal(sa.esn, false);
    assert.equal(sa.toNic.encKey.length, 20);
    assert.notEqual(hex(sa.toNic.encKey), hex(sa.fromNic.encKey));
    assert.equal(p.station.currentSa, sa);
    assert.equal(p.host.commitState, 'idle');
    assert.equal(p.station.pollTimeout(), null);
    assert.equal(p.host.pollTimeout(), null);
  });

  it('SA refresh: CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, KEi, TSi, TSr } with PFS, commit, then DELETE of the old SA', () => {
    const p = new Pair();
    p.establish();
    const old = p.stationSa;
    assert.ok(old);
    p.stationFx = [];
    p.hostFx = [];
    p.refresh();
    /* CREATE_CHILD_SA { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr } --> */
    assert.equal(p.toHost(), 'CREATE_CHILD_SA request #3 { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr }');
    /* <-- CREATE_CHILD_SA { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr } */
    assert.equal(p.toStation(), 'CREATE_CHILD_SA response #3 { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr }');
    assert.equal(p.nic.pending?.generation, 2);
    /* <-- INFORMATIONAL { N(SA_READY) } */
    assert.equal(p.toStation(), 'INFORMATIONAL request #1 { N(SA_READY) }');
    /* INFORMATIONAL { } --> */
    assert.equal(p.toHost(), 'INFORMATIONAL response #1 { }');
    /* INFORMATIONAL { N(SA_ACK) } --> */
    assert.equal(p.toHost(), 'INFORMATIONAL request #4 { N(SA_ACK) }');
    assert.equal(p.nic.active?.generation, 2);
    assert.equal(p.nic.previous?.generation, 1, 'the SA in use stays until the new one authenticates');
    /* <-- INFORMATIONAL { N(SA_CONFIRM) } */
    assert.equal(p.toStation(), 'INFORMATIONAL response #4 { N(SA_CONFIRM) }');
    assert.equal(p.stationSa?.generation, 2);
    assert.equal(p.nic.previous, null, 'the dummy packet on the new SA retired the old one (§2.8)');
    /* INFORMATIONAL { D(ESP) } --> */
    assert.equal(p.toHost(), 'INFORMATIONAL request #5 { D(ESP x1) }');
    /* <-- INFORMATIONAL { D(ESP) } */
    assert.equal(p.toStation(), 'INFORMATIONAL response #5 { D(ESP x1) }');
    assert.deepEqual(p.kinds(p.stationFx), ['child-sa', 'switch-outbound']);
    const child = p.stationFx.find((e) => e.kind === 'child-sa');
    assert.ok(child && child.kind === 'child-sa' && child.role === 'rekey');
    const sa = p.stationSa;
    assert.ok(sa);
    assert.deepEqual(sa, p.nic.active);
    assert.notEqual(sa.toNic.spi, old.toNic.spi);
    assert.notEqual(hex(sa.toNic.encKey), hex(old.toNic.encKey));
    // and again: generations keep counting; one refresh at a time
    p.refresh();
    assert.throws(() => p.refresh(), (e: unknown) => e instanceof UsageError && e.code === 'E_IKE_STATE');
    p.settle();
    assert.equal(p.stationSa?.generation, 3);
    assert.deepEqual(p.stationSa, p.nic.active);
  });

  it('wrong PSK: the host answers AUTHENTICATION_FAILED (24) and neither side gets a Child SA', () => {
    const p = new Pair({ responder: { psk: new TextEncoder().encode('another key') } });
    p.connect();
    p.toHost();
    p.toStation();
    /* IKE_AUTH { IDi, AUTH, ... } --> */
    p.toHost();
    /* <-- IKE_AUTH { N(AUTHENTICATION_FAILED) } */
    assert.equal(p.toStation(), 'IKE_AUTH response #1 { N(AUTHENTICATION_FAILED) }');
    assert.equal(p.station.state, 'failed');
    const f = p.stationFx.find((e) => e.kind === 'failed');
    assert.ok(f && f.kind === 'failed' && f.code === 'E_IKE_AUTH' && f.scope === 'ike');
    assert.deepEqual(p.kinds(p.hostFx), ['failed']);
    assert.equal(p.kinds(p.stationFx).includes('child-sa'), false);
    assert.equal(p.nic.pending, null);
    assert.equal(p.nic.active, null);
    assert.deepEqual(p.host.sessionStates, ['failed']);
    assert.equal(p.toHostQ.length + p.toStationQ.length, 0);
  });

  it('a host with another identity fails authentication at the station', () => {
    const p = new Pair({ responder: { id: 'impostor.lab' } });
    p.connect();
    p.settle();
    const f = p.stationFx.find((e) => e.kind === 'failed');
    assert.ok(f && f.kind === 'failed' && f.code === 'E_IKE_AUTH');
  });

  it('IKE_SA_INIT with an unacceptable proposal gets NO_PROPOSAL_CHOSEN (14), a wrong KE group INVALID_KE_PAYLOAD (17)', () => {
    const p = new Pair();
    const spiI = new Uint8Array(8).fill(7);
    const f = { spiI, spiR: new Uint8Array(8), exchange: EXCHANGE.IKE_SA_INIT, initiator: true, response: false, messageId: 0 };
    const cbc = ikeOffer();
    cbc[0].transforms = [{ type: TRANSFORM.ENCR, id: 12, keyLength: 128 }, ...cbc[0].transforms.slice(1)];
    const pub = x25519PublicKey(new Uint8Array(32).fill(3));
    const nonce = encodeNonce(new Uint8Array(32).fill(9));
    const answer = (msg: Uint8Array) => {
      const fx = p.injectToHost(msg);
      const sent = fx.filter((e) => e.kind === 'send');
      assert.equal(sent.length, 1);
      const m = decodeMessage((sent[0] as { bytes: Uint8Array }).bytes);
      assert.equal(hex(m.header.spiR), '0000000000000000');
      return m.payloads.map((x) => decodeNotify(x.body));
    };
    const noProp = answer(encodeMessage(f, [encodeSa(cbc), encodeKe(PAYLOAD.KE, DH_CURVE25519, pub), nonce]));
    assert.deepEqual(noProp.map((n) => n.notifyType), [NOTIFY.NO_PROPOSAL_CHOSEN]);
    const badKe = answer(encodeMessage(f, [encodeSa(ikeOffer()), encodeKe(PAYLOAD.KE, 19, new Uint8Array(64)), nonce]));
    assert.deepEqual(badKe.map((n) => [n.notifyType, hex(n.data)]), [[NOTIFY.INVALID_KE_PAYLOAD, '001f']]);
    assert.deepEqual(p.host.sessionStates, [], 'refusals create no state');

    // ...and the station turns such an answer into a coded failure.
    p.connect();
    const req = p.toHostQ.shift() as Uint8Array;
    const h = decodeHeader(req);
    const refusal = encodeMessage({ spiI: h.spiI, spiR: new Uint8Array(8), exchange: EXCHANGE.IKE_SA_INIT, initiator: false, response: true, messageId: 0 }, [encodeNotify(NOTIFY.NO_PROPOSAL_CHOSEN)]);
    p.injectToStation(refusal);
    const fail = p.stationFx.find((e) => e.kind === 'failed');
    assert.ok(fail && fail.kind === 'failed' && fail.code === 'E_IKE_PROPOSAL');
  });

  it('a Child SA the host cannot accept: IKE SA up, N(NO_PROPOSAL_CHOSEN) in IKE_AUTH, no SA staged', () => {
    const p = new Pair({ responder: { espTransforms: ['chacha20-poly1305'] } });
    p.connect();
    p.settle();
    assert.equal(p.station.state, 'established');
    const f = p.stationFx.find((e) => e.kind === 'failed');
    assert.ok(f && f.kind === 'failed' && f.scope === 'child' && f.code === 'E_IKE_PROPOSAL');
    assert.equal(p.nic.pending, null);
    assert.equal(p.stationSa, null);
  });

  it('ChaCha20-Poly1305 (28) and ESN are negotiable; a host that refuses ESN answers NO_PROPOSAL_CHOSEN', () => {
    const p = new Pair({ initiator: { espTransforms: ['chacha20-poly1305', 'aes-gcm-16'], esn: true } });
    p.establish();
    assert.equal(p.stationSa?.transform, 'chacha20-poly1305');
    assert.equal(p.stationSa?.esn, true);
    assert.equal(p.stationSa?.toNic.encKey.length, 36);
    assert.deepEqual(p.stationSa, p.nic.active);

    const q = new Pair({ initiator: { esn: true }, responder: { allowEsn: false } });
    q.establish();
    const f = q.stationFx.find((e) => e.kind === 'failed');
    assert.ok(f && f.kind === 'failed' && f.scope === 'child');
  });

  it('esp+ah policy: AH keys follow the ESP keys in KEYMAT, AH SPI = ESP SPI (Lifeline extension)', () => {
    const p = new Pair({ initiator: { policy: 'esp+ah' }, responder: { policy: 'esp+ah' } });
    p.establish();
    const sa = p.stationSa;
    assert.ok(sa);
    assert.equal(sa.policy, 'esp+ah');
    assert.equal(sa.toNic.ahKey.length, 32);
    assert.equal(sa.toNic.ahSpi, sa.toNic.spi);
    assert.deepEqual(sa, p.nic.active);
  });

  it('§2.1 retransmission: 250 ms x2 back-off, the host answers a retransmitted request from its cache, 5 tries then dead', () => {
    const p = new Pair();
    p.connect();
    p.toHost();
    p.toStation();
    assert.equal(p.station.pollTimeout(), 250);
    p.toHostQ.length = 0; // IKE_AUTH request lost
    p.advanceTo(250);
    assert.equal(p.toHostQ.length, 1, 'retransmitted at 250 ms');
    assert.equal(p.station.pollTimeout(), 750);
    p.toHost();
    const firstAnswer = p.toStationQ.shift() as Uint8Array; // response lost
    p.toStationQ.length = 0; // and the SA_READY too
    p.advanceTo(750);
    p.toHost();
    assert.ok(p.toStationQ.some((b) => hex(b) === hex(firstAnswer)), 'same response bytes from the cache');
    assert.deepEqual(p.kinds(p.hostFx), ['established', 'nic-write-pending'], 'processed once');
    p.settle();
    assert.equal(p.stationSa?.generation, 1);

    const q = new Pair();
    q.connect();
    for (const t of [250, 750, 1750, 3750]) {
      q.toHostQ.length = 0;
      q.advanceTo(t);
      assert.equal(q.toHostQ.length, 1, `retransmission at ${t} ms`);
    }
    q.toHostQ.length = 0;
    q.advanceTo(7750);
    assert.equal(q.toHostQ.length, 0);
    const f = q.stationFx.find((e) => e.kind === 'failed');
    assert.ok(f && f.kind === 'failed' && f.code === 'E_IKE_TIMEOUT');
    assert.equal(q.station.state, 'failed');
    assert.equal(q.station.pollTimeout(), null);
  });

  it('§2.2 Message IDs: a replayed older request and an out-of-window ID are dropped', () => {
    const p = new Pair();
    p.establish();
    const auth = p.wire.filter(([d]) => d === 'station->host')[1][1]; // the IKE_AUTH request (#1)
    const before = p.host.snapshot();
    assert.deepEqual(p.kinds(p.injectToHost(auth)), [], 'an old request (ID 1, current 3) is dropped');
    const ahead = craft(p, EXCHANGE.INFORMATIONAL, 9, []);
    assert.deepEqual(p.kinds(p.injectToHost(ahead)), []);
    assert.equal(p.host.snapshot(), before);
    assert.equal(p.host.drops.msgid, 2);
  });

  it('SA_ACK is idempotent: a new SA_ACK for the committed SA gets SA_CONFIRM again; an unknown one CHILD_SA_NOT_FOUND (44)', () => {
    const p = new Pair();
    p.establish();
    const sa = p.stationSa;
    assert.ok(sa);
    const id = { generation: sa.generation, spiToNic: sa.toNic.spi, spiFromNic: sa.fromNic.spi };
    const again = p.injectToHost(craft(p, EXCHANGE.INFORMATIONAL, 3, [encodeNotify(NOTIFY.SA_ACK, encodeCommitId(id))]));
    assert.deepEqual(p.kinds(again), ['send'], 'no second nic-commit');
    assert.deepEqual(notifyTypes(p, (again[0] as { bytes: Uint8Array }).bytes), [NOTIFY.SA_CONFIRM]);
    const stale = p.injectToHost(craft(p, EXCHANGE.INFORMATIONAL, 4, [encodeNotify(NOTIFY.SA_ACK, encodeCommitId({ ...id, generation: 7 }))]));
    assert.deepEqual(notifyTypes(p, (stale.find((e) => e.kind === 'send') as { bytes: Uint8Array }).bytes), [NOTIFY.CHILD_SA_NOT_FOUND]);
    assert.equal(p.nic.active?.generation, 1);
  });

  it('a rekey while the previous commit is pending gets TEMPORARY_FAILURE (43), and the pending SA stays', () => {
    const p = new Pair();
    p.establish();
    const first = p.outbound();
    assert.ok(first);
    p.refresh();
    /* CREATE_CHILD_SA --> (host stages generation 2)   <-- CREATE_CHILD_SA, INFORMATIONAL { N(SA_READY) } (held) */
    p.toHost();
    p.toStation();
    /* a second CREATE_CHILD_SA (#4) --> while generation 2 waits for SA_ACK */
    const busy = p.injectToHost(craft(p, EXCHANGE.CREATE_CHILD_SA, 4, rekeyPayloads(first.fromNic.spi)));
    assert.deepEqual(notifyTypes(p, (busy.find((e) => e.kind === 'send') as { bytes: Uint8Array }).bytes), [NOTIFY.TEMPORARY_FAILURE]);
    assert.equal(p.nic.pending?.generation, 2);
  });

  it('rekey of an SA that was already rekeyed (a late duplicate, §2.8.1) gets CHILD_SA_NOT_FOUND (44)', () => {
    const p = new Pair();
    p.establish();
    const first = p.stationSa;
    assert.ok(first);
    p.refresh();
    p.settle();
    assert.equal(p.stationSa?.generation, 2);
    const late = craft(p, EXCHANGE.CREATE_CHILD_SA, 6, rekeyPayloads(first.fromNic.spi));
    const fx = p.injectToHost(late);
    assert.deepEqual(notifyTypes(p, (fx.find((e) => e.kind === 'send') as { bytes: Uint8Array }).bytes), [NOTIFY.CHILD_SA_NOT_FOUND]);
    assert.equal(p.nic.pending, null);
  });

  it('INVALID_SYNTAX (7) only for an authenticated request; UNSUPPORTED_CRITICAL_PAYLOAD (1) names the type', () => {
    const p = new Pair();
    p.establish();
    const bad = p.injectToHost(craft(p, EXCHANGE.INFORMATIONAL, 3, [encodeNotify(NOTIFY.SA_ACK, new Uint8Array(5))]));
    assert.deepEqual(notifyTypes(p, (bad.find((e) => e.kind === 'send') as { bytes: Uint8Array }).bytes), [NOTIFY.INVALID_SYNTAX]);
    const k = p.station.ikeKeys();
    assert.ok(k);
    const msg = sealWithCritical(k, 4, 200, new Uint8Array([1, 2]));
    const fx = p.injectToHost(msg);
    const sent = fx.find((e) => e.kind === 'send') as { bytes: Uint8Array };
    const { header, payloads } = decodeMessage(sent.bytes);
    const n = openMessage(sent.bytes, header, payloads, k.skEr).map((x) => decodeNotify(x.body));
    assert.deepEqual(n.map((x) => [x.notifyType, hex(x.data)]), [[NOTIFY.UNSUPPORTED_CRITICAL_PAYLOAD, 'c8']]);
    // a forged (unauthenticated) request gets nothing
    const forged = new Uint8Array(msg);
    forged[forged.length - 1] ^= 1;
    assert.deepEqual(p.kinds(p.injectToHost(forged)), []);
  });

  it('liveness: an empty INFORMATIONAL request is answered, the station reports alive', () => {
    const p = new Pair();
    p.establish();
    p.stationFx = [];
    p.ping();
    assert.equal(p.toHost(), 'INFORMATIONAL request #3 { }');
    assert.equal(p.toStation(), 'INFORMATIONAL response #3 { }');
    assert.deepEqual(p.kinds(p.stationFx), ['alive']);
  });

  it('graceful host shutdown: <-- INFORMATIONAL { D(IKE) }, the station closes, the SA stays in use', () => {
    const p = new Pair();
    p.establish();
    const sa = p.outbound();
    p.stationFx = [];
    p.hostFx = [];
    for (const e of p.host.shutdown(p.now)) if (e.kind === 'send') p.toStationQ.push(e.bytes);
    assert.equal(p.toStation(), 'INFORMATIONAL request #1 { D(IKE) }');
    assert.equal(p.station.state, 'closed');
    assert.deepEqual(p.kinds(p.stationFx), ['closed']);
    assert.equal(p.toHost(), 'INFORMATIONAL response #1 { }');
    assert.deepEqual(p.kinds(p.hostFx), ['closed']);
    assert.deepEqual(p.host.sessionStates, []);
    assert.equal(p.outbound(), sa);
  });

  it('DELETE of the IKE SA closes both ends but the Child SA stays in use (it lives in the NIC)', () => {
    const p = new Pair();
    p.establish();
    const sa = p.stationSa;
    p.stationFx = [];
    p.close();
    assert.equal(p.toHost(), 'INFORMATIONAL request #3 { D(IKE) }');
    assert.equal(p.toStation(), 'INFORMATIONAL response #3 { }');
    assert.equal(p.station.state, 'closed');
    assert.deepEqual(p.host.sessionStates, []);
    assert.equal(p.stationSa, sa);
    assert.deepEqual(p.nic.active, sa);
  });

  it('SA_READY overtaking the CREATE_CHILD_SA answer is held until the answer arrives, then acknowledged', () => {
    const p = new Pair();
    p.establish();
    p.refresh();
    p.toHost(); // CREATE_CHILD_SA
    p.toStationQ.shift(); // its answer is lost
    /* <-- INFORMATIONAL { N(SA_READY) } before the station derived the SA */
    assert.equal(p.toStation(), 'INFORMATIONAL request #1 { N(SA_READY) }');
    assert.equal(p.station.commitState, 'idle');
    assert.equal(p.toHost(), 'INFORMATIONAL response #1 { }');
    p.advanceTo(250); // the station retransmits CREATE_CHILD_SA; the host answers from its cache
    p.toHost();
    /* <-- CREATE_CHILD_SA { ... }: derive, and SA_ACK at once */
    p.toStation();
    assert.equal(p.station.commitState, 'acking');
    assert.equal(p.toHost(), 'INFORMATIONAL request #4 { N(SA_ACK) }');
    p.settle();
    assert.equal(p.outbound()?.generation, 2);
    assert.deepEqual(p.outbound(), p.nic.active);
  });

  it('§2.6 COOKIE: the station repeats IKE_SA_INIT with N(COOKIE) first', () => {
    const p = new Pair();
    p.connect();
    const h = decodeHeader(p.toHostQ.shift() as Uint8Array);
    const cookie = encodeMessage({ spiI: h.spiI, spiR: new Uint8Array(8), exchange: EXCHANGE.IKE_SA_INIT, initiator: false, response: true, messageId: 0 }, [
      encodeNotify(NOTIFY.COOKIE, new Uint8Array([1, 2, 3, 4])),
    ]);
    p.injectToStation(cookie);
    assert.equal(p.describe(p.toHostQ[0]), 'IKE_SA_INIT request #0 { N(COOKIE), SA, KEi, Ni }');
    p.settle();
    assert.equal(p.outbound()?.generation, 1, 'the host (which sends no cookies itself) accepts it');
  });

  it('§2.5: a request with a higher major version gets INVALID_MAJOR_VERSION (5), unauthenticated, no state', () => {
    const p = new Pair();
    p.connect();
    const req = new Uint8Array(p.toHostQ.shift() as Uint8Array);
    req[17] = 0x30;
    const fx = p.injectToHost(req);
    const sent = (fx.find((e) => e.kind === 'send') as { bytes: Uint8Array }).bytes;
    const m = decodeMessage(sent);
    assert.equal(m.header.majorVersion, 2);
    assert.deepEqual(m.payloads.map((x) => decodeNotify(x.body).notifyType), [NOTIFY.INVALID_MAJOR_VERSION]);
    assert.deepEqual(p.host.sessionStates, []);
  });

  it('the ikev2_decryption_table line has the tshark 4.0 format (reference README §5)', () => {
    const p = new Pair();
    p.establish();
    const line = p.station.decryptionTableLine();
    assert.ok(line);
    assert.match(line, /^[0-9a-f]{16},[0-9a-f]{16},[0-9a-f]{40},[0-9a-f]{40},"AES-GCM-128 with 16 octet ICV \[RFC5282\]",,,"NONE \[RFC4306\]"$/);
    const k = p.station.ikeKeys();
    assert.ok(k);
    assert.ok(line.startsWith(`${hex(k.spiI)},${hex(k.spiR)},${hex(k.skEi)},${hex(k.skEr)},`));
  });

  it('the host discards the pending SA when SA_ACK never comes (DESIGN §2.5)', () => {
    const p = new Pair({ responder: { commitTimeoutMs: 5000 } });
    p.connect();
    p.toHost();
    p.toStation();
    p.toHost(); // IKE_AUTH -> pending generation 1
    p.toStationQ.length = 0; // IKE_AUTH response and SA_READY lost, and everything after
    p.advanceTo(5000);
    assert.equal(p.nic.pending, null);
    assert.ok(p.hostFx.some((e) => e.kind === 'nic-discard' && e.generation === 1));
    assert.equal(p.nic.active, null);
  });
});

/** An SK message whose single inner payload has the critical bit set (encodePayloadChain never sets it). */
function sealWithCritical(k: { spiI: Uint8Array; spiR: Uint8Array; skEi: Uint8Array }, messageId: number, type: number, body: Uint8Array): Uint8Array {
  const f = { spiI: k.spiI, spiR: k.spiR, exchange: EXCHANGE.INFORMATIONAL, initiator: true, response: false, messageId };
  const plain = new Uint8Array([0, 0x80, 0, 4 + body.length, ...body, 0]); // generic header C=1, body, Pad Length 0
  const skLen = 4 + 8 + plain.length + 16;
  const header = encodeHeader(f, PAYLOAD.SK, 28 + skLen);
  const skh = new Uint8Array([type, 0, skLen >> 8, skLen & 0xff]);
  const iv = new Uint8Array(8).fill(0x43);
  const c = createCipheriv('aes-128-gcm', k.skEi.subarray(0, 16), Buffer.concat([k.skEi.subarray(16), iv]));
  c.setAAD(Buffer.concat([header, skh]));
  const ct = Buffer.concat([c.update(plain), c.final()]);
  return new Uint8Array(Buffer.concat([header, skh, iv, ct, c.getAuthTag()]));
}
