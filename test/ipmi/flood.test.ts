/**
 * Open Session and RAKP 1 floods from spoofed sources must not lock a console out (issue 18; session-table.ts).
 * Everything runs in virtual time on one IpmiLan: a console written from the spec sets up 20 sessions, one
 * after the other with a 1 ms round trip, while a spoofer sends Open Session Requests from random addresses
 * and RAKP 1 messages with guessed session IDs, interleaved with every step of every set-up.
 *
 * Why it holds: a spoofer never sees the Open Session Response, so it cannot name a BMC session ID in RAKP 1;
 * its Open Sessions only fill the 'opened' pool (64, oldest evicted first), and a console's entry survives as
 * long as fewer than 64 newer ones arrive before its RAKP 1. Once RAKP 1 is answered the session is in the
 * 'challenged' pool, which the blind flood cannot reach.
 */
import assert from 'node:assert/strict';
import { Rig, CONSOLE } from '../support/ipmi-rig.js';
import { IpmiTestConsole, plainFrame } from '../support/ipmi-test-console.js';
import type { IpmiEndpoint } from '../../firmware/ipmi/ipmi-types.js';

interface Flood { opens: number; rakp1s: number }

class Spoofer {
  sent = 0;
  constructor(private readonly rig: Rig, private readonly fixedAddress: string | null = null) {}

  private source(): IpmiEndpoint {
    const r = this.rig.rnd;
    return {
      address: this.fixedAddress ?? `10.${r.int(256)}.${r.int(256)}.${1 + r.int(254)}`,
      port: 1024 + r.int(64000),
    };
  }

  /** `n.opens` spoofed Open Session Requests and `n.rakp1s` RAKP 1 with guessed session IDs; answers go nowhere. */
  burst(n: Flood): void {
    for (let i = 0; i < n.opens; i++) {
      const c = new IpmiTestConsole({ suite: 17, user: 'admin', password: 'x', random: (k) => this.rig.rnd.bytes(k) });
      this.rig.deliver(this.source(), c.openSession());
      this.sent++;
    }
    for (let i = 0; i < n.rakp1s; i++) {
      const r = this.rig.rnd.bytes(32);
      // tag, reserved, a guessed SID_C, R_M, role 14h, ULEN 5, "admin"
      const p = Uint8Array.from([0, 0, 0, 0, ...r.subarray(0, 4), ...r.subarray(4, 20), 0x14, 0, 0, 5, 0x61, 0x64, 0x6d, 0x69, 0x6e]);
      this.rig.deliver(this.source(), plainFrame(0x12, p));
      this.sent++;
    }
  }
}

/** One set-up with `flood` between every two steps; true if RAKP 4 verified and a command then worked. */
function legitimateSetUp(rig: Rig, spoofer: Spoofer, flood: Flood, from: IpmiEndpoint): boolean {
  const c = rig.console({ suite: rig.rnd.int(2) ? 3 : 17 });
  const step = (d: Uint8Array) => {
    spoofer.burst(flood);
    rig.now += 1; // half the round trip out
    const answer = rig.one(from, d);
    rig.now += 1; // and back
    return answer;
  };
  const os = step(c.openSession());
  if (!os || c.onOpenSession(os).status !== 0) return false;
  const r2 = step(c.rakp1());
  if (!r2 || !c.onRakp2(r2).hmacOk) return false;
  const r4 = step(c.rakp3());
  if (!r4 || !c.onRakp4(r4).icvOk) return false;
  const answer = step(c.request(0x00, 0x01));
  if (!answer || c.onResponse(answer).cc !== 0) return false;
  return step(c.request(0x06, 0x3c, [c.sidC & 0xff, (c.sidC >>> 8) & 0xff, (c.sidC >>> 16) & 0xff, c.sidC >>> 24])) !== null;
}

describe('IPMI set-up floods (issue 18: spoofed Open Session / RAKP 1 must not stop a legitimate console)', function () {
  this.timeout(20000);

  it('20 set-ups interleaved with a spoofed flood keeping the half-open pool full: at least 19 succeed (all do)', () => {
    const rig = new Rig({ seed: 18 });
    const spoofer = new Spoofer(rig);
    spoofer.burst({ opens: 500, rakp1s: 500 }); // the pool is full before the first console arrives
    let ok = 0;
    for (let i = 0; i < 20; i++) {
      if (legitimateSetUp(rig, spoofer, { opens: 40, rakp1s: 40 }, { address: CONSOLE.address, port: 40000 + i })) ok++;
      spoofer.burst({ opens: 200, rakp1s: 200 });
    }
    const k = rig.lan.counters;
    assert.ok(ok >= 19, `${ok} of 20 set-ups succeeded`);
    assert.equal(ok, 20);
    assert.ok(spoofer.sent > 15_000, `flood of ${spoofer.sent} datagrams`);
    assert.ok(k.sessions.halfOpenEvicted > 7000, `${k.sessions.halfOpenEvicted} evictions: the opened pool was full throughout`);
    assert.ok(k.dropped['unknown-session'] >= 7000, 'every guessed RAKP 1 was dropped unanswered');
    assert.equal(k.sessions.activated, 20);
    assert.ok((rig.lan.status().halfOpen as number) <= 64 + 16, 'the half-open pools stay bounded');
    assert.ok(rig.logs.filter((l) => /evicted/.test(l.msg)).length < 10, 'the flood moves counters, not the log');
  });

  it('the bound is what the design says: 64 spoofed Open Sessions between a console\'s Open Session and its RAKP 1 evict it', () => {
    const rig = new Rig({ seed: 7 });
    const spoofer = new Spoofer(rig);
    const c = rig.console();
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    spoofer.burst({ opens: 63, rakp1s: 0 });
    assert.equal(c.onRakp2(rig.one(CONSOLE, c.rakp1())!).hmacOk, true, '63 newer half-open sessions: still there');
    const d = rig.console();
    d.onOpenSession(rig.one(CONSOLE, d.openSession())!);
    spoofer.burst({ opens: 64, rakp1s: 0 });
    assert.equal(rig.one(CONSOLE, d.rakp1()), null, '64 newer ones: evicted, RAKP 1 dropped');
    rig.establish(rig.console()); // and the console's retry goes through
  });

  it('one flooding host (many ports, one address) holds at most 8 half-open sessions and evicts only its own', () => {
    const rig = new Rig({ seed: 3 });
    const spoofer = new Spoofer(rig, '127.0.77.66');
    const c = rig.console();
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    spoofer.burst({ opens: 1000, rakp1s: 0 });
    assert.equal(rig.lan.status().halfOpen, 1 + 8);
    assert.equal(rig.lan.counters.sessions.halfOpenEvicted, 1000 - 8);
    assert.equal(c.onRakp2(rig.one(CONSOLE, c.rakp1())!).hmacOk, true);
  });

  it('active sessions are never evicted by a flood', () => {
    const rig = new Rig({ seed: 5 });
    const spoofer = new Spoofer(rig);
    const consoles = [0, 1, 2].map((i) => {
      const c = rig.console();
      rig.establish(c, { address: CONSOLE.address, port: 43000 + i });
      return c;
    });
    spoofer.burst({ opens: 2000, rakp1s: 2000 });
    consoles.forEach((c, i) => assert.equal(rig.cmd(c, 0x06, 0x01, [], { address: CONSOLE.address, port: 43000 + i }).cc, 0));
  });
});
