/**
 * Active RMCP+ sessions against the pure responder: the in-session receive order (window -> AuthCode ->
 * decrypt -> mark; IPMI v2.0 §6.12.13, §13.28), replays and forgeries dropped and counted, the idle timeout,
 * the 4-session limit, session privilege (§22.18) and Close Session (§22.19).
 */
import assert from 'node:assert/strict';
import { Rig, CONSOLE } from '../support/ipmi-rig.js';
import { ipmiRequest } from '../support/ipmi-test-console.js';

const OTHER = { address: '127.0.77.11', port: 40002 };

function session(rig: Rig, o: Parameters<Rig['console']>[0] = {}, from = CONSOLE) {
  const c = rig.console(o);
  rig.establish(c, from);
  return c;
}

describe('IPMI in-session packets (IPMI v2.0 §6.12.13, §13.28)', () => {
  it('a replayed packet is dropped and counted, and not executed twice', () => {
    const rig = new Rig();
    const c = session(rig);
    rig.cmd(c, 0x06, 0x3b, [0x04]);
    const off = c.request(0x00, 0x02, [0x00]);
    assert.ok(rig.one(CONSOLE, off));
    assert.equal(rig.host.state, 'off');
    rig.host = { state: 'up' };
    assert.equal(rig.one(CONSOLE, off), null);
    assert.equal(rig.lan.counters.dropped.replay, 1);
    assert.equal(rig.host.state, 'up');
    assert.equal(rig.hostCommands.length, 1);
  });

  it('sequence numbers out of the window (17 behind, 16 ahead, 0) are dropped; late ones inside it are served once', () => {
    const rig = new Rig();
    const c = session(rig);
    c.seq = 100;
    for (let i = 0; i < 20; i++) rig.cmd(c, 0x06, 0x01); // 100..119
    assert.equal(rig.one(CONSOLE, c.request(0x06, 0x01, [], { seq: 102 })), null);
    assert.equal(rig.one(CONSOLE, c.request(0x06, 0x01, [], { seq: 119 + 16 })), null);
    assert.equal(rig.one(CONSOLE, c.request(0x06, 0x01, [], { seq: 0 })), null);
    assert.equal(rig.lan.counters.dropped['out-of-window'], 3);
    assert.ok(rig.one(CONSOLE, c.request(0x06, 0x01, [], { seq: 119 + 15 })));
    // 119 was received: now 19 behind, out of the window; 130 (4 behind) never was
    assert.ok(rig.one(CONSOLE, c.request(0x06, 0x01, [], { seq: 130 })));
    assert.equal(rig.one(CONSOLE, c.request(0x06, 0x01, [], { seq: 130 })), null);
    assert.equal(rig.lan.counters.dropped.replay, 1);
  });

  it('a forged or corrupted packet fails its AuthCode, is dropped, and cannot move the window', () => {
    const rig = new Rig();
    const c = session(rig);
    // the IV, the ciphertext, the integrity pad, the AuthCode
    for (const at of [16, 40, -18, -1]) {
      const bad = c.request(0x06, 0x01, [], { seq: 50, tamper: (d) => (d[at < 0 ? d.length + at : at] ^= 0x80) });
      assert.equal(rig.one(CONSOLE, bad), null, `byte ${at}`);
    }
    assert.equal(rig.lan.counters.dropped.integrity, 4);
    // a forged seq 50 did not become the window's highest: 3 is still acceptable (it would be 47 behind)
    assert.ok(rig.one(CONSOLE, c.request(0x06, 0x01, [], { seq: 3 })));
  });

  it('unauthenticated or unencrypted packets in a session, and packets from another source, are dropped', () => {
    const rig = new Rig();
    const c = session(rig);
    const clear = c.request(0x06, 0x01);
    clear[5] &= ~0x80; // claims to be unencrypted
    assert.equal(rig.one(CONSOLE, clear), null);
    const noAuth = c.request(0x06, 0x01);
    noAuth[5] &= ~0x40;
    assert.equal(rig.one(CONSOLE, noAuth), null);
    assert.equal(rig.lan.counters.dropped.unauthenticated, 2);
    assert.equal(rig.one(OTHER, c.request(0x06, 0x01)), null);
    assert.equal(rig.lan.counters.dropped['wrong-source'], 1);
    assert.ok(rig.logs.some((l) => /wrong-source/.test(l.msg)));
  });

  it('a bad IPMI checksum inside an authentic packet is dropped as checksum; an unknown command is C1h', () => {
    const rig = new Rig();
    const c = session(rig);
    const msg = ipmiRequest(0x06, 0x01, [], 5);
    msg[msg.length - 1] ^= 1;
    assert.equal(rig.one(CONSOLE, c.seal(msg)), null);
    assert.equal(rig.lan.counters.dropped.checksum, 1);
    // HPM.2 capabilities, PICMG and VITA probes that ipmitool sends first (cat. §7.4) all get C1h
    for (const [netFn, cmd, data] of [[0x2c, 0x3e, [0x00, 0x02]], [0x2c, 0x00, [0x00]], [0x2c, 0x00, [0x03]], [0x0a, 0x10, []]] as const) {
      assert.equal(rig.cmd(c, netFn, cmd, [...data]).cc, 0xc1);
    }
  });
});

describe('IPMI session lifetime and limits', () => {
  it('an idle session closes after 60 s: pollTimeout says when, handleTimeout does it, and it is counted and logged', () => {
    const rig = new Rig();
    const c = session(rig);
    rig.advance(30_000);
    rig.cmd(c, 0x06, 0x01);
    assert.equal(rig.lan.pollTimeout(), rig.now + 60_000);
    rig.advance(59_999);
    assert.equal(rig.lan.counters.sessions.idleClosed, 0);
    rig.advance(1);
    assert.equal(rig.lan.counters.sessions.idleClosed, 1);
    assert.ok(rig.logs.some((l) => l.msg === 'IPMI session closed' && l.fields.by === 'idle timeout'));
    assert.equal(rig.lan.pollTimeout(), null);
    assert.equal(rig.one(CONSOLE, c.request(0x06, 0x01)), null);
    assert.equal(rig.lan.counters.dropped['unknown-session'], 1);
  });

  it('a half-open session (no RAKP 3, as after a wrong password) expires after 10 s', () => {
    const rig = new Rig();
    const c = rig.console({ password: 'wrong' });
    c.onOpenSession(rig.one(CONSOLE, c.openSession())!);
    c.onRakp2(rig.one(CONSOLE, c.rakp1())!);
    assert.equal(rig.lan.pollTimeout(), rig.now + 10_000);
    rig.advance(10_000);
    assert.equal(rig.lan.counters.sessions.halfOpenExpired, 1);
    assert.equal(rig.lan.pollTimeout(), null);
  });

  it('at most 4 active sessions: a fifth Open Session gets 01h, and so does a fifth RAKP 3; closing one frees a slot', () => {
    const rig = new Rig();
    const consoles = [0, 1, 2, 3].map((i) => session(rig, {}, { address: '127.0.77.20', port: 41000 + i }));
    const fifth = rig.console();
    assert.equal(fifth.onOpenSession(rig.one(CONSOLE, fifth.openSession())!).status, 0x01);
    assert.equal(rig.lan.counters.refused['session-limit'], 1);
    // close one, start two set-ups, finish both: the second RAKP 3 finds the table full again
    const p0 = { address: '127.0.77.20', port: 41000 };
    assert.equal(rig.cmd(consoles[0], 0x06, 0x3c, [...le32(consoles[0].sidC)], p0).cc, 0);
    const a = rig.console();
    const b = rig.console();
    const pb = { address: '127.0.77.21', port: 42000 };
    a.onOpenSession(rig.one(CONSOLE, a.openSession())!);
    b.onOpenSession(rig.one(pb, b.openSession())!);
    a.onRakp2(rig.one(CONSOLE, a.rakp1())!);
    b.onRakp2(rig.one(pb, b.rakp1())!);
    assert.deepEqual(a.onRakp4(rig.one(CONSOLE, a.rakp3())!), { status: 0, icvOk: true });
    assert.equal(b.onRakp4(rig.one(pb, b.rakp3())!).status, 0x01);
    assert.equal(rig.lan.counters.refused['session-limit'], 2);
    assert.equal((rig.lan.status().sessions as unknown[]).length, 4);
  });
});

describe('IPMI session privilege (IPMI v2.0 §22.18) and Close Session (§22.19)', () => {
  it('a session starts at USER: Chassis Control is D4h until Set Session Privilege Level raises it', () => {
    const rig = new Rig();
    const c = session(rig, { user: 'oper', password: 'op-pw', role: 0x13 });
    assert.equal(rig.cmd(c, 0x00, 0x02, [0x00]).cc, 0xd4);
    assert.equal(rig.lan.counters.refused.privilege, 1);
    assert.equal(rig.cmd(c, 0x06, 0x3b, [0x00]).data[0], 2, 'level 0 reads the current level');
    assert.equal(rig.cmd(c, 0x06, 0x3b, [0x03]).cc, 0);
    assert.equal(rig.cmd(c, 0x00, 0x02, [0x00]).cc, 0);
    assert.equal(rig.host.state, 'off');
  });

  it('a level above the user\'s limit or the RAKP 1 role is 81h (ipmitool\'s default ADMINISTRATOR for an operator)', () => {
    const rig = new Rig();
    const oper = session(rig, { user: 'oper', password: 'op-pw' }); // name-only lookup asking ADMINISTRATOR
    assert.equal(rig.cmd(oper, 0x06, 0x3b, [0x04]).cc, 0x81);
    const capped = session(rig, { role: 0x12 }, OTHER); // admin asking only USER in RAKP 1
    assert.equal(rig.cmd(capped, 0x06, 0x3b, [0x03], OTHER).cc, 0x81);
    assert.equal(rig.cmd(capped, 0x06, 0x3b, [0x01], OTHER).cc, 0xcc, 'callback is not a session level');
  });

  it('Close Session answers under the session keys, then the session is gone', () => {
    const rig = new Rig();
    const c = session(rig);
    const r = rig.cmd(c, 0x06, 0x3c, [...le32(c.sidC)]);
    assert.equal(r.cc, 0);
    assert.equal(rig.lan.counters.sessions.closed, 1);
    assert.equal(rig.one(CONSOLE, c.request(0x06, 0x01)), null);
  });

  it('closing another session needs ADMINISTRATOR; an unknown session ID is 87h', () => {
    const rig = new Rig();
    const victim = session(rig, {}, OTHER);
    const oper = session(rig, { user: 'oper', password: 'op-pw', role: 0x13 });
    rig.cmd(oper, 0x06, 0x3b, [0x03]);
    assert.equal(rig.cmd(oper, 0x06, 0x3c, [...le32(victim.sidC)]).cc, 0xd4);
    assert.equal(rig.cmd(oper, 0x06, 0x3c, [...le32(0x12345678)]).cc, 0x87);
    const admin = session(rig, {}, { address: '127.0.77.12', port: 40003 });
    const p = { address: '127.0.77.12', port: 40003 };
    rig.cmd(admin, 0x06, 0x3b, [0x04], p);
    assert.equal(rig.cmd(admin, 0x06, 0x3c, [...le32(victim.sidC)], p).cc, 0);
    assert.equal(rig.one(OTHER, victim.request(0x06, 0x01)), null);
  });
});

function le32(v: number): Uint8Array {
  return Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
}
