/**
 * Fleet-wide key management (issue 3: enrol or refresh many NICs, progress on a TTY): `enroll all` and
 * `refresh all` key every NIC of the emulator and report one summary line (JSON here).
 */
import assert from 'node:assert/strict';
import { Lab } from '../support/lab.js';
import { writePskFile } from '../support/station-daemon.js';

describe('e2e station: enroll all / refresh all', function () {
  this.timeout(60000);
  let lab: Lab;
  before(async () => {
    lab = new Lab('station-fleet');
    await lab.startEmulator(['--nics', '6']);
  });
  after(() => lab.cleanup());

  it('enrols and then refreshes every NIC of the emulator; every NIC ends on SA generation 2', async () => {
    const e = await lab.station(['enroll', 'all', '--psk-file', writePskFile(lab).file]);
    assert.deepEqual([e.ok, e.nics, e.failed], [true, 6, []]);
    const r = await lab.station(['refresh', 'all']);
    assert.deepEqual([r.ok, r.nics, r.failed], [true, 6, []]);
    const list = await lab.station(['list']);
    assert.equal(list.length, 6);
    for (const n of list) assert.deepEqual(n.sas.find((s: { state: string }) => s.state === 'active')?.generation, 2, n.id);
    for (let i = 1; i <= 6; i++) assert.equal((await lab.nic(`nic-${i}`)).sa.active.generation, 2);
  });

  it('reports the NICs it could not key and exits 1 (a hung host has no IKE agent)', async () => {
    await lab.host('nic-3', 'hang');
    const r = await lab.run(['refresh', 'all', '--json'], { timeoutMs: 40000 });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.nics, 6);
    assert.deepEqual(r.json.failed.map((f: { nic: string }) => f.nic), ['nic-3']);
    assert.match(r.json.failed[0].error, /E_IKE_TIMEOUT|did not finish|no answer/);
  });
});
