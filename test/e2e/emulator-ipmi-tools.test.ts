/**
 * Issue 18, criteria 1 and 2, against the real emulator process: `nic-emulator start --ipmi-user ...` and the tools
 * labs run, ipmitool 1.8.19 (-I lanplus, cipher suites 17 and 3) and FreeIPMI 1.6.10 (ipmipower and bmc-info with
 * -D LAN_2_0), each run bounded in time. Chassis commands move the emulated host as ASF commands do (the host-state
 * table's transitions, the boot delay) and appear in the NIC's execution log and in what the station reads; -C 0,
 * a wrong password, an unknown user and IPMI 1.5 are refused and counted; a NIC whose EEPROM has lanplus off
 * answers no IPMI; the control API turns it on per NIC; tshark dissects every RMCP+ packet without a malformed one.
 * Address-per-NIC (the tools talk to port 623), so root.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, isRoot, type RunResult } from '../support/lab.js';
import { Capture, hasBinary, tsharkFields } from '../support/tshark.js';
import { transition, type HostState, type AsfCommandEvent } from '../../firmware/host-state.js';
import { systemUuidText } from '../../firmware/system-guid.js';

const TOOLS = ['ipmitool', 'ipmipower', 'bmc-info', 'tshark'];
const BOOT_MS = 300;

describe('e2e: ipmitool and FreeIPMI against the emulator\'s IPMI lanplus (issue 18)', function () {
  this.timeout(120_000);
  let lab: Lab;
  let base: number[];
  const addr = (nic: number) => `${base[0]}.${base[1]}.${base[2]}.${base[3] + nic - 1}`;
  const tool = (cmd: string, args: string[]): Promise<RunResult> => lab.exec(cmd, args, { timeoutMs: 20_000, env: { HOME: tmpdir() } });
  const ipmitool = (nic: number, suite: string, ...args: string[]) =>
    tool('ipmitool', ['-I', 'lanplus', '-H', addr(nic), '-U', 'admin', '-P', 'secret-pw', '-C', suite, '-N', '1', '-R', '2', ...args]);
  const execLog = (nic: number) => lab.control.get<any[]>(`/v1/nics/nic-${nic}/exec-log`);
  const status = (nic: number) => lab.nic(`nic-${nic}`);

  async function waitHost(nic: number, state: HostState): Promise<void> {
    const deadline = Date.now() + 5000;
    while ((await status(nic)).host !== state) {
      if (Date.now() > deadline) throw new Error(`nic-${nic} did not reach ${state}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The log's IPMI entries since `from`, checked against the host-state table (the ASF commands' transitions). */
  async function ipmiEntries(nic: number, from: number): Promise<[string, string, string][]> {
    const log = (await execLog(nic)).slice(from);
    for (const e of log) {
      assert.equal(e.via, 'ipmi');
      assert.equal(e.hostAfter, transition(e.hostBefore as HostState, e.command as AsfCommandEvent).to, 'the same transition an ASF command makes');
    }
    return log.map((e) => [e.command, e.ipmi.user, e.ipmi.request]);
  }

  before(async function () {
    if (!isRoot) {
      console.log('      (skipped: the IPMI tools talk to UDP 623 of an address per NIC, which needs root)');
      this.skip();
    }
    for (const t of TOOLS) {
      if (!hasBinary(t)) {
        console.log(`      (skipped: ${t} is not installed; .ci/run installs ipmitool, freeipmi-tools and tshark)`);
        this.skip();
      }
    }
    lab = new Lab('ipmi-tools');
    await lab.startEmulator(['--nics', '4', '--ipmi-user', 'admin:secret-pw', '--ipmi-user', 'oper:op-pw:operator', '--boot-delay', String(BOOT_MS)]);
    base = lab.ready!.first.replace(/:623$/, '').split('.').map(Number);
  });
  after(async () => lab?.cleanup());

  for (const [suite, nic] of [['17', 1], ['3', 2]] as const) {
    describe(`ipmitool -I lanplus -C ${suite}`, () => {
      it('chassis power status | off | on | cycle | reset: the answers, the host, the execution log', async () => {
        let r = await ipmitool(nic, suite, 'chassis', 'power', 'status');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), 'Chassis Power is on');
        r = await ipmitool(nic, suite, 'chassis', 'power', 'off');
        assert.equal(r.stdout.trim(), 'Chassis Power Control: Down/Off');
        assert.equal((await status(nic)).host, 'off');
        assert.equal((await ipmitool(nic, suite, 'chassis', 'power', 'status')).stdout.trim(), 'Chassis Power is off');
        assert.equal((await ipmitool(nic, suite, 'chassis', 'power', 'on')).stdout.trim(), 'Chassis Power Control: Up/On');
        assert.equal((await status(nic)).host, 'pre-boot');
        await waitHost(nic, 'up'); // the boot delay runs as after an ASF power-up
        assert.equal((await ipmitool(nic, suite, 'chassis', 'power', 'cycle')).stdout.trim(), 'Chassis Power Control: Cycle');
        assert.equal((await status(nic)).host, 'pre-boot');
        await waitHost(nic, 'up');
        assert.equal((await ipmitool(nic, suite, 'chassis', 'power', 'reset')).stdout.trim(), 'Chassis Power Control: Reset');
        await waitHost(nic, 'up');
        assert.deepEqual(await ipmiEntries(nic, 0), [
          ['power-down', 'admin', 'chassis control: power down'],
          ['power-up', 'admin', 'chassis control: power up'],
          ['power-cycle', 'admin', 'chassis control: power cycle'],
          ['reset', 'admin', 'chassis control: hard reset'],
        ]);
        const text = await lab.emulatorCli(['exec-log', `nic-${nic}`]);
        assert.match(text.stdout, /ipmi power-down user=admin session=[0-9a-f]{8} 'chassis control: power down' up->off/);
      });

      it('chassis status', async () => {
        const r = await ipmitool(nic, suite, 'chassis', 'status');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /System Power\s+: on/);
        assert.match(r.stdout, /Last Power Event\s+: command/);
      });

      it('chassis bootdev pxe, read back with chassis bootparam get 5', async () => {
        const r = await ipmitool(nic, suite, 'chassis', 'bootdev', 'pxe');
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), 'Set Boot Device to pxe');
        assert.match((await ipmitool(nic, suite, 'chassis', 'bootparam', 'get', '5')).stdout, /Boot Device Selector : Force PXE/);
        assert.equal((await status(nic)).ipmi.bootFlags.device, 'pxe');
      });

      it('mc info', async () => {
        const r = await ipmitool(nic, suite, 'mc', 'info');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /Device ID\s+: 32/);
        assert.match(r.stdout, /IPMI Version\s+: 2\.0/);
        assert.match(r.stdout, /Chassis Device/);
      });

      it('channel getciphers ipmi: suites 3 and 17, nothing else', async () => {
        const r = await ipmitool(nic, suite, 'channel', 'getciphers', 'ipmi');
        assert.equal(r.code, 0, r.stderr);
        const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
        assert.deepEqual(rows, [['3', 'N/A', 'hmac_sha1', 'hmac_sha1_96', 'aes_cbc_128'], ['17', 'N/A', 'hmac_sha256', 'sha256_128', 'aes_cbc_128']]);
      });

      it('nic-emulator status: every session the tool opened is closed; nothing dropped or refused', async () => {
        const s = await status(nic);
        assert.equal(s.ipmi.lanplus, true);
        assert.deepEqual(s.ipmi.sessions, []);
        const c = s.ipmi.counters;
        assert.equal(c.sessions.activated, c.sessions.closed);
        assert.ok(c.sessions.activated >= 10, JSON.stringify(c.sessions));
        assert.deepEqual(Object.entries(c.refused).filter(([, v]) => v), []);
        assert.deepEqual(Object.entries(c.dropped).filter(([, v]) => v), []);
        assert.deepEqual(Object.entries(s.counters.dropped).filter(([, v]) => v), [], 'the ASF firmware dropped nothing');
        const line = await lab.emulatorCli(['status', `nic-${nic}`]);
        assert.match(line.stdout, /ipmi=on users=2 sessions=0 ipmi-refused=0 ipmi-dropped=0/);
      });
    });
  }

  describe('FreeIPMI -D LAN_2_0 (nic-3)', () => {
    const ipmipower = (suite: string, op: string) =>
      tool('ipmipower', ['-D', 'LAN_2_0', '-I', suite, '-h', addr(3), '-u', 'admin', '-p', 'secret-pw', op]);

    for (const suite of ['3', '17']) {
      it(`ipmipower -I ${suite} --stat | --off | --on | --cycle`, async () => {
        const from = (await execLog(3)).length;
        const out = async (op: string) => (await ipmipower(suite, op)).stdout.trim();
        assert.equal(await out('--stat'), `${addr(3)}: on`);
        assert.equal(await out('--off'), `${addr(3)}: ok`);
        assert.equal((await status(3)).host, 'off');
        assert.equal(await out('--stat'), `${addr(3)}: off`);
        assert.equal(await out('--on'), `${addr(3)}: ok`);
        await waitHost(3, 'up');
        assert.equal(await out('--cycle'), `${addr(3)}: ok`);
        assert.equal((await status(3)).host, 'pre-boot');
        await waitHost(3, 'up');
        assert.equal(await out('--stat'), `${addr(3)}: on`);
        assert.deepEqual((await ipmiEntries(3, from)).map((e) => e[0]), ['power-down', 'power-up', 'power-cycle']);
      });

      it(`bmc-info -I ${suite}`, async () => {
        const r = await tool('bmc-info', ['-D', 'LAN_2_0', '-I', suite, '-h', addr(3), '-u', 'admin', '-p', 'secret-pw']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /Device ID\s+: 32/);
        assert.match(r.stdout, /IPMI Version\s+: 2\.0/);
        const st = await status(3);
        assert.equal(st.systemGuid, systemUuidText(st.serial), 'status shows the GUID of the NIC\'s serial');
        assert.match(r.stdout, new RegExp(`System GUID : ${st.systemGuid}\n`), 'the NIC\'s own version 5 UUID, of its EEPROM serial');
        assert.match(r.stdout, /Channel Number\s+: 1\s+Medium Type\s+: 802\.3 LAN/);
      });
    }

    it('an operator user gets power control at -L OPERATOR (ipmitool) and by default (ipmipower)', async () => {
      const r = await tool('ipmitool', ['-I', 'lanplus', '-H', addr(3), '-U', 'oper', '-P', 'op-pw', '-C', '17', '-L', 'OPERATOR', '-N', '1', '-R', '2', 'chassis', 'power', 'status']);
      assert.equal(r.stdout.trim(), 'Chassis Power is on', r.stderr);
      assert.equal((await tool('ipmipower', ['-D', 'LAN_2_0', '-h', addr(3), '-u', 'oper', '-p', 'op-pw', '--stat'])).stdout.trim(), `${addr(3)}: on`);
    });
  });

  describe('refusals (nic-4): -C 0, a wrong password, an unknown user, IPMI 1.5', () => {
    const lanplus = (user: string, pass: string, ...rest: string[]) =>
      tool('ipmitool', ['-I', 'lanplus', '-H', addr(4), '-U', user, '-P', pass, '-N', '1', '-R', '1', ...rest, 'chassis', 'power', 'off']);

    it('ipmitool -C 0: no matching cipher suite (cipher zero, CVE-2013-4782)', async () => {
      const r = await lanplus('admin', 'secret-pw', '-C', '0');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /no matching cipher suite/);
    });

    it('ipmitool with a wrong password: no session (RAKP 2 does not verify at the client)', async () => {
      const r = await lanplus('admin', 'wrong-pw', '-C', '17');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Unable to establish IPMI v2 \/ RMCP\+ session/);
    });

    it('ipmitool with an unknown user: unauthorized name', async () => {
      const r = await lanplus('nobody', 'x', '-C', '3', '-v');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /unauthorized name/);
    });

    it('ipmitool -I lan (IPMI 1.5): no IPMI 1.5 session', async () => {
      const r = await tool('ipmitool', ['-I', 'lan', '-H', addr(4), '-U', 'admin', '-P', 'secret-pw', '-N', '1', '-R', '1', 'chassis', 'power', 'off']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Unable to establish IPMI v1\.5 \/ RMCP session/);
    });

    it('FreeIPMI: password invalid, username invalid, and its default IPMI 1.5 driver refused', async () => {
      const stat = (...a: string[]) => tool('ipmipower', ['-h', addr(4), ...a, '--stat']).then((r) => r.stdout.trim());
      assert.equal(await stat('-D', 'LAN_2_0', '-u', 'admin', '-p', 'wrong-pw'), `${addr(4)}: password invalid`);
      assert.equal(await stat('-D', 'LAN_2_0', '-u', 'nobody', '-p', 'x'), `${addr(4)}: username invalid`);
      assert.equal(await stat('-u', 'admin', '-p', 'secret-pw'), `${addr(4)}: authentication type unavailable for attempted privilege level`);
    });

    it('each refusal is counted in nic-emulator status; no session opened and the host never moved', async () => {
      const s = await status(4);
      const c = s.ipmi.counters;
      assert.equal(c.refused['cipher-0'], 1);
      assert.equal(c.refused['unknown-user'], 2);
      assert.ok(c.refused['ipmi-1.5'] >= 2, JSON.stringify(c.refused));
      assert.equal(c.sessions.activated, 0);
      assert.equal(s.host, 'up');
      assert.deepEqual(await execLog(4), []);
      assert.match((await lab.emulatorCli(['status', 'nic-4'])).stdout, /ipmi-refused=\d+ \(cipher-0=1,unknown-user=2,ipmi-1\.5=\d+\)/);
    });
  });

  describe('lanplus is a per-NIC EEPROM setting: off answers no IPMI; the control API turns it on', () => {
    it('ipmi-users nic-4 --off: ipmitool gets no answer, the datagrams are counted as disregarded', async () => {
      const off = await lab.emulatorCli(['ipmi-users', 'nic-4', '--off']);
      assert.equal(off.code, 0, off.stderr);
      assert.equal(off.stdout.trim(), 'nic-4: lanplus off, no IPMI users');
      const r = await tool('ipmitool', ['-I', 'lanplus', '-H', addr(4), '-U', 'admin', '-P', 'secret-pw', '-C', '17', '-N', '1', '-R', '1', 'chassis', 'power', 'status']);
      assert.notEqual(r.code, 0);
      const s = await status(4);
      assert.equal(s.ipmi.lanplus, false);
      assert.ok(s.counters.dropped.class >= 1, JSON.stringify(s.counters.dropped));
      assert.match((await lab.emulatorCli(['status', 'nic-4'])).stdout, /\n  ipmi=off\n/);
    });

    it('ipmi-users nic-4 --ipmi-user lab:...: only that user gets in, and only on nic-4', async () => {
      const on = await lab.emulatorCli(['ipmi-users', 'nic-4', '--ipmi-user', 'lab:Lab-pw-4:operator', '--json']);
      assert.equal(on.code, 0, on.stderr);
      assert.deepEqual(on.json, { ok: true, nic: 'nic-4', lanplus: true, users: [{ name: 'lab', privilege: 'operator' }] });
      const r = await tool('ipmitool', ['-I', 'lanplus', '-H', addr(4), '-U', 'lab', '-P', 'Lab-pw-4', '-L', 'OPERATOR', '-C', '17', '-N', '1', '-R', '2', 'chassis', 'power', 'status']);
      assert.equal(r.stdout.trim(), 'Chassis Power is on', r.stderr);
      assert.notEqual((await tool('ipmitool', ['-I', 'lanplus', '-H', addr(4), '-U', 'admin', '-P', 'secret-pw', '-C', '17', '-N', '1', '-R', '1', 'chassis', 'power', 'status'])).code, 0);
      assert.notEqual((await tool('ipmitool', ['-I', 'lanplus', '-H', addr(3), '-U', 'lab', '-P', 'Lab-pw-4', '-C', '17', '-N', '1', '-R', '1', 'chassis', 'power', 'status'])).code, 0);
    });

    it('bad users through the control API are E_USAGE (exit 2) and change nothing; the password is never echoed', async () => {
      const r = await lab.emulatorCli(['ipmi-users', 'nic-4', '--ipmi-user', 'bad name:hunter22']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /E_USAGE/);
      assert.doesNotMatch(r.stderr, /hunter22/);
      assert.deepEqual((await status(4)).ipmi.users, [{ name: 'lab', privilege: 'operator', enabled: true }]);
    });

    it('the users live in the EEPROM: a restart without --ipmi-user keeps each NIC\'s own; one with it gives every NIC the fleet\'s', async () => {
      const fleetArgs = lab.startArgs;
      await lab.stopEmulator();
      await lab.startEmulator(fleetArgs.filter((a, i, all) => a !== '--ipmi-user' && all[i - 1] !== '--ipmi-user'));
      assert.deepEqual((await status(4)).ipmi.users, [{ name: 'lab', privilege: 'operator', enabled: true }]);
      assert.equal((await status(1)).ipmi.users.length, 2);
      assert.equal((await ipmitool(1, '17', 'chassis', 'power', 'status')).stdout.trim(), 'Chassis Power is on');
      const writes = (await status(1)).eepromWrites.byRegion.ipmiUsers;
      await lab.stopEmulator();
      await lab.startEmulator(fleetArgs);
      assert.deepEqual((await status(4)).ipmi.users.map((u: any) => u.name), ['admin', 'oper']);
      assert.equal((await status(1)).eepromWrites.byRegion.ipmiUsers, writes, 'a NIC that holds the fleet\'s users is not written again');
    });
  });

  describe("the station's view: lanplus and the secure path drive one host", () => {
    it('ipmitool power off -> mgmt-station state reads S5; a secure power-up -> ipmitool reads on', async () => {
      await lab.station(['sa', 'manual', 'nic-1']);
      assert.equal((await lab.station(['state', 'nic-1'])).response.systemState, 0);
      assert.equal((await ipmitool(1, '17', 'chassis', 'power', 'off')).stdout.trim(), 'Chassis Power Control: Down/Off');
      assert.equal((await lab.station(['state', 'nic-1'])).response.systemState, 5, 'S5: the host lanplus powered down');
      await lab.station(['power-up', 'nic-1']);
      assert.equal((await ipmitool(1, '17', 'chassis', 'power', 'status')).stdout.trim(), 'Chassis Power is on');
      const log = await execLog(1);
      assert.deepEqual(log.slice(-2).map((e) => [e.via, e.command, e.hostBefore, e.hostAfter]), [['ipmi', 'power-down', 'up', 'off'], ['secure', 'power-up', 'off', 'pre-boot']]);
    });
  });

  describe('tshark dissects every RMCP+ packet of the sessions without a malformed one', () => {
    let capture: Capture | null = null;
    after(() => capture?.kill());

    it('ipmitool -C 17 and -C 3, ipmipower: RMCP class 7, RMCP+ session headers, every set-up payload type', async () => {
      const pcap = join(lab.dir, 'lanplus.pcap');
      capture = await Capture.start(pcap, `udp port 623 and host ${addr(2)}`);
      for (const suite of ['17', '3']) assert.equal((await ipmitool(2, suite, 'chassis', 'status')).code, 0);
      assert.equal((await tool('ipmipower', ['-D', 'LAN_2_0', '-h', addr(2), '-u', 'admin', '-p', 'secret-pw', '--stat'])).code, 0);
      await capture.stop();
      capture = null;
      const rows = await tsharkFields(pcap, ['-d', 'udp.port==623,rmcp'], ['frame.number', 'rmcp.class', 'ipmi_session.authtype', 'ipmi_session.payloadtype', '_ws.malformed', '_ws.expert.severity']);
      assert.ok(rows.length >= 40, `${rows.length} frames captured`);
      for (const r of rows) {
        assert.equal(r['_ws.malformed'], '', `frame ${r['frame.number']} is malformed`);
        assert.equal(r['rmcp.class'], '0x07', `frame ${r['frame.number']} is RMCP class 7`);
      }
      const types = new Set(rows.filter((r) => r['ipmi_session.authtype'] === '0x06').map((r) => r['ipmi_session.payloadtype']));
      assert.deepEqual([...types].sort(), ['0x00', '0x10', '0x11', '0x12', '0x13', '0x14', '0x15']);
    });
  });
});
