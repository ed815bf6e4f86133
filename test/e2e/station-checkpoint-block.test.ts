/**
 * Review D4: the station learns the NIC's checkpoint block K (DESIGN §2.6), recorded at enrolment and at `sa manual`
 * from the emulator's status (sa.checkpointBlock). A NIC started with a K larger than the default (16384) resumes its
 * inbound high-water mark up to K above what it last saw after a restart. Since issue 14 the station no longer
 * jumps blindly by K: after a NIC restart it resynchronises (wire/sync-frame.ts) and starts above what the NIC
 * reports, whatever K is; these tests keep checking that the next requests get through at once.
 * Here: the emulator runs with --checkpoint-block 65536; one NIC enrolled over IKEv2, one keyed manually;
 * after a restart on the same data directory, one `mgmt-station ping` to each succeeds within its default
 * timeout.
 */
import assert from 'node:assert/strict';
import { Lab } from '../support/lab.js';
import { StationDaemon, stopAllStations, withStoreDb, writePskFile } from '../support/station-daemon.js';

describe("e2e station: the NIC's checkpoint block, learnt at enrolment, after a NIC restart (D4)", function () {
  this.timeout(60000);
  let lab: Lab;

  before(async () => {
    lab = new Lab('checkpoint-block');
    await lab.startEmulator(['--nics', '2', '--checkpoint-block', '65536']);
    assert.equal((await lab.nic('nic-1')).sa.checkpointBlock, 65536);
    const { file } = writePskFile(lab);
    assert.equal((await lab.station(['enroll', 'nic-1', '--psk-file', file])).ok, true);
    await lab.station(['sa', 'manual', 'nic-2']);
    for (const nic of ['nic-1', 'nic-2']) assert.equal((await lab.station(['ping', nic])).response.type, 'presence-pong');
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  it("enroll and sa manual record the NIC's checkpoint block in its store record", async () => {
    const metas = withStoreDb(lab, (db) => db.prepare('SELECT id, meta FROM nics ORDER BY id').all() as { id: string; meta: string }[]);
    assert.deepEqual(metas.map((r) => [r.id, JSON.parse(r.meta).checkpointBlock]), [['nic-1', 65536], ['nic-2', 65536]]);
  });

  it('a daemon whose session opened before the K was recorded gets through after the NIC restarts', async () => {
    const setK = (k: number) => withStoreDb(lab, (db) => {
      const row = db.prepare("SELECT meta FROM nics WHERE id = 'nic-1'").get() as { meta: string };
      db.prepare("UPDATE nics SET meta = ? WHERE id = 'nic-1'").run(JSON.stringify({ ...JSON.parse(row.meta), checkpointBlock: k }));
    }, false);
    setK(16384); // as if enrolled under the default K
    const d = await StationDaemon.start(lab, ['--poll-interval', '5000']);
    assert.equal((await lab.station(['ping', 'nic-1'])).response.type, 'presence-pong'); // its session is open
    setK(65536); // re-enrolled meanwhile by another process, which recorded the NIC's real K
    await lab.restartEmulator('SIGTERM');
    const before = (await lab.nic('nic-1')).counters.dropped.replay ?? 0;
    const ping = await lab.run(['ping', 'nic-1']);
    assert.equal(ping.code, 0, ping.stderr);
    assert.match(ping.stdout, /\[via daemon\]/);
    const replays = ((await lab.nic('nic-1')).counters.dropped.replay ?? 0) - before;
    assert.ok(replays <= 2, `${replays} requests dropped as replays: the daemon did not resynchronise`);
    await d.kill('SIGTERM');
  });

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    it(`after a ${signal} restart, the next ping to each NIC succeeds within its default timeout`, async () => {
      await lab.restartEmulator(signal);
      for (const nic of ['nic-1', 'nic-2']) {
        const before = (await lab.nic(nic)).counters.dropped.replay ?? 0;
        const ping = await lab.station(['ping', nic]);
        assert.equal(ping.response.type, 'presence-pong', nic);
        // A CLI run syncs before its first request (mgmt-station/core/session.ts) and starts above what the NIC has
        // seen: nothing of it is dropped as a replay, whatever the NIC's K.
        const replays = ((await lab.nic(nic)).counters.dropped.replay ?? 0) - before;
        assert.ok(replays <= 2, `${nic}: ${replays} requests dropped as replays`);
      }
    });
  }
});
