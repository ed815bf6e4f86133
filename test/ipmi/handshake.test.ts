/**
 * RMCP+ session set-up against the pure responder, one message at a time (IPMI v2.0 §13.17-13.24; cat. §3,
 * §4), with a console written from the spec (test/support/ipmi-test-console.ts), and every refusal: cipher
 * suite 0 and other suites, null / unknown / disabled users, roles, a wrong password, IPMI 1.5.
 */
import assert from 'node:assert/strict';
import { hex } from '../../common/bytes.js';
import { Rig, CONSOLE } from '../support/ipmi-rig.js';
import { ipmi15Frame, ipmiRequest, plainFrame, readFrame, readResponse } from '../support/ipmi-test-console.js';

const OTHER = { address: '127.0.77.11', port: 40002 };

describe('RMCP+ session set-up (IPMI v2.0 §13.17-13.24)', () => {
  for (const suite of [3, 17] as const) {
    it(`suite ${suite}: Open Session --> <-- Response, RAKP 1 --> <-- RAKP 2, RAKP 3 --> <-- RAKP 4, then commands`, () => {
      const rig = new Rig();
      const c = rig.console({ suite });
      /* Open Session Request { tag, priv 0, SID_M, auth/integrity/confidentiality } --> */
      const osr = rig.one(CONSOLE, c.openSession(0x21))!;
      const f = readFrame(osr)!;
      assert.deepEqual([f.payloadType, f.sessionId, f.sequence, f.authenticated, f.encrypted], [0x11, 0, 0, false, false]);
      assert.equal(f.payload.length, 36);
      const os = c.onOpenSession(osr);
      assert.equal(f.payload[0], 0x21, 'tag echoed');
      assert.equal(os.status, 0);
      assert.equal(os.maxPrivilege, 4, 'privilege 0 ("highest") is answered as a real level (FreeIPMI, cat. §3.2)');
      assert.notEqual(os.sidC, 0);
      /* RAKP 1 { SID_C, R_M, ROLE_M 14h, "admin" } --> */
      const r2bytes = rig.one(CONSOLE, c.rakp1())!;
      const r2 = c.onRakp2(r2bytes);
      assert.deepEqual([r2.status, r2.hmacOk], [0, true]);
      assert.equal(r2.payload.length, 40 + (suite === 3 ? 20 : 32), 'RAKP 2 carries the full, untruncated HMAC');
      assert.equal(hex(c.guid), hex(Uint8Array.from({ length: 16 }, (_, i) => i + 1)));
      /* RAKP 3 { SID_C, HMAC_Kuid(R_C | SID_M | ROLE_M | ULEN | UNAME) } --> */
      const r4 = c.onRakp4(rig.one(CONSOLE, c.rakp3())!);
      assert.deepEqual(r4, { status: 0, icvOk: true });
      assert.equal(rig.lan.counters.sessions.activated, 1);
      /* in session: Set Session Privilege Level (ADMINISTRATOR), Get Device ID; the BMC's sequence starts at 1 */
      const a = rig.cmd(c, 0x06, 0x3b, [0x04]);
      assert.deepEqual([a.cc, [...a.data], a.sequence], [0, [4], 1]);
      const b = rig.cmd(c, 0x06, 0x01);
      assert.deepEqual([b.cc, b.data.length, b.sequence], [0, 11, 2]);
    });
  }

  it('Get Channel Authentication Capabilities outside a session: 01 80 04 02 00 00 00 00 in IPMI 1.5 framing (cat. §2.1)', () => {
    const rig = new Rig();
    const d = rig.one(CONSOLE, rig.console().gcac())!;
    assert.equal(hex(d.subarray(0, 14)), '0600ff07' + '00' + '00000000' + '00000000' + '10');
    const r = readResponse(d.subarray(14))!;
    assert.deepEqual([r.netFn, r.cmd, r.cc, hex(r.data)], [0x07, 0x38, 0, '0180040200000000']);
  });

  it('pre-session Get Channel Cipher Suites in RMCP+ framing lists suites 3 and 17 only (cat. §2.2)', () => {
    const rig = new Rig();
    const d = rig.one(CONSOLE, plainFrame(0x00, ipmiRequest(0x06, 0x54, [0x0e, 0x00, 0x80])))!;
    const f = readFrame(d)!;
    assert.deepEqual([f.payloadType, f.sessionId, f.sequence, d.length], [0, 0, 0, 16 + f.payload.length]);
    const r = readResponse(f.payload)!;
    assert.equal(hex(r.data), '01' + 'c003014181' + 'c011034481');
  });

  it('a retransmitted RAKP 3 (its RAKP 4 was lost) gets the same RAKP 4 again, until the session is used', () => {
    const rig = new Rig();
    const c = rig.console();
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    c.onRakp2(rig.one(CONSOLE, c.rakp1())!);
    const rakp3 = c.rakp3();
    const first = rig.one(CONSOLE, rakp3)!;
    const again = rig.one(CONSOLE, rakp3)!;
    assert.equal(hex(again), hex(first));
    assert.equal(rig.lan.counters.sessions.activated, 1);
    rig.cmd(c, 0x06, 0x01);
    assert.equal(rig.one(CONSOLE, rakp3), null);
  });
});

describe('RMCP+ refusals (secure defaults; cat. §9)', () => {
  it('cipher suite 0 (RAKP-none, CVE-2013-4782 and kin): status 11h, no session, counted as cipher-0', () => {
    const rig = new Rig();
    const c = rig.console({ algorithms: [0, 0, 0] });
    const d = rig.one(CONSOLE, c.openSession())!;
    assert.equal(readFrame(d)!.payload.length, 8, 'an error response is tag, status, reserved, SID_M');
    assert.equal(c.onOpenSession(d).status, 0x11);
    assert.equal(rig.lan.counters.refused['cipher-0'], 1);
    assert.equal(rig.lan.pollTimeout(), null, 'no half-open session was made');
    assert.ok(rig.logs.some((l) => l.level === 'warn' && /cipher suite 0/.test(l.msg)));
  });

  it('suites 1 and 2 (no confidentiality / no integrity) and MD5 suites: status 11h, counted as cipher-suite', () => {
    const rig = new Rig();
    for (const algs of [[1, 0, 0], [1, 1, 0], [2, 2, 1], [3, 4, 0]] as [number, number, number][]) {
      const c = rig.console({ algorithms: algs });
      assert.equal(c.onOpenSession(rig.one(CONSOLE, c.openSession())!).status, 0x11);
    }
    assert.equal(rig.lan.counters.refused['cipher-suite'], 4);
  });

  const rakp2Status = (user: string, role?: number) => {
    const rig = new Rig();
    const c = rig.console({ user, role });
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    const d = rig.one(CONSOLE, c.rakp1())!;
    return { rig, r2: c.onRakp2(d) };
  };

  it('a null user name (anonymous login): RAKP 2 status 0Dh with no HMAC, counted as null-user', () => {
    const { rig, r2 } = rakp2Status('');
    assert.equal(r2.status, 0x0d);
    assert.equal(r2.payload.length, 8, 'no R_C, no GUID, no HMAC to attack offline');
    assert.equal(rig.lan.counters.refused['null-user'], 1);
  });

  it('an unknown user and a disabled user get the same answer (0Dh, no HMAC), counted apart', () => {
    const a = rakp2Status('nobody');
    const b = rakp2Status('gone');
    assert.equal(hex(a.r2.payload.subarray(1, 2)), '0d');
    assert.equal(hex(b.r2.payload.subarray(1, 2)), '0d');
    assert.equal(a.r2.payload.length, b.r2.payload.length);
    assert.equal(a.rig.lan.counters.refused['unknown-user'], 1);
    assert.equal(b.rig.lan.counters.refused['disabled-user'], 1);
  });

  it('roles: callback or none 0Ah, above administrator 09h, username+privilege lookup above the user\'s limit 0Dh', () => {
    assert.equal(rakp2Status('oper', 0x11).r2.status, 0x0a);
    assert.equal(rakp2Status('oper', 0x10).r2.status, 0x0a);
    assert.equal(rakp2Status('oper', 0x15).r2.status, 0x09);
    const { rig, r2 } = rakp2Status('oper', 0x04);
    assert.equal(r2.status, 0x0d);
    assert.equal(rig.lan.counters.refused.role, 1);
    assert.equal(rakp2Status('oper', 0x03).r2.status, 0, 'username+privilege lookup at the user\'s own level');
    assert.equal(rakp2Status('oper', 0x14).r2.status, 0, 'name-only lookup above the limit is capped, not refused');
  });

  it('a wrong password: RAKP 2 (status 00h) does not verify for the console; a RAKP 3 sent anyway gets RAKP 4 status 0Fh', () => {
    const rig = new Rig();
    const c = rig.console({ password: 'not-the-password' });
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    const r2 = c.onRakp2(rig.one(CONSOLE, c.rakp1())!);
    assert.deepEqual([r2.status, r2.hmacOk], [0, false], 'the BMC cannot know yet; the console sees the mismatch');
    const r4 = c.onRakp4(rig.one(CONSOLE, c.rakp3())!);
    assert.equal(r4.status, 0x0f);
    assert.equal(rig.lan.counters.refused['wrong-password'], 1);
    assert.equal(rig.lan.counters.sessions.activated, 0);
    assert.equal(rig.one(CONSOLE, c.request(0x06, 0x01)), null, 'no session to talk to');
  });

  it('a console that gives up on RAKP 2 (RAKP 3 with an error status) ends its half-open session', () => {
    const rig = new Rig();
    const c = rig.console();
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    c.onRakp2(rig.one(CONSOLE, c.rakp1())!);
    assert.equal(rig.one(CONSOLE, c.rakp3(0, 0x0f)), null);
    assert.equal(rig.lan.counters.dropped['rakp3-error'], 1);
    assert.equal(rig.one(CONSOLE, c.rakp3()), null, 'the exchange is gone');
    assert.equal(rig.lan.pollTimeout(), null);
  });

  it('IPMI 1.5: Activate Session (AuthType MD5 with an AuthCode) is dropped, Get Session Challenge answered C1h, a 1.5 GCAC counted', () => {
    const rig = new Rig();
    const activate = ipmi15Frame(ipmiRequest(0x06, 0x3a, [0x02, 0x04, ...new Array(16).fill(0x55), 1, 0, 0, 0]), 0x02, 0x12345678, 0);
    assert.equal(rig.one(CONSOLE, activate), null);
    const challenge = rig.one(CONSOLE, ipmi15Frame(ipmiRequest(0x06, 0x39, [0x02, ...new Array(16).fill(0x61)], 0)))!;
    assert.equal(readResponse(challenge.subarray(14))!.cc, 0xc1);
    const gcac15 = rig.one(CONSOLE, ipmi15Frame(ipmiRequest(0x06, 0x38, [0x0e, 0x04], 0)))!;
    assert.equal(hex(readResponse(gcac15.subarray(14))!.data.subarray(0, 2)), '0180', 'no IPMI 1.5 authentication type offered');
    assert.equal(rig.lan.counters.refused['ipmi-1.5'], 3);
  });

  it('outside a session only the two pre-session commands are answered; the rest is dropped and counted', () => {
    const rig = new Rig();
    assert.equal(rig.one(CONSOLE, ipmi15Frame(ipmiRequest(0x00, 0x02, [0x00], 0))), null, 'no chassis control without a session');
    assert.equal(rig.one(CONSOLE, plainFrame(0x00, ipmiRequest(0x06, 0x01, []))), null);
    assert.equal(rig.lan.counters.dropped['sessionless-command'], 2);
    assert.equal(rig.hostCommands.length, 0);
  });

  it('set-up messages for no session, from another source, out of order or with a session ID in the header are dropped', () => {
    const rig = new Rig();
    const c = rig.console();
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    assert.equal(rig.one(OTHER, c.rakp1()), null);
    assert.equal(rig.lan.counters.dropped['wrong-source'], 1);
    assert.equal(rig.one(CONSOLE, c.rakp3()), null, 'RAKP 3 before RAKP 1');
    const stranger = rig.console();
    stranger.sidC = 0xdeadbeef;
    assert.equal(rig.one(CONSOLE, stranger.rakp1()), null);
    assert.equal(rig.lan.counters.dropped['unknown-session'], 2);
    const withSid = c.openSession();
    withSid[6] = 1;
    assert.equal(rig.one(CONSOLE, withSid), null);
    assert.equal(rig.lan.counters.dropped.malformed, 1);
    // the real exchange is still there
    assert.deepEqual(c.onRakp2(rig.one(CONSOLE, c.rakp1())!).hmacOk, true);
  });
});
