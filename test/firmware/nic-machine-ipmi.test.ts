/**
 * lanplus inside the NIC machine (firmware/nic-machine.ts; DESIGN §9, issue 18): RMCP class 7 on the clear port
 * beside ASF, only while the EEPROM's IPMI users record enables it; chassis commands move the same host as ASF and
 * come out as `executed` effects; the responder's deadlines are the machine's (pollTimeout / handleTimeout); the
 * users are written to the EEPROM like any other administrative write (a torn write reboots the NIC with the old
 * users or the new ones). Driven in virtual time with the spec-written console (test/support/ipmi-test-console.ts).
 */
import assert from 'node:assert/strict';
import { MemoryEepromDevice, TearingEepromDevice, type EepromDevice } from '../../firmware/eeprom-device.js';
import { EEPROM_SIZE, type NicConfig } from '../../firmware/eeprom-image.js';
import { NicMachine, NicDownError, type NicEffect, type ExecutedCommand } from '../../firmware/nic-machine.js';
import type { IpmiUsersConfig } from '../../firmware/ipmi/ipmi-users-record.js';
import { systemGuid, systemUuidText } from '../../firmware/system-guid.js';
import { decodeRmcpAsf, encodeRmcpAsf, ENTITY_IPMI } from '../../wire/asf.js';
import { IpmiTestConsole, readFrame } from '../support/ipmi-test-console.js';
import { prng } from '../support/prng.js';

const CONFIG: NicConfig = { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' };
const USERS: IpmiUsersConfig = {
  enabled: true,
  users: [
    { name: 'admin', password: 'secret-pw', privilege: 'administrator', enabled: true },
    { name: 'viewer', password: 'view-pw', privilege: 'user', enabled: true },
  ],
};
const CONSOLE = { address: '127.0.0.1', port: 40623 };
const BOOT_MS = 300;

class Nic {
  readonly m: NicMachine;
  now = 1_000_000;
  readonly sent: Uint8Array[] = [];
  readonly executed: ExecutedCommand[] = [];
  readonly logs: string[] = [];
  private readonly rnd = prng(11);

  constructor(o: { users?: IpmiUsersConfig; dev?: EepromDevice; fresh?: boolean } = {}) {
    const dev = o.dev ?? new MemoryEepromDevice(EEPROM_SIZE);
    let fresh = o.fresh ?? true;
    this.m = new NicMachine({
      id: 'nic-1', address: '127.0.0.1', ports: { clear: 623, secure: 664, ike: 500 },
      openDevice: () => {
        const f = fresh;
        fresh = false;
        return { device: dev, fresh: f };
      },
      deviceName: 'nic-1.eeprom', initialConfig: CONFIG, initialIpmiUsers: o.users, initialHostState: 'up', bootDelayMs: BOOT_MS,
      random: (n) => this.rnd.bytes(n),
    });
    this.apply(this.m.powerOn(this.now));
  }

  apply(fx: NicEffect[]): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const e of fx) {
      if (e.kind === 'send') {
        assert.equal(e.port, 'clear');
        out.push(e.bytes);
      } else if (e.kind === 'executed') this.executed.push(e.entry);
      else this.logs.push(e.msg);
    }
    this.sent.push(...out);
    return out;
  }

  /** One datagram to UDP 623; at most one answer. */
  one(d: Uint8Array, from = CONSOLE): Uint8Array | null {
    const out = this.apply(this.m.receive('clear', from, d, this.now));
    assert.ok(out.length <= 1, `${out.length} answers`);
    return out[0] ?? null;
  }

  /** Advance virtual time, serving every deadline on the way as the shell's timer would. */
  advance(ms: number): void {
    const end = this.now + ms;
    for (let t = this.m.pollTimeout(); t !== null && t <= end; t = this.m.pollTimeout()) {
      this.now = Math.max(this.now, t);
      this.apply(this.m.handleTimeout(this.now));
    }
    this.now = end;
  }

  get ipmi(): { lanplus: boolean; sessions: unknown[]; halfOpen: number; counters: any; users: unknown[] } {
    return this.m.status().ipmi as any;
  }

  console(user = 'admin', password = 'secret-pw', suite: 3 | 17 = 17): IpmiTestConsole {
    return new IpmiTestConsole({ suite, user, password, random: (n) => this.rnd.bytes(n) });
  }

  establish(c: IpmiTestConsole): void {
    assert.equal(c.onOpenSession(this.one(c.openSession())!).status, 0);
    assert.deepEqual(c.onRakp2(this.one(c.rakp1())!).hmacOk, true);
    assert.equal(c.onRakp4(this.one(c.rakp3())!).status, 0);
  }

  cmd(c: IpmiTestConsole, netFn: number, cmd: number, data: number[] = []): { cc: number; data: Uint8Array } {
    const d = this.one(c.request(netFn, cmd, data));
    assert.ok(d, `no answer to ${netFn.toString(16)}/${cmd.toString(16)}`);
    return c.onResponse(d);
  }
}

const pingPong = (nic: Nic) => {
  const d = nic.one(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 5 }))!;
  const m = decodeRmcpAsf(d).asf!;
  assert.equal(m.type, 'presence-pong');
  return m as Extract<typeof m, { type: 'presence-pong' }>;
};

describe('NIC machine: IPMI lanplus beside ASF on the clear port (issue 18)', () => {
  it('off by default: class 7 is disregarded and counted as before, the Presence Pong does not offer IPMI', () => {
    const nic = new Nic();
    const c = nic.console();
    assert.equal(nic.one(c.gcac()), null);
    assert.equal(nic.one(c.openSession()), null);
    const st = nic.m.status() as any;
    assert.equal(st.counters.dropped.class, 2);
    assert.deepEqual(st.ipmi, { lanplus: false, users: [], sessions: [], halfOpen: 0, counters: null });
    assert.equal(pingPong(nic).supportedEntities & ENTITY_IPMI, 0);
    assert.equal(nic.m.pollTimeout(), null);
  });

  it('on: the tools\' first request is answered, a session opens, and the Presence Pong offers IPMI; status shows users without passwords', () => {
    const nic = new Nic({ users: USERS });
    const c = nic.console();
    assert.ok(readFrame(nic.one(c.openSession())!), 'an RMCP+ answer');
    assert.ok(nic.one(c.gcac()), 'Get Channel Authentication Capabilities is answered');
    assert.equal(pingPong(nic).supportedEntities & ENTITY_IPMI, ENTITY_IPMI);
    assert.deepEqual(nic.ipmi.users, [{ name: 'admin', privilege: 'administrator', enabled: true }, { name: 'viewer', privilege: 'user', enabled: true }]);
    assert.ok(!JSON.stringify(nic.m.status()).includes('secret-pw'), 'no password in status');
  });

  it('RAKP 2 carries the NIC\'s own system GUID (stable per NIC id, an RFC 4122 version 5 UUID, least significant byte first)', () => {
    const nic = new Nic({ users: USERS });
    const c = nic.console();
    nic.establish(c);
    assert.deepEqual(c.guid, systemGuid('nic-1'));
    assert.equal(systemGuid('nic-1')[9] >> 4, 5, 'version 5 (the UUID\'s byte 6, least significant byte first)');
    assert.match(systemUuidText('nic-1'), /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notDeepEqual(systemGuid('nic-1'), systemGuid('nic-2'));
  });

  it('chassis control moves the same host as ASF: executed effects via ipmi, the boot deadline runs, Get Chassis Status follows', () => {
    const nic = new Nic({ users: USERS });
    const c = nic.console();
    nic.establish(c);
    assert.equal(nic.cmd(c, 0x06, 0x3b, [0x04]).cc, 0, 'Set Session Privilege Level: administrator');
    assert.equal(nic.cmd(c, 0x00, 0x02, [0x00]).cc, 0, 'power down');
    assert.equal(nic.m.hostState, 'off');
    assert.equal(nic.cmd(c, 0x00, 0x01).data[0] & 1, 0, 'chassis status: off');
    assert.equal(nic.cmd(c, 0x00, 0x02, [0x01]).cc, 0, 'power up');
    assert.equal(nic.m.hostState, 'pre-boot');
    nic.advance(BOOT_MS);
    assert.equal(nic.m.hostState, 'up', 'the boot deadline of an IPMI power-up is the machine\'s');
    assert.equal(nic.cmd(c, 0x00, 0x02, [0x03]).cc, 0, 'hard reset');
    assert.deepEqual(nic.executed.map((e) => [e.via, e.command, e.hostBefore, e.hostAfter, e.ipmi?.user, e.ipmi?.request]), [
      ['ipmi', 'power-down', 'up', 'off', 'admin', 'chassis control: power down'],
      ['ipmi', 'power-up', 'off', 'pre-boot', 'admin', 'chassis control: power up'],
      ['ipmi', 'reset', 'up', 'pre-boot', 'admin', 'chassis control: hard reset'],
    ]);
    assert.equal(nic.executed[0].from, `${CONSOLE.address}:${CONSOLE.port}`);
    assert.equal(nic.executed[0].ipmi?.sessionId, c.sidC.toString(16).padStart(8, '0'));
    // An ASF command on the same NIC sees the host IPMI left (and the other way round).
    assert.deepEqual(nic.m.hostEvent('power-down', nic.now).to, 'off');
    assert.equal(nic.cmd(c, 0x00, 0x01).data[0] & 1, 0);
  });

  it('a user-level session cannot run chassis control: refused, counted, the host stays', () => {
    const nic = new Nic({ users: USERS });
    const c = nic.console('viewer', 'view-pw', 3);
    nic.establish(c);
    assert.equal(nic.cmd(c, 0x00, 0x02, [0x00]).cc, 0xd4);
    assert.equal(nic.m.hostState, 'up');
    assert.equal(nic.ipmi.counters.refused.privilege, 1);
    assert.equal(nic.executed.length, 0);
  });

  it('its deadlines are the machine\'s: a half-open session expires after 10 s, an idle one is closed after 60 s', () => {
    const nic = new Nic({ users: USERS });
    const half = nic.console();
    half.onOpenSession(nic.one(half.openSession())!);
    assert.equal(nic.m.pollTimeout(), nic.now + 10_000);
    nic.advance(10_000);
    assert.equal(nic.ipmi.halfOpen, 0);
    assert.equal(nic.ipmi.counters.sessions.halfOpenExpired, 1);
    assert.equal(nic.m.pollTimeout(), null);

    const c = nic.console();
    nic.establish(c);
    nic.advance(30_000);
    assert.equal(nic.cmd(c, 0x00, 0x01).cc, 0, 'used at 30 s: the idle timer starts again');
    assert.equal(nic.m.pollTimeout(), nic.now + 60_000);
    nic.advance(59_999);
    assert.equal(nic.ipmi.sessions.length, 1);
    nic.advance(1);
    assert.equal(nic.ipmi.sessions.length, 0);
    assert.equal(nic.ipmi.counters.sessions.idleClosed, 1);
    assert.equal(nic.one(c.request(0x00, 0x01)), null, 'the closed session is gone');
    assert.equal(nic.ipmi.counters.dropped['unknown-session'], 1);
  });

  it('at most 4 active sessions per NIC: the fifth is refused (status 01h) until one closes', () => {
    const nic = new Nic({ users: USERS });
    const cs = Array.from({ length: 4 }, (_, i) => nic.console(i % 2 ? 'viewer' : 'admin', i % 2 ? 'view-pw' : 'secret-pw'));
    cs.forEach((c, i) => {
      nic.establish(c);
      assert.equal(nic.ipmi.sessions.length, i + 1);
    });
    const fifth = nic.console();
    const os = fifth.onOpenSession(nic.one(fifth.openSession())!);
    assert.equal(os.status, 0x01, 'insufficient resources');
    assert.equal(nic.ipmi.counters.refused['session-limit'], 1);
    assert.equal(nic.cmd(cs[0], 0x06, 0x3c, [...new Uint8Array(new Uint32Array([cs[0].sidC]).buffer)]).cc, 0, 'Close Session');
    nic.establish(nic.console());
    assert.equal(nic.ipmi.sessions.length, 4);
  });

  it('a power loss ends every session; the NIC comes back with its users from the EEPROM', () => {
    const nic = new Nic({ users: USERS });
    const c = nic.console();
    nic.establish(c);
    nic.apply(nic.m.hostEvent('power-loss', nic.now).effects);
    assert.equal(nic.one(c.request(0x00, 0x01)), null, 'no power: nothing answers');
    nic.apply(nic.m.hostEvent('power-restore', nic.now).effects);
    assert.equal(nic.one(c.request(0x00, 0x01)), null, 'the session was in RAM');
    assert.equal(nic.ipmi.counters.dropped['unknown-session'], 1);
    nic.establish(nic.console());
  });

  it('setIpmiUsers: new users end every session and take effect at once; off drops the responder; bad users change nothing', () => {
    const nic = new Nic({ users: USERS });
    const c = nic.console();
    nic.establish(c);
    const changed: IpmiUsersConfig = { enabled: true, users: [{ name: 'admin', password: 'changed-pw', privilege: 'operator', enabled: true }] };
    nic.apply(nic.m.setIpmiUsers(changed, nic.now).effects);
    assert.equal(nic.one(c.request(0x00, 0x01)), null, 'the old session ended');
    const old = nic.console();
    old.onOpenSession(nic.one(old.openSession())!);
    assert.equal(old.onRakp2(nic.one(old.rakp1())!).hmacOk, false, 'the old password no longer matches RAKP 2');
    nic.establish(nic.console('admin', 'changed-pw'));
    assert.throws(() => nic.m.setIpmiUsers({ enabled: true, users: [{ name: 'a b', password: 'x', privilege: 'user', enabled: true }] }, nic.now), /E_USAGE|user name/);
    assert.deepEqual(nic.m.ipmiUsers, changed);
    nic.apply(nic.m.setIpmiUsers({ enabled: false, users: [] }, nic.now).effects);
    assert.equal(nic.one(nic.console().openSession()), null);
    assert.equal(nic.ipmi.lanplus, false);
    assert.equal(nic.m.pollTimeout(), null, 'no responder, no deadline');
  });

  it('the users survive a reboot (they live in the EEPROM, not in RAM)', () => {
    const dev = new MemoryEepromDevice(EEPROM_SIZE);
    const a = new Nic({ dev });
    assert.equal(a.ipmi.lanplus, false);
    a.m.setIpmiUsers(USERS, a.now);
    const b = new Nic({ dev, fresh: false });
    assert.deepEqual(b.m.ipmiUsers, USERS);
    b.establish(b.console());
  });

  it('setIpmiUsers torn at every byte of every page write -> E_NIC_DOWN, the NIC reboots with the old users or the new ones', () => {
    const base = new MemoryEepromDevice(EEPROM_SIZE);
    new Nic({ dev: base, users: USERS });
    const neu: IpmiUsersConfig = { enabled: true, users: [{ name: 'root', password: 'new-password-0123', privilege: 'administrator', enabled: true }] };
    const counter = new TearingEepromDevice(base.image, { atWrite: Number.MAX_SAFE_INTEGER, atByte: 0 });
    const probe = new Nic({ dev: counter, fresh: false });
    probe.m.setIpmiUsers(neu, probe.now);
    assert.ok(counter.writes >= 1);
    let old = 0;
    let fresh = 0;
    for (let w = 0; w < counter.writes; w++) {
      for (let b = 0; b <= 64; b++) {
        const dev = new TearingEepromDevice(base.image, { atWrite: w, atByte: b });
        const nic = new Nic({ dev, fresh: false });
        assert.throws(() => nic.m.setIpmiUsers(neu, nic.now), (e: unknown) => e instanceof NicDownError && e.code === 'E_NIC_DOWN');
        assert.equal(nic.m.runState, 'running', `tear ${w}/${b}: the NIC rebooted from its EEPROM`);
        const users = JSON.stringify(nic.m.ipmiUsers);
        if (users === JSON.stringify(USERS)) old++;
        else {
          assert.equal(users, JSON.stringify(neu), `tear ${w}/${b}`);
          fresh++;
        }
        const login = users === JSON.stringify(USERS) ? nic.console() : nic.console('root', 'new-password-0123');
        nic.establish(login);
      }
    }
    assert.ok(old > 0 && fresh > 0, `${old} old, ${fresh} new`);
  });
});
