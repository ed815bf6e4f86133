/**
 * Issue 5, judged 2: 1,000 power commands against a two-station cluster (one SQLite store) while the current
 * owner is killed with `kill -9` at >= 20 random points — often with a command in flight — and restarted after
 * each takeover so there is always a backup. Afterwards the NIC's execution log is matched against the store's
 * command log by wire identity (RMCP sequence, ASF tag) <-> log index (mgmt-station/core/session.ts):
 *  - every command acknowledged to the client was executed exactly once (DESIGN §5 "second ack");
 *  - every other command was executed at most once and is reported: its outcome in the log is 'unknown' or
 *    'failed', or 'acked' because the new owner completed it — never left 'sent';
 *  - nothing was executed that is not in the log, and nothing twice.
 * The kill points come from a seeded generator; the seed is printed (LIFELINE_SEED=N reruns a run).
 */
import assert from 'node:assert/strict';
import { Lab, waitFor, type StationProcess } from '../support/lab.js';
import { writePskFile } from '../support/station-daemon.js';
import { execLog, logIndexOf, nicDrops, postVerb, unfinishedCommands, type VerbOutcome } from '../support/cluster.js';
import { prng } from '../support/prng.js';

const COMMANDS = 1000;
const KILLS = 22;
const LEASE_MS = 500;
const POLL_MS = 150;
const VERBS = ['power-up', 'power-down', 'power-cycle', 'reset'] as const;
const PACED = process.env.LIFELINE_CLUSTER_PACED === '1';


const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('e2e cluster: 1,000 commands while the owner is killed at >= 20 random points', function () {
  this.timeout(120000);
  let lab: Lab;
  const stations: Record<string, StationProcess> = {};
  const ARGS = ['--lease-ms', String(LEASE_MS), '--poll-interval', String(POLL_MS)];

  before(async () => {
    lab = new Lab('cluster-exactly-once');
    await lab.startEmulator(['--nics', '1']);
    const r = await lab.run(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file, '--id', 'A', '--lease-ms', String(LEASE_MS), '--json']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    for (const s of Object.values(stations)) await s.kill('SIGKILL');
    await lab?.cleanup();
  });

  it('every acknowledged command ran exactly once, every other at most once and reported', async () => {
    const seed = Number(process.env.LIFELINE_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const rand = prng(seed).next;
    // Kill points: attempts at which the owner is killed, spread over the run, at least 25 apart.
    const killAt = new Set<number>();
    while (killAt.size < KILLS) {
      const p = 20 + Math.floor(rand() * (COMMANDS - 40));
      if ([...killAt].every((q) => Math.abs(q - p) >= 25)) killAt.add(p);
    }
    stations.A = await lab.startStation('A', ARGS);
    stations.B = await lab.startStation('B', ARGS);
    let owner: 'A' | 'B' = 'A';
    const other = (s: 'A' | 'B') => (s === 'A' ? 'B' : 'A');
    let restarting: Promise<void> = Promise.resolve();
    const killDone = new Set<number>();

    const acked = new Map<number, string>(); // log index -> verb, as the client was told
    const uncertain: { verb: string; why: string }[] = [];
    const errorCodes: Record<string, number> = {};
    const failoverMs: number[] = [];
    let fencedRetries = 0;
    let killedInFlight = 0;
    let attempts = 0;
    let kills = 0;
    const t0 = Date.now();

    while (attempts < COMMANDS) {
      const verb = VERBS[Math.floor(rand() * VERBS.length)];
      const killNow = killAt.has(attempts) && !killDone.has(attempts);
      if (killNow) {
        killDone.add(attempts); // done even if this command has to be retried
        await restarting; // the backup must be up before the owner dies
      }
      const target = stations[owner];
      const request = postVerb(target.ready.control, 'nic-1', verb);
      let killedAt = 0;
      if (killNow) {
        await sleep(Math.floor(rand() * 5)); // 0-4 ms: before, during or after the NIC's ACK and the store writes
        killedAt = Date.now();
        await target.kill('SIGKILL');
        kills++;
      }
      const out: VerbOutcome = await request;
      if (out.kind === 'ok') {
        assert.ok(!acked.has(out.body.command.index), `log index ${out.body.command.index} acknowledged twice`);
        acked.set(out.body.command.index, verb);
        attempts++;
      } else if (out.kind === 'error' && out.code === 'E_FENCED') {
        fencedRetries++; // refused before anything was logged or sent
      } else if (out.kind === 'refused') {
        // the daemon was already dead: nothing was sent
      } else {
        if (killNow) killedInFlight++;
        const why = out.kind === 'error' ? out.code : 'connection lost';
        errorCodes[why] = (errorCodes[why] ?? 0) + 1;
        uncertain.push({ verb, why });
        attempts++;
      }
      if (killNow) {
        // The backup takes over once the lease lapses; the killed station comes back as the next backup.
        const dead = owner;
        owner = other(owner);
        for (const give = Date.now() + LEASE_MS + 5000; ; ) {
          assert.ok(Date.now() < give, `backup ${owner} did not take over within ${LEASE_MS + 5000} ms of the kill of ${dead}`);
          const r = await postVerb(stations[owner].ready.control, 'nic-1', verb);
          if (r.kind === 'ok') {
            acked.set(r.body.command.index, verb);
            attempts++;
            break;
          }
          if (r.kind === 'error' && r.code === 'E_FENCED') {
            fencedRetries++;
            await sleep(10);
            continue;
          }
          throw new Error(`backup ${owner} failed after the kill of ${dead}: ${JSON.stringify(r)}`);
        }
        failoverMs.push(Date.now() - killedAt);
        // Impatient clients drive straight on: the new owner finishes the former owner's 'sent' commands before it
        // serves anything (mgmt-station/context.ts), so no completion can find the NIC's cache overrun.
        // LIFELINE_CLUSTER_PACED=1 waits for the completion instead.
        if (PACED) await waitFor('the takeover\'s completion of the former owner\'s commands', async () => (await unfinishedCommands(lab.store, 'nic-1')).length === 0, 5000, 10);
        restarting = lab.startStation(dead, ARGS).then((s) => {
          stations[dead] = s;
        });
        restarting.catch(() => undefined); // awaited before the next kill; no unhandled rejection meanwhile
      }
    }
    await restarting;
    const driveMs = Date.now() - t0;

    // The last owner completes whatever its predecessor left 'sent' (afterTakeover runs on its next poll).
    let log: any[] = [];
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = await lab.run(['log', 'nic-1', '--json']);
      assert.equal(r.code, 0, r.stderr);
      log = r.json;
      if (!log.some((c) => c.outcome === 'sent') || Date.now() > deadline) break;
      await sleep(200);
    }
    const exec = await execLog(lab, 'nic-1');
    const runs = new Map<number, number>();
    for (const e of exec) {
      assert.equal(e.via, 'secure');
      runs.set(logIndexOf(e), (runs.get(logIndexOf(e)) ?? 0) + 1);
    }
    const byIndex = new Map(log.map((c) => [c.index, c]));
    const duplicates = [...runs].filter(([, n]) => n > 1);
    const phantoms = [...runs.keys()].filter((i) => !byIndex.has(i));
    const outcomes: Record<string, number> = {};
    for (const c of log) outcomes[c.outcome] = (outcomes[c.outcome] ?? 0) + 1;
    const completedByNewOwner = log.filter((c) => c.outcome === 'acked' && c.outcomeStation !== c.station).length;
    const st = await lab.nic('nic-1');
    const sorted = [...failoverMs].sort((a, b) => a - b);
    console.log(
      `      seed ${seed}${PACED ? ' (paced)' : ''}: sent ${log.length} (logged), acked to the client ${acked.size}, uncertain at the client ${uncertain.length} ` +
        `(${JSON.stringify(errorCodes)}; ${killedInFlight} with the kill in flight), outcomes ${JSON.stringify(outcomes)}, ` +
        `completed by the new owner ${completedByNewOwner}, executed ${exec.length}, duplicates ${duplicates.length}, phantoms ${phantoms.length}; ` +
        `kills ${kills}, E_FENCED retries ${fencedRetries}, kill -> first ack through the backup p50 ${sorted[Math.floor(sorted.length / 2)]} ms max ${sorted[sorted.length - 1]} ms; ` +
        `NIC drops ${JSON.stringify(nicDrops(st))}, answered from cache ${st.counters.duplicatesAnswered}; ${driveMs} ms`,
    );

    for (const [index] of duplicates) {
      console.log(`      executed twice: #${index}: log ${JSON.stringify(byIndex.get(index))}; NIC ${JSON.stringify(exec.filter((e) => logIndexOf(e) === index))}`);
    }
    assert.ok(kills >= 20, `owner killed ${kills} times`);
    assert.deepEqual(duplicates, [], 'no command executed twice');
    assert.deepEqual(phantoms, [], 'nothing executed that is not in the command log');
    for (const [index, verb] of acked) {
      const c = byIndex.get(index);
      assert.ok(c, `acknowledged command #${index} is in the log`);
      assert.equal(c.command, verb);
      assert.equal(c.outcome, 'acked', `acknowledged command #${index} is 'acked' in the log`);
      assert.equal(runs.get(index), 1, `acknowledged command #${index} (${verb}) executed exactly once`);
    }
    for (const c of log) {
      assert.ok(['acked', 'unknown', 'failed'].includes(c.outcome), `command #${c.index} (${c.command}) is reported, not left '${c.outcome}'`);
      if (c.outcome === 'acked') assert.equal(runs.get(c.index), 1, `'acked' command #${c.index} executed exactly once`);
    }
    assert.ok(acked.size + uncertain.length >= COMMANDS);
    assert.ok(log.length >= acked.size);
    assert.equal(nicDrops(st).replay ?? 0, 0, 'no takeover reused a sequence number');
  });
});

/**
 * Deterministic reproductions of the ways a command can still run twice or go unreported. The emulator is frozen
 * with SIGSTOP so that packets queue in its socket buffers in a known order: a command reaches the NIC while the
 * station that sent it dies before it hears the ACK. Two of them come down to the NIC's response cache holding
 * only the last 32 commands (firmware/nic-firmware.ts RESPONSE_CACHE_SIZE): a command identity that comes back
 * after 32 newer commands ran is executed again.
 */
describe('e2e cluster: commands run twice or left unreported (frozen NIC, deterministic)', function () {
  this.timeout(40000);
  let lab: Lab;
  const stations: Record<string, StationProcess> = {};

  beforeEach(async () => {
    lab = new Lab('cluster-cache');
    await lab.startEmulator(['--nics', '1']);
    const r = await lab.run(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file, '--id', 'A', '--lease-ms', String(LEASE_MS), '--json']);
    assert.equal(r.code, 0, r.stderr);
  });
  afterEach(async () => {
    lab?.emulator?.kill('SIGCONT');
    for (const s of Object.values(stations)) await s.kill('SIGKILL');
    await lab?.cleanup();
  });

  it('the command log records each command\'s wire identity (RMCP sequence, ASF tag) as sent to the NIC', async () => {
    for (const verb of ['power-up', 'reset', 'power-cycle']) assert.equal((await lab.run([verb, 'nic-1', '--id', 'A', '--json'])).code, 0, verb);
    const log = (await lab.run(['log', 'nic-1', '--json'])).json as any[];
    const exec = await execLog(lab, 'nic-1');
    assert.equal(exec.length, 3);
    assert.deepEqual(log.map((c) => [c.index, c.rmcpSeq, c.asfTag]), exec.map((e) => [logIndexOf(e), e.rmcpSeq, e.tag]));
  });

  /** Indexes of commands the NIC executed more than once. */
  async function executedTwice(): Promise<number[]> {
    const runs = new Map<number, number>();
    for (const e of await execLog(lab, 'nic-1')) runs.set(logIndexOf(e), (runs.get(logIndexOf(e)) ?? 0) + 1);
    return [...runs].filter(([, n]) => n > 1).map(([i]) => i);
  }

  it('the new owner completes the former owner\'s executed-but-unacknowledged command only after 40 new ones: not run again', async () => {
    stations.A = await lab.startStation('A', ['--lease-ms', String(LEASE_MS), '--poll-interval', String(POLL_MS)]);
    // B polls rarely, so its takeover comes from a client's command, and its poll (which completes the former
    // owner's commands) comes seconds later.
    stations.B = await lab.startStation('B', ['--lease-ms', '10000', '--poll-interval', '5000']);
    assert.equal((await postVerb(stations.A.ready.control, 'nic-1', 'power-up')).kind, 'ok');
    // X reaches the NIC's socket while the NIC is frozen; A dies before it hears the ACK.
    lab.emulator!.kill('SIGSTOP');
    const x = postVerb(stations.A.ready.control, 'nic-1', 'power-cycle');
    await sleep(100);
    await stations.A.kill('SIGKILL');
    assert.equal((await x).kind, 'lost');
    lab.emulator!.kill('SIGCONT');
    const executed = await waitFor('X executed by the NIC', async () => (await execLog(lab, 'nic-1')).find((e) => e.command === 'power-cycle'), 3000);
    const xIndex = logIndexOf(executed);
    // B takes over on a client's command and serves 40 more before its next poll.
    for (let n = 0; n < 40; ) {
      const r = await postVerb(stations.B.ready.control, 'nic-1', VERBS[n % 4]);
      if (r.kind === 'ok') n++;
      else if (r.kind === 'error' && r.code === 'E_FENCED') await sleep(20);
      else throw new Error(JSON.stringify(r));
    }
    const log = await waitFor(`B completed #${xIndex}`, async () => {
      const r = await lab.run(['log', 'nic-1', '--json']);
      const c = (r.json as any[]).find((e) => e.index === xIndex);
      return c && c.outcome !== 'sent' ? c : null;
    }, 12000, 300);
    assert.equal(log.outcomeStation, 'B');
    assert.deepEqual(await executedTwice(), [], `#${xIndex} (${log.command}) executed once, not again when B completed it`);
  });

  it('a station restarted under the same id completes (or reports) its previous process\'s unacknowledged command', async () => {
    const args = ['--lease-ms', String(LEASE_MS), '--poll-interval', String(POLL_MS)];
    stations.A = await lab.startStation('A', args);
    assert.equal((await postVerb(stations.A.ready.control, 'nic-1', 'power-up')).kind, 'ok');
    lab.emulator!.kill('SIGSTOP');
    const x = postVerb(stations.A.ready.control, 'nic-1', 'power-cycle');
    await sleep(100);
    await stations.A.kill('SIGKILL');
    assert.equal((await x).kind, 'lost');
    lab.emulator!.kill('SIGCONT');
    stations.A = await lab.startStation('A', args);
    await sleep(2000); // a dozen polls of the restarted station
    const log = (await lab.run(['log', 'nic-1', '--json'])).json as any[];
    const cycle = log.find((c) => c.command === 'power-cycle');
    assert.notEqual(cycle.outcome, 'sent', `#${cycle.index} is completed or reported 'unknown', not left 'sent'`);
    assert.deepEqual(await executedTwice(), []);
  });

  it('40 commands in flight while the NIC is slow: each retransmission is answered from the cache, none runs twice', async () => {
    stations.A = await lab.startStation('A', ['--lease-ms', String(LEASE_MS), '--poll-interval', String(POLL_MS), '--timeout', '5000']);
    assert.equal((await postVerb(stations.A.ready.control, 'nic-1', 'power-up')).kind, 'ok');
    lab.emulator!.kill('SIGSTOP');
    const all = Array.from({ length: 40 }, (_, j) => postVerb(stations.A.ready.control, 'nic-1', VERBS[j % 4]));
    await sleep(600); // every command has been sent and retransmitted at least once
    lab.emulator!.kill('SIGCONT');
    const out = await Promise.all(all);
    assert.deepEqual(out.filter((o) => o.kind !== 'ok'), [], 'every command acknowledged');
    assert.deepEqual(await executedTwice(), [], 'no acknowledged command executed twice');
  });
});
