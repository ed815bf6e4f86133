/**
 * IKE SA rekey (RFC 7296 §1.3.2, §2.18) in both directions, and the simultaneous rekey of §2.8.2:
 * the Child SA survives, Message IDs restart at 0, the old IKE SA is deleted by the rekey's
 * initiator, the commit still runs on the new IKE SA.
 */
import assert from 'node:assert/strict';
import { EXCHANGE } from '../../protocol/ike/constants.js';
import { makeIkeRekeyRequest } from '../../protocol/ike/ike-rekey.js';
import { sealSk } from '../../protocol/ike/sk-payload.js';
import { lowerNonce, weLostCollision } from '../../protocol/ike/ike-rekey.js';
import { UsageError } from '../../common/errors.js';
import { Pair } from './helpers/pair.js';
import { seededRandom } from './helpers/prng.js';

/** CREATE_CHILD_SA { SA(IKE), Ni, KEi } #4 sealed with the station's keys (the station's own guard would refuse to send it). */
function crafted(p: Pair): Uint8Array {
  const k = p.station.ikeKeys();
  assert.ok(k);
  const { payloads } = makeIkeRekeyRequest(seededRandom('crafted'), () => false);
  return sealSk({ spiI: k.spiI, spiR: k.spiR, exchange: EXCHANGE.CREATE_CHILD_SA, initiator: true, response: false, messageId: 4 }, payloads, k.skEi, new Uint8Array(8).fill(0xee));
}

describe('IKE SA rekey (RFC 7296 §1.3.2, §2.18, §2.8.2)', () => {
  it('station rekeys: CREATE_CHILD_SA { SA, Ni, KEi }, new SPIs, IDs restart at 0, D(IKE) on the old SA, the Child SA and the commit go on', () => {
    const p = new Pair();
    p.establish();
    const sa = p.outbound();
    const oldSpis = p.host.establishedSpis;
    p.stationFx = [];
    p.hostFx = [];
    p.rekeyIkeSa();
    /* CREATE_CHILD_SA { SA, Ni, KEi } --> (on the old IKE SA, no TSi/TSr, no REKEY_SA) */
    assert.equal(p.toHost(), 'CREATE_CHILD_SA request #3 { SA, Ni, KEi }');
    assert.deepEqual(p.kinds(p.hostFx), ['ike-rekeyed']);
    /* <-- CREATE_CHILD_SA { SA, Nr, KEr } */
    assert.equal(p.toStation(), 'CREATE_CHILD_SA response #3 { SA, Nr, KEr }');
    assert.deepEqual(p.kinds(p.stationFx), ['ike-rekeyed']);
    /* INFORMATIONAL { D(IKE) } --> on the old IKE SA: the last request it carries (§2.18) */
    assert.equal(p.toHost(), 'INFORMATIONAL request #4 { D(IKE) }');
    assert.equal(p.toStation(), 'INFORMATIONAL response #4 { }');
    assert.equal(p.host.establishedSpis.length, 1);
    assert.notDeepEqual(p.host.establishedSpis, oldSpis);
    const k = p.station.ikeKeys();
    assert.ok(k);
    assert.equal(p.host.establishedSpis[0], Buffer.from(k.spiR).toString('hex'), 'the host knows the new IKE SA by its new SPIr');
    assert.equal(p.station.state, 'established');
    assert.equal(p.outbound(), sa, 'the Child SA survives');
    assert.equal(p.station.pollTimeout(), null);
    // The new IKE SA starts at Message ID 0 and carries the next refresh and its commit.
    p.refresh();
    assert.equal(p.toHost(), 'CREATE_CHILD_SA request #0 { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr }');
    assert.equal(p.toStation(), 'CREATE_CHILD_SA response #0 { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr }');
    assert.equal(p.toStation(), 'INFORMATIONAL request #0 { N(SA_READY) }', "the host's own IDs restart too");
    p.settle();
    assert.equal(p.outbound()?.generation, 2);
    assert.deepEqual(p.outbound(), p.nic.active);
  });

  it('host rekeys: the station answers, the new IKE SA has the host as original initiator (I flag), the host deletes the old one', () => {
    const p = new Pair();
    p.establish();
    const sa = p.outbound();
    p.stationFx = [];
    p.hostRekeyIkeSa();
    /* <-- CREATE_CHILD_SA { SA, Ni, KEi } (the host's Message ID 1: SA_READY was its #0) */
    assert.equal(p.toStation(), 'CREATE_CHILD_SA request #1 { SA, Ni, KEi }');
    assert.deepEqual(p.kinds(p.stationFx), ['ike-rekeyed']);
    /* CREATE_CHILD_SA { SA, Nr, KEr } --> */
    assert.equal(p.toHost(), 'CREATE_CHILD_SA response #1 { SA, Nr, KEr }');
    /* <-- INFORMATIONAL { D(IKE) } on the old SA */
    assert.equal(p.toStation(), 'INFORMATIONAL request #2 { D(IKE) }');
    assert.equal(p.toHost(), 'INFORMATIONAL response #2 { }');
    assert.equal(p.host.establishedSpis.length, 1);
    const ike = p.host.ikeSa(p.host.establishedSpis[0]);
    assert.equal(ike?.weAreOriginalInitiator, true);
    assert.equal(p.station.snapshot().includes('"others":0'), true, 'the station forgot the old IKE SA');
    p.ping();
    /* INFORMATIONAL { } --> from the new SA's original responder: no I flag, Message ID 0 */
    const ping = p.toHostQ[0];
    assert.equal(ping[19] & 0x08, 0);
    assert.equal(p.toHost(), 'INFORMATIONAL request #0 { }');
    assert.equal(p.toStation(), 'INFORMATIONAL response #0 { }');
    assert.equal(p.outbound(), sa);
    p.refresh();
    p.settle();
    assert.equal(p.outbound()?.generation, 2);
    assert.deepEqual(p.outbound(), p.nic.active);
  });

  for (const seed of ['collide-a', 'collide-b', 'collide-c', 'collide-d']) {
    it(`simultaneous rekey (§2.8.2, seed ${seed}): both exchanges complete, the lowest nonce's IKE SA is closed by its maker, one IKE SA remains`, () => {
      const p = new Pair({ seed });
      p.establish();
      const sa = p.outbound();
      p.rekeyIkeSa();
      p.hostRekeyIkeSa();
      /* CREATE_CHILD_SA { SA, Ni, KEi } -->   <-- CREATE_CHILD_SA { SA, Ni, KEi }   (crossing) */
      assert.equal(p.toHost(), 'CREATE_CHILD_SA request #3 { SA, Ni, KEi }');
      assert.equal(p.toStation(), 'CREATE_CHILD_SA request #1 { SA, Ni, KEi }');
      // each answered the other; now the answers cross
      assert.equal(p.toHost(), 'CREATE_CHILD_SA response #1 { SA, Nr, KEr }');
      assert.equal(p.toStation(), 'CREATE_CHILD_SA response #3 { SA, Nr, KEr }');
      const log = p.settle();
      // two D(IKE): the winner's on the old SA, the loser's on its redundant new SA
      assert.equal(log.filter((l) => l.includes('request') && l.includes('D(IKE)')).length, 2, log.join('\n'));
      assert.equal(p.host.establishedSpis.length, 1, p.host.sessionStates.join());
      const k = p.station.ikeKeys();
      assert.ok(k);
      const survivor = p.host.ikeSa(p.host.establishedSpis[0]);
      assert.equal(Buffer.from(survivor?.spiI ?? []).toString('hex'), Buffer.from(k.spiI).toString('hex'), 'both kept the same IKE SA');
      assert.equal(p.station.snapshot().includes('"others":0'), true);
      assert.equal(p.outbound(), sa);
      p.refresh();
      p.settle();
      assert.equal(p.outbound()?.generation, 2, 'the commit runs on the survivor');
      assert.deepEqual(p.outbound(), p.nic.active);
    });
  }

  it('a rekey request arriving after our own rekey finished gets TEMPORARY_FAILURE (§2.25.2); both keep the first rekey', () => {
    const p = new Pair();
    p.establish();
    const sa = p.outbound();
    p.rekeyIkeSa();
    p.hostRekeyIkeSa();
    /* CREATE_CHILD_SA { SA, Ni, KEi } --> the host answers (its own rekey is out: a collision for it) */
    p.toHost();
    p.toStationQ.reverse(); // the answer overtakes the host's request
    /* <-- CREATE_CHILD_SA { SA, Nr, KEr }: the station is done and deletes the old IKE SA */
    assert.equal(p.toStation(), 'CREATE_CHILD_SA response #3 { SA, Nr, KEr }');
    p.stationFx = [];
    /* <-- CREATE_CHILD_SA { SA, Ni, KEi } on the old SA   --> { N(TEMPORARY_FAILURE) } */
    assert.equal(p.toStation(), 'CREATE_CHILD_SA request #1 { SA, Ni, KEi }');
    assert.equal(p.toHostQ.length, 2);
    assert.equal(p.describe(p.toHostQ[1]), 'CREATE_CHILD_SA response #1 { N(TEMPORARY_FAILURE) }');
    p.settle();
    assert.equal(p.host.establishedSpis.length, 1);
    const k = p.station.ikeKeys();
    assert.ok(k);
    assert.equal(p.host.establishedSpis[0], Buffer.from(k.spiR).toString('hex'));
    assert.equal(p.hostFx.some((e) => e.kind === 'failed'), false, 'the host adopts the station\'s rekey, no failure');
    assert.equal(p.outbound(), sa);
    p.refresh();
    p.settle();
    assert.equal(p.outbound()?.generation, 2);
  });

  it('§2.8.1 "lowest" is octet by octet; a nonce that ends first is the lower', () => {
    assert.equal(lowerNonce(new Uint8Array([1, 2]), new Uint8Array([1, 3])), true);
    assert.equal(lowerNonce(new Uint8Array([1, 2, 0]), new Uint8Array([1, 2])), false);
    assert.equal(lowerNonce(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), true);
    const n = (b: number) => new Uint8Array([b, 0xff]);
    assert.equal(weLostCollision({ ni: n(5), nr: n(1) }, { ni: n(2), nr: n(3) }), true);
    assert.equal(weLostCollision({ ni: n(5), nr: n(4) }, { ni: n(2), nr: n(3) }), false);
  });

  it('an IKE SA with a commit under way refuses an IKE rekey with TEMPORARY_FAILURE (strongSwan does the same) and the commit goes on', () => {
    const p = new Pair();
    p.establish();
    p.refresh();
    p.toHost();
    p.toStation(); // derived; SA_READY queued for the station
    // The host may not start one itself either.
    assert.throws(() => p.host.rekeyIkeSa(p.now), /exchange or commit under way/);
    // A station rekey request now (crafted past rekeyIkeSa()'s own guard) is refused by the host.
    assert.throws(() => p.station.rekeyIkeSa(p.now), (e: unknown) => e instanceof UsageError && e.code === 'E_IKE_STATE');
    const fx = p.host.receive(crafted(p), p.now, { address: p.stationAddress });
    const sent = fx.find((e) => e.kind === 'send') as { bytes: Uint8Array };
    assert.equal(p.describe(sent.bytes), 'CREATE_CHILD_SA response #4 { N(TEMPORARY_FAILURE) }');
    assert.equal(p.host.commitState, 'pending', 'the pending SA stays');
  });
});
