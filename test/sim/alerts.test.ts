/**
 * ASF alerts between the production NIC machine and the production station core, in the simulator's virtual
 * time (docs/ALERTS.md): each host event reaches the owner's store once, acknowledged; a copy lost on the way is
 * sent again (the same datagram) until the acknowledgement comes; a duplicate is stored once and answered with the
 * same acknowledgement; cable and power events wait for the link or a sync; replays and ICV failures over the
 * threshold raise one security alert. Every run keeps the simulator's invariants (the nonce check sees every alert
 * and acknowledgement).
 */
import assert from 'node:assert/strict';
import { World } from '../../sim/world.js';
import type { AlertRecord } from '../../mgmt-station/store/store.js';
import type { SimNic } from '../../sim/nic.js';
import { isAlertK, nicIvParts, stationIvParts } from '../../wire/sync-iv.js';

type Scenario = (w: World, nic: SimNic, events: () => Promise<string[]>, bySequence: () => Promise<string[]>) => Promise<void>;

async function run(scenario: Scenario, seed = 3, before?: (w: World, nic: SimNic) => void): Promise<void> {
  let failure: unknown = null;
  const w = new World({
    seed, nics: 1, stations: 1, faults: 'none', policy: 'esp', trace: false,
    scenario: async (w) => {
      const nic = w.nics.get('nic-1')!;
      const events = async () => (await w.store.listAlerts({ nic: 'nic-1' })).map((a: AlertRecord) => a.event);
      // Alerts sent at the same instant may arrive in any order (the network's delays): the NIC's order is the PET's.
      const bySequence = async () => (await w.store.listAlerts({ nic: 'nic-1' })).sort((a, b) => a.petSequence - b.petSequence).map((a) => a.event);
      await w.runFor(3000); // A owns the NIC and polls it: the NIC has a live epoch whose peer is A's daemon
      try {
        await scenario(w, nic, events, bySequence);
      } catch (e) {
        failure = e;
      }
    },
  });
  before?.(w, w.nics.get('nic-1')!); // from the start (enrolment and the first sync included)
  const r = await w.run();
  if (failure) throw failure;
  assert.ok(r.ok, r.violation ?? '');
}

function alertStatus(nic: SimNic): { queued: number; counters: Record<string, number> } {
  return nic.machine.status().alerts as { queued: number; counters: Record<string, number> };
}

describe('alerts: NIC machine and station core in virtual time', function () {
  this.timeout(60_000);

  it('a hang reaches the store within the first transmission, acknowledged (nothing left queued)', () => run(async (w, nic, events) => {
    const before = (await events()).length;
    nic.event('hang');
    await w.runFor(100);
    assert.deepEqual((await events()).slice(before), ['os-hang']);
    await w.runFor(500);
    assert.equal(alertStatus(nic).queued, 0);
    assert.equal(alertStatus(nic).counters.retransmitted, 0);
    const [a] = await w.store.listAlerts({ nic: 'nic-1' });
    assert.equal(a.station, 'A');
    assert.equal(a.severity, 0x10);
    assert.equal(a.via, 'secure');
  }));

  it('a copy lost on the way is sent again until acknowledged; stored once', () => run(async (w, nic, events) => {
    const st = w.stations.get('A')!;
    w.net.partition(nic.address, st.address, true);
    nic.event('hang');
    await w.runFor(300); // the first copy and the first retransmission are lost
    w.net.partition(nic.address, st.address, false);
    await w.runFor(3000);
    assert.deepEqual(await events(), ['os-hang']);
    const s = alertStatus(nic);
    assert.equal(s.queued, 0);
    assert.ok(s.counters.retransmitted >= 1, JSON.stringify(s.counters));
  }));

  it('a duplicate (the same datagram again) is stored once and gets the same acknowledgement', () => run(async (w, nic, events) => {
    const st = w.stations.get('A')!;
    const seen: { from: { address: string; port: number }; to: { address: string; port: number }; bytes: Uint8Array }[] = [];
    const prev = w.net.onSend;
    w.net.onSend = (from, to, bytes) => {
      prev?.(from, to, bytes);
      if (from.address === nic.address && to.address === st.address) seen.push({ from, to, bytes });
      if (from.address === st.address && to.address === nic.address) seen.push({ from, to, bytes });
    };
    nic.event('suspend');
    await w.runFor(200);
    const at = seen.findIndex((s) => s.from.address === nic.address && s.bytes.length > 100);
    assert.ok(at >= 0, 'the alert went out');
    const alert = seen[at];
    const ack = seen.slice(at + 1).find((s) => s.from.address === st.address)!;
    assert.ok(ack, 'the station answered it');
    const ackHex = Buffer.from(ack.bytes).toString('hex');
    const copies = () => seen.filter((s) => Buffer.from(s.bytes).toString('hex') === ackHex).length;
    assert.equal(copies(), 1);
    w.net.send(alert.from, alert.to, alert.bytes);
    w.net.send(alert.from, alert.to, alert.bytes);
    await w.runFor(200);
    assert.deepEqual(await events(), ['sleep']);
    assert.equal(copies(), 3, 'each duplicate answered with the same acknowledgement datagram: no IV spent');
    w.net.onSend = prev;
  }));

  it("an alert's IV is a free slot (k = 2 or 3) of a station packet the NIC accepted, each used once; a burst beyond the free slots waits for the station's next packets", () => {
    const stationIvs = new Set<string>();
    const alerts = new Map<string, string>(); // datagram -> its IV (epoch30:low:k)
    const watch = (w: World, nic: SimNic): void => {
      const st = w.stations.get('A')!;
      const prev = w.net.onSend;
      w.net.onSend = (from, to, bytes) => {
        prev?.(from, to, bytes);
        if (to.port !== 664 && from.port !== 664) return;
        if (bytes.length < 16 || (bytes[0] & bytes[1] & bytes[2] & bytes[3]) === 0xff) return; // sync frames and heartbeats (SPI FFFFFFFFh)
        if (from.address === st.address) {
          const iv = stationIvParts(bytes)!;
          stationIvs.add(`${iv.epoch}:${iv.low}`);
        } else if (from.address === nic.address) {
          const iv = nicIvParts(bytes)!;
          if (isAlertK(iv.k)) alerts.set(Buffer.from(bytes).toString('hex'), `${iv.epoch30}:${iv.low}:${iv.k}`);
        }
      };
    };
    return run(async (w, nic, events) => {
      const before = (await events()).length;
      for (let i = 0; i < 12; i++) {
        nic.event('suspend');
        nic.event('wake');
      }
      await w.runFor(1000); // each acknowledgement the station sends frees two more slots: no wait for a poll
      assert.equal((await events()).length - before, 24, 'every alert of the burst stored within a second');
      const s = alertStatus(nic);
      assert.equal(s.queued, 0);
      assert.ok(s.counters.slotWaits > 0, `the burst outran the free slots: ${JSON.stringify(s.counters)}`);
      const ivs = [...alerts.values()];
      assert.ok(ivs.length >= 24);
      assert.equal(new Set(ivs).size, ivs.length, 'no alert IV twice');
      for (const iv of ivs) {
        const [e, low] = iv.split(':');
        assert.ok(stationIvs.has(`${e}:${low}`), `alert IV ${iv} is a slot of a station packet`);
      }
    }, 3, watch);
  });

  it('reset, boot, power-down, power-up, wake: one alert each, in order', () => run(async (w, nic, events) => {
    const st = w.stations.get('A')!;
    await w.drive(w.command(st, 'nic-1', 'power-cycle'), 10_000);
    await w.runFor(1000); // the boot (300 ms) completes
    await w.drive(w.command(st, 'nic-1', 'power-down'), 10_000);
    await w.drive(w.command(st, 'nic-1', 'power-up'), 10_000);
    await w.runFor(1000);
    nic.event('suspend');
    await w.runFor(100);
    nic.event('wake');
    await w.runFor(500);
    assert.deepEqual(await events(), ['boot-initiated', 'os-boot', 'power-down', 'power-up', 'os-boot', 'sleep', 'wake']);
  }));

  it('cable pull and plug: both reported once the link is back, the pull first', () => run(async (w, nic, events, bySequence) => {
    nic.event('cable-pull');
    await w.runFor(2000);
    assert.deepEqual(await events(), []);
    nic.event('hang');
    await w.runFor(500);
    nic.event('cable-plug');
    await w.runFor(500);
    assert.deepEqual(await bySequence(), ['cable-pull', 'os-hang', 'cable-plug']);
  }));

  it('power loss: reported with the restore, after the station syncs with the rebooted NIC', () => run(async (w, nic, _events, bySequence) => {
    nic.event('power-loss');
    await w.runFor(1000);
    nic.event('power-restore');
    await w.runFor(10_000); // the daemon's next poll finds the NIC unsynced and syncs
    assert.deepEqual(await bySequence(), ['power-loss', 'power-restore']);
    assert.equal(alertStatus(nic).queued, 0);
  }));

  it('replays over the threshold in an interval: one security alert with the counts', () => run(async (w, nic, events) => {
    const st = w.stations.get('A')!;
    type Datagram = { from: { address: string; port: number }; to: { address: string; port: number }; bytes: Uint8Array };
    const captured: Datagram[] = [];
    const prev = w.net.onSend;
    w.net.onSend = (from, to, bytes) => {
      prev?.(from, to, bytes);
      if (from.address === st.address && to.address === nic.address && to.port === 664 && bytes.length > 40 && bytes[0] !== 0xff) captured.push({ from, to, bytes });
    };
    await w.runFor(3000);
    w.net.onSend = prev;
    assert.ok(captured.length > 0, 'a station packet was captured');
    const c = captured[0];
    for (let i = 0; i < 40; i++) w.net.send(c.from, c.to, c.bytes);
    await w.runFor(500);
    assert.deepEqual(await events(), ['security']);
    const [a] = await w.store.listAlerts({ nic: 'nic-1' });
    const pet = Buffer.from(a.pet, 'hex');
    assert.equal(pet[31], 0xa5);
    assert.equal(pet[32], 16, 'ED2: the replays counted when the threshold was reached');
  }));
});
