/**
 * RFC 4303 §3.3.3 / DESIGN §2.2: a sender whose counter would cycle stops using the SA and forces a refresh; it
 * never wraps. The station's store is set to "every sequence number of the active SA already claimed", through the
 * store's own API as station-1 (the row is sealed: an edit behind the store's back is refused as tampering).
 */
import assert from 'node:assert/strict';
import { Lab, waitFor } from '../support/lab.js';
import { StationDaemon, stopAllStations, withStore, writePskFile, nicSa } from '../support/station-daemon.js';

const MAX32 = '4294967295';

describe('e2e station: an exhausted SA is refreshed, never wrapped', function () {
  this.timeout(60000);
  let lab: Lab;
  before(async () => {
    lab = new Lab('seq-exhaustion');
    await lab.startEmulator(['--nics', '2']);
    const psk = writePskFile(lab).file;
    await lab.station(['enroll', 'nic-1', '--psk-file', psk]);
    await lab.station(['enroll', 'nic-2', '--psk-file', psk]);
  });
  after(async () => {
    await stopAllStations();
    await lab.cleanup();
  });

  const exhaust = (nic: string, generation: number) =>
    withStore(lab, async (store) => {
      const now = Date.now();
      const lease = await store.acquireLease(nic, 'station-1', now, 5000);
      assert.ok(lease.acquired);
      return store.claimOutbound(nic, generation, BigInt(MAX32), 1n, now, { station: 'station-1', epoch: lease.lease.epoch });
    });

  it('a command on an exhausted SA fails with E_SEQ_EXHAUSTED, sends nothing, and works again after a refresh', async () => {
    const gen = (await nicSa(lab, 'nic-1')).active!.generation;
    assert.equal(await exhaust('nic-1', gen), BigInt(MAX32));
    const before = (await lab.nic('nic-1')).counters;
    const r = await lab.run(['power-cycle', 'nic-1', '--json']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /E_SEQ_EXHAUSTED: nic-1: SA generation \d+ has used every sequence number .* mgmt-station refresh nic-1/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    const after1 = (await lab.nic('nic-1')).counters;
    assert.deepEqual([after1.accepted.secure, after1.executed], [before.accepted.secure, before.executed], 'nothing reached the NIC');
    const log = await lab.station(['log', 'nic-1']);
    assert.equal(log[log.length - 1].outcome, 'failed');
    const ref = await lab.station(['refresh', 'nic-1']);
    assert.ok(ref.generation > gen);
    const ok = await lab.station(['power-cycle', 'nic-1']);
    assert.equal(ok.generation, ref.generation);
  });

  it('the daemon refreshes an exhausted SA on its next poll', async () => {
    const gen = (await nicSa(lab, 'nic-2')).active!.generation;
    await exhaust('nic-2', gen);
    const d = await StationDaemon.start(lab, ['--poll-interval', '300', '--refresh-interval', '3600']);
    await waitFor('the daemon to refresh nic-2', async () => (await nicSa(lab, 'nic-2')).active!.generation > gen, 20000, 200);
    const r = await d.verb('nic-2', 'state');
    assert.equal(r.ok, true);
    await d.kill('SIGTERM');
  });
});
