/**
 * Review M-D4: refreshes of one NIC asked of the daemon at the same time — by several users, and while the
 * daemon's own timer refreshes it — run one after another (DESIGN §2.5: the commit has one pending slot). Each
 * one succeeds with its own, newer SA generation; afterwards nothing is left 'pending', neither in the store
 * nor in the NIC's EEPROM, and commands go out under the newest SA.
 */
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../support/lab.js';
import { nicSa, stopAllStations, StationDaemon, writePskFile, type StationDaemon as Daemon } from '../support/station-daemon.js';
import { postVerb, storeSql } from '../support/cluster.js';

describe('e2e station: concurrent refreshes of one NIC through the daemon', function () {
  this.timeout(60000);
  let lab: Lab;
  let daemon: Daemon;

  before(async () => {
    lab = new Lab('station-concurrent-refresh');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
    // --refresh-interval 1: the daemon's timer refreshes too, so user refreshes meet timed ones.
    daemon = await StationDaemon.start(lab, ['--refresh-interval', '1', '--poll-interval', '150']);
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  const storeStates = async () =>
    (await storeSql(lab.store, `SELECT generation, state FROM sas WHERE nic = 'nic-1' ORDER BY generation`)).map((r) => `${Number(r.generation)}:${String(r.state)}`);

  for (const n of [3, 5]) {
    it(`${n} refreshes at once: all succeed, each with its own new generation; no SA left pending`, async () => {
      const results = await Promise.all(Array.from({ length: n }, () => postVerb(daemon.ready.control, 'nic-1', 'refresh', 40000)));
      for (const r of results) assert.equal(r.kind, 'ok', JSON.stringify(r));
      const gens = results.map((r) => (r as { body: { generation: number } }).body.generation);
      assert.equal(new Set(gens).size, n, `distinct generations: ${gens.join(' ')}`);
      // Nothing pending: on the NIC (its pending slot) and in the store, once the timer's refresh is through too.
      await waitFor('no SA pending on the NIC or in the store', async () => {
        const sa = await nicSa(lab, 'nic-1');
        const states = await storeStates();
        return sa.pending === null && !states.some((s) => s.endsWith(':pending')) ? true : null;
      }, 10000, 100);
      const st = await daemon.status();
      assert.equal(st.nics[0].lastError, null, 'the timed refresh did not fail either');
      const cmd = await daemon.verb('nic-1', 'power-up');
      assert.ok(cmd.generation >= Math.max(...gens), `the command went out under the newest SA (${cmd.generation})`);
    });
  }
});
