/**
 * The station's IKE driver (mgmt-station/core/key-exchange.ts) against an in-process host agent (the sans-I/O
 * IkeResponder on a UDP socket), review M-D4: exchanges asked at the same time run one after another and all
 * succeed; an exchange that times out after SA_READY leaves no 'pending' row in the store (DESIGN §2.5: the
 * station stores the SA as pending before SA_ACK and never uses it unless SA_CONFIRM comes); a 'pending' row
 * an earlier process left behind is retired by the next exchange.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { IkeResponder, type IkeEffect } from '../../protocol/index.js';
import { ClusterKey } from '../../mgmt-station/store/cluster-key.js';
import { openStore } from '../../mgmt-station/store/open-store.js';
import { KeyExchange } from '../../mgmt-station/core/key-exchange.js';
import { processEnv } from '../../mgmt-station/context.js';
import type { Fence, NicRecord, Store } from '../../mgmt-station/store/store.js';
import type { SaPair } from '../../wire/sa.js';

const KEY = ClusterKey.fromHex('42'.repeat(32), 'test');
const PSK = new Uint8Array(randomBytes(32));

/** A host agent without a NIC: answers IKE; `dropAfterReady` then drops everything the station sends (so no SA_ACK arrives). */
class HostAgentDouble {
  socket = dgram.createSocket('udp4');
  private responder = new IkeResponder({ random: (n) => new Uint8Array(randomBytes(n)), psk: PSK, id: 'nic-1.host.lifeline', nextGeneration: 1 });
  private nextGeneration = 1;
  private peer: { address: string; port: number } | null = null;
  private readonly timer: NodeJS.Timeout;
  dropAfterReady = false;
  private staged = false;
  port = 0;

  constructor() {
    this.listen();
    this.timer = setInterval(() => {
      const at = this.responder.pollTimeout();
      if (at !== null && Date.now() >= at) this.perform(this.responder.handleTimeout(Date.now()));
    }, 20);
  }

  private listen(): void {
    this.socket.on('message', (msg, from) => {
      if (this.dropAfterReady && this.staged) return;
      this.peer = { address: from.address, port: from.port };
      this.perform(this.responder.receive(new Uint8Array(msg), Date.now()));
    });
  }

  /** The host rebooted: a new host agent on the same port that knows no IKE SA (the NIC keeps its generation). */
  async restart(): Promise<void> {
    await new Promise<void>((r) => this.socket.close(() => r()));
    this.responder = new IkeResponder({ random: (n) => new Uint8Array(randomBytes(n)), psk: PSK, id: 'nic-1.host.lifeline', nextGeneration: this.nextGeneration });
    this.staged = false;
    this.socket = dgram.createSocket('udp4');
    this.listen();
    await new Promise<void>((r) => this.socket.bind(this.port, '127.0.0.1', () => r()));
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.port = this.socket.address().port;
    return this;
  }

  private perform(fx: IkeEffect[]): void {
    for (const e of fx) {
      if (e.kind === 'send' && this.peer) this.socket.send(e.bytes, this.peer.port, this.peer.address);
      if (e.kind === 'nic-write-pending') {
        this.staged = true;
        this.nextGeneration = e.sa.generation + 1;
        this.responder.setNextGeneration(this.nextGeneration);
      }
      if (e.kind === 'nic-commit' || e.kind === 'nic-discard') this.staged = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.close();
  }
}

describe('station KeyExchange: one exchange at a time per NIC, no pending SA left behind', function () {
  this.timeout(30000);
  let store: Store;
  let agent: HostAgentDouble;
  let kx: KeyExchange;
  let fence: Fence;

  beforeEach(async () => {
    store = await openStore('sqlite::memory:', KEY);
    agent = await new HostAgentDouble().start();
    const nic: NicRecord = { id: 'nic-1', address: '127.0.0.1', securePort: 1, clearPort: 2, ikePort: agent.port, psk: PSK, enrolledAt: Date.now(), meta: { enrolled: true } };
    await store.addNicIfAbsent(nic);
    const lease = await store.acquireLease('nic-1', 'station-1', Date.now(), 60000);
    assert.ok(lease.acquired);
    fence = { station: 'station-1', epoch: lease.lease.epoch };
    kx = new KeyExchange(nic, { store, fence: () => fence, env: processEnv, stationId: 'station-1' });
    await kx.enroll(5000);
  });
  afterEach(async () => {
    await kx.close();
    agent.close();
    await store.close();
  });

  const states = async () => (await store.listSas('nic-1')).map((s) => `${s.pair.generation}:${s.state}`);

  it('three refreshes asked at once all commit, one after another, each its own generation', async () => {
    const rs = await Promise.all([kx.refresh(5000), kx.refresh(5000), kx.refresh(5000)]);
    assert.deepEqual(rs.map((r) => r.generation), [2, 3, 4]);
    assert.deepEqual(await states(), ['1:retired', '2:retired', '3:previous', '4:active']);
  });

  it('no SA_ACK reaches the host (so no SA_CONFIRM): E_IKE_TIMEOUT, and the staged SA is retired, not left pending', async () => {
    agent.dropAfterReady = true;
    await assert.rejects(kx.refresh(1500), (e: Error & { code?: string }) => e.code === 'E_IKE_TIMEOUT');
    assert.deepEqual(await states(), ['1:active', '2:retired']);
    // The next refresh works (a new IKE SA: the timed-out one was abandoned) and commits a newer generation.
    agent.dropAfterReady = false;
    const r = await kx.refresh(5000);
    assert.equal(r.exchange, 'IKE_AUTH');
    assert.ok(r.generation > 2);
    assert.ok(!(await states()).some((s) => s.endsWith(':pending')));
  });

  it('the host agent restarted (forgot the IKE SA): a refresh with the daemon\'s 5 s falls back to a new IKE SA in time', async () => {
    assert.equal((await kx.refresh(5000)).exchange, 'CREATE_CHILD_SA');
    await agent.restart();
    const t0 = performance.now();
    const r = await kx.refresh(5000);
    const ms = performance.now() - t0;
    assert.equal(r.exchange, 'IKE_AUTH');
    assert.equal(r.generation, 3);
    assert.ok(ms < 5000, `took ${ms} ms`);
    assert.deepEqual((await states()).slice(-2), ['2:previous', '3:active']);
    // And the next refresh uses the new IKE SA.
    assert.equal((await kx.refresh(5000)).exchange, 'CREATE_CHILD_SA');
  });

  it('an unanswered CREATE_CHILD_SA and no host at all: E_IKE_TIMEOUT within the caller\'s timeout', async () => {
    agent.close();
    const t0 = performance.now();
    let message = '';
    await assert.rejects(kx.refresh(2000), (e: Error & { code?: string }) => ((message = e.message), e.code === 'E_IKE_TIMEOUT'));
    const ms = performance.now() - t0;
    assert.ok(ms >= 1900 && ms < 2600, `gave up after ${ms} ms`);
    // Issue 17: the message named only the last phase's time ("in 1000 ms") after 2 s of waiting; it says both.
    const all = /\(CREATE_CHILD_SA on the held IKE SA got no answer first; (\d+) ms in all\)$/.exec(message);
    assert.ok(all, message);
    assert.ok(Number(all[1]) >= 1900 && Number(all[1]) <= ms + 5, `${all[1]} ms in all, ${ms} ms measured`);
    agent = await new HostAgentDouble().start(); // for afterEach
  });

  it("a 'pending' row an earlier process left behind is retired by the next exchange", async () => {
    const dir = () => ({ spi: 0x10000 + Math.floor(Math.random() * 0xffff), encKey: new Uint8Array(randomBytes(20)), ahSpi: 0, ahKey: new Uint8Array(0) });
    const orphan: SaPair = { generation: 77, transform: 'aes-gcm-16', esn: false, policy: 'esp', origin: 'ike', toNic: dir(), fromNic: dir() };
    await store.putSa('nic-1', { pair: orphan, state: 'pending', ike: null }, Date.now() - 10 * 60_000, fence);
    await kx.refresh(5000);
    const s = await store.getSa('nic-1', 77);
    assert.equal(s?.state, 'retired');
  });
  it('the inbound SPI it drew is another NIC\'s (E_SPI_IN_USE from the store): the exchange is tried again with a fresh SPI', async () => {
    // 20,000 random 32-bit SPIs in one store meet with a chance of about 5 % (the station-scale bench at 10,000 NICs
    // lost one enrolment to it): a clash is the store's word that another SPI is needed, not the NIC's failure.
    const taken = 0x5a5a5a5a;
    await store.addNicIfAbsent({ id: 'nic-2', address: '127.0.0.2', securePort: 1, clearPort: 2, ikePort: 3, psk: PSK, enrolledAt: Date.now(), meta: {} });
    const l2 = await store.acquireLease('nic-2', 'station-1', Date.now(), 60000);
    const dir = (spi: number) => ({ spi, encKey: new Uint8Array(randomBytes(20)), ahSpi: 0, ahKey: new Uint8Array(0) });
    const other: SaPair = { generation: 1, transform: 'aes-gcm-16', esn: false, policy: 'esp', origin: 'ike', toNic: dir(0x1234), fromNic: dir(taken) };
    await store.putSa('nic-2', { pair: other, state: 'active', ike: null }, Date.now(), { station: 'station-1', epoch: l2.lease.epoch });
    let clashes = 2; // the next two 4-byte draws (the station's ESP SPIs) name the taken SPI
    const env = { ...processEnv, random: (n: number) => (n === 4 && clashes-- > 0 ? new Uint8Array([0x5a, 0x5a, 0x5a, 0x5a]) : processEnv.random(n)) };
    await kx.close();
    const nic = (await store.getNic('nic-1'))!;
    kx = new KeyExchange(nic, { store, fence: () => fence, env, stationId: 'station-1' });
    const r = await kx.refresh(5000);
    assert.equal(clashes, -1, 'both clashing SPIs were drawn');
    const sa = await store.getSa('nic-1', r.generation);
    assert.equal(sa?.state, 'active');
    assert.notEqual(sa?.pair.fromNic.spi, taken);
    assert.ok(!(await states()).some((x) => x.endsWith(':pending')));
  });
});
