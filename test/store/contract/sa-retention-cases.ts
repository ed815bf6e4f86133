/**
 * Contract cases for what a NIC's SA rows become over time (issue 15: 584 rows for one NIC after ~600 refreshes,
 * stale 'pending' rows outliving later exchanges): a 'pending' SA below a newly active one is retired with the
 * commit, and a NIC keeps its newest RETIRED_SAS_KEPT retired SAs (for `keys --wireshark`), the older ones deleted
 * with their sequence checkpoints.
 */
import assert from 'node:assert/strict';
import { RETIRED_SAS_KEPT, type Fence, type Store } from '../../../mgmt-station/store/store.js';
import { pair, T0, type Contract } from './harness.js';

/** One refresh as the station runs it: stored 'pending' at SA_READY, a block of sequence numbers, 'active' at SA_CONFIRM. */
async function refresh(store: Store, nic: string, g: number, f: Fence, commit = true): Promise<void> {
  await store.putSa(nic, { pair: pair(g), state: 'pending', ike: null }, T0 + g, f);
  await store.reserveOutbound(nic, g, 1024n, T0 + g, f);
  if (commit) await store.activateSa(nic, g, T0 + g, f);
}

const states = async (store: Store, nic: string) => (await store.listSas(nic)).map((s) => [s.pair.generation, s.state]);

export function saRetentionCases(c: Contract): void {
  describe('SA rows over time: stale pending rows retired, retired rows bounded (issue 15)', () => {
    it('activateSa retires every pending SA of a lower generation (its exchange died mid-commit); a higher one stays pending', async () => {
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      await refresh(store, 'nic-1', 1, f);
      await refresh(store, 'nic-1', 2, f, false); // SA_READY stored, then the process died before SA_CONFIRM
      await refresh(store, 'nic-1', 3, f, false); // again
      await store.putSa('nic-1', { pair: pair(5), state: 'pending', ike: null }, T0, f); // a later exchange, under way
      await refresh(store, 'nic-1', 4, f);
      assert.deepEqual(await states(store, 'nic-1'), [[1, 'previous'], [2, 'retired'], [3, 'retired'], [4, 'active'], [5, 'pending']]);
      for (const g of [2, 3]) assert.equal((await store.getSa('nic-1', g))!.updatedAt, T0 + 4, 'retired by the commit of 4');
    });

    it(`600 refreshes, one in ten left pending by a dead process: ${RETIRED_SAS_KEPT} retired rows, the previous and the active one remain`, async function () {
      this.timeout(120000);
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      const g2 = await c.owned(store, 'nic-2');
      await refresh(store, 'nic-2', 1, g2); // another NIC: untouched by nic-1's pruning
      for (let g = 1; g <= 600; g++) await refresh(store, 'nic-1', g, f, g % 10 !== 5);
      const sas = await store.listSas('nic-1');
      assert.equal(sas.length, RETIRED_SAS_KEPT + 2, `${sas.length} rows`);
      assert.deepEqual(sas.slice(-2).map((s) => [s.pair.generation, s.state]), [[599, 'previous'], [600, 'active']]);
      const retired = sas.filter((s) => s.state === 'retired').map((s) => s.pair.generation);
      assert.equal(retired.length, RETIRED_SAS_KEPT);
      assert.deepEqual(retired, [...retired].sort((a, b) => a - b), 'by generation');
      assert.equal(retired.at(-1), 598, 'the newest retired ones are kept');
      assert.equal(sas.filter((s) => s.state === 'pending').length, 0, 'no stale pending row outlives the next commit');
      // Checkpoints go with their rows; the kept ones and the live ones stay.
      assert.equal(await store.getCheckpoint('nic-1', 1), null);
      assert.equal(await store.getCheckpoint('nic-1', retired[0] - 1), null);
      for (const g of [retired[0], 599, 600]) assert.equal((await store.getCheckpoint('nic-1', g))?.outReserved, 1024n, `checkpoint of ${g}`);
      assert.deepEqual(await states(store, 'nic-2'), [[1, 'active']]);
    });

    it('setSaState(retired) prunes too, and a pruned generation is simply gone (E_NOT_FOUND)', async () => {
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      for (let g = 1; g <= RETIRED_SAS_KEPT + 3; g++) {
        await store.putSa('nic-1', { pair: pair(g), state: 'pending', ike: null }, T0 + g, f);
        await store.setSaState('nic-1', g, 'retired', T0 + g, f);
      }
      const gens = (await store.listSas('nic-1')).map((s) => s.pair.generation);
      assert.deepEqual(gens, Array.from({ length: RETIRED_SAS_KEPT }, (_, i) => i + 4));
      assert.equal(await store.getSa('nic-1', 3), null);
      await assert.rejects(store.setSaState('nic-1', 3, 'retired', T0, f), (e: Error & { code?: string }) => e.code === 'E_NOT_FOUND');
    });
  });
}
