/**
 * Issue 5, judged 3, 4 and the policy file: NIC-side failover by authenticated heartbeats (DESIGN §2.3, §5) and
 * adoption by SPI, end to end. The pure monitor is unit-tested in test/firmware/heartbeat.test.ts; here the
 * emulator's NICs probe real station daemons over UDP.
 *  - INSTANT with a live station: answered every cycle, never a failover.
 *  - The station is killed (kill -9) while the test keeps sending forged answers (SPI 0xFFFFFFFF, random nonce
 *    and tag) to the NIC: the NIC fails over exactly once, 2-3 response times later, to the next station in the
 *    listed order; the forgeries are dropped and counted, never taken for liveness.
 *  - Adoption: station B polls rarely (its lease on nothing yet), so the NIC reaches it by heartbeat before B
 *    knew the NIC was its business: B finds the SA in the store by the probe's SPI, takes the lease (A's claim is
 *    gone, epoch + 1) and answers — no key exchange (the host is hung; same SA generation; no IKE datagram).
 *  - `Randomize = no` keeps the listed order; `Randomize = yes` spreads NICs over the stations.
 *  - DEFERRED does not probe without traffic to send, and does once a host event is to be reported.
 *  - A bad policy file is refused with file:line, exit 2, and the policy in force stays.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, waitFor, type StationProcess } from '../support/lab.js';
import { writePskFile } from '../support/station-daemon.js';
import { applyPolicy, clusterPolicy, freeUdpPort, nicDrops, readLease } from '../support/cluster.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const R_MS = 1000; // HeartbeatResponseTime = 1

describe('e2e cluster: NIC heartbeats, failover and adoption by SPI', function () {
  this.timeout(30000);
  let lab: Lab;
  const stations: Record<string, StationProcess> = {};
  const listen = { A: '', B: '' };
  let forger: dgram.Socket | null = null;
  let nic1: { address: string; secure: number; toNicSpi: number; generation: number; ikeReceived: number };
  let epochA = 0;
  let killedAt = 0;
  let deferredSince = 0;
  /** Failovers the NIC logged before the policy was written again with A up (the log outlives a policy). */
  let failoversBefore = 0;

  before(async function () {
    this.timeout(40000);
    lab = new Lab('cluster-heartbeat');
    await lab.startEmulator(['--nics', '6']);
    const r = await lab.run(['enroll', 'nic-1', '--psk-file', writePskFile(lab).file, '--id', 'A', '--lease-ms', '500', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const m = await lab.run(['sa', 'manual', 'nic-2', '--id', 'A', '--lease-ms', '500', '--json']);
    assert.equal(m.code, 0, m.stderr);
    const pA = await freeUdpPort();
    listen.A = `127.0.0.1:${pA}`;
    listen.B = `127.0.0.1:${await freeUdpPort('127.0.0.1', [pA])}`;
    const st = await lab.nic('nic-1');
    nic1 = { address: st.address, secure: st.ports.secure, toNicSpi: st.sa.active.toNicSpi, generation: st.sa.active.generation, ikeReceived: 0 };
  });
  after(async () => {
    forger?.close();
    for (const s of Object.values(stations)) await s.kill('SIGKILL');
    await lab?.cleanup();
  });

  it('nic-emulator policy: a bad policy file is refused with file:line (exit 2) and the policy in force stays', async () => {
    const good = await applyPolicy(lab, 'nic-1', clusterPolicy([listen.A, listen.B], { responseS: 1 }));
    assert.equal(good.code, 0, good.stderr);
    const cases: [string, string, RegExp][] = [
      ['[GENERAL]\nHeartbeat = INSTANT\nHeartbeatResponseTime = 0\n[CLUSTER]\nCluster1 = 127.0.0.1:7001\n', 'zero-response.ini', /zero-response\.ini:3: HeartbeatResponseTime/],
      ['; stations\n[CLUSTER]\nCluster1 = 127.0.0.1:7001 127.0.0.999:7002\n', 'bad-address.ini', /bad-address\.ini:3: Cluster1: '127\.0\.0\.999' has an octet above 255/],
      ['[GENERAL]\nHeartbeat = SOMETIMES\n', 'bad-mode.ini', /bad-mode\.ini:2: Heartbeat must be NONE, DEFERRED or INSTANT/],
    ];
    for (const [text, name, want] of cases) {
      const r = await applyPolicy(lab, 'nic-1', text, name);
      assert.equal(r.code, 2, `${name}: exit 2 (usage), got ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /E_POLICY/);
      assert.match(r.stderr, want);
      assert.ok(r.stderr.includes(r.file), `${name}: the error names the file as given (${r.file})`);
    }
    const hb = (await lab.nic('nic-1')).heartbeat;
    assert.deepEqual([hb.mode, hb.responseTimeS, hb.stations], ['INSTANT', 1, [listen.A, listen.B]]);
  });

  it('Randomize = no keeps the listed order; Randomize = yes spreads NICs over the stations', async () => {
    assert.deepEqual((await lab.nic('nic-1')).heartbeat.stations, [listen.A, listen.B]);
    // nic-2 (manual SA) lists B first, DEFERRED: it must keep that order, and it must not probe without traffic.
    const d = await applyPolicy(lab, 'nic-2', clusterPolicy([listen.B, listen.A], { mode: 'DEFERRED', responseS: 1, deferS: 0 }));
    assert.equal(d.code, 0, d.stderr);
    deferredSince = Date.now();
    const n2 = (await lab.nic('nic-2')).heartbeat;
    assert.deepEqual([n2.mode, n2.stations, n2.current], ['DEFERRED', [listen.B, listen.A], listen.B]);
    // Four NICs without SAs (so they never probe), eight listed stations, shuffled per NIC.
    const many = Array.from({ length: 8 }, (_, i) => `127.0.0.1:${17001 + i}`);
    const orders: string[][] = [];
    for (const nic of ['nic-3', 'nic-4', 'nic-5', 'nic-6']) {
      await lab.control.post(`/v1/nics/${nic}/policy`, { text: clusterPolicy(many, { randomize: true }), source: `${nic}.ini` });
      const hb = (await lab.nic(nic)).heartbeat;
      assert.equal(hb.randomize, true);
      assert.deepEqual([...hb.stations].sort(), [...many].sort(), `${nic}: a permutation of the listed stations`);
      orders.push(hb.stations);
    }
    assert.ok(new Set(orders.map((o) => o[0])).size >= 2, `NICs start on different stations: ${orders.map((o) => o[0]).join(' ')}`);
    assert.ok(orders.some((o) => o.join() !== many.join()), 'at least one NIC does not use the listed order');
    // The order is the NIC's own: the same after the policy is written again.
    await lab.control.post('/v1/nics/nic-3/policy', { text: clusterPolicy(many, { randomize: true }), source: 'again.ini' });
    assert.deepEqual((await lab.nic('nic-3')).heartbeat.stations, orders[0]);
  });

  it('INSTANT with a live station: every cycle answered, no failover', async () => {
    stations.A = await lab.startStation('A', ['--lease-ms', '500', '--poll-interval', '150', '--listen', listen.A]);
    // The policy written by the first test has had nic-1 probe A and B, neither up, for as long as those tests and
    // A's start took: it may have failed over already. Writing it again starts a fresh monitor with A up.
    const again = await applyPolicy(lab, 'nic-1', clusterPolicy([listen.A, listen.B], { responseS: 1 }));
    assert.equal(again.code, 0, again.stderr);
    failoversBefore = (await lab.nic('nic-1')).heartbeat.failovers.length;
    const first = await waitFor('a first answered probe', async () => {
      const hb = (await lab.nic('nic-1')).heartbeat;
      return hb.counters.answersAccepted >= 1 && hb;
    }, 4000);
    await sleep(3 * R_MS);
    const hb = (await lab.nic('nic-1')).heartbeat;
    assert.equal(hb.current, listen.A);
    assert.deepEqual([hb.counters.failovers, hb.failovers.length], [0, failoversBefore]);
    assert.ok(hb.counters.answersAccepted >= first.counters.answersAccepted + 2, `answers ${first.counters.answersAccepted} -> ${hb.counters.answersAccepted}`);
    assert.ok(hb.counters.probesSent - hb.counters.answersAccepted <= 1, `every probe answered (at most one in flight): ${JSON.stringify(hb.counters)}`);
  });

  it('kill -9 of A amid forged answers: exactly one failover, 2-3 response times later, to B', async () => {
    // B joins with a slow poll: it learns of nic-1 only from the NIC's probes.
    stations.B = await lab.startStation('B', ['--lease-ms', '10000', '--poll-interval', '8000', '--listen', listen.B]);
    await lab.host('nic-1', 'hang'); // no key exchange possible: the host agent is down
    nic1.ikeReceived = (await lab.nic('nic-1')).hostAgent.received;
    epochA = (await readLease(lab.store, 'nic-1'))!.epoch;
    const before = await lab.nic('nic-1');
    await stations.A.kill('SIGKILL');
    killedAt = Date.now();
    forger = dgram.createSocket('udp4');
    const forged = { realSpi: 0, otherSpi: 0 };
    const forge = setInterval(() => {
      const b = randomBytes(32);
      b.writeUInt32BE(0xffffffff, 0);
      // Every other one names the NIC's real SA (so it reaches the nonce and tag checks), the rest a random SPI.
      if ((forged.realSpi + forged.otherSpi) % 2 === 0) {
        b.writeUInt32BE(nic1.toNicSpi, 4);
        forged.realSpi++;
      } else forged.otherSpi++;
      forger?.send(b, nic1.secure, nic1.address);
    }, 50);
    let hb: any;
    try {
      hb = await waitFor('the failover', async () => {
        const h = (await lab.nic('nic-1')).heartbeat;
        return h.counters.failovers > 0 && h;
      }, 3 * R_MS + 2000, 25);
    } finally {
      clearInterval(forge);
    }
    const f = hb.failovers[hb.failovers.length - 1];
    const after = Date.parse(f.at) - killedAt;
    const sum = (d: Record<string, number> = {}) => Object.values(d).reduce((a, b) => a + b, 0);
    const now = await lab.nic('nic-1');
    const dropped = sum(now.heartbeat.counters.dropped) - sum(before.heartbeat.counters.dropped) + sum(nicDrops(now)) - sum(nicDrops(before));
    console.log(`      failover ${f.from} -> ${f.to} ${after} ms after the kill (${f.reason}); forged answers sent ${JSON.stringify(forged)}, ` +
      `dropped ${dropped} (heartbeat ${JSON.stringify(now.heartbeat.counters.dropped)}, NIC ${JSON.stringify(nicDrops(now))})`);
    assert.deepEqual([f.from, f.to], [listen.A, listen.B]);
    assert.ok(after >= 2 * R_MS - 200 && after <= 3 * R_MS + 400, `failover ${after} ms after the kill, expected 2-3 x ${R_MS} ms`);
    assert.ok(hb.counters.answersAccepted <= before.heartbeat.counters.answersAccepted + 1, 'no forged answer taken for liveness (one real answer of A may have been in flight)');
    assert.ok(dropped >= forged.realSpi, `forged answers dropped and counted: ${dropped} of ${forged.realSpi + forged.otherSpi}`);
  });

  it('adoption: B answers from the store without a key exchange; A\'s claim is gone; no second failover', async () => {
    const bStatus = await waitFor('B\'s adoption', async () => {
      const s = await stations.B.status();
      return s.heartbeats.adopted >= 1 && s;
    }, 3000);
    assert.equal(bStatus.heartbeats.adopted, 1);
    assert.ok(bStatus.heartbeats.answered >= 1);
    const st = await waitFor('the owner notice from B', async () => {
      const s = await lab.nic('nic-1');
      return s.owner?.station === listen.B && s;
    }, 3000);
    assert.equal(st.owner.epoch, epochA + 1);
    const lease = await readLease(lab.store, 'nic-1');
    assert.deepEqual([lease?.owner, lease?.epoch], ['B', epochA + 1], 'the store: B owns nic-1 with a higher epoch');
    assert.equal(st.sa.active.generation, nic1.generation, 'same SA: adopted, not renegotiated');
    assert.equal(st.hostAgent.received, nic1.ikeReceived, 'no IKE datagram');
    assert.equal(st.host, 'hung');
    const a0 = st.heartbeat.counters.answersAccepted;
    await sleep(2 * R_MS + 300);
    const hb = (await lab.nic('nic-1')).heartbeat;
    assert.equal(hb.current, listen.B);
    assert.equal(hb.counters.failovers, 1, `exactly one failover: ${JSON.stringify(hb.failovers)}`);
    assert.ok(hb.counters.answersAccepted >= a0 + 1, 'B keeps answering');
    assert.ok(Date.now() - killedAt < 8000, 'all of this before B\'s first poll after its start (8 s)');
    const bNic = (await stations.B.status()).nics.find((n: any) => n.id === 'nic-1');
    assert.notEqual(bNic?.host, 'S0', 'B has not polled nic-1 itself yet');
  });

  it('a station without the cluster key can neither read the store nor adopt: refused at open (E_KEYFILE)', async () => {
    const other = join(lab.dir, 'other-cluster.key');
    writeFileSync(other, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
    const r = await lab.run(['serve', '--id', 'C', '--json'], { keyFile: other, timeoutMs: 10000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /E_KEYFILE/);
    const lease = await readLease(lab.store, 'nic-1');
    assert.equal(lease?.owner, 'B');
  });

  it('DEFERRED: no probe without traffic to send', async () => {
    const hb = (await lab.nic('nic-2')).heartbeat;
    assert.ok(Date.now() - deferredSince >= 4 * R_MS, 'several response times have passed');
    assert.deepEqual([hb.mode, hb.counters.probesSent, hb.failovers.length], ['DEFERRED', 0, 0]);
  });

  it('DEFERRED: a host event to report (traffic to send) with nothing heard from the station starts probing', async () => {
    await lab.host('nic-2', 'hang'); // an ASF alert the NIC has to send to its station
    const hb = await waitFor('a DEFERRED probe', async () => {
      const h = (await lab.nic('nic-2')).heartbeat;
      return h.counters.probesSent > 0 ? h : null;
    }, 4 * R_MS, 100);
    assert.equal(hb.mode, 'DEFERRED');
  });
});
