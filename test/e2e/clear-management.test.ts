/**
 * Issue 2, acceptance 7: power commands in the clear (RMCP/ASF on UDP 623, DSP0136 §3.2.4.1-4) are refused
 * by default and counted — still acknowledged at the RMCP level, as ASF requires for every message whose
 * sequence is not 0xFF (§3.2.2.1) — and honoured only as the EEPROM configuration allows
 * (`--clear-management`, the seed's cold-boot option). Presence Ping is always answered.
 */
import assert from 'node:assert/strict';
import { Lab } from '../support/lab.js';
import { UdpPeer } from '../support/udp-peer.js';
import { decodeRmcpAsf, encodeRmcpAsf, type AsfMessage, type RmcpAsfPacket } from '../../wire/asf.js';

const BOOT = { iana: 4542, specialCommand: 0, specialCommandParam: 0, bootOptionsMask: 0, oemParams: 0 };
const COMMANDS: AsfMessage[] = [
  { type: 'reset', tag: 0x10, bootOptions: BOOT },
  { type: 'power-up', tag: 0x11, bootOptions: null },
  { type: 'power-down', tag: 0x12 },
  { type: 'power-cycle', tag: 0x13, bootOptions: BOOT },
];

describe('e2e: clear management on UDP 623', function () {
  this.timeout(20000);
  let peer: UdpPeer;
  before(async () => (peer = await UdpPeer.open()));
  after(async () => peer?.close());

  /**
   * Send one clear message; collect (decoded, with their sizes) what the NIC sends back: wait for `expect`
   * answers (at most 2 s), then 100 ms more so that an unexpected extra answer would be seen too.
   */
  async function exchange(lab: Lab, nic: string, bytes: Uint8Array, expect = 1): Promise<(RmcpAsfPacket & { size: number })[]> {
    const { address, ports } = await lab.nic(nic);
    const from = peer.received.length;
    const answers = () => peer.received.slice(from).filter((r) => r.from.address === address && r.from.port === ports.clear);
    await peer.send(bytes, ports.clear, address);
    for (const deadline = Date.now() + 2000; answers().length < expect && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    return answers().map((r) => ({ ...decodeRmcpAsf(r.bytes), size: r.bytes.length }));
  }

  describe('default configuration: no clear management', () => {
    let lab: Lab;
    before(async () => {
      lab = new Lab('clear-default');
      await lab.startEmulator(['--nics', '1']);
    });
    after(async () => lab?.cleanup());

    it('the EEPROM configuration says clear management is off', async () => {
      assert.deepEqual((await lab.nic('nic-1')).config, { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0 });
    });

    COMMANDS.forEach((cmd, i) => {
      it(`clear ${cmd.type}: RMCP ACK, refused, counted, host untouched`, async () => {
        const before = await lab.nic('nic-1');
        const answers = await exchange(lab, 'nic-1', encodeRmcpAsf(0x20 + i, cmd));
        assert.deepEqual(answers.map((a) => [a.rmcp.ack, a.rmcp.sequence]), [[true, 0x20 + i]], 'exactly one RMCP ACK echoing the sequence');
        const after = await lab.nic('nic-1');
        assert.equal(after.counters.refusedClear, before.counters.refusedClear + 1);
        assert.equal(after.counters.executed, before.counters.executed);
        assert.equal(after.host, 'up');
        assert.equal(after.executed, 0, 'nothing in the exec log');
      });
    });

    it('an RMCP ACK (a station acknowledging an answer) gets nothing back and is counted: acksReceived, not accepted or dropped', async () => {
      const before = (await lab.nic('nic-1')).counters;
      for (const seq of [0x01, 0x02, 0x03]) assert.deepEqual(await exchange(lab, 'nic-1', Uint8Array.from([0x06, 0x00, seq, 0x86]), 0), []);
      const after = (await lab.nic('nic-1')).counters;
      assert.deepEqual(after.acksReceived, { clear: before.acksReceived.clear + 3, secure: before.acksReceived.secure });
      assert.deepEqual(after.accepted, before.accepted);
      assert.deepEqual(after.dropped, before.dropped);
    });

    it('Presence Ping is answered with a 28-byte Pong (sequence 0xFF: no ACK)', async () => {
      const answers = await exchange(lab, 'nic-1', encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 0x77 }));
      assert.deepEqual(answers.map((a) => [a.rmcp.ack, a.asf?.type, a.asf?.tag, a.size]), [[false, 'presence-pong', 0x77, 28]]);
    });

    it('Presence Ping with a sequence number: ACK, then Pong', async () => {
      const answers = await exchange(lab, 'nic-1', encodeRmcpAsf(0x09, { type: 'presence-ping', tag: 0x78 }), 2);
      assert.deepEqual(answers.map((a) => [a.rmcp.ack, a.asf?.type ?? null, a.size]), [[true, null, 4], [false, 'presence-pong', 28]]);
    });

    it('Capabilities in the clear: every power command on the secure port only', async () => {
      const [a] = await exchange(lab, 'nic-1', encodeRmcpAsf(0xff, { type: 'capabilities-request', tag: 0x79 }));
      assert.equal(a.asf?.type, 'capabilities-response');
      assert.equal((a.asf as any).systemCapabilities, 0x0f);
    });

    it('the same power-cycle over the secure channel is honoured', async () => {
      await lab.station(['sa', 'manual', 'nic-1']);
      await lab.station(['power-cycle', 'nic-1']);
      assert.equal((await lab.nic('nic-1')).host, 'pre-boot');
    });
  });

  describe('--clear-management power-cycle', () => {
    let lab: Lab;
    before(async () => {
      lab = new Lab('clear-cycle');
      // A boot delay long enough to see pre-boot after the honoured power-cycle.
      await lab.startEmulator(['--nics', '1', '--clear-management', 'power-cycle', '--boot-delay', '10000']);
    });
    after(async () => lab?.cleanup());

    it('the EEPROM configuration allows exactly power-cycle (bit 3)', async () => {
      assert.deepEqual((await lab.nic('nic-1')).config, { securityPolicy: 'esp', clearManagement: true, allowedClearCommands: 8 });
    });

    it('clear power-cycle is honoured: ACK, host up -> pre-boot, logged as a clear command', async () => {
      const answers = await exchange(lab, 'nic-1', encodeRmcpAsf(0x31, COMMANDS[3]));
      assert.deepEqual(answers.map((a) => [a.rmcp.ack, a.rmcp.sequence]), [[true, 0x31]]);
      const s = await lab.nic('nic-1');
      assert.equal(s.host, 'pre-boot');
      assert.equal(s.counters.refusedClear, 0);
      const log = (await lab.control.get<any[]>('/v1/nics/nic-1/exec-log')).at(-1);
      assert.deepEqual([log.command, log.via, log.rmcpSeq, log.tag, log.hostBefore, log.hostAfter], ['power-cycle', 'clear', 0x31, 0x13, 'up', 'pre-boot']);
    });

    for (const cmd of COMMANDS.slice(0, 3)) {
      it(`clear ${cmd.type} is still refused and counted`, async () => {
        const before = await lab.nic('nic-1');
        const answers = await exchange(lab, 'nic-1', encodeRmcpAsf(0x40, cmd));
        assert.deepEqual(answers.map((a) => a.rmcp.ack), [true]);
        const after = await lab.nic('nic-1');
        assert.equal(after.counters.refusedClear, before.counters.refusedClear + 1);
        assert.equal(after.host, 'pre-boot', 'host untouched');
        assert.equal(after.executed, 1, 'only the power-cycle ran');
      });
    }

    it('Capabilities in the clear: power-cycle on either port, the rest secure only', async () => {
      const [a] = await exchange(lab, 'nic-1', encodeRmcpAsf(0xff, { type: 'capabilities-request', tag: 0x7a }));
      assert.equal((a.asf as any).systemCapabilities, 0x10 | 0x0e);
    });
  });
});
