/**
 * The NIC machine's alerts on their own (firmware/alert-sender.ts; docs/ALERTS.md): with no station synced, secure
 * alerts wait; in the clear only where the EEPROM enables clear management, as ASF sends them (three plain traps to
 * UDP 162 of the station the NIC knows, 20 s apart, no acknowledgement); the queue is bounded and its deadlines are
 * the machine's (pollTimeout / handleTimeout); a power loss empties it. Pair tests with a station are in
 * test/sim/alerts.test.ts.
 */
import assert from 'node:assert/strict';
import { MemoryEepromDevice } from '../../firmware/eeprom-device.js';
import { EEPROM_SIZE, CLEAR_COMMAND_BITS, type NicConfig } from '../../firmware/eeprom-image.js';
import { NicMachine, type NicEffect } from '../../firmware/nic-machine.js';
import { ALERT_QUEUE_SIZE, CLEAR_SPACING_MS } from '../../firmware/alert-sender.js';
import { alertEventOf, decodePet, decodeTrap } from '../../wire/pet.js';
import { systemUuid } from '../../firmware/system-guid.js';
import { prng } from '../support/prng.js';

const POLICY = '[GENERAL]\nHeartbeat = INSTANT\nHeartbeatResponseTime = 1\n[CLUSTER]\nCluster1 = 127.0.0.9:7001\n';

function machine(clear: boolean): { m: NicMachine; now: number } {
  const config: NicConfig = {
    securityPolicy: 'esp', clearManagement: clear, allowedClearCommands: clear ? CLEAR_COMMAND_BITS['power-up'] : 0,
    trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: POLICY,
  };
  const dev = new MemoryEepromDevice(EEPROM_SIZE);
  let fresh = true;
  const rnd = prng(5);
  const m = new NicMachine({
    id: 'nic-7', address: '127.0.0.7', ports: { clear: 623, secure: 664, ike: 500 },
    openDevice: () => {
      const f = fresh;
      fresh = false;
      return { device: dev, fresh: f };
    },
    deviceName: 'nic-7.eeprom', initialConfig: config, initialHostState: 'up', bootDelayMs: 300, random: (n) => rnd.bytes(n),
  });
  const now = Date.UTC(2026, 11, 7, 18, 0, 0);
  m.powerOn(now);
  return { m, now };
}

const traps = (fx: NicEffect[]) => fx.filter((e): e is Extract<NicEffect, { kind: 'send' }> => e.kind === 'send' && e.to.port === 162);

describe('NIC machine: alerts without a station', () => {
  it('clear management off: an alert waits (no trap in the clear, no timer)', () => {
    const { m, now } = machine(false);
    const r = m.hostEvent('hang', now);
    assert.deepEqual(traps(r.effects), []);
    assert.equal((m.status().alerts as { queued: number }).queued, 1);
    assert.deepEqual(traps(m.handleTimeout(now + 60_000)), []);
  });

  it('clear management on: three plain traps to UDP 162 of the policy station, 20 s apart, then none', () => {
    const { m, now } = machine(true);
    const first = traps(m.hostEvent('hang', now + 1000).effects);
    assert.equal(first.length, 1);
    assert.deepEqual(first[0].to, { address: '127.0.0.9', port: 162 });
    assert.equal(first[0].port, 'clear');
    const t = decodeTrap(first[0].bytes);
    assert.equal(alertEventOf(t.specific), 'os-hang');
    assert.equal(t.agentAddr, '127.0.0.7');
    const pet = decodePet(t.pet);
    assert.deepEqual(pet.guid, systemUuid('nic-7'));
    assert.equal(pet.severity, 0x10);
    assert.equal(new Date((pet.timestamp + 883612800) * 1000).toISOString(), '2026-12-07T18:00:01.000Z');
    const sends: Uint8Array[] = [first[0].bytes];
    let at = now + 1000;
    for (let i = 0; i < 5; i++) {
      at += CLEAR_SPACING_MS;
      sends.push(...traps(m.handleTimeout(at)).map((s) => s.bytes));
    }
    assert.equal(sends.length, 3, 'ASF: three transmissions within a minute');
    for (const b of sends) assert.deepEqual(b, sends[0], 'the same trap each time (same sequence number)');
    assert.equal((m.status().alerts as { queued: number }).queued, 0);
  });

  it('the queue holds the newest alerts; the oldest dropped, counted; a power loss empties it', () => {
    const { m, now } = machine(false);
    for (let i = 0; i < ALERT_QUEUE_SIZE + 3; i++) {
      m.hostEvent('suspend', now + 2 * i);
      m.hostEvent('wake', now + 2 * i + 1);
    }
    const st = m.status().alerts as { queued: number; counters: { raised: number; dropped: number } };
    assert.equal(st.queued, ALERT_QUEUE_SIZE);
    assert.equal(st.counters.raised, 2 * (ALERT_QUEUE_SIZE + 3));
    assert.equal(st.counters.dropped, 2 * (ALERT_QUEUE_SIZE + 3) - ALERT_QUEUE_SIZE);
    m.hostEvent('power-loss', now + 1000);
    m.hostEvent('power-restore', now + 2000);
    const after = m.status().alerts as { queue: { event: string }[] };
    assert.deepEqual(after.queue.map((e) => e.event), ['power-loss', 'power-restore']);
  });
});
