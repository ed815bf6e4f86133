/**
 * Issue 5, judged 2 (second half): a stale owner that comes back gets nothing executed (DESIGN §5 split brain).
 * Station A is frozen (SIGSTOP) with a command in flight to a NIC whose cable is pulled; its lease lapses and
 * station B takes the NIC over (higher epoch), tells the NIC, and completes A's logged command exactly once.
 * Then A is thawed (SIGCONT): its retransmissions carry its old sync epoch, which B's sync ended at the NIC, and every
 * store write it tries is fenced by epoch — so the NIC's execution log shows nothing from A after the takeover, A's
 * new commands fail with E_FENCED, and A's caller is told the truth the store holds (issue 14, case 4): the command
 * was done, by B — not E_FENCED, which would invite sending it again.
 */
import assert from 'node:assert/strict';
import { Lab, waitFor, type StationProcess } from '../support/lab.js';
import { writePskFile } from '../support/station-daemon.js';
import { execLog, freeUdpPort, logIndexOf, nicDrops, postVerb, readLease } from '../support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('e2e cluster: a revived stale owner (SIGSTOP, takeover, SIGCONT) gets nothing executed', function () {
  this.timeout(30000);
  let lab: Lab;
  const stations: Record<string, StationProcess> = {};
  const listen = { A: '', B: '' };

  before(async () => {
    lab = new Lab('cluster-stale');
    await lab.startEmulator(['--nics', '1']);
    const r = await lab.run(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file, '--id', 'A', '--lease-ms', '500', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const pA = await freeUdpPort();
    listen.A = `127.0.0.1:${pA}`;
    listen.B = `127.0.0.1:${await freeUdpPort('127.0.0.1', [pA])}`;
    const common = ['--lease-ms', '500', '--poll-interval', '150', '--timeout', '8000'];
    stations.A = await lab.startStation('A', [...common, '--listen', listen.A]);
    stations.B = await lab.startStation('B', [...common, '--listen', listen.B]);
  });
  after(async () => {
    for (const s of Object.values(stations)) {
      s.child.kill('SIGCONT');
      await s.kill('SIGKILL');
    }
    await lab?.cleanup();
  });

  it('A owns the NIC and its commands run', async () => {
    const r = await postVerb(stations.A.ready.control, 'nic-1', 'power-up');
    assert.equal(r.kind, 'ok', JSON.stringify(r));
    const exec = await execLog(lab, 'nic-1');
    assert.deepEqual(exec.map((e) => e.from), [listen.A]);
  });

  let takeoverAt = 0;
  let inFlight: Promise<Awaited<ReturnType<typeof postVerb>>>;
  let inFlightIndex = 0;

  it('A freezes with a command in flight; B takes over and completes that command exactly once', async () => {
    await lab.host('nic-1', 'cable-pull');
    inFlight = postVerb(stations.A.ready.control, 'nic-1', 'power-cycle', 20000);
    await sleep(400); // logged as 'sent' and retransmitted (past the second attempt's sequence jump)
    await stations.A.kill('SIGSTOP');
    const epochA = (await readLease(lab.store, 'nic-1'))!.epoch;
    await lab.host('nic-1', 'cable-plug');
    const lease = await waitFor('B\'s takeover', async () => {
      const l = await readLease(lab.store, 'nic-1');
      return l?.owner === 'B' && l;
    }, 5000, 20);
    takeoverAt = Date.now();
    assert.equal(lease.epoch, epochA + 1);
    // B's poll tells the NIC and resends A's command with its original identity.
    const done = await waitFor('A\'s command completed by B', async () => {
      const e = (await execLog(lab, 'nic-1')).find((x) => x.command === 'power-cycle');
      return e && e;
    }, 5000);
    inFlightIndex = logIndexOf(done);
    assert.equal(done.from, listen.B, 'executed from B\'s socket: A\'s frozen packets never reached the NIC');
    const st = await waitFor('the owner notice', async () => {
      const s = await lab.nic('nic-1');
      return s.owner?.station === listen.B && s;
    }, 3000);
    assert.equal(st.owner.epoch, epochA + 1);
  });

  it('thawed A: its retransmissions and new commands are refused; the NIC executes nothing from A', async () => {
    const before = await lab.nic('nic-1');
    await stations.A.kill('SIGCONT');
    const stale = await inFlight;
    // Its real outcome, read from the store (done, by B), or E_OUTCOME_UNKNOWN: never E_FENCED "use that station".
    assert.ok(
      stale.kind === 'ok' ? stale.body.completedBy === 'B' && stale.body.command?.index === inFlightIndex : stale.kind === 'error' && stale.code === 'E_OUTCOME_UNKNOWN',
      `A reports its command as the store has it: ${JSON.stringify(stale)}`,
    );
    const fresh = await postVerb(stations.A.ready.control, 'nic-1', 'reset');
    assert.deepEqual(fresh.kind === 'error' && fresh.code, 'E_FENCED', JSON.stringify(fresh));
    await sleep(1500); // room for any retransmission A still had scheduled
    const exec = await execLog(lab, 'nic-1');
    const fromA = exec.filter((e) => e.from === listen.A && Date.parse(e.at) >= takeoverAt - 50);
    assert.deepEqual(fromA, [], 'nothing from A executed after the takeover');
    assert.equal(exec.filter((e) => logIndexOf(e) === inFlightIndex).length, 1, 'A\'s in-flight command ran exactly once (completed by B)');
    const after = await lab.nic('nic-1');
    const log = (await lab.run(['log', 'nic-1', '--json'])).json as any[];
    const c = log.find((x) => x.index === inFlightIndex);
    assert.deepEqual([c.station, c.outcome, c.outcomeStation], ['A', 'acked', 'B']);
    assert.equal(after.owner.station, listen.B, 'A sent no owner notice: B stays the owner');
    const replays = (after.counters.dropped.replay ?? 0) - (before.counters.dropped.replay ?? 0);
    console.log(`      A's stale in-flight command: ${stale.kind === 'error' ? stale.code : stale.kind === 'ok' ? `ok, completed by ${stale.body.completedBy}` : stale.kind}; new command: E_FENCED; ` +
      `A's packets dropped by the NIC as replays: ${replays}; NIC drops ${JSON.stringify(nicDrops(after))}`);
    // B is unaffected.
    assert.equal((await postVerb(stations.B.ready.control, 'nic-1', 'power-up')).kind, 'ok');
  });
});
