import assert from 'node:assert/strict';
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { concat, fromHex, hex } from '../../common/bytes.js';
import { defaultClusterPolicy, type ClusterPolicy, type HeartbeatMode } from '../../firmware/cluster-policy.js';
import {
  answerProbe,
  decodeHeartbeat,
  encodeAnswer,
  encodeProbe,
  heartbeatKeys,
  verifyAnswer,
  verifyProbe,
} from '../../wire/heartbeat-frame.js';
import { HeartbeatMonitor, type HeartbeatEffect } from '../../firmware/heartbeat-monitor.js';
import type { SaPair } from '../../wire/sa.js';

function saPair(toNicSpi: number, fromNicSpi: number, toKey: Uint8Array, fromKey: Uint8Array, ah = false): SaPair {
  const dir = (spi: number, encKey: Uint8Array, ahKey: Uint8Array) => ({ spi, encKey, ahSpi: ah ? spi + 1 : 0, ahKey });
  return {
    generation: 1,
    transform: 'aes-gcm-16',
    esn: false,
    policy: ah ? 'esp+ah' : 'esp',
    toNic: dir(toNicSpi, toKey, ah ? range(0x40, 32) : new Uint8Array(0)),
    fromNic: dir(fromNicSpi, fromKey, ah ? range(0x60, 32) : new Uint8Array(0)),
    origin: 'ike',
  };
}

function range(from: number, n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => from + i);
}

// AES-128-GCM key || salt in each direction (20 bytes), SPIs 0x1001 (to NIC) / 0x2002 (from NIC).
const SA = saPair(0x1001, 0x2002, range(0x00, 20), range(0x20, 20));
/** A refreshed SA: new SPIs and keys. */
const SA2 = saPair(0x1003, 0x2004, range(0x80, 20), range(0xa0, 20));
/** Same SPIs as SA, other keys: what a forger who guesses the SPIs has. */
const SA_FORGED = saPair(0x1001, 0x2002, range(0x10, 20), range(0x30, 20));
const NONCE = fromHex('0102030405060708');

// Computed with Python's hmac/hashlib from the formulas at the top of wire/heartbeat-frame.ts
// (an independent implementation of HKDF-SHA-256 and HMAC-SHA-256-128).
const PROBE_KEY = fromHex('b61ba0dc24be5043da894320d3274b5b643a7b9feca8636050d1a0b1f9992b5f');
const ANSWER_KEY = fromHex('83cc70fcc0fbf1e411a95b9a45cc1d0eae2c6a5f0d9f41098815fb5b8152a256');
const PROBE = fromHex('ffffffff000020020102030405060708f19e1ee3a425370f4b4372487e580d8e');
const ANSWER = fromHex('ffffffff00001001010203040506070865b41168663c761211ccb0b7746271db');
const PROBE_KEY_ESP_AH = fromHex('df65632eac8c56d84e06aacc02fbde9e5e3cdc81eca4b4fc37ca29f5c8a2c0b9');

const utf8 = new TextEncoder();

function flip(b: Uint8Array, i: number): Uint8Array {
  const c = b.slice();
  c[i] ^= 0x01;
  return c;
}

describe('heartbeat wire format (DESIGN §2.3)', () => {
  it('keys: HKDF-SHA-256 (RFC 5869) of the SA key material, one per direction (pinned vector)', () => {
    const k = heartbeatKeys(SA);
    assert.deepEqual(k.probe, PROBE_KEY);
    assert.deepEqual(k.answer, ANSWER_KEY);
    // Node's own HKDF agrees with @noble/hashes on the documented inputs.
    const ikm = concat(SA.toNic.encKey, SA.fromNic.encKey);
    const salt = fromHex('00002002' + '00001001');
    assert.deepEqual(new Uint8Array(hkdfSync('sha256', ikm, salt, 'lifeline heartbeat key nic->station', 32)), PROBE_KEY);
    assert.deepEqual(new Uint8Array(hkdfSync('sha256', ikm, salt, 'lifeline heartbeat key station->nic', 32)), ANSWER_KEY);
  });

  it('keys: the esp+ah policy mixes in both AH keys; another SA gives other keys', () => {
    const ah = saPair(0x1001, 0x2002, range(0x00, 20), range(0x20, 20), true);
    assert.deepEqual(heartbeatKeys(ah).probe, PROBE_KEY_ESP_AH);
    assert.notDeepEqual(heartbeatKeys(SA2).probe, PROBE_KEY);
    assert.notDeepEqual(heartbeatKeys(SA_FORGED).answer, ANSWER_KEY);
  });

  it('probe: 0xFFFFFFFF | fromNic SPI | nonce | HMAC-SHA-256-128(probe key, "lifeline heartbeat probe" || first 16 bytes)', () => {
    const p = encodeProbe(SA, NONCE);
    assert.deepEqual(p, PROBE);
    const tag = createHmac('sha256', PROBE_KEY).update(utf8.encode('lifeline heartbeat probe')).update(p.subarray(0, 16)).digest();
    assert.deepEqual(p.subarray(16), new Uint8Array(tag.subarray(0, 16)));
    assert.deepEqual(decodeHeartbeat(p), { spi: 0x2002, nonce: NONCE, tag: p.slice(16) });
  });

  it('answer: 0xFFFFFFFF | toNic SPI | the echoed nonce | tag under the answer key', () => {
    assert.deepEqual(encodeAnswer(SA, NONCE), ANSWER);
    assert.deepEqual(answerProbe(PROBE, SA), { ok: true, bytes: ANSWER });
  });

  it('verifyProbe / verifyAnswer accept the genuine datagrams and return the nonce', () => {
    assert.deepEqual(verifyProbe(PROBE, SA), { ok: true, spi: 0x2002, nonce: NONCE });
    assert.deepEqual(verifyAnswer(ANSWER, SA), { ok: true, spi: 0x1001, nonce: NONCE });
  });

  it('forged: any flipped bit of nonce or tag -> E_ICV; of the SPI -> E_SPI; of the marker -> E_SPI', () => {
    for (let i = 0; i < 32; i++) {
      const v = verifyAnswer(flip(ANSWER, i), SA);
      assert.equal(v.ok, false, `byte ${i}`);
      if (!v.ok) assert.equal(v.error.code, i < 8 ? 'E_SPI' : 'E_ICV', `byte ${i}`);
      if (!v.ok) assert.equal(v.error.name, 'ProtocolError');
    }
  });

  it('forged: right SPIs, wrong keys -> E_ICV', () => {
    const v = verifyAnswer(encodeAnswer(SA_FORGED, NONCE), SA);
    assert.ok(!v.ok && v.error.code === 'E_ICV');
    const w = verifyProbe(encodeProbe(SA_FORGED, NONCE), SA);
    assert.ok(!w.ok && w.error.code === 'E_ICV');
  });

  it('wrong SA: an answer under another SA -> E_SPI', () => {
    const v = verifyAnswer(encodeAnswer(SA2, NONCE), SA);
    assert.ok(!v.ok && v.error.code === 'E_SPI', JSON.stringify(v));
    assert.match(!v.ok ? v.error.message : '', /names SA 0x00001003, expected 0x00001001/);
  });

  it('a probe reflected back is not an answer (other SPI, and other key and label even with equal SPIs)', () => {
    assert.ok(!verifyAnswer(PROBE, SA).ok);
    const symmetric = saPair(0x5005, 0x5005, range(0, 20), range(0x20, 20));
    const v = verifyAnswer(encodeProbe(symmetric, NONCE), symmetric);
    assert.ok(!v.ok && v.error.code === 'E_ICV');
  });

  it('truncated or padded datagrams: E_SHORT / E_LENGTH, never a throw', () => {
    for (const [bytes, code] of [
      [new Uint8Array(0), 'E_SHORT'],
      [ANSWER.subarray(0, 4), 'E_SHORT'],
      [ANSWER.subarray(0, 31), 'E_SHORT'],
      [concat(ANSWER, new Uint8Array(1)), 'E_LENGTH'],
    ] as const) {
      const v = verifyAnswer(bytes, SA);
      assert.ok(!v.ok && v.error.code === code, `${bytes.length} bytes`);
    }
    assert.throws(() => decodeHeartbeat(ANSWER.subarray(0, 16)), { name: 'ProtocolError', code: 'E_SHORT' });
  });

  it('local misuse throws UsageError: short nonce, SA without keys or with the heartbeat SPI', () => {
    assert.throws(() => encodeProbe(SA, new Uint8Array(7)), { name: 'UsageError', code: 'E_USAGE' });
    assert.throws(() => heartbeatKeys({ ...SA, toNic: { ...SA.toNic, spi: 0xffffffff } }), { code: 'E_USAGE' });
    assert.throws(() => heartbeatKeys({ ...SA, fromNic: { ...SA.fromNic, encKey: new Uint8Array(0) } }), { code: 'E_USAGE' });
  });
});

// ------------------------------------------------------------------------------- monitor, virtual time

/** Deterministic randomness: SHA-256 of a counter. */
function testRandom(label = 'r'): (n: number) => Uint8Array {
  let i = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let o = 0; o < n; o += 32) out.set(createHash('sha256').update(`${label}/${i++}`).digest().subarray(0, Math.min(32, n - o)), o);
    return out;
  };
}

const A = '127.0.0.1:7001';
const B = '127.0.0.2:7001';
const C = '127.0.0.3:7001';

function hbPolicy(heartbeat: HeartbeatMode, over: Partial<ClusterPolicy> = {}): ClusterPolicy {
  return {
    ...defaultClusterPolicy(),
    heartbeat,
    heartbeatResponseTime: 2,
    heartbeatDeferTime: 10,
    clusters: [{ index: 1, stations: [A, B, C] }],
    ...over,
  };
}

interface Logged {
  at: number;
  effect: HeartbeatEffect;
}

/**
 * A NIC's monitor and its stations over an in-memory link in virtual time. Stations in `alive` answer
 * every probe after `latency` ms under the SA the probe came under; `tamper` may rewrite or drop answers.
 */
class Lab {
  now = 0;
  readonly log: Logged[] = [];
  readonly answers: { at: number; bytes: Uint8Array; sa: SaPair }[] = [];
  readonly verdicts: string[] = [];
  readonly alive = new Set<string>();
  readonly m: HeartbeatMonitor;
  latency = 20;
  stationSa: SaPair = SA;
  tamper: (answer: Uint8Array, to: string) => Uint8Array | null = (a) => a;
  /** Called for every probe, before the stations see it (an on-path observer). */
  onProbe: (at: number, probe: Uint8Array, to: string) => void = () => {};

  constructor(mode: HeartbeatMode, alive: string[], over: Partial<ClusterPolicy> = {}) {
    this.m = new HeartbeatMonitor({ policy: hbPolicy(mode, over), stations: [A, B, C], random: testRandom(), now: 0, sa: SA });
    for (const s of alive) this.alive.add(s);
  }

  /** Inject a datagram as if it arrived from the network at `at`. */
  inject(at: number, bytes: Uint8Array, sa: SaPair = SA): void {
    this.answers.push({ at, bytes, sa });
    this.answers.sort((x, y) => x.at - y.at);
  }

  run(until: number): void {
    for (;;) {
      const t = this.m.pollTimeout();
      const a = this.answers[0]?.at;
      const next = Math.min(t ?? Infinity, a ?? Infinity);
      if (next > until) break;
      this.now = Math.max(this.now, next);
      if (a !== undefined && a <= (t ?? Infinity)) {
        const ans = this.answers.shift()!;
        const v = this.m.handleAnswer(ans.bytes, this.now, ans.sa);
        this.verdicts.push(v.ok ? 'ok' : v.error.code);
        continue;
      }
      for (const effect of this.m.handleTimeout(this.now)) {
        this.log.push({ at: this.now, effect });
        if (effect.kind !== 'send-probe') continue;
        this.onProbe(this.now, effect.bytes, effect.to);
        if (!this.alive.has(effect.to)) continue;
        const r = answerProbe(effect.bytes, this.stationSa);
        assert.ok(r.ok, 'the station verifies the probe');
        const out = this.tamper(r.bytes, effect.to);
        if (out !== null) this.inject(this.now + this.latency, out, this.stationSa);
      }
    }
    this.now = until;
  }

  probes(to?: string): number[] {
    return this.log.filter((l) => l.effect.kind === 'send-probe' && (to === undefined || l.effect.to === to)).map((l) => l.at);
  }

  failovers(): { at: number; from: string; to: string }[] {
    return this.log.flatMap((l) => (l.effect.kind === 'failover' ? [{ at: l.at, from: l.effect.from, to: l.effect.to }] : []));
  }
}

const MIN = 60_000;

describe('HeartbeatMonitor (DESIGN §5 NIC-side failover), virtual time', () => {
  describe('NONE', () => {
    it('never probes and never fails over, even with a dead station and traffic', () => {
      const lab = new Lab('NONE', []);
      lab.m.noteTrafficToSend(0);
      assert.equal(lab.m.pollTimeout(), null);
      lab.run(10 * MIN);
      assert.deepEqual(lab.log, []);
      assert.equal(lab.m.current, A);
    });
  });

  describe('INSTANT', () => {
    it('an alive station is probed every HeartbeatResponseTime and never failed over (10 min)', () => {
      const lab = new Lab('INSTANT', [A]);
      const first = lab.m.pollTimeout()!;
      assert.ok(first >= 0 && first < 2000, `first probe after a jitter below R, got ${first}`);
      lab.run(10 * MIN);
      const p = lab.probes(A);
      assert.equal(p[0], first);
      assert.ok(p.length >= 299 && p.length <= 300, `${p.length} probes`);
      for (let i = 1; i < p.length; i++) assert.equal(p[i] - p[i - 1], 2000);
      assert.deepEqual(lab.failovers(), []);
      assert.equal(lab.m.counters.answersAccepted, p.length);
      assert.equal(lab.m.current, A);
    });

    it('a dead station: probe, second probe after R, exactly one failover after 2 x R, then the next station', () => {
      const lab = new Lab('INSTANT', [B]);
      lab.run(10 * MIN);
      const t0 = lab.probes(A)[0];
      assert.deepEqual(lab.probes(A), [t0, t0 + 2000]);
      assert.deepEqual(lab.failovers(), [{ at: t0 + 4000, from: A, to: B }]);
      assert.equal(lab.probes(B)[0], t0 + 4000, 'the new station is probed at once');
      assert.equal(lab.m.current, B);
      assert.equal(lab.m.counters.failovers, 1);
    });

    it('a lost first probe answered on the second try is not a failure; the period restarts from it', () => {
      const lab = new Lab('INSTANT', [A]);
      let n = 0;
      lab.tamper = (a) => (n++ === 0 ? null : a); // drop the first answer
      lab.run(20_000);
      const p = lab.probes(A);
      assert.deepEqual(p.slice(1, 4).map((t) => t - p[0]), [2000, 4000, 6000]);
      assert.deepEqual(lab.failovers(), []);
    });

    it('wraps around the station order when every station is dead: A -> B -> C -> A every 2 x R', () => {
      const lab = new Lab('INSTANT', []);
      lab.run(25_000);
      const f = lab.failovers();
      const t0 = lab.probes(A)[0];
      assert.deepEqual(f.slice(0, 4), [
        { at: t0 + 4000, from: A, to: B },
        { at: t0 + 8000, from: B, to: C },
        { at: t0 + 12000, from: C, to: A },
        { at: t0 + 16000, from: A, to: B },
      ]);
    });

    it('replayed answers (captured while the station was alive) do not prevent the failover', () => {
      const lab = new Lab('INSTANT', [A]);
      const captured: Uint8Array[] = [];
      lab.tamper = (a) => (captured.push(a), a);
      lab.run(MIN);
      assert.ok(captured.length >= 29);
      lab.alive.delete(A); // A dies (B is up); an attacker replays every answer it saw at every later probe
      lab.alive.add(B);
      lab.tamper = (x) => x;
      const diedAt = lab.now;
      lab.onProbe = (at) => {
        if (lab.m.current === A) for (const c of captured) lab.inject(at + 1, c);
      };
      lab.run(2 * MIN);
      const t0 = lab.probes(A).find((t) => t >= diedAt)!;
      assert.deepEqual(lab.failovers(), [{ at: t0 + 4000, from: A, to: B }]);
      assert.ok(lab.m.counters.dropped.replay >= 2 * captured.length, JSON.stringify(lab.m.counters));
    });

    it('an answer counts once: replaying it within the same cycle is E_REPLAY', () => {
      const lab = new Lab('INSTANT', [A]);
      lab.tamper = (a) => (lab.inject(lab.now + 25, a), a); // every answer also arrives a second time
      lab.run(10_000);
      const ok = lab.verdicts.filter((v) => v === 'ok').length;
      assert.equal(lab.verdicts.filter((v) => v === 'E_REPLAY').length, ok);
    });

    it('forged answers (right SPIs and nonce, wrong key) do not prevent the failover', () => {
      const lab = new Lab('INSTANT', []);
      // The forger sees each probe and echoes its nonce at once, but does not hold the SA.
      lab.onProbe = (at, probe, to) => to === A && lab.inject(at + 1, encodeAnswer(SA_FORGED, decodeHeartbeat(probe).nonce));
      lab.run(6000);
      const t0 = lab.probes(A)[0];
      assert.deepEqual(lab.failovers(), [{ at: t0 + 4000, from: A, to: B }]);
      assert.equal(lab.m.counters.dropped.icv, 2);
    });

    it('an answer under another SA than its probe does not count (E_SPI), even with the right nonce', () => {
      const lab = new Lab('INSTANT', []);
      lab.onProbe = (at, probe, to) => to === A && lab.inject(at + 1, encodeAnswer(SA2, decodeHeartbeat(probe).nonce), SA2);
      lab.run(6000);
      const t0 = lab.probes(A)[0];
      assert.deepEqual(lab.failovers(), [{ at: t0 + 4000, from: A, to: B }]);
      assert.equal(lab.m.counters.dropped.spi, 2);
      assert.deepEqual(lab.verdicts, ['E_SPI', 'E_SPI']);
    });

    it('a probe outstanding across an SA refresh is answered under its own SA', () => {
      const m = new HeartbeatMonitor({ policy: hbPolicy('INSTANT'), stations: [A, B], random: testRandom(), now: 0, sa: SA });
      const t0 = m.pollTimeout()!;
      const [probe] = m.handleTimeout(t0);
      assert.equal(probe.kind, 'send-probe');
      m.useSa(SA2, t0 + 100); // refresh committed meanwhile (DESIGN §2.5)
      const answer = answerProbe((probe as { bytes: Uint8Array }).bytes, SA);
      assert.ok(answer.ok);
      assert.deepEqual(m.handleAnswer(answer.bytes, t0 + 150, SA2).ok, false, 'passed the wrong SA: E_SPI');
      assert.equal(m.handleAnswer(answer.bytes, t0 + 150, SA).ok, true);
      // Later probes go out under SA2.
      const [next] = m.handleTimeout(m.pollTimeout()!);
      assert.ok(next.kind === 'send-probe' && verifyProbe(next.bytes, SA2).ok);
    });

    it('setOwner: a revived station that owns the NIC again is used again', () => {
      const lab = new Lab('INSTANT', [B]);
      lab.run(MIN);
      assert.equal(lab.m.current, B);
      lab.alive.add(A); // A comes back and takes the NIC over (DESIGN §5): it tells the NIC so
      assert.equal(lab.m.setOwner(A, lab.now), true);
      assert.equal(lab.m.current, A);
      const at = lab.now;
      lab.run(lab.now + 10 * MIN);
      assert.equal(lab.failovers().length, 1, 'no failover after the switch back');
      const later = lab.probes().filter((t) => t > at);
      assert.ok(later.length > 0 && lab.log.filter((l) => l.at > at).every((l) => l.effect.kind === 'send-probe' && l.effect.to === A));
      assert.equal(later[0], at + 2000, 'the takeover message was proof of life: next probe one period later');
    });

    it('setOwner ignores a station that is not in the policy', () => {
      const lab = new Lab('INSTANT', [A]);
      assert.equal(lab.m.setOwner('10.9.9.9:664', 0), false);
      assert.equal(lab.m.current, A);
      assert.equal(lab.m.counters.dropped['unlisted-station'], 1);
    });

    it('without an SA nothing is probed; useSa starts probing', () => {
      const m = new HeartbeatMonitor({ policy: hbPolicy('INSTANT'), stations: [A], random: testRandom(), now: 0 });
      assert.equal(m.pollTimeout(), null);
      assert.deepEqual(m.handleTimeout(100_000), []);
      m.useSa(SA, 100_000);
      const t = m.pollTimeout()!;
      assert.ok(t >= 100_000 && t < 102_000);
      m.useSa(null, t);
      assert.equal(m.pollTimeout(), null);
    });

    it('a late handleTimeout runs what is due at the time it is called', () => {
      const m = new HeartbeatMonitor({ policy: hbPolicy('INSTANT'), stations: [A, B], random: testRandom(), now: 0, sa: SA });
      const t0 = m.pollTimeout()!;
      m.handleTimeout(t0);
      // The shell woke late: the second probe goes out now, and gets its full R from now.
      const late = m.handleTimeout(t0 + 60_000);
      assert.deepEqual(late.map((e) => [e.kind, e.to]), [['send-probe', A]]);
      assert.equal(m.pollTimeout(), t0 + 62_000);
      // Woken late again: failover and the new station's first probe in one call.
      const effects = m.handleTimeout(t0 + 90_000);
      assert.deepEqual(effects.map((e) => [e.kind, e.to]), [['failover', B], ['send-probe', B]]);
      assert.equal(m.pollTimeout(), t0 + 92_000);
    });
  });

  describe('DEFERRED', () => {
    it('does nothing without traffic, even with every station dead', () => {
      const lab = new Lab('DEFERRED', []);
      assert.equal(lab.m.pollTimeout(), null);
      lab.run(10 * MIN);
      assert.deepEqual(lab.log, []);
      assert.equal(lab.m.current, A);
    });

    it('does not probe while the station was heard within HeartbeatDeferTime', () => {
      const lab = new Lab('DEFERRED', []);
      lab.m.noteReceived(0);
      lab.m.noteTrafficToSend(1000);
      assert.equal(lab.m.pollTimeout(), 10_000, 'probe only once 10 s passed without news');
      lab.m.noteReceived(5000); // the station answered our traffic
      assert.equal(lab.m.pollTimeout(), null);
      lab.run(MIN);
      assert.deepEqual(lab.log, []);
    });

    it('traffic to a dead station: probe, second probe, one failover after 2 x R, the next station probed at once', () => {
      const lab = new Lab('DEFERRED', [B]);
      lab.m.noteReceived(0);
      lab.run(30_000);
      lab.m.noteTrafficToSend(30_000);
      assert.equal(lab.m.pollTimeout(), 30_000);
      lab.run(10 * MIN);
      assert.deepEqual(lab.probes(A), [30_000, 32_000]);
      assert.deepEqual(lab.failovers(), [{ at: 34_000, from: A, to: B }]);
      assert.deepEqual(lab.probes(B), [34_000], 'answered; no traffic since, so no more probes');
      assert.equal(lab.m.current, B);
      assert.equal(lab.m.pollTimeout(), null);
    });

    it('an alive station with steady traffic is never failed over; each answer defers the next probe', () => {
      const lab = new Lab('DEFERRED', [A]);
      for (let t = 0; t < 10 * MIN; t += 3000) {
        lab.run(t);
        lab.m.noteTrafficToSend(t);
      }
      lab.run(10 * MIN);
      assert.deepEqual(lab.failovers(), []);
      // Nothing but answers comes back here, so a probe goes out each time DeferTime lapses.
      const p = lab.probes(A);
      assert.ok(p.length >= 55 && p.length <= 60, `${p.length} probes`);
      for (let i = 1; i < p.length; i++) assert.ok(p[i] - p[i - 1] >= 10_000);
    });

    it('a station that answers the traffic itself is never probed', () => {
      const lab = new Lab('DEFERRED', [A]);
      for (let t = 0; t < 10 * MIN; t += 3000) {
        lab.run(t);
        lab.m.noteTrafficToSend(t);
        lab.m.noteReceived(t); // e.g. the RMCP answer to the alert, authenticated under the SA
      }
      lab.run(10 * MIN);
      assert.deepEqual(lab.log, []);
    });

    it('replayed answers do not prevent the failover', () => {
      const lab = new Lab('DEFERRED', [A]);
      const captured: Uint8Array[] = [];
      lab.tamper = (a) => (captured.push(a), a);
      lab.m.noteTrafficToSend(0);
      lab.run(20_000);
      lab.m.noteTrafficToSend(20_000);
      lab.run(40_000);
      assert.equal(captured.length, 2);
      lab.alive.delete(A);
      lab.alive.add(B);
      lab.onProbe = (at, _probe, to) => to === A && captured.forEach((c) => lab.inject(at + 1, c));
      lab.m.noteTrafficToSend(40_000);
      lab.run(50_000);
      const t0 = lab.probes(A).find((t) => t >= 40_000)!;
      assert.deepEqual(lab.failovers(), [{ at: t0 + 4000, from: A, to: B }]);
    });
  });

  describe('misuse', () => {
    it('time never goes backwards; stations are distinct and non-empty; random must deliver', () => {
      const m = new HeartbeatMonitor({ policy: hbPolicy('INSTANT'), stations: [A], random: testRandom(), now: 1000, sa: SA });
      assert.throws(() => m.handleTimeout(999), { name: 'UsageError', code: 'E_USAGE' });
      assert.throws(() => m.noteReceived(Number.NaN), { code: 'E_USAGE' });
      const base = { policy: hbPolicy('INSTANT'), random: testRandom(), now: 0 };
      assert.throws(() => new HeartbeatMonitor({ ...base, stations: [] }), { code: 'E_USAGE' });
      assert.throws(() => new HeartbeatMonitor({ ...base, stations: [A, A] }), { code: 'E_USAGE' });
      assert.throws(() => new HeartbeatMonitor({ ...base, stations: [A], policy: { ...hbPolicy('INSTANT'), heartbeatResponseTime: 0 } }), { code: 'E_USAGE' });
      const broken = new HeartbeatMonitor({ ...base, stations: [A], random: () => new Uint8Array(1), now: 0 });
      assert.throws(() => broken.useSa(SA, 0), { code: 'E_USAGE' });
    });

    it('garbage from the network is dropped and counted, never thrown', () => {
      const m = new HeartbeatMonitor({ policy: hbPolicy('INSTANT'), stations: [A], random: testRandom(), now: 0, sa: SA });
      const t0 = m.pollTimeout()!;
      m.handleTimeout(t0);
      for (const junk of [new Uint8Array(0), new Uint8Array(40), ANSWER.subarray(0, 20), PROBE]) {
        assert.equal(m.handleAnswer(junk, t0 + 10, SA).ok, false, hex(junk));
      }
      assert.deepEqual(m.counters.dropped, { short: 2, length: 1, replay: 1 });
    });
  });
});
