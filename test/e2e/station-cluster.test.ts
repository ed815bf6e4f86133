/**
 * Issue 16, criterion 3, sized for CI: a station cluster sharing a fleet on PostgreSQL (bench/station-cluster.ts, the
 * `station-cluster` bench section at 60 NICs): two stations split the NICs by rendezvous order, a third joins and
 * the others hand its NICs over, then one is killed with SIGKILL while commands to its NICs are in flight, and the
 * survivors take every one of its NICs over and answer secure reads; every acknowledged command ran exactly once and
 * none ran twice (the NICs' execution logs). Addresses 127.35.0.0/16, PostgreSQL on 55435.
 */
import assert from 'node:assert/strict';
import { measureStationCluster } from '../../bench/station-cluster.js';
import { postgresUnavailable } from '../support/postgres-server.js';

describe('station cluster on PostgreSQL: rendezvous split, join, kill -9 (issue 16)', function () {
  this.timeout(300_000);

  before(function () {
    const why = postgresUnavailable();
    if (why) {
      console.log(`    skipping: ${why}`);
      this.skip();
    }
  });

  it('3 stations, 60 NICs: each NIC on its preferred station after the join; the killed one\'s NICs served by the others; exactly once', async () => {
    const r = await measureStationCluster(
      { nics: 60, stations: 3, firstAddress: '127.35.1.1', stationNet: '127.35.254', pgPort: 55435, leaseMs: 2000, pollMs: 500, commandNics: 6, sample: 20 },
      () => undefined,
    );
    assert.ok(Number.isFinite(r.firstOwnedMs.value), 'the first two stations own every NIC, each by its preferred one');
    assert.ok(r.join.balancedMs !== null, `after the join every NIC is owned by its preferred station: ${JSON.stringify(r.join.owned)}`);
    for (const [id, c] of Object.entries(r.join.owned)) assert.ok(c > 0, `${id} owns none`);
    assert.equal(Object.values(r.join.owned).reduce((a, b) => a + b, 0), 60);
    assert.ok(r.kill.ownedBySurvivorsMs !== null, 'every NIC of the killed station is owned by a survivor');
    assert.equal(r.kill.sample.answered, r.kill.sample.asked, `secure state through the survivors: ${r.kill.sample.failures.join('; ')}`);
    assert.ok(r.kill.commands.acked >= r.kill.commands.nics, `commands acknowledged: ${JSON.stringify(r.kill.commands)}`);
    assert.equal(r.kill.commands.lost, 0, 'acknowledged commands missing from the NICs\' execution logs');
    assert.equal(r.kill.commands.doubled, 0, 'commands run twice');
    assert.equal(Object.values(r.kill.ownedAfter).reduce((a, b) => a + b, 0), 60);
  });
});
