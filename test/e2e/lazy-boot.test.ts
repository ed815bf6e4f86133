/**
 * Issue 16: lazy boot (nic-emulator/fleet.ts). A fleet on shared sockets started with `--lazy-boot on` is ready
 * before any NIC has read its EEPROM (the ready line counts them all as booting), then boots them in the background;
 * a corrupt image still fails its NIC with an error naming the file (stderr, status, health, /metrics), and the
 * others answer on their stored SAs. Uses 127.32.0.0/16 (this work's test addresses); root only (ports below 1024;
 * the shared sockets bind 0.0.0.0:623/664/500, so run it under the e2e lock).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, isRoot, waitFor } from '../support/lab.js';
import { UdpPeer } from '../support/udp-peer.js';
import { decodeRmcpAsf, encodeRmcpAsf } from '../../wire/asf.js';

const FIRST = `127.32.${1 + (process.pid % 200)}.1`;
const NICS = 6;
const address = (i: number) => FIRST.replace(/\.1$/, `.${i}`);

describe('e2e: lazy boot of a fleet on shared sockets (--lazy-boot on)', function () {
  this.timeout(60000);
  let lab: Lab;
  let peer: UdpPeer;
  const path = (nic: string) => join(lab.dir, 'nics', `${nic}.eeprom`);
  let bad: Buffer;

  before(async function () {
    if (!isRoot) this.skip(); // ports 623/664/500 need root
    lab = new Lab('lazy-boot');
    const first = await lab.startEmulator(['--nics', String(NICS), '--first-address', FIRST, '--shared-sockets', 'on', '--lazy-boot', 'on']);
    assert.equal(first.booting, NICS, 'a fresh fleet too: ready before any image is formatted');
    await lab.station(['sa', 'manual', 'nic-1']);
    await lab.station(['sa', 'manual', 'nic-4']);
    await lab.stopEmulator('SIGTERM');
    // nic-2: one byte of the header record's payload flipped (as in eeprom-faults.test.ts): CRC fails.
    bad = readFileSync(path('nic-2'));
    bad[12] ^= 0x20;
    writeFileSync(path('nic-2'), bad);
    await lab.restartEmulator();
    peer = await UdpPeer.open('127.0.0.1');
  });
  after(async () => {
    await peer?.close();
    await lab?.cleanup();
  });

  it('the ready line comes before any EEPROM is read: every NIC booting, none running or failed yet', () => {
    assert.equal(lab.ready!.booting, NICS);
    assert.equal(lab.ready!.running, 0);
    assert.equal(lab.ready!.failed, 0);
  });

  it('the background boot ends with 5 running and nic-2 failed: health, /metrics and stderr say so', async () => {
    await waitFor('every NIC booted', async () => (await lab.control.get<{ booting: number }>('/v1/health')).booting === 0);
    const h = await lab.control.get<{ running: number; failed: number; booting: number }>('/v1/health');
    assert.deepEqual([h.running, h.failed, h.booting], [NICS - 1, 1, 0]);
    const metrics = await (await fetch(`http://${lab.ready!.control}/metrics`)).text();
    assert.match(metrics, /^lifeline_nics\{state="failed"\} 1$/m);
    assert.match(metrics, /^lifeline_nics\{state="starting"\} 0$/m);
    assert.match(metrics, /^lifeline_nics_with_sa 2$/m);
    await waitFor('the failure on stderr', async () => lab.emulatorStderr.includes('nic-2 failed: '));
    const s = await lab.nic('nic-2');
    assert.equal(s.state, 'failed');
    assert.ok(s.error.includes(path('nic-2')), `error names the file: ${s.error}`);
    assert.match(s.error, /the header record \(page 0, offset 0x0000\) is corrupt/);
    assert.ok(lab.emulatorStderr.includes(`nic-2 failed: ${s.error}`), lab.emulatorStderr);
    assert.ok(readFileSync(path('nic-2')).equals(bad), 'the bad file is left as it was');
  });

  it('the keyed NICs answer a secure ping on their stored SAs; a fresh one answers a Presence Ping from its address', async () => {
    assert.equal((await lab.station(['ping', 'nic-1'])).response.type, 'presence-pong');
    assert.equal((await lab.station(['ping', 'nic-4'])).response.type, 'presence-pong');
    const r = await peer.request(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 5 }), 623, address(5), (x) => x.from.address === address(5), 3000);
    assert.ok(r, `no answer from ${address(5)}`);
    assert.equal(decodeRmcpAsf(r.bytes).asf?.type, 'presence-pong');
  });

  it('--lazy-boot on without shared sockets is E_USAGE', async () => {
    const r = await lab.emulatorCli(['start', '--nics', '2', '--port-base', String(30000 + (process.pid % 1000) * 3), '--lazy-boot', 'on', '--control', '127.0.0.1:0', '--data-dir', join(lab.dir, 'other')]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /E_USAGE: --lazy-boot on needs shared sockets/);
  });
});
