/**
 * mgmt-station/ike-mux.ts: one IKE socket for every NIC's key exchange, datagrams dispatched by IKE SPI (issue 16).
 */
import { strict as assert } from 'node:assert';
import { IkeDispatch, MAX_SPIS_PER_CHANNEL, openSharedIkeSocket, ikeDrops } from '../../mgmt-station/ike-mux.js';
import dgram from 'node:dgram';

/** An IKE header (28 bytes) with these SPIs, then `tail`. */
function ike(spiI: bigint, spiR: bigint, tail = 0): Uint8Array {
  const b = new Uint8Array(28 + tail);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, spiI);
  v.setBigUint64(8, spiR);
  b[17] = 0x20;
  return b;
}

const NIC1 = { address: '127.0.1.1', port: 500 };
const NIC2 = { address: '127.0.1.2', port: 500 };

describe('IKE SPI dispatch (mgmt-station/ike-mux.ts)', () => {
  function setup() {
    const sent: { port: number; address: string }[] = [];
    let empty = 0;
    const d = new IkeDispatch((_b, port, address) => sent.push({ port, address }), () => empty++);
    const got: Record<string, Uint8Array[]> = { a: [], b: [] };
    const a = d.open((bytes) => got.a.push(bytes));
    const b = d.open((bytes) => got.b.push(bytes));
    return { d, a, b, got, sent, empty: () => empty };
  }

  it('an answer goes to the channel whose IKE_SA_INIT carried its initiator SPI, from that NIC only', () => {
    const { d, a, b, got, sent } = setup();
    a.send(ike(0x1111n, 0n), NIC1.port, NIC1.address);
    b.send(ike(0x2222n, 0n), NIC2.port, NIC2.address);
    assert.deepEqual(sent, [NIC1, NIC2]);
    d.receive(ike(0x1111n, 0xaaaan), NIC1);
    d.receive(ike(0x2222n, 0xbbbbn), NIC2);
    assert.equal(got.a.length, 1);
    assert.equal(got.b.length, 1);
    // NIC 2 answering with NIC 1's SPI reaches nobody.
    d.receive(ike(0x1111n, 0xbbbbn), NIC2);
    assert.equal(got.a.length, 1);
    assert.equal(d.dropped.wrongPeer, 1);
    // Unknown SPIs from a sender no channel talks to, and runts, are counted and dropped.
    d.receive(ike(0x3333n, 0x4444n), { address: '127.0.1.3', port: 500 });
    d.receive(new Uint8Array(20), NIC1);
    assert.deepEqual(d.dropped, { short: 1, unknownSpi: 1, wrongPeer: 1 });
  });

  it('an IKE SA the peer rekeyed (its SPI first, ours second) still reaches us', () => {
    const { d, a, got } = setup();
    a.send(ike(0x1111n, 0xaaaan, 40), NIC1.port, NIC1.address);
    // The peer's new IKE SA: the peer is its initiator; our SPI is the responder's.
    a.send(ike(0x7777n, 0x5555n, 40), NIC1.port, NIC1.address);
    d.receive(ike(0x7777n, 0x5555n), NIC1);
    d.receive(ike(0x9999n, 0x5555n), NIC1); // only our SPI known: still ours
    assert.equal(got.a.length, 2);
  });

  it('an IKE SA made by a rekey, whose SPIs travelled in a payload, reaches the one channel talking to that NIC', () => {
    const { d, a, b, got } = setup();
    a.send(ike(0x1111n, 0xaaaan, 40), NIC1.port, NIC1.address);
    // The peer deletes the IKE SA a CREATE_CHILD_SA made: neither SPI was ever in a header we sent.
    d.receive(ike(0x6666n, 0x5555n), NIC1);
    assert.equal(got.a.length, 1);
    d.receive(ike(0x6666n, 0x5555n), NIC1); // learnt now
    assert.equal(got.a.length, 2);
    // Two channels talking to one NIC: an unknown SPI from it is nobody's.
    b.send(ike(0x2222n, 0n), NIC1.port, NIC1.address);
    d.receive(ike(0x8888n, 0x9999n), NIC1);
    assert.equal(got.a.length + got.b.length, 2);
    assert.equal(d.dropped.unknownSpi, 1);
  });

  it('a peer that copies another channel\'s SPI as its own does not take it over', () => {
    const { d, a, b, got } = setup();
    a.send(ike(0x1111n, 0n), NIC1.port, NIC1.address);
    // NIC 2's host answers b's IKE_SA_INIT with a's SPI as its responder SPI; b's next request carries both.
    b.send(ike(0x2222n, 0n), NIC2.port, NIC2.address);
    b.send(ike(0x2222n, 0x1111n), NIC2.port, NIC2.address);
    d.receive(ike(0x1111n, 0xaaaan), NIC1);
    d.receive(ike(0x2222n, 0x1111n), NIC2);
    assert.equal(got.a.length, 1);
    assert.equal(got.b.length, 1);
  });

  it('a channel keeps its last MAX_SPIS_PER_CHANNEL SPIs; a closed channel none; the last close empties the socket', async () => {
    const { d, a, b, got, empty } = setup();
    for (let i = 1n; i <= 20n; i++) a.send(ike(i, 0n), NIC1.port, NIC1.address);
    assert.equal(d.spiCount, MAX_SPIS_PER_CHANNEL);
    // SPI 1 left the table: from a sender no channel talks to, it is nobody's (from NIC 1 it would go to a, the one
    // channel talking to NIC 1, as an IKE SA made by a rekey does).
    d.receive(ike(1n, 0xffn), { address: NIC1.address, port: 4500 });
    d.receive(ike(20n, 0xffn), NIC1);
    assert.equal(got.a.length, 1);
    assert.equal(d.dropped.unknownSpi, 1);
    await a.close();
    assert.equal(d.spiCount, 0);
    d.receive(ike(20n, 0xffn), NIC1);
    assert.equal(got.a.length, 1);
    assert.equal(empty(), 0);
    await b.close();
    assert.equal(empty(), 1);
    assert.equal(d.size, 0);
  });

  it('the process shares one socket per local address among its key exchanges', async () => {
    const peer = dgram.createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    const port = peer.address().port;
    const from: number[] = [];
    const echoed: string[] = [];
    peer.on('message', (msg, rinfo) => {
      from.push(rinfo.port);
      peer.send(msg, rinfo.port, rinfo.address); // an "answer" with the same SPIs
    });
    const got = (name: string) => (b: Uint8Array) => echoed.push(`${name}:${new DataView(b.buffer, b.byteOffset).getBigUint64(0)}`);
    const x = await openSharedIkeSocket('127.0.0.1', got('x'));
    const y = await openSharedIkeSocket('127.0.0.1', got('y'));
    assert.equal(ikeDrops().sockets, 1);
    x.send(ike(0xabcn, 0n), port, '127.0.0.1');
    y.send(ike(0xdefn, 0n), port, '127.0.0.1');
    for (let i = 0; i < 100 && echoed.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(echoed.sort(), [`x:${0xabc}`, `y:${0xdef}`]);
    assert.equal(from[0], from[1], 'one local port');
    await x.close();
    await y.close();
    assert.equal(ikeDrops().sockets, 0);
    peer.close();
  });
});
