/**
 * IKE_SA_INIT floods (RFC 7296 §2.6, RFC 8019): stateless versioned cookies under load, the
 * per-source half-open limit, no DH for a request without a good cookie, and a simulated flood
 * of spoofed IKE_SA_INIT at 3,000/s in virtual time against legitimate stations.
 */
import assert from 'node:assert/strict';
import { hex } from '../../common/bytes.js';
import { CookieJar, COOKIE_LENGTH } from '../../protocol/ike/cookie.js';
import { DH_CURVE25519, EXCHANGE, PAYLOAD } from '../../protocol/ike/constants.js';
import type { IkeEffect } from '../../protocol/ike/effects.js';
import { IkeInitiator } from '../../protocol/ike/ike-initiator.js';
import { decodeMessage, encodeMessage } from '../../protocol/ike/ike-message.js';
import { decodeNotify, encodeKe, encodeNonce, encodeNotify } from '../../protocol/ike/ike-payloads.js';
import { IkeResponder, type ResponderOptions } from '../../protocol/ike/ike-responder.js';
import { x25519PublicKey } from '../../protocol/ike/ike-crypto.js';
import { NOTIFY } from '../../protocol/ike/notify.js';
import { ikeOffer } from '../../protocol/ike/proposals.js';
import { encodeSa } from '../../protocol/ike/sa-payload.js';
import { Pair, PSK } from './helpers/pair.js';
import { seededRandom } from './helpers/prng.js';

/** A well-formed IKE_SA_INIT request from a spoofed initiator (valid KE, so only the cookie stops a DH). */
function spoofedInit(r: (n: number) => Uint8Array, cookie?: Uint8Array): Uint8Array {
  const payloads = [encodeSa(ikeOffer()), encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(r(32))), encodeNonce(r(32))];
  if (cookie) payloads.unshift(encodeNotify(NOTIFY.COOKIE, cookie));
  return encodeMessage({ spiI: r(8), spiR: new Uint8Array(8), exchange: EXCHANGE.IKE_SA_INIT, initiator: true, response: false, messageId: 0 }, payloads);
}

function answerNotifies(fx: IkeEffect[]): { type: number; data: Uint8Array }[] {
  const sent = fx.filter((e): e is { kind: 'send'; bytes: Uint8Array } => e.kind === 'send');
  assert.equal(sent.length, 1);
  return decodeMessage(sent[0].bytes).payloads.filter((p) => p.type === PAYLOAD.NOTIFY).map((p) => {
    const n = decodeNotify(p.body);
    return { type: n.notifyType, data: n.data };
  });
}

/**
 * The flood: spoofed IKE_SA_INIT at `rate`/s from random addresses (whose answers go nowhere), and
 * `stations` legitimate stations one after another, each connecting and running IKE_AUTH and the
 * commit over a link with `delayMs` each way. Returns how many stations got an SA in `budgetMs`.
 */
function flood(o: { rate: number; stations: number; delayMs: number; budgetMs: number; responder?: Partial<ResponderOptions> }): { ok: number; host: IkeResponder; spoofed: number } {
  const host = new IkeResponder({ random: seededRandom('flood/host'), psk: PSK, id: 'nic-1.lab', nextGeneration: 1, ...o.responder });
  const attacker = seededRandom('flood/attacker');
  const interval = 1000 / o.rate;
  let now = 0;
  let nextSpoof = 0;
  let spoofed = 0;
  let ok = 0;
  /** In-flight legitimate datagrams: [deliverAt, to, bytes]. */
  let wire: [number, 'host' | 'station', Uint8Array][] = [];
  for (let i = 0; i < o.stations; i++) {
    const station = new IkeInitiator({ random: seededRandom(`flood/station/${i}`), psk: PSK, id: 'station.lab', peerId: 'nic-1.lab' });
    const address = `127.0.0.${10 + i}`;
    let done = false;
    const out = (fx: IkeEffect[], to: 'host' | 'station'): void => {
      for (const e of fx) {
        if (e.kind === 'send') wire.push([now + o.delayMs, to, e.bytes]);
        if (e.kind === 'switch-outbound') done = true;
      }
    };
    out(station.connect(now), 'host');
    const deadline = now + o.budgetMs;
    while (!done && now < deadline && station.state !== 'failed') {
      const timers = [station.pollTimeout(), host.pollTimeout(), ...wire.map((w) => w[0]), nextSpoof].filter((x): x is number => x !== null);
      now = Math.max(now, Math.min(...timers));
      if (now >= nextSpoof) {
        // RFC 8019 §2: the attacker forges the source address; nothing it is sent reaches it.
        host.receive(spoofedInit(attacker), now, { address: `198.51.100.${attacker(1)[0]}` });
        spoofed++;
        nextSpoof += interval;
      }
      const due = wire.filter((w) => w[0] <= now);
      wire = wire.filter((w) => w[0] > now);
      for (const [, to, bytes] of due) {
        if (to === 'host') out(host.receive(bytes, now, { address }), 'station');
        else out(station.receive(bytes, now), 'host');
      }
      out(station.handleTimeout(now), 'host');
      out(host.handleTimeout(now), 'station');
    }
    if (done) ok++;
    wire = [];
  }
  return { ok, host, spoofed };
}

describe('IKE_SA_INIT flood defence (RFC 7296 §2.6, RFC 8019)', () => {
  it('3,000 spoofed IKE_SA_INIT/s: at least 19 of 20 legitimate exchanges complete with cookies; drops counted by reason', function () {
    this.timeout(60_000);
    const r = flood({ rate: 3000, stations: 20, delayMs: 5, budgetMs: 2000 });
    assert.ok(r.spoofed > 1000, `the flood sent ${r.spoofed} requests`);
    assert.ok(r.ok >= 19, `only ${r.ok} of 20 legitimate exchanges completed`);
    const drops = r.host.drops;
    assert.ok((drops['cookie-required'] ?? 0) > r.spoofed * 0.99, `cookie-required drops ${drops['cookie-required']} of ${r.spoofed}`);
    const stats = r.host.stats();
    // DH only for what came back with a cookie (the stations) and the few spoofed requests before the threshold.
    assert.ok(stats.dhComputations <= 20 * 2 + 4, `DH computations: ${stats.dhComputations}`);
    assert.equal(stats.cookiesSent, (drops['cookie-required'] ?? 0) + (drops['cookie-invalid'] ?? 0));
  });

  it('teeth: the same flood without cookies (threshold off) starves the legitimate stations, as issue 15 found', function () {
    this.timeout(60_000);
    const r = flood({ rate: 3000, stations: 3, delayMs: 5, budgetMs: 1000, responder: { flood: { cookieThreshold: Infinity, maxHalfOpen: 8 } } });
    assert.equal(r.ok, 0, `${r.ok} of 3 completed without cookies`);
    assert.ok(r.host.stats().dhComputations > 1000, 'a DH computation per spoofed request');
  });

  it('/* IKE_SA_INIT { SA, KEi, Ni } --> <-- { N(COOKIE) } */ past the threshold, then the station repeats it with N(COOKIE) first', () => {
    const p = new Pair({ responder: { flood: { cookieThreshold: 0 } } });
    p.connect();
    /* IKE_SA_INIT { SA, KEi, Ni } --> */
    assert.equal(p.toHost(), 'IKE_SA_INIT request #0 { SA, KEi, Ni }');
    assert.deepEqual(p.host.sessionStates, [], 'no state for a request without a cookie');
    assert.equal(p.host.stats().dhComputations, 0);
    /* <-- IKE_SA_INIT { N(COOKIE) } */
    assert.equal(p.toStation(), 'IKE_SA_INIT response #0 { N(COOKIE) }');
    /* IKE_SA_INIT { N(COOKIE), SA, KEi, Ni } --> */
    assert.equal(p.toHost(), 'IKE_SA_INIT request #0 { N(COOKIE), SA, KEi, Ni }');
    assert.equal(p.host.stats().dhComputations, 1);
    p.settle();
    assert.equal(p.outbound()?.generation, 1);
    assert.deepEqual(p.host.drops, { 'cookie-required': 1 });
  });

  it('a bad or foreign cookie is ignored (§2.6): a new COOKIE answers it, no DH, no state; counted as cookie-invalid', () => {
    const host = new IkeResponder({ random: seededRandom('bad-cookie'), psk: PSK, id: 'nic-1.lab', nextGeneration: 1, flood: { cookieThreshold: 0 } });
    const r = seededRandom('bad-cookie/peer');
    const from = { address: '127.0.0.9' };
    const first = answerNotifies(host.receive(spoofedInit(r), 0, from));
    assert.equal(first[0].type, NOTIFY.COOKIE);
    assert.equal(first[0].data.length, COOKIE_LENGTH);
    const forged = new Uint8Array(first[0].data);
    forged[10] ^= 1;
    for (const cookie of [forged, new Uint8Array(8), first[0].data /* for another SPIi and Ni */]) {
      const again = answerNotifies(host.receive(spoofedInit(r, cookie), 1, from));
      assert.equal(again[0].type, NOTIFY.COOKIE);
    }
    assert.equal(host.stats().dhComputations, 0, 'no DH computed for a request that fails the cookie');
    assert.deepEqual(host.sessionStates, []);
    assert.deepEqual(host.drops, { 'cookie-required': 1, 'cookie-invalid': 3 });
  });

  it('the cookie secret rotates with `now` and is versioned: the previous secret is honoured for one more lifetime', () => {
    const jar = new CookieJar(seededRandom('jar'), 1000);
    const ni = new Uint8Array(32).fill(1);
    const spiI = new Uint8Array(8).fill(2);
    const c0 = jar.make(ni, '127.0.0.2', spiI, 0);
    assert.equal(hex(c0.subarray(0, 4)), '00000001', 'version 1 leads the cookie');
    assert.equal(jar.verify(c0, ni, '127.0.0.2', spiI, 999), true);
    assert.equal(jar.verify(c0, ni, '127.0.0.3', spiI, 999), false, 'IPi is in the hash');
    const c1 = jar.make(ni, '127.0.0.2', spiI, 1500); // rotates: secret 2
    assert.equal(hex(c1.subarray(0, 4)), '00000002');
    assert.notEqual(hex(c1), hex(c0));
    assert.equal(jar.verify(c0, ni, '127.0.0.2', spiI, 1600), true, 'previous secret still accepted');
    assert.equal(jar.verify(c1, ni, '127.0.0.2', spiI, 1600), true);
    jar.make(ni, '127.0.0.2', spiI, 2600); // secret 3: secret 1 is gone
    assert.equal(jar.verify(c0, ni, '127.0.0.2', spiI, 2600), false);
    assert.equal(jar.verify(c1, ni, '127.0.0.2', spiI, 2600), true);
    assert.equal(jar.rotations, 3);
    // Through the responder: a cookie from before a rotation still gets the station in.
    const p = new Pair({ responder: { flood: { cookieThreshold: 0, cookieSecretLifetimeMs: 100 } } });
    p.connect();
    p.toHost();
    p.toStation(); // COOKIE under secret 1
    p.now = 150; // secret 2 is current now
    p.toHost();
    assert.equal(p.host.stats().dhComputations, 1);
    assert.equal(p.host.stats(150).cookieSecrets, 2);
  });

  it('per-source limit (RFC 8019 §5): the fifth half-open IKE SA from one address is dropped before any DH; other addresses go on', () => {
    const host = new IkeResponder({ random: seededRandom('per-source'), psk: PSK, id: 'nic-1.lab', nextGeneration: 1, flood: { cookieThreshold: Infinity, maxHalfOpenPerSource: 4 } });
    const r = seededRandom('per-source/peer');
    for (let i = 0; i < 4; i++) assert.equal(answerNotifies(host.receive(spoofedInit(r), i, { address: '127.0.0.5' })).length, 0, 'a full answer (no notify)');
    assert.deepEqual(host.receive(spoofedInit(r), 5, { address: '127.0.0.5' }).filter((e) => e.kind === 'send'), []);
    assert.equal(host.stats().dhComputations, 4);
    assert.equal(host.drops['per-source-limit'], 1);
    assert.equal(answerNotifies(host.receive(spoofedInit(r), 6, { address: '127.0.0.6' })).length, 0);
    assert.equal(host.stats().halfOpen, 5);
    // Half-open SAs expire (RFC 8019 §4.1) and the address may start again.
    host.handleTimeout(6 + 10_000);
    assert.equal(host.stats().halfOpen, 0);
    assert.equal(host.stats().halfOpenExpired, 5);
    assert.equal(answerNotifies(host.receive(spoofedInit(r), 20_000, { address: '127.0.0.5' })).length, 0);
  });

  it('a full half-open table evicts an entry that never returned a cookie before one that did', () => {
    const host = new IkeResponder({ random: seededRandom('evict'), psk: PSK, id: 'nic-1.lab', nextGeneration: 1, flood: { cookieThreshold: Infinity, maxHalfOpen: 2, maxHalfOpenPerSource: 10 } });
    const r = seededRandom('evict/peer');
    host.receive(spoofedInit(r), 0, { address: '127.0.0.7' });
    host.receive(spoofedInit(r), 1, { address: '127.0.0.7' });
    host.receive(spoofedInit(r), 2, { address: '127.0.0.7' });
    assert.equal(host.stats().halfOpen, 2);
    assert.equal(host.stats().halfOpenEvicted, 1);
  });

  it('an IKE SA whose IKE_AUTH failed is forgotten after the half-open lifetime too', () => {
    const p = new Pair({ responder: { psk: new TextEncoder().encode('another key') } });
    p.establish();
    assert.deepEqual(p.host.sessionStates, ['failed']);
    assert.equal(p.host.pollTimeout(), 10_000);
    p.advanceTo(10_000);
    assert.deepEqual(p.host.sessionStates, []);
    assert.equal(p.host.pollTimeout(), null);
  });

  it('§2.11: answers go to their request\'s source, our own requests to the peer the IKE SA was made with; a datagram from elsewhere redirects nothing', () => {
    const host = new IkeResponder({ random: seededRandom('address/host'), psk: PSK, id: 'nic-1.lab', nextGeneration: 1 });
    const station = new IkeInitiator({ random: seededRandom('address/station'), psk: PSK, id: 'station.lab', peerId: 'nic-1.lab' });
    const real = { address: '127.0.0.10', port: 40001 };
    const elsewhere = { address: '198.51.100.7', port: 500 };
    const sends = (fx: IkeEffect[]) => fx.filter((e): e is Extract<IkeEffect, { kind: 'send' }> => e.kind === 'send');
    /* IKE_SA_INIT --> <-- */
    const init = sends(station.connect(0));
    const initAnswer = sends(host.receive(init[0].bytes, 0, real));
    assert.deepEqual(initAnswer.map((e) => e.to), [real]);
    /* IKE_AUTH --> <-- { ... }, then INFORMATIONAL { N(SA_READY) } --> the station */
    const auth = sends(station.receive(initAnswer[0].bytes, 1));
    const authFx = sends(host.receive(auth[0].bytes, 2, real));
    assert.equal(authFx.length, 2, 'the IKE_AUTH answer and SA_READY');
    assert.deepEqual(authFx.map((e) => e.to), [real, real]);
    /* the same IKE_AUTH replayed from another address: the cached answer goes there (it answers that datagram) */
    const replayed = sends(host.receive(auth[0].bytes, 3, elsewhere));
    assert.deepEqual(replayed.map((e) => e.to), [elsewhere]);
    /* SA_READY is retransmitted to the station, not to the replayer */
    const at = host.pollTimeout() as number;
    const again = sends(host.handleTimeout(at));
    assert.equal(again.length, 1);
    assert.deepEqual(again[0].to, real);
    /* the initiator has one peer and names none */
    assert.equal(init[0].to, undefined);
  });
});
