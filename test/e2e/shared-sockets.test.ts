/**
 * Issue 16: an address-per-NIC fleet on shared sockets (`--shared-sockets on`: one socket per port number, bound
 * to 0.0.0.0 with IP_PKTINFO, nic-emulator/shared-ports.ts) looks to its peers exactly like a socket per NIC: each
 * NIC answers on 623 from its own address, rmcpping works, manual keying and a secure `state` work on 664, and
 * enrolment runs IKE on the NIC's address; datagrams to an address with no NIC, or to a port the NIC has not
 * opened, are counted drops. Uses 127.100.0.0/16 (this work's test addresses); root only (ports below 1024).
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { Lab, isRoot, waitFor } from '../support/lab.js';
import { hasBinary } from '../support/tshark.js';
import { UdpPeer } from '../support/udp-peer.js';
import { writePskFile } from '../support/station-daemon.js';
import { decodeRmcpAsf, encodeRmcpAsf } from '../../wire/asf.js';

const FIRST = `127.100.${1 + (process.pid % 200)}.1`;
const NICS = 4;
const address = (i: number) => FIRST.replace(/\.1$/, `.${i}`);

describe('e2e: an address-per-NIC fleet on shared sockets (--shared-sockets on)', function () {
  this.timeout(40000);
  let lab: Lab;
  let peer: UdpPeer;

  before(async function () {
    if (!isRoot) this.skip(); // ports 623/664/500 need root
    lab = new Lab('shared-sockets');
    await lab.startEmulator(['--nics', String(NICS), '--first-address', FIRST, '--shared-sockets', 'on']);
    peer = await UdpPeer.open('127.0.0.1');
  });
  after(async () => {
    await peer?.close();
    await lab?.cleanup();
  });

  it('the process holds three UDP sockets for the fleet, whatever its size; every NIC reports the shared layer', async () => {
    const pid = lab.ready!.pid;
    const sockets = readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try {
        return /^socket:/.test(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false;
      }
    });
    // 3 shared UDP sockets + the control API's listener (+ Node's own, e.g. none on Linux): never one per NIC.
    assert.ok(sockets.length <= 6, `${sockets.length} sockets`);
    const s = await lab.nic('nic-2');
    assert.equal(s.udp.shared, true);
    assert.equal(s.udp.io, 'batch');
  });

  it('a Presence Ping to each NIC on 623 is answered from that NIC\'s address and port 623', async () => {
    for (let i = 1; i <= NICS; i++) {
      const ping = encodeRmcpAsf(0xff, { type: 'presence-ping', tag: i });
      const r = await peer.request(ping, 623, address(i), (x) => x.from.address === address(i), 3000);
      assert.ok(r, `no answer from ${address(i)}`);
      assert.equal(r.from.port, 623);
      const m = decodeRmcpAsf(r.bytes);
      assert.equal(m.asf?.type, 'presence-pong');
      assert.equal(m.asf?.tag, i);
    }
    const s = await lab.nic('nic-3');
    assert.ok(s.counters.accepted.clear >= 1, 'nic-3 counted its own ping');
  });

  it('rmcpping <NIC address> gets its pongs (FreeIPMI checks nothing we changed, but the answer must reach it)', async function () {
    if (!hasBinary('rmcpping')) this.skip();
    const r = await lab.exec('rmcpping', ['-c', '2', address(NICS)], { timeoutMs: 15000 });
    assert.equal(r.code, 0, `rmcpping failed: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`pong received from ${address(NICS).replace(/\./g, '\\.')}`));
    assert.match(r.stdout, /2 pings transmitted, 2 pongs received in time, 0\.0% packet loss/);
  });

  it('to an address with no NIC, or to 664 of a NIC without an SA: counted drops (health.sharedSockets)', async () => {
    const before = (await lab.control!.get<{ sharedSockets: { noNic: number; portClosed: number } }>('/v1/health')).sharedSockets;
    await peer.send(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 9 }), 623, address(200));
    await peer.send(new Uint8Array(40), 664, address(1));
    await waitFor('the two drops counted', async () => {
      const h = (await lab.control!.get<{ sharedSockets: { noNic: number; portClosed: number } }>('/v1/health')).sharedSockets;
      return h.noNic === before.noNic + 1 && h.portClosed === before.portClosed + 1;
    }, 3000);
  });

  it('sa manual nic-2, then a secure state: the answer comes back through the shared 664 socket', async () => {
    const sa = await lab.station(['sa', 'manual', 'nic-2']);
    assert.equal(sa.ok, true);
    const r = await lab.station(['state', 'nic-2']);
    assert.equal(r.response.type, 'system-state-response');
    assert.equal(r.response.systemState, 0);
  });

  it('enroll nic-3 over IKEv2 on its address (the shared IKE socket), then a secure state under the negotiated SA', async () => {
    const { file } = writePskFile(lab);
    const r = await lab.station(['enroll', 'nic-3', '--psk-file', file]);
    assert.equal(r.ok, true);
    assert.equal(r.exchange, 'IKE_AUTH');
    const st = await lab.station(['state', 'nic-3']);
    assert.equal(st.generation, r.generation);
    assert.equal(st.response.systemState, 0);
  });

  it('a second emulator on shared sockets cannot start while this one holds the ports: one line says why and what to do', async () => {
    const other = new Lab('shared-sockets-2');
    try {
      // (with --json the refusal is the one JSON line on stdout, where the ready line would be)
      const r = (await other.startEmulator(['--nics', '1', '--first-address', address(100), '--shared-sockets', 'on'])) as unknown as { ok: boolean; error: { code: string; message: string } };
      assert.equal(r.ok, false);
      assert.equal(r.error.code, 'E_USAGE');
      assert.match(r.error.message, /^address in use .*shared sockets bind ports 623, 664 and 500 on every address.*--shared-sockets off/);
    } finally {
      await other.cleanup();
    }
  });
});
