/**
 * The two-phase commit as a negotiated extension (N(COMMIT_SUPPORTED) 45056 in IKE_AUTH): against
 * a standard IKEv2 peer (our own machines with `commitExtension: false`) both roles follow plain
 * RFC 7296 — a Child SA is in force once its exchange completes (§2.8). Also: the DELETE after a
 * commit timeout (§1.4.1), traffic selector narrowing (§2.9), a Child SA rekey started by the peer
 * and the §2.8.1 collision, and the INFORMATIONAL Delete of an IKE SA the station gives up.
 */
import assert from 'node:assert/strict';
import { answerChild } from '../../protocol/ike/child-exchange.js';
import { PAYLOAD, PROTO_ESP, TRANSFORM, TS_IPV4_ADDR_RANGE } from '../../protocol/ike/constants.js';
import type { RawPayload } from '../../protocol/ike/ike-message.js';
import { decodeTs, type TrafficSelector } from '../../protocol/ike/ike-payloads.js';
import { NOTIFY } from '../../protocol/ike/notify.js';
import { spi4 } from '../../protocol/ike/payload-helpers.js';
import { Pair } from './helpers/pair.js';

const standardHost = { responder: { commitExtension: false } };
const standardStation = { initiator: { commitExtension: false } };

function ts(proto: number, p0: number, p1: number, a0: number[], a1: number[]): TrafficSelector {
  return { tsType: TS_IPV4_ADDR_RANGE, ipProtocol: proto, startPort: p0, endPort: p1, startAddress: new Uint8Array(a0), endAddress: new Uint8Array(a1) };
}

describe('plain IKEv2 with a peer that does not announce COMMIT_SUPPORTED', () => {
  it('standard host: IKE_AUTH without N(COMMIT_SUPPORTED) in the answer; the host writes and commits before answering; the station uses the SA at once', () => {
    const p = new Pair(standardHost);
    p.connect();
    p.toHost();
    p.toStation();
    /* IKE_AUTH { IDi, AUTH, N(INITIAL_CONTACT), N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr } --> */
    const auth = p.toHostQ.shift() as Uint8Array;
    assert.equal(p.describe(auth), 'IKE_AUTH request #1 { IDi, AUTH, N(INITIAL_CONTACT), N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr }');
    const fx = p.injectToHost(auth);
    assert.deepEqual(p.kinds(fx), ['established', 'nic-write-pending', 'nic-commit', 'send'], 'the NIC holds it committed before the answer leaves');
    assert.equal(p.nic.active?.generation, 1);
    /* <-- IKE_AUTH { IDr, AUTH, N(USE_TRANSPORT_MODE), SA, TSi, TSr }   (no SA_READY follows) */
    assert.equal(p.toStation(), 'IKE_AUTH response #1 { IDr, AUTH, N(USE_TRANSPORT_MODE), SA, TSi, TSr }');
    assert.deepEqual(p.kinds(p.stationFx), ['established', 'child-sa', 'switch-outbound']);
    assert.equal(p.station.commitMode, false);
    assert.equal(p.toStationQ.length + p.toHostQ.length, 0);
    assert.deepEqual(p.outbound(), p.nic.active);
    // Nothing waits for an SA_READY that a standard peer never sends: no timer, no timeout blaming the host OS.
    assert.equal(p.station.pollTimeout(), null);
    p.advanceTo(120_000);
    assert.equal(p.stationFx.some((e) => e.kind === 'failed'), false);
  });

  it('standard station: no N(COMMIT_SUPPORTED) sent, none answered; refresh = CREATE_CHILD_SA, then D(ESP) of the old SA', () => {
    const p = new Pair(standardStation);
    p.connect();
    p.toHost();
    p.toStation();
    assert.equal(p.toHost(), 'IKE_AUTH request #1 { IDi, AUTH, N(INITIAL_CONTACT), N(USE_TRANSPORT_MODE), SA, TSi, TSr }');
    assert.equal(p.toStation(), 'IKE_AUTH response #1 { IDr, AUTH, N(USE_TRANSPORT_MODE), SA, TSi, TSr }');
    assert.equal(p.outbound()?.generation, 1);
    const old = p.outbound();
    p.stationFx = [];
    p.hostFx = [];
    p.refresh();
    /* CREATE_CHILD_SA { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr } --> */
    const req = p.toHostQ.shift() as Uint8Array;
    assert.deepEqual(p.kinds(p.injectToHost(req)), ['nic-write-pending', 'nic-commit', 'send']);
    /* <-- CREATE_CHILD_SA { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr } */
    assert.equal(p.toStation(), 'CREATE_CHILD_SA response #2 { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr }');
    assert.deepEqual(p.kinds(p.stationFx), ['child-sa', 'switch-outbound']);
    /* INFORMATIONAL { D(ESP) } -->   <-- { D(ESP) } */
    assert.equal(p.toHost(), 'INFORMATIONAL request #3 { D(ESP x1) }');
    assert.equal(p.toStation(), 'INFORMATIONAL response #3 { D(ESP x1) }');
    assert.equal(p.outbound()?.generation, 2, 'the station numbers plain SAs itself (nextGeneration)');
    assert.notEqual(p.outbound()?.toNic.spi, old?.toNic.spi);
    assert.deepEqual(p.outbound(), p.nic.active);
  });

  it('commit timeout: no SA_ACK, so the host discards the pending SA and sends INFORMATIONAL { D(ESP) } (§1.4.1); the station aborts the staged SA', () => {
    const p = new Pair({ responder: { commitTimeoutMs: 5000 } });
    p.establish();
    const sa = p.outbound();
    p.stationFx = [];
    p.refresh();
    p.toHost();
    p.toStation(); // derived
    /* <-- INFORMATIONAL { N(SA_READY) }   { } --> */
    p.toStation();
    assert.equal(p.toHost(), 'INFORMATIONAL response #1 { }');
    /* INFORMATIONAL { N(SA_ACK) } --> lost, and every retransmission too */
    for (let t = 0; t <= 5000; t += 50) {
      p.toHostQ.length = 0;
      p.advanceTo(t);
    }
    assert.ok(p.hostFx.some((e) => e.kind === 'nic-discard' && e.generation === 2));
    /* <-- INFORMATIONAL { D(ESP) } naming the discarded SA */
    const del = p.toStationQ.find((b) => p.describe(b).includes('D(ESP'));
    assert.ok(del, p.toStationQ.map((b) => p.describe(b)).join('\n'));
    p.toStationQ.length = 0;
    p.injectToStation(del);
    const aborted = p.stationFx.find((e) => e.kind === 'commit-aborted');
    assert.ok(aborted && aborted.kind === 'commit-aborted' && aborted.generation === 2 && /discarded the staged SA/.test(aborted.message));
    assert.equal(p.station.commitState, 'idle');
    assert.equal(p.outbound(), sa);
    assert.equal(p.nic.active?.generation, 1);
  });

  it('traffic selectors are narrowed to what was offered (§2.9), never widened to our own', () => {
    const req = (tsi: TrafficSelector[], tsr: TrafficSelector[]) => ({
      proposals: [{ num: 1, protocol: PROTO_ESP, spi: spi4(0x1234), transforms: [{ type: TRANSFORM.ENCR, id: 20, keyLength: 128 }, { type: TRANSFORM.ESN, id: 0 }] }],
      tsi,
      tsr,
      ni: new Uint8Array(32).fill(1),
      ke: null,
      transportMode: true,
    });
    const policy = { inAuth: true, accept: { transforms: ['aes-gcm-16' as const], allowEsn: true }, policy: 'esp' as const, skD: new Uint8Array(32), nr: new Uint8Array(32).fill(2), kePriv: null, ourSpi: 0x5678, generation: 1 };
    const stationTs = ts(0, 0, 65535, [127, 0, 0, 2], [127, 0, 0, 2]);
    const nicTs = ts(17, 600, 700, [127, 0, 0, 3], [127, 0, 0, 3]);
    const a = answerChild(req([stationTs], [nicTs]), policy);
    assert.ok('payloads' in a);
    const get = (t: number): TrafficSelector[] => decodeTs((a.payloads.find((x) => x.type === t) as RawPayload).body);
    assert.deepEqual(get(PAYLOAD.TSi), [ts(17, 0, 65535, [127, 0, 0, 2], [127, 0, 0, 2])], 'TSi: the station address offered, UDP');
    assert.deepEqual(get(PAYLOAD.TSr), [ts(17, 664, 664, [127, 0, 0, 3], [127, 0, 0, 3])], 'TSr: the NIC address offered, UDP/664 only');
    const refused = answerChild(req([stationTs], [ts(17, 665, 700, [127, 0, 0, 3], [127, 0, 0, 3])]), policy);
    assert.deepEqual(refused, { refuse: NOTIFY.TS_UNACCEPTABLE });
    const tcp = answerChild(req([stationTs], [ts(6, 0, 65535, [0, 0, 0, 0], [255, 255, 255, 255])]), policy);
    assert.deepEqual(tcp, { refuse: NOTIFY.TS_UNACCEPTABLE });
  });

  it('the host side rekeys the Child SA: the station accepts it (no NO_ADDITIONAL_SAS), installs it inbound, switches when the old SA is deleted', () => {
    const p = new Pair(standardHost);
    p.establish();
    const old = p.outbound();
    p.stationFx = [];
    p.hostFx = [];
    p.hostRekeyChild();
    /* <-- CREATE_CHILD_SA { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr } */
    assert.equal(p.toStation(), 'CREATE_CHILD_SA request #0 { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr }');
    assert.deepEqual(p.kinds(p.stationFx), ['child-sa'], 'inbound ready before the answer (§2.8), not yet used for sending');
    assert.equal(p.outbound(), old);
    /* CREATE_CHILD_SA { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr } --> */
    assert.equal(p.toHost(), 'CREATE_CHILD_SA response #0 { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr }');
    assert.deepEqual(p.kinds(p.hostFx), ['nic-write-pending', 'nic-commit']);
    /* <-- INFORMATIONAL { D(ESP) } of the old SA: the station switches (§2.8 (2)) */
    assert.equal(p.toStation(), 'INFORMATIONAL request #1 { D(ESP x1) }');
    assert.deepEqual(p.kinds(p.stationFx), ['child-sa', 'switch-outbound']);
    assert.equal(p.toHost(), 'INFORMATIONAL response #1 { D(ESP x1) }');
    const sa = p.outbound();
    assert.ok(sa && old);
    assert.notEqual(sa.toNic.spi, old.toNic.spi);
    assert.deepEqual(sa, { ...p.nic.active, generation: sa.generation }, 'same SPIs and keys (KEYMAT in the host-first order of §2.17)');
    assert.equal(p.station.canRefresh, true);
  });

  it('a Child SA rekey crossing an IKE SA rekey: each end answers the other TEMPORARY_FAILURE (§2.25), both go on', () => {
    const p = new Pair(standardHost);
    p.establish();
    const sa = p.outbound();
    p.rekeyIkeSa();
    p.hostRekeyChild();
    /* CREATE_CHILD_SA { SA, Ni, KEi } -->   <-- { N(TEMPORARY_FAILURE) } (the host's own rekey is out) */
    p.toHost();
    /* <-- CREATE_CHILD_SA { N(REKEY_SA), ... }   --> { N(TEMPORARY_FAILURE) } (the IKE SA is being rekeyed) */
    assert.match(p.toStation(), /^CREATE_CHILD_SA request #0 \{ N\(REKEY_SA\)/);
    assert.equal(p.describe(p.toHostQ[0]), 'CREATE_CHILD_SA response #0 { N(TEMPORARY_FAILURE) }');
    p.settle();
    const busy = p.stationFx.find((e) => e.kind === 'failed');
    assert.ok(busy && busy.kind === 'failed' && busy.scope === 'rekey' && busy.code === 'E_IKE_BUSY', JSON.stringify(busy));
    const hostBusy = p.hostFx.find((e) => e.kind === 'failed');
    assert.ok(hostBusy && hostBusy.kind === 'failed' && hostBusy.scope === 'child' && hostBusy.code === 'E_IKE_BUSY');
    assert.equal(p.outbound(), sa);
    p.rekeyIkeSa();
    p.settle();
    assert.equal(p.host.establishedSpis.length, 1);
    assert.equal(p.station.canRefresh, true);
  });

  for (const seed of ['child-collide-1', 'child-collide-2', 'child-collide-3', 'child-collide-4']) {
    it(`Child SA rekey collision (§2.8.1, seed ${seed}): both exchanges complete, the lowest nonce's SA is deleted by its maker, both keep the other`, () => {
      const p = new Pair({ ...standardHost, seed });
      p.establish();
      const old = p.outbound();
      p.refresh();
      p.hostRekeyChild();
      /* CREATE_CHILD_SA { N(REKEY_SA), ... } -->   <-- CREATE_CHILD_SA { N(REKEY_SA), ... }   (crossing) */
      assert.match(p.toHost(), /^CREATE_CHILD_SA request #2 \{ N\(REKEY_SA\)/);
      assert.match(p.toStation(), /^CREATE_CHILD_SA request #0 \{ N\(REKEY_SA\)/);
      const log = p.settle();
      const deletes = log.filter((l) => l.includes('request') && l.includes('D(ESP'));
      assert.equal(deletes.length, 2, `the loser deletes its new SA, the winner the old one:\n${log.join('\n')}`);
      const sa = p.outbound();
      assert.ok(sa && old);
      assert.notEqual(sa.toNic.spi, old.toNic.spi);
      assert.equal(sa.toNic.spi, p.nic.active?.toNic.spi, 'the station sends on the SA the NIC holds active');
      assert.equal(Buffer.compare(sa.toNic.encKey, (p.nic.active ?? sa).toNic.encKey), 0);
      assert.equal(p.station.canRefresh, true);
      // and the next refresh works on the survivor
      p.refresh();
      p.settle();
      assert.equal(p.outbound()?.toNic.spi, p.nic.active?.toNic.spi);
    });
  }

  it('abandon(): the station sends INFORMATIONAL { D(IKE) } once and closes; the host drops the IKE SA, the Child SA stays', () => {
    const p = new Pair();
    p.establish();
    const sa = p.outbound();
    p.stationFx = [];
    p.abandon();
    assert.deepEqual(p.kinds(p.stationFx), ['closed']);
    assert.equal(p.station.state, 'closed');
    assert.equal(p.station.pollTimeout(), null, 'never retransmitted');
    /* INFORMATIONAL { D(IKE) } --> */
    assert.equal(p.toHost(), 'INFORMATIONAL request #3 { D(IKE) }');
    assert.deepEqual(p.host.sessionStates, []);
    assert.equal(p.toStation(), 'INFORMATIONAL response #3 { }'); // dropped by the closed station
    assert.equal(p.station.drops.state, 1);
    assert.deepEqual(p.nic.active, sa);
  });

  it('abandon() in the middle of a commit aborts the staged SA; a give-up by §2.4 timeout also sends D(IKE) once', () => {
    const p = new Pair();
    p.establish();
    p.refresh();
    p.toHost();
    p.toStation();
    p.stationFx = [];
    p.abandon();
    assert.deepEqual(p.kinds(p.stationFx), ['commit-aborted', 'closed']);
    const q = new Pair();
    q.establish();
    q.ping();
    for (let t = 0; t < 10_000 && q.station.state === 'established'; t += 100) {
      q.toHostQ.length = 0;
      q.advanceTo(t);
    }
    const f = q.stationFx.find((e) => e.kind === 'failed');
    assert.ok(f && f.kind === 'failed' && f.code === 'E_IKE_TIMEOUT');
    assert.equal(q.describe(q.toHostQ[q.toHostQ.length - 1] ?? new Uint8Array()), 'INFORMATIONAL request #4 { D(IKE) }');
  });
});
