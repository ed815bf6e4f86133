/**
 * Issue 3, acceptance 4: the station is killed with `kill -9` in the middle of its traffic and started again
 * on the same store. Everything comes back from the store (DESIGN §2.6, §4 "station cold boot"): the SAs,
 * the outbound sequence reservations and the command log, so commands continue with no new key exchange
 * (same generation, not one datagram to the host agent's IKE port) and the NIC never sees a sequence number
 * twice (its `dropped.replay` counter stays 0; RFC 4303 §3.4.3). The CLI-only variant runs every verb in a
 * new process, each of which resumes above the previous one's reservation.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { Lab } from '../support/lab.js';
import { StationDaemon, announceFileOf, nicSa, sleep, stopAllStations, writePskFile } from '../support/station-daemon.js';

/** The NIC's non-zero drop counters (replay, icv, spi, ...), lab faults (link down, unpowered) excluded. */
async function drops(lab: Lab, nic: string): Promise<Record<string, number>> {
  const all = (await lab.nic(nic)).counters.dropped as Record<string, number>;
  return Object.fromEntries(Object.entries(all).filter(([k, v]) => v !== 0 && k !== 'link_down' && k !== 'nic_unpowered'));
}

const VERBS = ['state', 'ping', 'power-up', 'capabilities'];

describe('e2e station: kill -9 of the daemon mid-traffic, restart on the same store', function () {
  this.timeout(40000);
  let lab: Lab;
  let generation = 0;
  let ikeReceived = 0;
  let first: StationDaemon;
  let completed = 0;
  let failures: string[] = [];

  before(async () => {
    lab = new Lab('station-kill9');
    await lab.startEmulator(['--nics', '1']);
    generation = (await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file])).generation;
    ikeReceived = (await lab.nic('nic-1')).hostAgent.received;
  });
  after(async () => {
    await stopAllStations();
    await lab?.cleanup();
  });

  it('the daemon serves concurrent traffic until it is killed with SIGKILL', async () => {
    first = await StationDaemon.start(lab, ['--refresh-interval', '3600', '--poll-interval', '400']);
    let stop = false;
    let killing = false;
    const worker = async (w: number) => {
      for (let i = 0; !stop; i++) {
        const verb = VERBS[(i + w) % VERBS.length];
        try {
          const r = await first.verb('nic-1', verb);
          assert.equal(r.generation, generation);
          completed++;
        } catch (e) {
          if (!killing) failures.push(`${verb}: ${(e as Error).message}`);
          return;
        }
      }
    };
    const workers = [0, 1, 2].map(worker);
    const deadline = Date.now() + 10000;
    while (completed < 40 && Date.now() < deadline) await sleep(10);
    killing = true;
    await first.kill('SIGKILL'); // requests are in flight right now
    stop = true;
    await Promise.all(workers);
    assert.deepEqual(failures, [], 'no request failed while the daemon was alive');
    assert.ok(completed >= 40, `requests completed before the kill: ${completed}`);
    assert.equal(first.child.signalCode, 'SIGKILL');
    assert.ok(existsSync(announceFileOf(lab)), 'the killed daemon left its announce file behind');
  });

  it('with the dead daemon\'s announce file still there, a CLI verb runs by itself (no replay)', async () => {
    const r = await lab.station(['state', 'nic-1']);
    assert.equal(r.generation, generation);
    assert.equal(r.attempts, 1, 'answered at the first attempt: the NIC accepted the sequence number');
    assert.deepEqual(await drops(lab, 'nic-1'), {});
  });

  it('a new daemon on the same store restores the SA: same generation, no IKE datagram, commands at the first attempt', async () => {
    const second = await StationDaemon.start(lab, ['--refresh-interval', '3600', '--poll-interval', '400']);
    assert.notEqual(second.ready.pid, first.ready.pid);
    for (let i = 0; i < 12; i++) {
      const verb = VERBS[i % VERBS.length];
      const r = await second.verb('nic-1', verb);
      assert.equal(r.generation, generation, `${verb}: same SA generation`);
      assert.equal(r.attempts, 1, `${verb}: answered at the first attempt`);
    }
    // The CLI finds the new daemon through the announce file and forwards to it.
    const viaCli = await lab.run(['power-up', 'nic-1']);
    assert.equal(viaCli.code, 0, viaCli.stderr);
    assert.match(viaCli.stdout, /\[via daemon\]$/m);
    await sleep(900); // two polls of the new daemon
    const st = await second.status();
    const n = st.nics.find((x) => x.id === 'nic-1');
    assert.equal(n?.refreshes, 0, 'the daemon did not rekey');
    assert.equal(n?.lastError, null);
    const nic = await lab.nic('nic-1');
    assert.equal(nic.sa.active.generation, generation, 'NIC: same active SA');
    assert.equal(nic.sa.pending, null);
    assert.equal(nic.hostAgent.received, ikeReceived, 'not one datagram reached the host agent since enrolment');
    const listed = (await lab.station(['list']))[0].sas;
    assert.deepEqual(listed.map((s: any) => [s.generation, s.state]), [[generation, 'active']]);
  });

  it('the NIC counted no replay (nor any other drop) across the kill and the restart', async () => {
    assert.deepEqual(await drops(lab, 'nic-1'), {});
    assert.equal((await nicSa(lab, 'nic-1')).lastAuthenticated, generation);
  });

  it('the command log is intact (a command cut off by the kill stays logged as sent)', async () => {
    const audit = await lab.station(['audit', 'nic-1']);
    assert.equal(audit.ok, true, JSON.stringify(audit));
    const log = (await lab.station(['log', 'nic-1'])) as { outcome: string }[];
    assert.ok(log.length >= 10, `commands logged: ${log.length}`);
    assert.ok(log.every((c) => c.outcome === 'acked' || c.outcome === 'sent' || c.outcome === 'unknown'), JSON.stringify(log.map((c) => c.outcome)));
    assert.ok(log.filter((c) => c.outcome !== 'acked').length <= 3, 'at most one command per worker was cut off');
  });
});

describe('e2e station: CLI only, every verb a new process', function () {
  this.timeout(40000);
  let lab: Lab;

  before(async () => {
    lab = new Lab('station-cli-seq');
    await lab.startEmulator(['--nics', '1']);
  });
  after(async () => {
    await lab?.cleanup();
  });

  it('16 sequential CLI commands: all answered at the first attempt, no replay drop at the NIC', async () => {
    const generation = (await lab.station(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file])).generation;
    const before = await lab.nic('nic-1');
    for (let i = 0; i < 16; i++) {
      const verb = VERBS[i % VERBS.length];
      const r = await lab.station([verb, 'nic-1', '--no-daemon']);
      assert.equal(r.generation, generation);
      assert.equal(r.attempts, 1, `command ${i} (${verb}) answered at the first attempt`);
    }
    const after = await lab.nic('nic-1');
    assert.deepEqual(await drops(lab, 'nic-1'), {});
    assert.equal(after.counters.accepted.secure - before.counters.accepted.secure, 16, 'the NIC accepted every request once');
    assert.equal(after.hostAgent.received, before.hostAgent.received, 'no key exchange');
    assert.ok(BigInt(after.sa.active.inHighest) > BigInt(before.sa.active.inHighest), 'the NIC saw higher sequence numbers');
  });
});
