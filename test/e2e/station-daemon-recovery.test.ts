/**
 * The daemon recovers by itself from the two restarts it cannot see coming:
 * - the host rebooted (its host agent forgot the daemon's IKE SA): the next refresh through the daemon falls back
 *   to a new IKE SA within the daemon's 5 s refresh timeout (mgmt-station/key-exchange.ts);
 * - the emulator restarted on its data directory (the NIC resumes above its checkpoint block and drops the
 *   daemon's next sequence numbers as replays): a daemon with a short --poll-interval (150 ms: one or two
 *   attempts per poll) jumps its sequence number after two unanswered attempts in a row, across polls, and its
 *   polls are answered again without any user command (mgmt-station/core/session.ts);
 * - the NIC was keyed behind the daemon's back (here a station with its own store keys it by hand and uses the SA):
 *   the NIC drops the daemon's packets (unknown SPI), and after three unanswered polls the daemon runs a key
 *   exchange with the host by itself (mgmt-station/daemon.ts, UNANSWERED_POLLS_BEFORE_REKEY).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, stopAllStations, writePskFile } from '../support/station-daemon.js';

describe('e2e station daemon: recovers from a host reboot and an emulator restart by itself', function () {
  this.timeout(60000);
  let lab: Lab;
  before(async () => {
    lab = new Lab('station-recovery');
    await lab.startEmulator(['--nics', '1']);
    await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file]);
  });
  afterEach(async () => {
    await stopAllStations();
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  it('host rebooted between two refreshes: the second, through the daemon with the default timeout, succeeds via IKE_AUTH', async () => {
    await StationDaemon.start(lab, ['--poll-interval', '1000']);
    assert.equal((await lab.run(['refresh', 'nic-1'])).code, 0, 'the daemon makes its IKE SA');
    const first = await lab.run(['refresh', 'nic-1', '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.json.exchange, 'CREATE_CHILD_SA', 'the daemon holds an IKE SA');
    await lab.host('nic-1', 'crash');
    await waitFor('the host up again', async () => (await lab.nic('nic-1')).host === 'up', 10000);
    const t0 = Date.now();
    const second = await lab.run(['refresh', 'nic-1', '--json']);
    const ms = Date.now() - t0;
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.json.exchange, 'IKE_AUTH');
    assert.equal(second.json.generation, first.json.generation + 1);
    assert.ok(ms < 5000 + 2000, `took ${ms} ms`);
  });

  it('emulator restarted on its data directory: a 150 ms-poll daemon is answered again within seconds, no user command', async () => {
    const d = await StationDaemon.start(lab, ['--poll-interval', '150', '--lease-ms', '500']);
    await waitFor('the daemon polling nic-1', async () => (await d.status()).nics.find((n) => n.id === 'nic-1' && n.host === 'S0' && n.lastError === null), 5000);
    await lab.restartEmulator('SIGKILL');
    const accepted = async () => (await lab.nic('nic-1')).counters.accepted.secure as number;
    const a0 = await accepted();
    await waitFor('the NIC to accept the daemon\'s polls again', async () => (await accepted()) >= a0 + 3, 8000, 100);
    await waitFor('the daemon to see the NIC answer', async () => (await d.status()).nics.find((n) => n.id === 'nic-1' && n.lastError === null), 3000);
    const replays = (await lab.nic('nic-1')).counters.dropped.replay ?? 0;
    assert.ok(replays <= 4, `the NIC dropped ${replays} polls as replays before the jump`);
  });

  it('the NIC keyed behind the daemon\'s back: after three unanswered polls the daemon re-keys it through the host, no user command', async () => {
    const d = await StationDaemon.start(lab, ['--poll-interval', '200', '--lease-ms', '1000', '--timeout', '5000']);
    await waitFor('the daemon polling nic-1', async () => (await d.status()).nics.find((n) => n.id === 'nic-1' && n.host === 'S0' && n.lastError === null), 5000);
    const before = await lab.nic('nic-1');
    // A station with its own store keys nic-1 by hand and uses the SA once: the NIC retires the daemon's SA.
    const elsewhere = { store: 'sqlite:' + join(lab.dir, 'elsewhere.db') };
    const manual = await lab.run(['sa', 'manual', 'nic-1', '--id', 'elsewhere', '--json'], elsewhere);
    assert.equal(manual.code, 0, manual.stderr);
    const used = await lab.run(['state', 'nic-1', '--id', 'elsewhere'], elsewhere);
    assert.equal(used.code, 0, used.stderr);
    const keyed = await lab.nic('nic-1');
    assert.deepEqual([keyed.sa.active.generation, keyed.sa.previous], [manual.json.generation, null], 'the NIC holds only the SA made elsewhere');
    const t0 = Date.now();
    const st = await waitFor('a new SA from the daemon\'s key exchange', async () => {
      const s = await lab.nic('nic-1');
      return s.sa.active.generation > manual.json.generation && s;
    }, 12000, 100);
    const ms = Date.now() - t0;
    assert.ok((st.counters.dropped.spi ?? 0) > (before.counters.dropped.spi ?? 0), 'the NIC dropped the daemon\'s polls under the replaced SA (unknown SPI)');
    const status = await waitFor('the daemon answered again', async () => {
      const s = await d.status();
      const n = s.nics.find((x: { id: string }) => x.id === 'nic-1');
      return n?.host === 'S0' && n.lastError === null && n;
    }, 5000);
    assert.ok(status.refreshes >= 1);
    console.log(`      re-keyed ${ms} ms after the manual SA (generation ${manual.json.generation} -> ${st.sa.active.generation})`);
  });
});
