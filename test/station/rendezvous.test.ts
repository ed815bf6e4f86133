/**
 * Rendezvous (HRW) ownership of a cluster's NICs (mgmt-station/core/rendezvous.ts, docs/STATION.md "Station
 * cluster"): every station computes the same order, the split is even, and a join or a death moves only the NICs
 * it must.
 */
import assert from 'node:assert/strict';
import { preferenceOrder, rankOf, score } from '../../mgmt-station/core/rendezvous.js';

const nics = (n: number) => Array.from({ length: n }, (_, i) => `nic-${i + 1}`);

describe('rendezvous ownership (HRW)', () => {
  it('is a function of (NIC, station) only: the same order whatever order the members are listed in', () => {
    for (const nic of nics(200)) {
      const a = preferenceOrder(nic, ['A', 'B', 'C', 'D']);
      assert.deepEqual(preferenceOrder(nic, ['D', 'C', 'B', 'A']), a);
      a.forEach((m, i) => assert.equal(rankOf(nic, m, ['C', 'A', 'D', 'B']), i));
    }
    assert.equal(rankOf('nic-1', 'E', ['A', 'B']), -1);
    assert.equal(score('nic-1', 'A'), score('nic-1', 'A'));
  });

  it('splits 100,000 NICs over 4 stations within 2% of N/4 (the target is 10%)', () => {
    const count = new Map<string, number>();
    const members = ['station-1', 'station-2', 'station-3', 'station-4'];
    for (const nic of nics(100_000)) {
      const p = preferenceOrder(nic, members)[0];
      count.set(p, (count.get(p) ?? 0) + 1);
    }
    for (const m of members) assert.ok(Math.abs(count.get(m)! - 25_000) < 500, `${m}: ${count.get(m)}`);
  });

  it('a join moves only NICs to the new station (about 1/k of each); a death moves only the dead station\'s', () => {
    const three = ['A', 'B', 'C'];
    const four = [...three, 'D'];
    let moved = 0;
    for (const nic of nics(20_000)) {
      const before = preferenceOrder(nic, three)[0];
      const after = preferenceOrder(nic, four)[0];
      if (before !== after) {
        assert.equal(after, 'D');
        moved++;
      }
      const survivors = four.filter((m) => m !== 'B');
      const orphaned = preferenceOrder(nic, survivors)[0];
      if (after !== 'B') assert.equal(orphaned, after);
      else assert.equal(orphaned, preferenceOrder(nic, four)[1]); // the next in its order takes it
    }
    assert.ok(Math.abs(moved - 5000) < 300, `moved ${moved}`);
  });
});
