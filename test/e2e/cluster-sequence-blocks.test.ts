/**
 * Sequence-number reservations when two processes act for the same station id (DESIGN §2.6): the daemon and a
 * CLI verb run with `--no-daemon` (both documented), or two CLI verbs at once. The lease does not separate them
 * (same owner, same epoch), so only the reserved blocks in the store can keep their outbound sequence numbers —
 * which are also the AES-GCM IVs (wire/esp.ts, RFC 4106 §3.1) — apart.
 */
import assert from 'node:assert/strict';
import { Lab, type StationProcess } from '../support/lab.js';
import { nicDrops, postVerb } from '../support/cluster.js';

describe('e2e cluster: sequence blocks of two processes of one station', function () {
  this.timeout(40000);
  let lab: Lab;
  let daemon: StationProcess;

  before(async () => {
    lab = new Lab('cluster-seq-blocks');
    await lab.startEmulator(['--nics', '1']);
    const r = await lab.run(['sa', 'manual', 'nic-1', '--json']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await daemon?.kill('SIGKILL');
    await lab?.cleanup();
  });

  it('the daemon and a --no-daemon CLI verb of the same station never send the same sequence number', async () => {
    daemon = await lab.startStation('station-1', ['--poll-interval', '5000']);
    assert.equal((await postVerb(daemon.ready.control, 'nic-1', 'state')).kind, 'ok');
    const cli = await lab.run(['state', 'nic-1', '--no-daemon', '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    // Drive the daemon through the rest of its block and past it.
    for (let i = 0; i < 1100; i += 4) {
      const r = await Promise.all([0, 1, 2, 3].map(() => postVerb(daemon.ready.control, 'nic-1', 'state')));
      assert.ok(r.every((x) => x.kind === 'ok'), JSON.stringify(r.find((x) => x.kind !== 'ok')));
    }
    assert.deepEqual(nicDrops(await lab.nic('nic-1')), {}, 'no sequence number reached the NIC twice');
  });
});
