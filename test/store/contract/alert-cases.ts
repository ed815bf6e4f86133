/**
 * Contract cases for the alerts table (docs/ALERTS.md): an alert is stored once per (NIC, alert id) whichever
 * station stores it, without a lease; rows come back in id order, by NIC, after an id, the newest N; a NIC keeps
 * its newest ALERTS_KEPT; bad rows are refused before anything is written.
 */
import assert from 'node:assert/strict';
import { ALERTS_KEPT, type AlertInput } from '../../../mgmt-station/store/store.js';
import { rejectsWith, T0, type Contract } from './harness.js';

const PET = '0123456789abcdef0123456789abcdef000134f94dc0000050681' + '0ffff2300' + '01ffff0000000000' + '19000011be0001' + '080102030405060708c1';

export function alert(id: number, over: Partial<AlertInput> = {}): AlertInput {
  return {
    alertId: id.toString(16).padStart(16, '0'), receivedAt: T0 + id, event: 'os-hang', severity: 0x10, specific: 2125569,
    petSequence: id & 0xffff, petTime: T0 - 1000, pet: PET, via: 'secure', ...over,
  };
}

export function alertCases(c: Contract): void {
  describe('alerts (docs/ALERTS.md)', () => {
    it('stores an alert once per (NIC, alert id), by whichever station, without a lease', async () => {
      const { store } = c;
      assert.equal(PET.length / 2, 56);
      const a = await store.addAlert('nic-1', 'st-a', alert(1));
      assert.ok(a);
      assert.deepEqual({ ...a, id: 0 }, { ...alert(1), id: 0, nic: 'nic-1', station: 'st-a' });
      assert.equal(await store.addAlert('nic-1', 'st-b', alert(1, { receivedAt: T0 + 99 })), null, 'a retransmission stored again by another station');
      const b = await store.addAlert('nic-2', 'st-b', alert(1)); // another NIC's id space
      assert.ok(b && b.id > a.id);
      const all = await store.listAlerts({});
      assert.deepEqual(all.map((r) => [r.nic, r.station]), [['nic-1', 'st-a'], ['nic-2', 'st-b']]);
      assert.equal(all[0].petTime, T0 - 1000);
      assert.equal((await store.addAlert('nic-1', 'st-a', alert(2, { petTime: null })))!.petTime, null);
    });

    it('lists by NIC, after an id, the newest N in id order; another connection sees them', async () => {
      const { store } = c;
      const ids: number[] = [];
      for (let i = 1; i <= 6; i++) ids.push((await store.addAlert(i % 2 ? 'nic-1' : 'nic-2', 'st-a', alert(i)))!.id);
      assert.deepEqual((await store.listAlerts({ nic: 'nic-1' })).map((r) => r.id), [ids[0], ids[2], ids[4]]);
      assert.deepEqual((await store.listAlerts({ afterId: ids[3] })).map((r) => r.id), [ids[4], ids[5]]);
      assert.deepEqual((await store.listAlerts({ limit: 2 })).map((r) => r.id), [ids[4], ids[5]]);
      assert.deepEqual((await store.listAlerts({ nic: 'nic-2', afterId: ids[1], limit: 1 })).map((r) => r.id), [ids[5]]);
      const other = await c.openAt(c.place);
      assert.equal((await other.listAlerts({})).length, 6);
    });

    it(`keeps the newest ${ALERTS_KEPT} alerts of a NIC; ids are not handed out again`, async function () {
      this.timeout(120_000);
      const { store } = c;
      let last = 0;
      for (let i = 1; i <= ALERTS_KEPT + 5; i++) last = (await store.addAlert('nic-1', 'st-a', alert(i)))!.id;
      await store.addAlert('nic-2', 'st-a', alert(1));
      const kept = await store.listAlerts({ nic: 'nic-1' });
      assert.equal(kept.length, ALERTS_KEPT);
      assert.equal(kept[0].alertId, alert(6).alertId);
      assert.equal(kept.at(-1)!.id, last);
      assert.equal((await store.listAlerts({ nic: 'nic-2' })).length, 1);
    });

    it('refuses a bad row (E_USAGE) and writes nothing', async () => {
      const { store } = c;
      await rejectsWith(store.addAlert('nic-1', 'st-a', alert(1, { alertId: 'xyz' })), 'E_USAGE');
      await rejectsWith(store.addAlert('nic-1', 'st-a', alert(1, { pet: 'c1' })), 'E_USAGE');
      await rejectsWith(store.addAlert('nic-1', 'st-a', alert(1, { via: 'udp' as 'clear' })), 'E_USAGE');
      await rejectsWith(store.listAlerts({ afterId: -1 }), 'E_USAGE');
      assert.deepEqual(await store.listAlerts({}), []);
    });
  });
}
