/**
 * A NIC's totals for the emulator's /metrics (firmware/nic-totals.ts, NicMachine.addTotals): counters are totals since
 * the NIC started, over its reboots — a power loss discards the firmware and its counters, and the fleet's sum must
 * not go down (Prometheus would read a counter reset) — and the states are counted once per NIC.
 */
import assert from 'node:assert/strict';
import { MemoryEepromDevice } from '../../firmware/eeprom-device.js';
import { EEPROM_SIZE, type NicConfig } from '../../firmware/eeprom-image.js';
import { NicMachine } from '../../firmware/nic-machine.js';
import { newNicTotals, type NicTotals } from '../../firmware/nic-totals.js';
import { prng } from '../support/prng.js';

const CONFIG: NicConfig = { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' };
const FROM = { address: '127.0.0.1', port: 40623 };

function machine(id: string): NicMachine {
  const dev = new MemoryEepromDevice(EEPROM_SIZE);
  let fresh = true;
  const rnd = prng(7);
  const m = new NicMachine({
    id, address: '127.0.0.1', ports: { clear: 623, secure: 664, ike: 500 },
    openDevice: () => {
      const f = fresh;
      fresh = false;
      return { device: dev, fresh: f };
    },
    deviceName: `${id}.eeprom`, initialConfig: CONFIG, initialHostState: 'up', bootDelayMs: 100, random: (n) => rnd.bytes(n),
  });
  m.powerOn(1000);
  return m;
}

function totals(...ms: NicMachine[]): NicTotals {
  const t = newNicTotals();
  for (const m of ms) m.addTotals(t, 2000);
  return t;
}

const dropped = (t: NicTotals) => Object.values(t.firmware.dropped).reduce((a, b) => a + b, 0);

describe('NicMachine.addTotals: fleet totals for /metrics', () => {
  it('counts states once per NIC and sums the firmware counters', () => {
    const a = machine('nic-1');
    const b = machine('nic-2');
    a.receive('clear', FROM, new Uint8Array([6, 0]), 1500); // too short for RMCP: dropped
    const t = totals(a, b);
    assert.deepEqual(t.runState, { running: 2 });
    assert.deepEqual(t.host, { up: 2 });
    assert.equal(t.withSa, 0);
    assert.equal(dropped(t), 1);
    assert.ok((t.eepromPageWrites.config ?? 0) > 0, 'formatting wrote the configuration');
  });

  it('a power loss and restore do not lower any counter: the old firmware\'s counts are carried', () => {
    const m = machine('nic-1');
    for (let i = 0; i < 3; i++) m.receive('clear', FROM, new Uint8Array([6, 0]), 1500);
    const before = totals(m);
    assert.equal(dropped(before), 3);
    m.hostEvent('power-loss', 1600);
    m.receive('clear', FROM, new Uint8Array([6, 0]), 1650); // nobody home: nic_unpowered
    const down = totals(m);
    assert.deepEqual(down.runState, { unpowered: 1 });
    assert.equal(down.firmware.dropped.nic_unpowered, 1);
    assert.equal(dropped(down), 4);
    assert.deepEqual(down.eepromPageWrites, before.eepromPageWrites, 'the EEPROM\'s counts are kept while it is unpowered');
    m.hostEvent('power-restore', 1700);
    m.receive('clear', FROM, new Uint8Array([6, 0]), 1750);
    const after = totals(m);
    assert.deepEqual(after.runState, { running: 1 });
    assert.equal(dropped(after), 5);
    for (const [region, n] of Object.entries(before.eepromPageWrites)) assert.ok((after.eepromPageWrites[region] ?? 0) >= n, region);
  });
});
