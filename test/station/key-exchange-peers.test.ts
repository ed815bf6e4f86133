/**
 * The station's IKE driver (mgmt-station/core/key-exchange.ts) with issue 15's IKE, against an in-process IKE
 * responder on a UDP socket playing the host: a standard IKEv2 peer (no N(COMMIT_SUPPORTED)) is keyed in plain IKEv2
 * without waiting for an SA_READY it never sends; the peer's own Child SA rekey is accepted, stored and made active
 * when the peer deletes the old SA (§2.8); IKE SA rekeys from either side; an exchange given up sends one
 * INFORMATIONAL { D(IKE) } (§1.4.1) and the host forgets the IKE SA; a timeout says what the peer did answer.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { IkeResponder, type IkeEffect } from '../../protocol/index.js';
import { ClusterKey } from '../../mgmt-station/store/cluster-key.js';
import { openStore } from '../../mgmt-station/store/open-store.js';
import { KeyExchange, type KeyExchangeOptions } from '../../mgmt-station/core/key-exchange.js';
import { processEnv } from '../../mgmt-station/context.js';
import type { Fence, NicRecord, Store } from '../../mgmt-station/store/store.js';
import type { SaPair } from '../../wire/sa.js';

const KEY = ClusterKey.fromHex('43'.repeat(32), 'test');
const PSK = new Uint8Array(randomBytes(32));

/** An IKE responder on a UDP socket: `commitExtension: false` makes it a standard peer; `mute` stops its answers. */
class Host {
  readonly socket = dgram.createSocket('udp4');
  readonly responder: IkeResponder;
  readonly effects: IkeEffect[] = [];
  readonly received: string[] = [];
  private readonly timer: NodeJS.Timeout;
  /** Take what the station sends but answer nothing (its answers are lost), except an INFORMATIONAL. */
  mute = false;
  /** Drop the station's IKE_AUTH (IKE_SA_INIT is still answered). */
  dropAuth = false;
  port = 0;

  constructor(commitExtension: boolean) {
    this.responder = new IkeResponder({ random: (n) => new Uint8Array(randomBytes(n)), psk: PSK, id: 'nic-1.host.lifeline', nextGeneration: 1, commitExtension });
    this.socket.on('message', (msg, from) => {
      const bytes = new Uint8Array(msg);
      const exchange = bytes[18];
      this.received.push(String(exchange));
      if (this.dropAuth && exchange === 35) return;
      this.perform(this.responder.receive(bytes, Date.now(), { address: from.address, port: from.port }), !this.mute || exchange === 37 || exchange === 34);
    });
    this.timer = setInterval(() => {
      const at = this.responder.pollTimeout();
      if (at !== null && Date.now() >= at) this.perform(this.responder.handleTimeout(Date.now()), !this.mute);
    }, 20);
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    this.port = this.socket.address().port;
    return this;
  }

  perform(fx: IkeEffect[], send = true): void {
    for (const e of fx) {
      if (e.kind === 'send') {
        if (send && e.to?.port !== undefined) this.socket.send(e.bytes, e.to.port, e.to.address);
      } else this.effects.push(e);
    }
  }

  count(kind: IkeEffect['kind']): number {
    return this.effects.filter((e) => e.kind === kind).length;
  }

  close(): void {
    clearInterval(this.timer);
    this.socket.close();
  }
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('station KeyExchange with standard IKEv2 peers (issue 15)', function () {
  this.timeout(30000);
  let store: Store;
  let host: Host;
  let kx: KeyExchange;
  let fence: Fence;
  let activated: SaPair[];
  let logs: string[];

  async function setUp(commitExtension: boolean, extra: Partial<KeyExchangeOptions> = {}): Promise<void> {
    store = await openStore('sqlite::memory:', KEY);
    host = await new Host(commitExtension).start();
    const nic: NicRecord = { id: 'nic-1', address: '127.0.0.1', securePort: 1, clearPort: 2, ikePort: host.port, psk: PSK, enrolledAt: Date.now(), meta: { enrolled: true } };
    await store.addNicIfAbsent(nic);
    const lease = await store.acquireLease('nic-1', 'station-1', Date.now(), 60000);
    assert.ok(lease.acquired);
    fence = { station: 'station-1', epoch: lease.lease.epoch };
    activated = [];
    logs = [];
    kx = new KeyExchange(nic, { store, fence: () => fence, env: processEnv, stationId: 'station-1', onActivated: (_n, sa) => activated.push(sa), log: (_l, m) => logs.push(m), ...extra });
  }
  afterEach(async () => {
    await kx.close();
    host.close();
    await store.close();
  });

  const states = async () => (await store.listSas('nic-1')).map((s) => `${s.pair.generation}:${s.state}`);

  it('a standard peer: enroll and refresh complete in plain IKEv2 (no SA_READY awaited), generations from the store', async () => {
    await setUp(false);
    const t0 = performance.now();
    const e = await kx.enroll(5000);
    assert.ok(performance.now() - t0 < 1000, 'no wait for an SA_READY the peer never sends');
    assert.equal(e.generation, 1);
    assert.equal((await kx.refresh(5000)).exchange, 'CREATE_CHILD_SA');
    assert.deepEqual(await states(), ['1:previous', '2:active']);
    assert.ok(logs.some((l) => /plain IKEv2/.test(l)), logs.join('\n'));
    await until('the D(ESP) of the replaced SA', () => host.received.filter((x) => x === '37').length >= 1);
  });

  it('the peer rekeys the Child SA: stored pending when answered, active (and the caller told) once the peer deletes the old one', async () => {
    await setUp(false);
    await kx.enroll(5000);
    host.perform(host.responder.rekeyChild(Date.now()));
    await until('the station to switch to the peer\'s SA', () => activated.length === 1);
    assert.equal(activated[0].generation, 2);
    assert.deepEqual(await states(), ['1:previous', '2:active']);
    // and our own refresh still works afterwards
    assert.equal((await kx.refresh(5000)).generation, 3);
  });

  it('IKE SA rekeys: the peer\'s (§2.18) and ours once the IKE SA is older than ikeRekeyMs; refreshes go on on the new IKE SA', async () => {
    await setUp(true, { ikeRekeyMs: 0 });
    await kx.enroll(5000);
    const spi0 = host.responder.establishedSpis;
    host.perform(host.responder.rekeyIkeSa(Date.now()));
    await until('the peer\'s IKE SA rekey', () => logs.some((l) => /IKE SA rekeyed/.test(l)));
    assert.equal((await kx.refresh(5000)).exchange, 'CREATE_CHILD_SA'); // ikeRekeyMs 0: our own IKE rekey first
    assert.equal(host.count('ike-rekeyed'), 2);
    assert.equal(logs.filter((l) => /IKE SA rekeyed/.test(l)).length, 2);
    assert.notDeepEqual(host.responder.establishedSpis, spi0);
    assert.deepEqual((await states()).slice(-2), ['1:previous', '2:active']);
  });

  it('given up (the answers to CREATE_CHILD_SA are lost): one INFORMATIONAL { D(IKE) } reaches the host, which forgets the IKE SA and its pending SA; the error says what the host answered', async () => {
    await setUp(true);
    await kx.enroll(5000);
    assert.equal(host.responder.establishedSpis.length, 1);
    host.mute = true;
    host.dropAuth = true;
    await assert.rejects(kx.refresh(2000), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'E_IKE_TIMEOUT');
      assert.match(e.message, /nic-1: the host agent \(127\.0\.0\.1:\d+\) (answered IKE_SA_INIT but not IKE_AUTH|did not answer)/);
      return true;
    });
    await until('the host to drop the IKE SA on our D(IKE)', () => host.responder.establishedSpis.length === 0, 2000);
    assert.equal(host.count('nic-discard'), 1, 'the SA it staged for the lost exchange is discarded');
    assert.equal(host.responder.commitState, 'idle');
  });

  it('a Lifeline host that negotiates the commit but never confirms: the timeout names the commit, the staged SA is retired', async () => {
    await setUp(true);
    await kx.enroll(5000);
    // Drop SA_ACK (an INFORMATIONAL the station sends after SA_READY): the commit cannot finish.
    const orig = host.perform.bind(host);
    let ready = false;
    host.perform = (fx) => {
      if (fx.some((e) => e.kind === 'nic-write-pending')) ready = true;
      orig(fx);
    };
    host.socket.removeAllListeners('message');
    host.socket.on('message', (msg, from) => {
      if (ready && msg[18] === (37 as number)) return;
      host.perform(host.responder.receive(new Uint8Array(msg), Date.now(), { address: from.address, port: from.port }));
    });
    await assert.rejects(kx.refresh(1500), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'E_IKE_TIMEOUT');
      assert.match(e.message, /two-phase commit did not finish/);
      assert.doesNotMatch(e.message, /host OS/);
      return true;
    });
    assert.ok(!(await states()).some((s) => s.endsWith(':pending')));
  });

  it('an enrolment while an IKE SA is held replaces it with a D(IKE) to the host (§1.4.1)', async () => {
    await setUp(true);
    await kx.enroll(5000);
    await kx.enroll(5000);
    await until('the host to see the old IKE SA deleted', () => host.count('closed') === 1, 2000);
    assert.equal(host.responder.establishedSpis.length, 1);
    assert.deepEqual((await states()).slice(-2), ['1:previous', '2:active']);
  });
});
