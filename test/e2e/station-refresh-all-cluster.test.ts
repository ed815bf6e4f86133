/**
 * `refresh all` in a cluster: it means the enrolled NICs this station owns or can take. A NIC whose lease another
 * live station holds is that station's to refresh: skipped and counted, not tried (it would only end E_FENCED and
 * exit 1). The same run here and forwarded to the daemon; failures carry their error code (docs/STATION.md).
 */
import assert from 'node:assert/strict';
import { Lab } from '../support/lab.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';

describe('e2e station: refresh all skips the NICs another live station owns', function () {
  this.timeout(60000);
  let lab: Lab;
  before(async () => {
    lab = new Lab('station-refresh-all');
    await lab.startEmulator(['--nics', '2']);
    const psk = writePskFile(lab).file;
    // Short leases for the enrolment, so that station B can take nic-2 right after.
    await lab.station(['enroll', 'all', '--psk-file', psk, '--lease-ms', '300']);
    await new Promise((r) => setTimeout(r, 400));
    // Station B owns nic-2 for a minute (a CLI verb's lease outlives its process).
    const b = await lab.run(['--id', 'B', '--lease-ms', '60000', 'state', 'nic-2']);
    assert.equal(b.code, 0, b.stderr);
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  it('here: nic-1 refreshed, nic-2 skipped as B\'s, exit 0', async () => {
    const r = await lab.run(['refresh', 'all', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.ok, r.json.nics, r.json.failed, r.json.skipped], [true, 1, [], [{ nic: 'nic-2', owner: 'B' }]]);
    const text = await lab.run(['refresh', 'all']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^refresh: 1\/1 NICs in [\d.]+ s, 1 skipped \(owned by station 'B'\)\n$/);
  });

  it('through the daemon: the same, [via daemon]', async () => {
    await StationDaemon.start(lab, ['--poll-interval', '1000', '--lease-ms', '5000']);
    const r = await lab.run(['refresh', 'all', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([r.json.ok, r.json.nics, r.json.failed, r.json.skipped, r.json.viaDaemon], [true, 1, [], [{ nic: 'nic-2', owner: 'B' }], true]);
    const text = await lab.run(['refresh', 'all']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^refresh: 1\/1 NICs in [\d.]+ s, 1 skipped \(owned by station 'B'\) \[via daemon\]\n$/);
  });

  it('a NIC that fails says its error code (stderr line and failed[].code)', async () => {
    await lab.host('nic-1', 'hang');
    try {
      const r = await lab.run(['refresh', 'all', '--json', '--timeout', '500'], { timeoutMs: 30000 });
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.json.failed.length, 1);
      assert.equal(r.json.failed[0].nic, 'nic-1');
      assert.equal(r.json.failed[0].code, 'E_IKE_TIMEOUT');
      const text = await lab.run(['refresh', 'all', '--timeout', '500'], { timeoutMs: 30000 });
      assert.equal(text.code, 1);
      assert.match(text.stderr, /^mgmt-station: nic-1: E_IKE_TIMEOUT: /);
    } finally {
      await lab.host('nic-1', 'wake');
    }
  });
});
