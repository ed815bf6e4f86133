/**
 * Fuzz (seeded, reproducible): 100,000 mutated and random datagrams into an established host
 * agent and station. receive() must never throw, never report an internal error, and never
 * change the IKE SA, Child SA or commit state (RFC 7296 §2.21: bad input is dropped; only a
 * verified request may earn an answer). Retransmitted requests may be answered from the cache.
 */
import assert from 'node:assert/strict';
import type { IkeEffect } from '../../protocol/ike/effects.js';
import { IkeInitiator } from '../../protocol/ike/ike-initiator.js';
import { IkeResponder } from '../../protocol/ike/ike-responder.js';
import { Pair, PSK } from './helpers/pair.js';
import { seededRandom } from './helpers/prng.js';
import { prng } from '../support/prng.js';

type Rng = ReturnType<typeof prng>;

function mutate(r: Rng, corpus: Uint8Array[]): Uint8Array {
  const base = corpus[r.int(corpus.length)];
  const m = new Uint8Array(base);
  switch (r.int(10)) {
    case 0:
      return r.bytes(r.int(300));
    case 1: {
      for (let i = 0, n = 1 + r.int(3); i < n; i++) m[r.int(m.length)] ^= 1 << r.int(8);
      return m;
    }
    case 2:
      m[r.int(m.length)] = r.int(256);
      return m;
    case 3:
      return m.subarray(0, r.int(m.length));
    case 4:
      return new Uint8Array([...m, ...r.bytes(1 + r.int(40))]);
    case 5: {
      // header fields: next payload 16, version 17, exchange 18, flags 19, message ID 20-23, length 24-27
      const o = [16, 17, 18, 19, 20, 23, 24, 27][r.int(8)];
      m[o] = r.int(2) ? r.int(256) : (m[o] + (r.int(2) ? 1 : 255)) & 0xff;
      return m;
    }
    case 6: {
      const other = corpus[r.int(corpus.length)];
      const cut = r.int(Math.min(m.length, other.length));
      return new Uint8Array([...m.subarray(0, cut), ...other.subarray(cut)]);
    }
    case 7:
      return m; // exact replay
    case 8: {
      // a payload length field (first generic header, or a random offset) set to a random value
      const o = m.length > 31 && r.int(2) ? 30 : r.int(Math.max(1, m.length - 1));
      m[o] = r.int(256);
      m[o + 1] = r.int(256);
      return m;
    }
    default: {
      const at = r.int(m.length + 1);
      return new Uint8Array([...m.subarray(0, at), ...r.bytes(1 + r.int(8)), ...m.subarray(at)]);
    }
  }
}

/** Host state without half-open IKE SAs (a valid fresh IKE_SA_INIT legitimately creates one). */
function hostState(h: IkeResponder): string {
  return h.snapshot(false);
}

const FORBIDDEN = new Set(['established', 'child-sa', 'switch-outbound', 'nic-write-pending', 'nic-commit', 'nic-discard', 'commit-aborted', 'closed']);

describe('IKE fuzz (100,000 seeded mutations)', () => {
  it('established host agent and station: no throw, no state change', function () {
    this.timeout(30_000);
    const p = new Pair({ seed: 'fuzz' });
    p.establish();
    p.refresh();
    p.settle();
    p.ping();
    p.settle();
    const corpus = p.wire.map(([, b]) => b);
    const hostBefore = hostState(p.host);
    const stationBefore = p.station.snapshot();
    const r = prng(0x1ce5eed);
    let answered = 0;
    const t0 = Date.now();
    for (let i = 0; i < 100_000; i++) {
      const m = mutate(r, corpus);
      const toHost = (i & 1) === 0;
      let fx: IkeEffect[] = [];
      assert.doesNotThrow(() => {
        fx = toHost ? p.host.receive(m, 1000) : p.station.receive(m, 1000);
      });
      for (const e of fx) {
        if (FORBIDDEN.has(e.kind)) assert.fail(`input ${i} caused '${e.kind}'`);
        if (e.kind === 'send') answered++;
      }
      if (toHost) assert.equal(hostState(p.host), hostBefore, `input ${i} changed the host state`);
      else assert.equal(p.station.snapshot(), stationBefore, `input ${i} changed the station state`);
    }
    const ms = Date.now() - t0;
    assert.equal(p.host.drops.internal, undefined);
    assert.equal(p.station.drops.internal, undefined);
    console.log(`      fuzz: 100000 inputs in ${ms} ms, ${answered} answered from caches or as fresh IKE_SA_INIT, host drops ${JSON.stringify(p.host.drops)}`);
    // still fully working afterwards
    p.refresh();
    p.settle();
    assert.equal(p.outbound()?.generation, 3);
  });

  it('a station in init-sent / auth-sent and a fresh host agent never throw on random input', () => {
    const r = prng(77);
    const p = new Pair({ seed: 'fuzz2' });
    p.connect();
    const init = p.toHostQ[0];
    p.toHost();
    const corpus = [init, ...p.toStationQ];
    let station = new IkeInitiator({ random: seededRandom('s'), psk: PSK, id: 'station.lab' });
    let host = new IkeResponder({ random: seededRandom('h'), psk: PSK, id: 'nic.lab', nextGeneration: 1 });
    for (let i = 0; i < 10_000; i++) {
      if (i % 200 === 0) {
        // fresh machines now and then: a mutated but valid IKE_SA_INIT answer moves the station on
        assert.equal(station.drops.internal, undefined);
        assert.equal(host.drops.internal, undefined);
        station = new IkeInitiator({ random: seededRandom('s' + i), psk: PSK, id: 'station.lab' });
        station.connect(0);
        host = new IkeResponder({ random: seededRandom('h' + i), psk: PSK, id: 'nic.lab', nextGeneration: 1 });
      }
      assert.doesNotThrow(() => station.receive(mutate(r, corpus), 0));
      assert.doesNotThrow(() => host.receive(mutate(r, corpus), 0));
    }
    assert.equal(station.drops.internal, undefined);
    assert.equal(host.drops.internal, undefined);
  });
});
