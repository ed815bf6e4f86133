/**
 * Lazy boot (nic-emulator/fleet.ts, issue 16): a NIC of a fleet on shared sockets is registered before its EEPROM is
 * read, and boots on its first datagram, on a control call or status that names it, or in the background. Here the
 * NIC shell (NicNode) against real EEPROM files and a stand-in for the shared sockets (no socket is opened): the
 * datagram that boots a NIC is handled by the booted NIC, a corrupt image still fails the NIC with an error naming its
 * file, and a NIC stopped before it booted never reads its file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NicNode } from '../../nic-emulator/nic-node.js';
import type { SharedPorts } from '../../nic-emulator/shared-ports.js';
import { assignAddresses, type NicAddress } from '../../nic-emulator/addressing.js';
import { NicMachine } from '../../firmware/nic-machine.js';
import { MemoryEepromDevice } from '../../firmware/eeprom-device.js';
import { EEPROM_SIZE } from '../../firmware/eeprom-record.js';
import type { NicConfig } from '../../firmware/eeprom-image.js';
import { pooledRandom } from '../../lib/random-pool.js';
import { createLogger } from '../../lib/log.js';
import { decodeRmcpAsf, encodeRmcpAsf } from '../../wire/asf.js';
import type { SaPair } from '../../wire/sa.js';

const CONFIG: NicConfig = { securityPolicy: 'esp', clearManagement: false, allowedClearCommands: 0, trustAnchor: { kind: 'none', key: new Uint8Array(32) }, clusterPolicy: '' };
const SA: SaPair = {
  generation: 0, transform: 'aes-gcm-16', esn: false, policy: 'esp', origin: 'manual',
  toNic: { spi: 0x1001, encKey: new Uint8Array(20).fill(1), ahSpi: 0, ahKey: new Uint8Array(0) },
  fromNic: { spi: 0x2001, encKey: new Uint8Array(20).fill(2), ahSpi: 0, ahKey: new Uint8Array(0) },
};

/** NIC `a`'s image as the bench writes an enrolled one (bench/fleet-enrolled.ts): formatted, keyed, trust anchor set. */
function enrolledImage(a: NicAddress): Uint8Array {
  const device = new MemoryEepromDevice(EEPROM_SIZE);
  const m = new NicMachine({
    id: a.id, address: a.address, ports: { clear: a.clearPort, secure: a.securePort, ike: a.ikePort },
    openDevice: (first) => ({ device, fresh: first }), deviceName: a.id, initialConfig: CONFIG,
    initialHostState: 'up', bootDelayMs: 0, random: pooledRandom,
  });
  m.powerOn(Date.now());
  m.installSa(SA, Date.now());
  m.setTrustAnchor(new Uint8Array(32).fill(9), Date.now());
  return device.image;
}

describe('lazy boot: a NIC registered before its EEPROM is read', () => {
  let dir: string;
  let addrs: NicAddress[];
  const sent: { port: string; bytes: Uint8Array; local: number }[] = [];
  const logged: string[] = [];
  // The shared sockets as a NIC sees them: registration and sends (nothing is bound).
  const shared = {
    add: () => undefined,
    send: (port: string, bytes: Uint8Array, _to: unknown, local: number) => sent.push({ port, bytes, local }),
    udpCounters: () => ({ truncated: 0, sendQueueFull: 0 }),
  } as unknown as SharedPorts;
  const log = createLogger({ component: 'test', level: 'info', out: (l) => logged.push(l) });
  const node = (i: number, listed?: boolean) => new NicNode({
    addr: addrs[i - 1], dataDir: dir, bootDelayMs: 0, initialConfig: CONFIG, initialHostState: 'up', log, shared,
    fileListed: listed === undefined ? undefined : () => listed,
  });
  const nodes: NicNode[] = [];
  const make = (i: number, listed?: boolean) => {
    const n = node(i, listed);
    nodes.push(n);
    return n;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeline-lazy-boot-'));
    addrs = assignAddresses({ nics: 3, firstAddress: '127.32.0.1', portBase: null });
    for (const a of addrs) writeFileSync(join(dir, `${a.id}.eeprom`), enrolledImage(a), { mode: 0o600 });
    // nic-2: one byte of the header record's payload flipped (as test/e2e/eeprom-faults.test.ts does): CRC fails.
    const p = join(dir, 'nic-2.eeprom');
    const img = readFileSync(p);
    img[12] ^= 0x20;
    writeFileSync(p, img);
    sent.length = 0;
    logged.length = 0;
  });
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('its first datagram boots it, and the booted NIC answers that datagram (a Presence Ping on 623)', () => {
    const n = make(1, true);
    assert.equal(n.booted, false);
    assert.equal(n.runState, 'starting');
    const from = { address: '127.0.0.1', port: 40000 };
    assert.equal(n.onSharedDatagram('clear', Buffer.from(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 7 })), from), true);
    assert.equal(n.booted, true);
    assert.equal(n.runState, 'running');
    assert.equal(sent.length, 1);
    assert.equal(sent[0].port, 'clear');
    const pong = decodeRmcpAsf(sent[0].bytes);
    assert.equal(pong.asf?.type, 'presence-pong');
    assert.equal(pong.asf?.tag, 7);
    // Its EEPROM holds an SA: 664 is open from the boot on (a datagram there is the NIC's, not a closed-port drop).
    assert.equal(n.onSharedDatagram('secure', Buffer.alloc(40), from), true);
  });

  it('status boots it and shows what its EEPROM holds: the active SA, the host agent', () => {
    const n = make(3);
    const s = n.status() as { state: string; sa: { active: { generation: number } | null }; hostAgent: { running: boolean } };
    assert.equal(n.booted, true);
    assert.equal(s.state, 'running');
    assert.equal(s.sa.active?.generation, 1);
    assert.equal(s.hostAgent.running, true);
  });

  it('a corrupt image: the NIC is failed with an error naming its file and the bad record, logged; its ports stay closed', () => {
    const n = make(2, true);
    assert.equal(n.onSharedDatagram('clear', Buffer.from(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 1 })), { address: '127.0.0.1', port: 40000 }), false);
    assert.equal(n.runState, 'failed');
    assert.ok(n.error?.includes(join(dir, 'nic-2.eeprom')), String(n.error));
    assert.match(n.error ?? '', /the header record \(page 0, offset 0x0000\) is corrupt/);
    assert.ok(logged.some((l) => l.includes('NIC stopped') && l.includes('E_EEPROM_CRC')), logged.join('\n'));
    assert.equal(sent.length, 0);
    assert.equal((n.status() as { state: string }).state, 'failed', 'status does not boot it again');
  });

  it('a NIC stopped before it booted never reads its file; a control call then finds it stopped', async () => {
    const n = make(1, true);
    await n.stop();
    n.ensureBooted();
    assert.equal(n.runState, 'stopped');
    assert.throws(() => n.setTrustAnchor(new Uint8Array(32)), /E_NIC_DOWN|stopped/);
  });

  it("the fleet's listing says a file is missing: the NIC formats a fresh image (no stat of its own)", () => {
    rmSync(join(dir, 'nic-3.eeprom'));
    const n = make(3, false);
    n.ensureBooted();
    assert.equal(n.runState, 'running');
    assert.equal((n.status() as { sa: { active: unknown } }).sa.active, null, 'a fresh NIC holds no SA');
    assert.equal(readFileSync(join(dir, 'nic-3.eeprom')).length, EEPROM_SIZE);
  });
});
