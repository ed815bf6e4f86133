/**
 * Review M-D6: a live owner keeps its leases while its NICs do not answer (DESIGN §5 "Ownership": one owner per
 * NIC by lease; a daemon renews its leases at every poll). Two daemons, lease 500 ms, poll 150 ms; every NIC's
 * cable is pulled for several lease periods, so every poll of every NIC waits for its read to time out. The
 * owner renews all its leases before it waits on any NIC, so ownership (owner and fencing epoch) never moves
 * to the backup while the owner runs, and once the cables are back the owner serves the NICs again.
 */
import assert from 'node:assert/strict';
import { Lab, waitFor, type StationProcess } from '../support/lab.js';
import { sleep, stopAllStations, StationDaemon, writePskFile } from '../support/station-daemon.js';
import { readLease, type LeaseRow } from '../support/cluster.js';

const LEASE_MS = 500;
const POLL_MS = 150;
const NICS = ['nic-1', 'nic-2', 'nic-3', 'nic-4'];

describe('e2e cluster: a live owner keeps every lease while its NICs do not answer', function () {
  this.timeout(60000);
  let lab: Lab;
  let A: StationProcess;
  let B: StationProcess;
  const common = ['--lease-ms', String(LEASE_MS), '--poll-interval', String(POLL_MS)];

  before(async function () {
    this.timeout(60000);
    lab = new Lab('cluster-lease');
    await lab.startEmulator(['--nics', String(NICS.length)]);
    await lab.station(['enroll', 'all', '--psk-file', writePskFile(lab).file, '--id', 'A', '--lease-ms', String(LEASE_MS)], 30000);
    A = await StationDaemon.start(lab, ['--id', 'A', ...common]);
    await waitFor('A owns every NIC', async () => {
      for (const n of NICS) if ((await readLease(lab.store, n))?.owner !== 'A') return false;
      return true;
    }, 5000);
    B = await StationDaemon.start(lab, ['--id', 'B', ...common]);
  });
  after(async () => {
    for (const n of NICS) await lab?.host(n, 'cable-plug').catch(() => undefined);
    await stopAllStations();
    await lab?.cleanup();
  });

  it('all cables pulled for 8 lease periods: owner and epoch of every NIC never change', async () => {
    const before = new Map<string, LeaseRow>();
    for (const n of NICS) before.set(n, (await readLease(lab.store, n))!);
    for (const n of NICS) await lab.host(n, 'cable-pull');
    const until = Date.now() + 8 * LEASE_MS;
    let samples = 0;
    while (Date.now() < until) {
      for (const n of NICS) {
        const l = await readLease(lab.store, n);
        assert.equal(l?.owner, 'A', `${n}: owner changed to ${l?.owner} after ${samples} samples (A is alive: ${A.alive}); A stderr: ${A.stderr.slice(-1500)}`);
        assert.equal(l?.epoch, before.get(n)!.epoch, `${n}: epoch moved (a takeover happened)`);
      }
      samples++;
      await sleep(50);
    }
    assert.ok(A.alive && B.alive, 'both daemons still run');
    const st = await B.status();
    for (const n of st.nics) assert.equal(n.host, 'owned elsewhere', `B does not poll ${n.id}`);
  });

  it('cables back: the owner serves every NIC again, through its daemon', async () => {
    for (const n of NICS) await lab.host(n, 'cable-plug');
    for (const n of NICS) {
      const r = await lab.run(['state', n, '--id', 'A', '--lease-ms', String(LEASE_MS)], { timeoutMs: 15000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /\[via daemon\]/);
      assert.equal((await readLease(lab.store, n))?.owner, 'A');
    }
  });
});
