/**
 * Issue 2, acceptance 2: with the emulator running (address per NIC, standard ports, as root), FreeIPMI's
 * `rmcpping -c 3 <first NIC>` gets 3 pongs; and the fleet is visible through `nic-emulator status`.
 */
import assert from 'node:assert/strict';
import { EMULATOR, Lab, isRoot } from '../support/lab.js';
import { hasBinary } from '../support/tshark.js';

describe('e2e: an address-per-NIC fleet answers standard tools', function () {
  this.timeout(20000);
  let lab: Lab;

  before(async function () {
    if (!isRoot) this.skip(); // ports 623/664 on 127.x.y.z need root (port-per-NIC is tested in port-per-nic)
    lab = new Lab('basics');
    await lab.startEmulator(['--nics', '3']);
  });
  after(async () => lab?.cleanup());

  it('the ready line names the first and last NIC at port 623 and every NIC is running', () => {
    const r = lab.ready!;
    assert.equal(r.nics, 3);
    assert.equal(r.running, 3);
    assert.equal(r.failed, 0);
    const [a, b, c, d] = r.first.replace(/:623$/, '').split('.').map(Number);
    assert.match(r.first, /^127\.\d+\.\d+\.\d+:623$/);
    assert.equal(r.last, `${a}.${b}.${c}.${d + 2}:623`);
  });

  it('rmcpping -c 3 <first NIC address> receives 3 pongs and exits 0', async function () {
    if (!hasBinary('rmcpping')) this.skip(); // FreeIPMI (apt-get install freeipmi-tools) is not installed
    const address = lab.ready!.first.replace(/:623$/, '');
    const r = await lab.exec('rmcpping', ['-c', '3', address], { timeoutMs: 15000 });
    assert.equal(r.code, 0, `rmcpping failed: ${r.stdout}${r.stderr}`);
    assert.equal(r.stdout.match(/^pong received from /gm)?.length, 3, r.stdout);
    assert.match(r.stdout, /3 pings transmitted, 3 pongs received in time, 0\.0% packet loss/);
  });

  it('every rmcpping pong is counted as an accepted clear datagram, none dropped', async () => {
    const s = await lab.nic('nic-1');
    assert.ok(s.counters.accepted.clear >= 3, JSON.stringify(s.counters));
    assert.deepEqual(Object.entries(s.counters.dropped).filter(([, v]) => (v as number) > 0), []);
  });

  it('nic-emulator status --json lists every NIC with address, ports, host state, SAs, counters, EEPROM writes', async () => {
    const r = await lab.emulatorCli(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.json as any[];
    assert.deepEqual(rows.map((n) => n.id), ['nic-1', 'nic-2', 'nic-3']);
    for (const n of rows) {
      assert.equal(n.state, 'running');
      assert.equal(n.host, 'up');
      assert.equal(n.link, 'up');
      assert.deepEqual(n.ports, { clear: 623, secure: 664, ike: 500 });
      assert.equal(n.sa.active, null, 'no SA before keying');
      assert.equal(typeof n.eepromWrites.total, 'number');
      assert.equal(n.counters.refusedClear, 0);
    }
  });

  it('nic-emulator status (text) prints a header, one line per NIC and a summary', async () => {
    const r = await lab.emulatorCli(['status']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1 + 3 + 2, r.stdout);
    assert.match(lines[0], /^NIC +ADDRESS +HOST +LINK /);
    assert.match(lines[1], /^nic-1 +127\.\d+\.\d+\.\d+ +up +up /);
    assert.match(lines[4], /^3 NICs, 3 running, /);
  });

  it('nic-emulator with an unreachable control API fails with one line and exit code 3', async () => {
    const r = await lab.run(['status', '--control', '127.0.0.1:1'], { bin: EMULATOR });
    assert.equal(r.code, 3);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^nic-emulator: E_UNREACHABLE: cannot reach the emulator control API at 127\.0\.0\.1:1/);
  });

  it('a second emulator on a control address in use fails with one line, exit code 2', async () => {
    const r = await lab.run(['start', '--nics', '1', '--port-base', '29000', '--data-dir', `${lab.dir}/second`, '--control', lab.ready!.control], { bin: EMULATOR });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^nic-emulator: E_USAGE: control address .* is in use/);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});
