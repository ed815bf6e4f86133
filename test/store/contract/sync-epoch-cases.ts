/**
 * Contract cases for NIC sync epochs (DESIGN §7 "restoring a backup"): the per-NIC highest epoch
 * (getSyncEpoch, recordSyncEpoch) and the epoch each command was sent under, in the command log.
 */
import assert from 'node:assert/strict';
import type { CommandInput } from '../../../mgmt-station/store/store.js';
import { rejectsWith, T0, TTL, type Contract } from './harness.js';

const cmd = (i: number, syncEpoch?: number): CommandInput => ({
  time: T0 + i, command: 'reset', rmcpSeq: i, asfTag: 0, outcome: 'sent', ...(syncEpoch === undefined ? {} : { syncEpoch }),
});

export function syncEpochCases(c: Contract): void {
  describe('NIC sync epochs (DESIGN §7)', () => {
    it('getSyncEpoch is 0 when none was recorded; recordSyncEpoch raises it, never lowers it', async () => {
      const { store } = c;
      assert.equal(await store.getSyncEpoch('nic-1'), 0, 'not even enrolled');
      const f = await c.owned(store, 'nic-1');
      assert.equal(await store.getSyncEpoch('nic-1'), 0);
      assert.equal(await store.recordSyncEpoch('nic-1', 5, T0, f), 5);
      assert.equal(await store.recordSyncEpoch('nic-1', 3, T0 + 1, f), 5);
      assert.equal(await store.recordSyncEpoch('nic-1', 5, T0 + 2, f), 5);
      assert.equal(await store.recordSyncEpoch('nic-1', 9, T0 + 3, f), 9);
      assert.equal(await store.getSyncEpoch('nic-1'), 9);
      assert.equal(await (await c.openAt(c.place)).getSyncEpoch('nic-1'), 9, 'another connection sees it');
      const g = await c.owned(store, 'nic-2');
      assert.equal(await store.getSyncEpoch('nic-2'), 0, 'per NIC');
      assert.equal(await store.recordSyncEpoch('nic-2', 0xffffffff, T0, g), 0xffffffff);
      for (const bad of [0, -1, 1.5, 2 ** 32, Number.NaN]) await rejectsWith(store.recordSyncEpoch('nic-1', bad, T0, f), 'E_USAGE', /epoch/);
      await rejectsWith(store.getSyncEpoch('bad id'), 'E_USAGE', /nic id/);
    });

    it('recordSyncEpoch is fenced: no lease, or a lease taken over, and nothing is recorded', async () => {
      const { store } = c;
      await rejectsWith(store.recordSyncEpoch('nic-1', 1, T0, { station: 'st-a', epoch: 1 }), 'E_FENCED', /acquire/);
      const old = await c.owned(store, 'nic-1', 'st-a');
      await store.recordSyncEpoch('nic-1', 4, T0, old);
      const t = await store.acquireLease('nic-1', 'st-b', T0 + TTL, TTL);
      assert.ok(t.acquired);
      await rejectsWith(store.recordSyncEpoch('nic-1', 8, T0 + TTL, old), 'E_FENCED', /st-b holds it at epoch 2/);
      assert.equal(await store.getSyncEpoch('nic-1'), 4);
      assert.equal(await store.recordSyncEpoch('nic-1', 8, T0 + TTL, { station: 'st-b', epoch: t.lease.epoch }), 8);
    });
  });

  describe('sync epochs in the command log', () => {
    it('a command entry and a re-send record their epoch; listCommands reports the latest the command was sent under', async () => {
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      const e1 = await store.appendCommand('nic-1', cmd(1, 3), f);
      const e2 = await store.appendCommand('nic-1', cmd(2), f);
      assert.deepEqual([e1.syncEpoch, e2.syncEpoch], [3, null]);
      // A later session found command 1 not executed and sends it again in its own epoch (written before sending).
      const resend = await store.updateOutcome('nic-1', 1, 'sent', T0 + 10, f, 4);
      assert.deepEqual([resend.kind, resend.ref, resend.outcome, resend.syncEpoch], ['outcome', 1, 'sent', 4]);
      const acked = await store.updateOutcome('nic-1', 1, 'acked', T0 + 11, f);
      assert.equal(acked.syncEpoch, null);
      let list = await store.listCommands('nic-1');
      assert.deepEqual(list.map((r) => [r.index, r.outcome, r.syncEpoch]), [[1, 'acked', 4], [2, 'sent', null]]);
      assert.equal(list[0].time, T0 + 1, 'the command entry keeps its own time');
      // Latest in log order wins (epochs only grow in practice; the log order is what the fold promises).
      await store.updateOutcome('nic-1', 2, 'sent', T0 + 12, f, 7);
      await store.updateOutcome('nic-1', 2, 'sent', T0 + 13, f, 6);
      await store.updateOutcome('nic-1', 2, 'unknown', T0 + 14, f);
      list = await store.listCommands('nic-1');
      assert.deepEqual(list.map((r) => [r.index, r.outcome, r.syncEpoch]), [[1, 'acked', 4], [2, 'unknown', 6]]);
      assert.deepEqual((await store.readCommandLog('nic-1')).map((e) => e.syncEpoch), [3, null, 4, null, 7, 6, null]);
      assert.equal((await store.auditCommandLog('nic-1')).ok, true);
      assert.deepEqual(await (await c.openAt(c.place)).listCommands('nic-1'), list, 'another connection reads the same');
    });

    it('a sync epoch is an integer 1..2^32-1, and an outcome carries one only as a re-send', async () => {
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      for (const bad of [0, 2 ** 32, 2.5]) await rejectsWith(store.appendCommand('nic-1', cmd(1, bad), f), 'E_USAGE', /syncEpoch/);
      assert.equal((await store.appendCommand('nic-1', cmd(1, 0xffffffff), f)).syncEpoch, 0xffffffff);
      await rejectsWith(store.updateOutcome('nic-1', 1, 'sent', T0, f, 0), 'E_USAGE', /syncEpoch/);
      await rejectsWith(store.updateOutcome('nic-1', 1, 'acked', T0, f, 5), 'E_USAGE', /with outcome 'sent' only/);
      await rejectsWith(store.updateOutcome('nic-1', 9, 'sent', T0, f, 5), 'E_NOT_FOUND');
      assert.equal((await store.readCommandLog('nic-1')).length, 1, 'nothing was written');
    });

    it('audit verifies a log mixing entries with and without an epoch; an epoch changed behind the store\'s back is caught', async () => {
      const { store, place } = c;
      for (const id of ['nic-1', 'nic-2', 'nic-3']) {
        const f = await c.owned(store, id);
        await store.appendCommand(id, cmd(1), f);
        await store.appendCommand(id, cmd(2, 11), f);
        await store.updateOutcome(id, 1, 'sent', T0 + 3, f, 12);
        await store.updateOutcome(id, 2, 'acked', T0 + 4, f);
        assert.deepEqual(await store.auditCommandLog(id), {
          nic: id, ok: true, entries: 4, head: { index: 4, hash: (await store.readCommandLog(id))[3].hash }, firstBadIndex: null, problem: null,
        });
      }
      await place.tamper.editLog('nic-1', 2, { syncEpoch: 10 }); // an earlier epoch: "it was sent before the restore"
      await place.tamper.editLog('nic-2', 3, { syncEpoch: null }); // hide the re-send
      await place.tamper.editLog('nic-3', 1, { syncEpoch: 12 }); // give an old-form entry an epoch
      for (const [id, bad] of [['nic-1', 2], ['nic-2', 3], ['nic-3', 1]] as const) {
        const r = await store.auditCommandLog(id);
        assert.deepEqual([r.ok, r.firstBadIndex], [false, bad], id);
        assert.match(r.problem!, new RegExp(`entry ${bad} was altered`));
      }
    });

    it('listCommands gives each command its first epoch and entry hash; an acknowledgement is final', async () => {
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      const e1 = await store.appendCommand('nic-1', cmd(1, 3), f);
      await store.updateOutcome('nic-1', 1, 'sent', T0 + 2, f, 5);
      await store.updateOutcome('nic-1', 1, 'acked', T0 + 3, f);
      await store.updateOutcome('nic-1', 1, 'unknown', T0 + 4, f); // a stale process's late word
      const [r] = await store.listCommands('nic-1');
      assert.deepEqual([r.outcome, r.syncEpoch, r.firstSyncEpoch, r.hash], ['acked', 5, 3, e1.hash]);
    });

    it('updateOutcomeIf: a compare-and-set on the epoch a command was last sent under; one of two racing processes wins', async () => {
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      await store.appendCommand('nic-1', cmd(1, 3), f);
      await store.appendCommand('nic-1', cmd(2, 3), f);
      assert.equal(await store.updateOutcomeIf('nic-1', 1, 'sent', T0 + 5, f, 3, 4), true, 'first re-send wins');
      assert.equal(await store.updateOutcomeIf('nic-1', 1, 'sent', T0 + 6, f, 3, 5), false, 'a second one, from the same old epoch, loses');
      assert.equal(await store.updateOutcomeIf('nic-1', 1, 'failed', T0 + 7, f, 3), false, 'nor may it be called unsent');
      assert.equal(await store.updateOutcomeIf('nic-1', 2, 'failed', T0 + 8, f, 3), true, 'never sent: failed');
      assert.equal(await store.updateOutcomeIf('nic-1', 2, 'sent', T0 + 9, f, 3, 6), false, 'settled: no re-send');
      const list = await store.listCommands('nic-1');
      assert.deepEqual(list.map((x) => [x.index, x.outcome, x.syncEpoch]), [[1, 'sent', 4], [2, 'failed', 3]]);
      await rejectsWith(store.updateOutcomeIf('nic-1', 1, 'acked' as 'sent', T0, f, 4), 'E_USAGE', /'sent' or 'failed'/);
      await rejectsWith(store.updateOutcomeIf('nic-1', 1, 'failed', T0, f, 4, 7), 'E_USAGE', /with outcome 'sent' only/);
      const stranger = { station: 'st-x', epoch: 99 };
      await rejectsWith(store.updateOutcomeIf('nic-1', 1, 'sent', T0, stranger, 4, 7), 'E_FENCED');
      assert.equal((await store.readCommandLog('nic-1')).length, 4, 'losers and refusals wrote nothing');
    });

    it('updateOutcomeIf decides on a log that verifies: E_STORE on an edited log', async () => {
      const { store, place } = c;
      const f = await c.owned(store, 'nic-1');
      await store.appendCommand('nic-1', cmd(1, 3), f);
      await store.updateOutcome('nic-1', 1, 'unknown', T0 + 2, f);
      await place.tamper.editLog('nic-1', 2, { outcome: 'sent' }); // make it look unsettled
      await rejectsWith(store.updateOutcomeIf('nic-1', 1, 'sent', T0 + 3, f, 3, 4), 'E_STORE', /does not verify/);
    });

    it('a command named by index and hash: another command at that index (the store went back) is refused', async () => {
      const { store } = c;
      const f = await c.owned(store, 'nic-1');
      const e = await store.appendCommand('nic-1', cmd(1, 3), f);
      const other = { index: e.index, hash: 'ab'.repeat(32) };
      await rejectsWith(store.updateOutcome('nic-1', other, 'acked', T0 + 2, f), 'E_STORE', /another command at index 1/);
      assert.equal(await store.updateOutcomeIf('nic-1', other, 'sent', T0 + 3, f, 3, 4), false);
      assert.equal(await store.updateOutcomeIf('nic-1', { index: e.index, hash: e.hash }, 'sent', T0 + 4, f, 3, 4), true);
      assert.equal((await store.updateOutcome('nic-1', { index: e.index, hash: e.hash }, 'acked', T0 + 5, f)).ref, 1);
      for (const bad of [{ index: 1, hash: 'xyz' }, { index: 0, hash: e.hash }, { hash: e.hash }, null]) {
        await rejectsWith(store.updateOutcome('nic-1', bad as never, 'acked', T0, f), 'E_USAGE', /index/);
      }
      assert.equal((await store.readCommandLog('nic-1')).length, 3);
    });
  });
}
