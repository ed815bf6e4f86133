/**
 * Contract cases for the sealed runtime rows (mgmt-station/store/row-mac.ts): sequence checkpoints and sync
 * epochs edited behind the store's back by someone without the cluster key are E_STORE on every read and
 * write, with nothing written; an older sealed version of a row copied back is not detectable by its MAC.
 */
import assert from 'node:assert/strict';
import type { Fence, Store } from '../../../mgmt-station/store/store.js';
import { pair, rejectsWith, T0, type Contract } from './harness.js';

const ALTERED = /altered outside a station.*restore the store from a backup, or audit/;

export function sealedRowCases(c: Contract): void {
  describe('sealed rows: sequence checkpoints and sync epochs', () => {
    /** nic-1 with active SA generation 1 (and pending 2), checkpointed at out 1000, in 50. */
    const checkpointed = async (store: Store): Promise<Fence> => {
      const f = await c.owned(store, 'nic-1');
      await store.putSa('nic-1', { pair: pair(1), state: 'active', ike: null }, T0, f);
      await store.putSa('nic-1', { pair: pair(2), state: 'pending', ike: null }, T0, f);
      await store.reserveOutbound('nic-1', 1, 1000n, T0, f);
      await store.recordInbound('nic-1', 1, 50n, T0 + 1, f);
      return f;
    };

    /** Every read and write of (nic-1, gen) fails closed, and the stored row is left exactly as it was. */
    const failsClosed = async (store: Store, f: Fence, gen: number): Promise<void> => {
      const before = await c.place.tamper.seqRow('nic-1', gen);
      await rejectsWith(store.getCheckpoint('nic-1', gen), 'E_STORE', new RegExp(`nic-1 SA generation ${gen}`));
      await rejectsWith(store.reserveOutbound('nic-1', gen, 5000n, T0 + 5, f), 'E_STORE', ALTERED);
      await rejectsWith(store.claimOutbound('nic-1', gen, 1n, 100n, T0 + 5, f), 'E_STORE', ALTERED);
      await rejectsWith(store.recordInbound('nic-1', gen, 500n, T0 + 5, f), 'E_STORE', ALTERED);
      // Not even a value the monotonic rule would ignore is answered from an unverified row.
      await rejectsWith(store.reserveOutbound('nic-1', gen, 1n, T0 + 5, f), 'E_STORE', ALTERED);
      assert.deepEqual(await c.place.tamper.seqRow('nic-1', gen), before, 'nothing written');
    };

    it('a checkpoint lowered behind the store\'s back is E_STORE on read and on every write, nothing written', async () => {
      const f = await checkpointed(c.store);
      await c.place.tamper.editSeq('nic-1', 1, { outReserved: 10n }); // would make the station reuse numbers 11..1000
      await failsClosed(c.store, f, 1);
    });

    it('so is a checkpoint with its MAC edited, or copied from another generation or another NIC', async () => {
      const { store, place } = c;
      const f = await checkpointed(store);
      await store.reserveOutbound('nic-1', 2, 7n, T0, f);
      const gen1 = (await place.tamper.seqRow('nic-1', 1))!;
      await place.tamper.putSeqRow({ ...gen1, generation: 2 });
      await failsClosed(store, f, 2);
      await place.tamper.editSeq('nic-1', 1, { mac: '00'.repeat(32) });
      await failsClosed(store, f, 1);
      // The same row under another NIC's name does not verify there either.
      const g = await c.owned(store, 'nic-2');
      await store.putSa('nic-2', { pair: pair(1), state: 'active', ike: null }, T0, g);
      await store.reserveOutbound('nic-2', 1, 3n, T0, g);
      await place.tamper.putSeqRow({ ...gen1, nic: 'nic-2', generation: 1 });
      await rejectsWith(store.getCheckpoint('nic-2', 1), 'E_STORE', /nic-2/);
      await rejectsWith(store.claimOutbound('nic-2', 1, 1n, 1n, T0, g), 'E_STORE', ALTERED);
    });

    it('a sync epoch row edited behind the store\'s back is E_STORE on read and on write, nothing written', async () => {
      const { store, place } = c;
      const f = await c.owned(store, 'nic-1');
      await store.recordSyncEpoch('nic-1', 7, T0, f);
      for (const patch of [{ maxEpoch: 3 }, { maxEpoch: 7, mac: 'ff'.repeat(32) }]) {
        await place.tamper.editSync('nic-1', patch);
        const before = await place.tamper.syncRow('nic-1');
        await rejectsWith(store.getSyncEpoch('nic-1'), 'E_STORE', /sync epoch row of nic-1 was altered outside a station/);
        await rejectsWith(store.recordSyncEpoch('nic-1', 9, T0 + 1, f), 'E_STORE', ALTERED);
        await rejectsWith(store.recordSyncEpoch('nic-1', 1, T0 + 1, f), 'E_STORE', ALTERED);
        assert.deepEqual(await place.tamper.syncRow('nic-1'), before, 'nothing written');
      }
      // Copied to another NIC: bound to nic-1, it does not verify as nic-2's.
      const g = await c.owned(store, 'nic-2');
      await store.recordSyncEpoch('nic-2', 2, T0, g);
      await store.recordSyncEpoch('nic-3', 1, T0, await c.owned(store, 'nic-3'));
      const nic3 = (await place.tamper.syncRow('nic-3'))!;
      await place.tamper.putSyncRow({ ...nic3, nic: 'nic-2' });
      await rejectsWith(store.getSyncEpoch('nic-2'), 'E_STORE', /nic-2/);
    });

    it('an older version of a row copied back still verifies: a MAC cannot detect a rollback (the NIC sync does)', async () => {
      // row-mac.ts: an earlier row was sealed by a station, as a restored backup is. What catches this is the NIC:
      // its sync counter is ahead of the store's, and the session resumes above what the NIC reports.
      const { store, place } = c;
      const f = await checkpointed(store);
      const old = (await place.tamper.seqRow('nic-1', 1))!;
      await store.reserveOutbound('nic-1', 1, 9000n, T0 + 2, f);
      await place.tamper.putSeqRow(old);
      assert.deepEqual(await store.getCheckpoint('nic-1', 1), { nic: 'nic-1', generation: 1, outReserved: 1000n, inHighest: 50n, updatedAt: T0 + 1 });
      assert.equal(await store.reserveOutbound('nic-1', 1, 2000n, T0 + 3, f), 2000n);

      await store.recordSyncEpoch('nic-1', 4, T0, f);
      const oldSync = (await place.tamper.syncRow('nic-1'))!;
      await store.recordSyncEpoch('nic-1', 8, T0 + 1, f);
      await place.tamper.putSyncRow(oldSync);
      assert.equal(await store.getSyncEpoch('nic-1'), 4);
      assert.equal(await store.recordSyncEpoch('nic-1', 5, T0 + 2, f), 5);
    });
  });
}
