/**
 * The IPMI commands the lanplus responder serves, in a session (IPMI v2.0 chapters 20, 22, 28, 31; cat. §7),
 * with the request sequences the real tools send.
 */
import assert from 'node:assert/strict';
import { hex } from '../../common/bytes.js';
import { HOST_STATES } from '../../firmware/host-state.js';
import { Rig } from '../support/ipmi-rig.js';

function admin(rig: Rig) {
  const c = rig.console();
  rig.establish(c);
  assert.equal(rig.cmd(c, 0x06, 0x3b, [0x04]).cc, 0);
  return c;
}

describe('IPMI chassis commands drive the emulated host (IPMI v2.0 chapter 28; DESIGN §9)', () => {
  it('Get Chassis Status reports power on in every host state but off', () => {
    const rig = new Rig();
    const c = admin(rig);
    for (const state of HOST_STATES) {
      rig.host = { state };
      const r = rig.cmd(c, 0x00, 0x01);
      assert.equal(r.cc, 0);
      assert.equal(r.data.length, 3);
      assert.equal(r.data[0] & 1, state === 'off' ? 0 : 1, state);
    }
  });

  it('Chassis Control maps to the ASF host commands: down, up, cycle, hard reset, soft shutdown (-> power-down)', () => {
    const rig = new Rig();
    const c = admin(rig);
    const expect = [
      [0x00, 'power-down', 'chassis control: power down', 'off'],
      [0x01, 'power-up', 'chassis control: power up', 'pre-boot'],
      [0x03, 'reset', 'chassis control: hard reset', 'pre-boot'],
      [0x02, 'power-cycle', 'chassis control: power cycle', 'pre-boot'],
      [0x05, 'power-down', 'chassis control: soft shutdown', 'off'],
    ] as const;
    for (const [op, command, ipmi, after] of expect) {
      assert.equal(rig.cmd(c, 0x00, 0x02, [op]).cc, 0);
      const e = rig.hostCommands.at(-1)!;
      assert.deepEqual([e.command, e.ipmi, e.user, e.sessionId], [command, ipmi, 'admin', c.sidC]);
      assert.equal(rig.host.state, after);
      assert.equal(rig.cmd(c, 0x00, 0x01).data[0] & 1, after === 'off' ? 0 : 1, 'the next status sees the new state');
    }
    assert.equal(rig.lan.counters.hostCommands, 5);
    assert.equal(rig.logs.filter((l) => l.msg === 'IPMI host command').length, 5, 'every host command is logged');
  });

  it('power cycle while off is D5h (IPMI v2.0 §28.3), a diagnostic interrupt or an unknown control is CCh; nothing moves', () => {
    const rig = new Rig();
    const c = admin(rig);
    rig.host = { state: 'off' };
    assert.equal(rig.cmd(c, 0x00, 0x02, [0x02]).cc, 0xd5);
    assert.equal(rig.cmd(c, 0x00, 0x02, [0x04]).cc, 0xcc);
    assert.equal(rig.cmd(c, 0x00, 0x02, [0x06]).cc, 0xcc);
    assert.equal(rig.cmd(c, 0x00, 0x02, []).cc, 0xc7);
    assert.equal(rig.hostCommands.length, 0);
    assert.equal(rig.host.state, 'off');
  });

  it('`ipmitool chassis bootdev pxe` (cat. §7.3): set in progress, clear acknowledge, boot flags, commit, complete; read back', () => {
    const rig = new Rig();
    const c = admin(rig);
    for (const data of [[0x00, 0x01], [0x04, 0x01, 0x01], [0x05, 0x80, 0x04, 0x00, 0x00, 0x00], [0x00, 0x02], [0x00, 0x00]]) {
      assert.equal(rig.cmd(c, 0x00, 0x08, data).cc, 0, hex(Uint8Array.from(data)));
    }
    assert.equal(hex(rig.cmd(c, 0x00, 0x09, [0x05, 0x00, 0x00]).data), '0105' + '8004000000');
    assert.deepEqual(rig.lan.status().bootFlags, { valid: true, persistent: false, efi: false, device: 'pxe' });
    assert.equal(rig.cmd(c, 0x00, 0x08, [0x00, 0x01]).cc, 0);
    assert.equal(rig.cmd(c, 0x00, 0x08, [0x00, 0x01]).cc, 0x81, 'set in progress twice');
    assert.equal(rig.cmd(c, 0x00, 0x08, [0x03, 0x00]).cc, 0x80, 'parameter 3 is not supported');
    assert.equal(rig.cmd(c, 0x00, 0x09, [0x07, 0x00, 0x00]).cc, 0x80);
    assert.equal(rig.cmd(c, 0x00, 0x08, [0x05, 0x80]).cc, 0xc7);
  });
});

describe('IPMI application and storage commands (IPMI v2.0 chapters 20, 22, 31)', () => {
  it('Get Device ID: 11 bytes by default, 15 with an aux firmware revision; IPMI 2.0, chassis and SEL device', () => {
    const rig = new Rig();
    const c = admin(rig);
    assert.equal(hex(rig.cmd(c, 0x06, 0x01).data), '20' + '01' + '01' + '00' + '02' + '84' + '000000' + '0100');
    const rig2 = new Rig({ device: { manufacturerId: 0x12345, productId: 0xbeef, firmwareMajor: 2, firmwareMinor: 0x17, auxFirmwareRevision: Uint8Array.of(1, 2, 3, 4) } });
    const c2 = admin(rig2);
    assert.equal(hex(rig2.cmd(c2, 0x06, 0x01).data), '20' + '01' + '02' + '17' + '02' + '84' + '452301' + 'efbe' + '01020304');
  });

  it('Get System GUID is the GUID RAKP 2 carried', () => {
    const rig = new Rig();
    const c = admin(rig);
    assert.equal(hex(rig.cmd(c, 0x06, 0x37).data), hex(c.guid));
  });

  it('Get Channel Cipher Suites in a session: index 0 holds both records, index 1 only the channel, bit 7 clear lists algorithms', () => {
    const rig = new Rig();
    const c = admin(rig);
    assert.equal(hex(rig.cmd(c, 0x06, 0x54, [0x0e, 0x00, 0x80]).data), '01c003014181c011034481');
    assert.equal(hex(rig.cmd(c, 0x06, 0x54, [0x0e, 0x00, 0x81]).data), '01');
    assert.equal(hex(rig.cmd(c, 0x06, 0x54, [0x01, 0x00, 0x00]).data), '010103414481');
    assert.equal(rig.cmd(c, 0x06, 0x54, [0x05, 0x00, 0x80]).cc, 0xcc, 'not this channel');
    const only17 = new Rig({ cipherSuites: [17] });
    const c17 = admin(only17);
    assert.equal(hex(only17.cmd(c17, 0x06, 0x54, [0x0e, 0x00, 0x80]).data), '01c011034481');
  });

  it('Get User Access / Get User Name: 9 user IDs, user 1 the disabled null user, the configured users from ID 2', () => {
    const rig = new Rig();
    const c = admin(rig);
    const access = (id: number) => hex(rig.cmd(c, 0x06, 0x44, [0x0e, id]).data);
    // max 9 IDs | status<<6 + 3 enabled users | 1 fixed name | channel access
    assert.equal(access(1), '09' + '83' + '01' + '0f');
    assert.equal(access(2), '09' + '43' + '01' + '14'); // admin: enabled, IPMI messaging, ADMINISTRATOR
    assert.equal(access(3), '09' + '43' + '01' + '13'); // oper
    assert.equal(access(5), '09' + '83' + '01' + '04'); // gone: disabled
    assert.equal(access(6), '09' + '03' + '01' + '0f'); // empty slot
    assert.equal(rig.cmd(c, 0x06, 0x44, [0x0e, 10]).cc, 0xcc);
    assert.equal(new TextDecoder().decode(rig.cmd(c, 0x06, 0x46, [2]).data).replace(/\0+$/, ''), 'admin');
    assert.equal(hex(rig.cmd(c, 0x06, 0x46, [1]).data), '00'.repeat(16));
  });

  it('Get User Access needs OPERATOR: a USER session gets D4h', () => {
    const rig = new Rig();
    const c = rig.console({ user: 'viewer', password: 'view-pw', role: 0x12 });
    rig.establish(c);
    assert.equal(rig.cmd(c, 0x06, 0x44, [0x0e, 2]).cc, 0xd4);
    assert.equal(rig.cmd(c, 0x00, 0x01).cc, 0, 'Get Chassis Status is a USER command');
  });

  it('Get SEL Info: an empty SEL (version 51h, no entries, no room, never added or erased)', () => {
    const rig = new Rig();
    const c = admin(rig);
    assert.equal(hex(rig.cmd(c, 0x0a, 0x40).data), '51' + '0000' + '0000' + 'ffffffff' + 'ffffffff' + '00');
  });

  it('Get Channel Info answers for the LAN channel and CCh for the others (bmc-info asks for 0-11)', () => {
    const rig = new Rig();
    const c = admin(rig);
    assert.equal(hex(rig.cmd(c, 0x06, 0x42, [0x0e]).data), '01' + '04' + '01' + '81' + 'f21b00' + '0000');
    assert.equal(rig.cmd(c, 0x06, 0x42, [0x00]).cc, 0xcc);
  });
});
