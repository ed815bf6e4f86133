/**
 * Issue 2, "a port-per-NIC mode on one address is also offered" (nic-emulator --port-base P): NIC i listens on
 * P+3(i-1) (clear), +1 (secure), +2 (IKE). The secure path works there as on the standard ports, and two
 * NICs sharing the address are independent: their own SAs, their own hosts, their own links.
 */
import assert from 'node:assert/strict';
import { Lab, freshFirstAddress, waitFor } from '../support/lab.js';
import { UdpPeer } from '../support/udp-peer.js';
import { stationActiveSa } from '../support/station-sa.js';
import { decodeRmcpAsf, encodeRmcpAsf } from '../../wire/asf.js';
import { encodeInnerUdp } from '../../wire/esp.js';
import { syncedEndpoint } from '../support/synced-endpoint.js';

describe('e2e: port-per-NIC mode', function () {
  this.timeout(20000);
  let lab: Lab;
  let peer: UdpPeer;
  const address = freshFirstAddress();
  const base = 12000 + ((process.pid * 7) % 2600) * 3; // below the ephemeral range

  before(async () => {
    lab = new Lab('port-per-nic');
    await lab.startEmulator(['--nics', '3', '--first-address', address, '--port-base', String(base)]);
    peer = await UdpPeer.open();
  });
  after(async () => {
    await peer?.close();
    await lab?.cleanup();
  });

  it('every NIC is on the one address, NIC i on ports P+3(i-1) .. +2', async () => {
    assert.equal(lab.ready!.first, `${address}:${base}`);
    assert.equal(lab.ready!.last, `${address}:${base + 6}`);
    const rows = await lab.control.get<any[]>('/v1/nics');
    assert.deepEqual(rows.map((n) => [n.id, n.address, n.ports]), [
      ['nic-1', address, { clear: base, secure: base + 1, ike: base + 2 }],
      ['nic-2', address, { clear: base + 3, secure: base + 4, ike: base + 5 }],
      ['nic-3', address, { clear: base + 6, secure: base + 7, ike: base + 8 }],
    ]);
    assert.equal((await lab.nic(encodeURIComponent(`${address}:${base + 3}`))).id, 'nic-2', 'the control API finds a NIC by address:port');
  });

  it('clear Presence Ping is answered on each NIC\'s own clear port', async () => {
    for (const [i, port] of [base, base + 3, base + 6].entries()) {
      const r = await peer.request(encodeRmcpAsf(0xff, { type: 'presence-ping', tag: i }), port, address, (x) => x.from.port === port);
      assert.ok(r, `pong from port ${port}`);
      assert.equal(decodeRmcpAsf(r.bytes).asf?.tag, i);
    }
  });

  it('sa manual keys nic-1 and nic-2 with different SAs; secure ping works on both', async () => {
    const a = await lab.station(['sa', 'manual', 'nic-1']);
    const b = await lab.station(['sa', 'manual', 'nic-2']);
    assert.notEqual(a.toNicSpi, b.toNicSpi);
    for (const nic of ['nic-1', 'nic-2']) {
      const r = await lab.station(['ping', nic]);
      assert.equal(r.response.type, 'presence-pong');
      assert.equal(r.nic, nic);
    }
    const list = await lab.station(['list']);
    assert.deepEqual(list.map((n: any) => [n.id, n.address, n.ports.secure]), [['nic-1', address, base + 1], ['nic-2', address, base + 4]]);
  });

  it("nic-1's SA means nothing to nic-2: a packet sealed for nic-1 and sent to nic-2's port is dropped as 'spi'", async () => {
    const sa = await stationActiveSa(lab, 'nic-1');
    const s1 = await lab.nic('nic-1');
    const client = await syncedEndpoint(sa, { address, port: base + 1 }, BigInt(s1.sa.active.inHighest) + 1n);
    const packet = client.seal(encodeInnerUdp(peer.port, 623, encodeRmcpAsf(0xff, { type: 'presence-ping', tag: 1 })), {
      srcAddr: peer.address, srcPort: peer.port, dstAddr: address, dstPort: base + 4,
    });
    const spi0 = (await lab.nic('nic-2')).counters.dropped.spi ?? 0;
    await peer.send(packet, base + 4, address);
    await waitFor("nic-2 counts an unknown SPI", async () => ((await lab.nic('nic-2')).counters.dropped.spi ?? 0) === spi0 + 1, 2000);
    // The same bytes at nic-1's secure port are a valid request.
    const pong = await peer.request(packet, base + 1, address, (x) => x.from.port === base + 1);
    assert.ok(pong, 'nic-1 answers it');
  });

  it('a secure power-down of nic-1 leaves nic-2 and nic-3 up', async () => {
    await lab.station(['power-down', 'nic-1']);
    assert.deepEqual(
      (await lab.control.get<any[]>('/v1/nics')).map((n) => n.host),
      ['off', 'up', 'up'],
    );
  });

  it('a cable pulled on nic-2 times out nic-2 only; nic-1 keeps answering', async () => {
    await lab.host('nic-2', 'cable-pull');
    const r = await lab.run(['ping', 'nic-2', '--timeout', '500']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^mgmt-station: E_TIMEOUT: no answer from nic-2 \\(${address.replace(/\./g, '\\.')}:${base + 4}\\)`));
    assert.equal((await lab.station(['state', 'nic-1'])).response.systemState, 5, 'nic-1 answers: its host is off (S5)');
    await lab.host('nic-2', 'cable-plug');
    assert.equal((await lab.station(['ping', 'nic-2'])).response.type, 'presence-pong');
  });
});
