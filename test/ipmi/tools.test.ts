/**
 * The real tools against the lanplus responder over UDP 623 on loopback (issue 18): ipmitool 1.8.19
 * (`-I lanplus`, suites 17 and 3) and FreeIPMI 1.6.10 (ipmipower, bmc-info with `-D LAN_2_0`), through the
 * test shell (test/support/ipmi-lan-shell.ts) that applies host commands as the NIC will. Each tool run is
 * bounded; a missing tool skips its tests with the reason. tshark dissects a recorded session without a
 * malformed packet, and the dictionary loop of rakp-offline-attack.test.ts works on the real ipmitool's RAKP 1/2.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpmiLanShell } from '../support/ipmi-lan-shell.js';
import { Capture, capturedDatagrams, hasBinary, tsharkFields } from '../support/tshark.js';
import { recoverRakpPassword } from '../../scripts/rakp-dictionary.js';
import type { IpmiUser } from '../../firmware/ipmi/users.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const USERS: IpmiUser[] = [
  { name: 'admin', password: 'secret-pw', privilege: 'administrator', enabled: true },
  { name: 'oper', password: 'op-pw', privilege: 'operator', enabled: true },
];
const GUID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

interface Run { code: number | null; stdout: string; stderr: string; ms: number }

/** Runs a tool to completion or kills it after `timeoutMs`; never rejects. */
function run(cmd: string, args: string[], timeoutMs = 20000): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', env: { ...process.env, HOME: tmpdir() } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), ms: Date.now() - t0 });
    });
  });
}

function needs(ctx: Mocha.Context, ...tools: string[]): void {
  if (!isRoot) {
    console.log('      (skipped: binding UDP 623, the port the tools talk to, needs root)');
    ctx.skip();
  }
  for (const t of tools) {
    if (!hasBinary(t)) {
      console.log(`      (skipped: ${t} is not installed; apt-get install ${t === 'ipmitool' ? 'ipmitool' : t === 'tshark' ? 'tshark' : 'freeipmi-tools'})`);
      ctx.skip();
    }
  }
}

async function withShell<T>(address: string, f: (shell: IpmiLanShell) => Promise<T>): Promise<T> {
  const shell = await IpmiLanShell.start({ address, lan: { users: USERS, guid: GUID }, initialState: 'up', bootDelayMs: 100 });
  try {
    return await f(shell);
  } finally {
    await shell.close();
  }
}

describe('real tools against the lanplus responder (UDP 623 on 127.0.77.0/24)', function () {
  this.timeout(60000);

  for (const suite of ['17', '3']) {
    describe(`ipmitool -I lanplus -C ${suite}`, () => {
      const address = suite === '17' ? '127.0.77.31' : '127.0.77.32';
      let shell: IpmiLanShell;
      const ipmitool = (...args: string[]) => run('ipmitool', ['-I', 'lanplus', '-H', address, '-U', 'admin', '-P', 'secret-pw', '-C', suite, '-N', '1', '-R', '2', ...args]);

      before(async function () {
        needs(this, 'ipmitool');
        shell = await IpmiLanShell.start({ address, lan: { users: USERS, guid: GUID }, initialState: 'up', bootDelayMs: 100 });
      });
      after(async () => shell?.close());

      it('chassis power status | off | on | cycle | reset move the host as the ASF commands do', async () => {
        let r = await ipmitool('chassis', 'power', 'status');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /Chassis Power is on/);
        r = await ipmitool('chassis', 'power', 'off');
        assert.match(r.stdout, /Chassis Power Control: Down\/Off/);
        assert.equal(shell.state, 'off');
        assert.match((await ipmitool('chassis', 'power', 'status')).stdout, /Chassis Power is off/);
        assert.match((await ipmitool('chassis', 'power', 'on')).stdout, /Chassis Power Control: Up\/On/);
        assert.notEqual(shell.state, 'off');
        assert.match((await ipmitool('chassis', 'power', 'cycle')).stdout, /Chassis Power Control: Cycle/);
        assert.match((await ipmitool('chassis', 'power', 'reset')).stdout, /Chassis Power Control: Reset/);
        assert.deepEqual(shell.applied.map((a) => [a.command, a.ipmi, a.user]), [
          ['power-down', 'chassis control: power down', 'admin'],
          ['power-up', 'chassis control: power up', 'admin'],
          ['power-cycle', 'chassis control: power cycle', 'admin'],
          ['reset', 'chassis control: hard reset', 'admin'],
        ]);
        assert.match((await ipmitool('chassis', 'power', 'status')).stdout, /Chassis Power is on/);
      });

      it('chassis status', async () => {
        const r = await ipmitool('chassis', 'status');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /System Power\s+: on/);
        assert.match(r.stdout, /Power Restore Policy\s+: always-off/);
      });

      it('chassis bootdev pxe (kept in RAM, read back with chassis bootparam get 5)', async () => {
        const r = await ipmitool('chassis', 'bootdev', 'pxe');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /Set Boot Device to pxe/);
        assert.equal((shell.lan.status().bootFlags as { device: string }).device, 'pxe');
        assert.match((await ipmitool('chassis', 'bootparam', 'get', '5')).stdout, /Boot Device Selector : Force PXE/);
      });

      it('mc info', async () => {
        const r = await ipmitool('mc', 'info');
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /IPMI Version\s+: 2\.0/);
        assert.match(r.stdout, /Device ID\s+: 32/);
        assert.match(r.stdout, /Chassis Device/);
      });

      it('channel getciphers ipmi lists suites 3 and 17 only', async () => {
        const r = await ipmitool('channel', 'getciphers', 'ipmi');
        assert.equal(r.code, 0, r.stderr);
        const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
        assert.deepEqual(rows, [['3', 'N/A', 'hmac_sha1', 'hmac_sha1_96', 'aes_cbc_128'], ['17', 'N/A', 'hmac_sha256', 'sha256_128', 'aes_cbc_128']]);
      });

      it('every session it opened is closed again', () => {
        assert.deepEqual(shell.lan.status().sessions, []);
        assert.equal(shell.lan.counters.sessions.activated, shell.lan.counters.sessions.closed);
        assert.equal(shell.lan.counters.dropped.integrity + shell.lan.counters.dropped.replay + shell.lan.counters.dropped.malformed, 0);
      });
    });
  }

  describe('ipmitool refusals', () => {
    const address = '127.0.77.33';
    let shell: IpmiLanShell;
    before(async function () {
      needs(this, 'ipmitool');
      shell = await IpmiLanShell.start({ address, lan: { users: USERS, guid: GUID }, initialState: 'up' });
    });
    after(async () => shell?.close());
    const lanplus = (user: string, pass: string, ...rest: string[]) =>
      run('ipmitool', ['-I', 'lanplus', '-H', address, '-U', user, '-P', pass, '-N', '1', '-R', '1', ...rest, 'chassis', 'power', 'off']);

    it('-C 0 (cipher suite 0) is refused with "no matching cipher suite"', async () => {
      const r = await lanplus('admin', 'secret-pw', '-C', '0');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /no matching cipher suite/);
      assert.equal(shell.lan.counters.refused['cipher-0'], 1);
    });

    it('a wrong password never gets a session (ipmitool sees RAKP 2 fail and stops)', async () => {
      const r = await lanplus('admin', 'wrong-pw', '-C', '17');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Unable to establish IPMI v2 \/ RMCP\+ session/);
    });

    it('an unknown user is refused in RAKP 2 (unauthorized name)', async () => {
      const r = await lanplus('nobody', 'x', '-C', '3', '-v');
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /unauthorized name/);
      assert.equal(shell.lan.counters.refused['unknown-user'], 1);
    });

    it('-I lan (IPMI 1.5) is refused: no IPMI 1.5 authentication type is offered', async () => {
      const r = await run('ipmitool', ['-I', 'lan', '-H', address, '-U', 'admin', '-P', 'secret-pw', '-N', '1', '-R', '1', 'chassis', 'power', 'off']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Unable to establish IPMI v1\.5 \/ RMCP session/);
      assert.ok(shell.lan.counters.refused['ipmi-1.5'] >= 1);
    });

    it('none of them opened a session or moved the host', () => {
      assert.equal(shell.lan.counters.sessions.activated, 0);
      assert.equal(shell.applied.length, 0);
      assert.equal(shell.state, 'up');
    });
  });

  describe('FreeIPMI ipmipower and bmc-info -D LAN_2_0', () => {
    const address = '127.0.77.34';
    let shell: IpmiLanShell;
    before(async function () {
      needs(this, 'ipmipower', 'bmc-info');
      shell = await IpmiLanShell.start({ address, lan: { users: USERS, guid: GUID }, initialState: 'up', bootDelayMs: 100 });
    });
    after(async () => shell?.close());
    const ipmipower = (...args: string[]) => run('ipmipower', ['-D', 'LAN_2_0', '-h', address, '-u', 'admin', '-p', 'secret-pw', ...args]);

    for (const suite of ['3', '17']) {
      it(`ipmipower -I ${suite} --stat | --off | --on | --cycle`, async () => {
        const before = shell.applied.length;
        assert.equal((await ipmipower('-I', suite, '--stat')).stdout.trim(), `${address}: on`);
        assert.equal((await ipmipower('-I', suite, '--off')).stdout.trim(), `${address}: ok`);
        assert.equal(shell.state, 'off');
        assert.equal((await ipmipower('-I', suite, '--stat')).stdout.trim(), `${address}: off`);
        assert.equal((await ipmipower('-I', suite, '--on')).stdout.trim(), `${address}: ok`);
        assert.equal((await ipmipower('-I', suite, '--cycle')).stdout.trim(), `${address}: ok`);
        assert.deepEqual(shell.applied.slice(before).map((a) => a.command), ['power-down', 'power-up', 'power-cycle']);
        assert.equal((await ipmipower('-I', suite, '--stat')).stdout.trim(), `${address}: on`);
      });

      it(`bmc-info -I ${suite}`, async () => {
        const r = await run('bmc-info', ['-D', 'LAN_2_0', '-I', suite, '-h', address, '-u', 'admin', '-p', 'secret-pw']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /IPMI Version\s+: 2\.0/);
        assert.match(r.stdout, /Chassis Device\s+: supported/);
        // FreeIPMI prints the GUID's 16 bytes in reverse byte order, as RFC 4122 fields
        assert.match(r.stdout, /System GUID : afaeadac-abaa-a9a8-a7a6-a5a4a3a2a1a0/);
        // Its channel list shows ours first; bmc-info 1.6.10 prints uninitialised entries after a channel that
        // answered an error (bmc-info.c get_channel_info_list), so only our entry is checked.
        assert.match(r.stdout, /Channel Number\s+: 1\s+Medium Type\s+: 802\.3 LAN/);
      });
    }

    it('refusals: a wrong password, an unknown user, and FreeIPMI\'s default IPMI 1.5 driver', async () => {
      const wrong = await run('ipmipower', ['-D', 'LAN_2_0', '-h', address, '-u', 'admin', '-p', 'wrong-pw', '--stat']);
      assert.equal(wrong.stdout.trim(), `${address}: password invalid`);
      const unknown = await run('ipmipower', ['-D', 'LAN_2_0', '-h', address, '-u', 'nobody', '-p', 'x', '--stat']);
      assert.equal(unknown.stdout.trim(), `${address}: username invalid`);
      const lan15 = await run('ipmipower', ['-h', address, '-u', 'admin', '-p', 'secret-pw', '--stat']);
      assert.equal(lan15.stdout.trim(), `${address}: authentication type unavailable for attempted privilege level`);
      assert.ok(shell.lan.counters.refused['ipmi-1.5'] >= 1);
      assert.equal(shell.lan.counters.refused['unknown-user'], 1);
    });

    it('every session it opened is closed again', () => {
      assert.deepEqual(shell.lan.status().sessions, []);
    });
  });

  describe('tshark dissects a recorded RMCP+ session', () => {
    const address = '127.0.77.35';
    let dir = '';
    let capture: Capture | null = null;
    before(function () {
      needs(this, 'ipmitool', 'ipmipower', 'tshark');
      dir = mkdtempSync(join(tmpdir(), 'lifeline-ipmi-'));
    });
    after(() => {
      capture?.kill();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('every RMCP+ packet of ipmitool (suites 17 and 3) and ipmipower dissects with no malformed packet; RAKP 1/2 give the password away', async () => {
      const pcap = join(dir, 'lanplus.pcap');
      await withShell(address, async () => {
        capture = await Capture.start(pcap, `udp port 623 and host ${address}`);
        for (const suite of ['17', '3']) {
          const r = await run('ipmitool', ['-I', 'lanplus', '-H', address, '-U', 'admin', '-P', 'secret-pw', '-C', suite, 'chassis', 'status']);
          assert.equal(r.code, 0, r.stderr);
        }
        assert.equal((await run('ipmipower', ['-D', 'LAN_2_0', '-h', address, '-u', 'admin', '-p', 'secret-pw', '--stat'])).code, 0);
        await capture.stop();
        capture = null;
      });
      const rows = await tsharkFields(pcap, ['-d', 'udp.port==623,rmcp'], ['frame.number', 'rmcp.class', 'ipmi_session.authtype', 'ipmi_session.payloadtype', '_ws.malformed']);
      assert.ok(rows.length >= 40, `${rows.length} frames captured`);
      for (const r of rows) {
        assert.equal(r['_ws.malformed'], '', `frame ${r['frame.number']} is malformed`);
        assert.equal(r['rmcp.class'], '0x07', `frame ${r['frame.number']} is RMCP class 7`);
      }
      const types = new Set(rows.filter((r) => r['ipmi_session.authtype'] === '0x06').map((r) => r['ipmi_session.payloadtype']));
      assert.deepEqual([...types].sort(), ['0x00', '0x10', '0x11', '0x12', '0x13', '0x14', '0x15']);

      // CVE-2013-4786 on the real client's traffic: the first RAKP 1 and the RAKP 2 that answers it
      const dgrams = await capturedDatagrams(pcap);
      const rakp1 = dgrams.find((d) => d.payload[4] === 0x06 && d.payload[5] === 0x12)!;
      const rakp2 = dgrams.find((d) => d.frame > rakp1.frame && d.payload[4] === 0x06 && d.payload[5] === 0x13)!;
      assert.equal(recoverRakpPassword({ rakp1: rakp1.payload, rakp2: rakp2.payload }, ['admin', 'password', 'calvin', 'secret-pw'])?.password, 'secret-pw');
    });
  });
});
