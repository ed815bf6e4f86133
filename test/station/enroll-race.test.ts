/**
 * Two stations enrolling one NIC that is new to the store, at once (review D3): the station that wins the lease
 * writes its PSK into the NIC, the other one is refused with E_FENCED — and the store must hold the winner's
 * PSK, or the winner's next key exchange fails authentication. The interleaving that lost the winner's PSK
 * (the loser read "no such NIC" before the winner recorded it, and recorded its own after it) is forced here:
 * two StationContexts on one SQLite store, the loser's store writes held back until the winner has written
 * its trust anchor into the (fake) emulator. Enrolment also records the NIC's checkpoint block (review D4).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StationContext, emulatorControl } from '../../mgmt-station/context.js';
import { createClusterKeyFile } from '../../mgmt-station/store/cluster-key.js';
import type { Store } from '../../mgmt-station/store/store.js';
import type { ControlClient } from '../../lib/control-client.js';

/** A UDP port nothing listens on: the NIC's IKE port, so the winner's key exchange fails fast after the store steps. */
async function deadPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** The emulator's control API as enrolment uses it: the NIC's status, and its trust anchor writes (recorded). */
function fakeEmulator(port: number, anchors: { by: string; psk: string }[], by: string, onAnchor: () => void): ControlClient {
  return {
    host: '127.0.0.1',
    port: 8623,
    get: async () => ({ id: 'nic-5', address: '127.0.0.1', ports: { clear: port, secure: port, ike: port }, sa: { checkpointBlock: 65536 } }),
    post: async (path: string, body: { psk: string }) => {
      assert.match(path, /\/trust-anchor$/);
      anchors.push({ by, psk: body.psk });
      onAnchor();
      return {};
    },
  } as unknown as ControlClient;
}

/** `store` whose methods named in `held` wait for `until` first; `seen` is told each method called. */
function holdBack(store: Store, held: string[], until: Promise<void>, seen: (method: string) => void): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        seen(String(prop));
        if (held.includes(String(prop))) await until;
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

describe('station: two stations enrolling a NIC new to the store at once (D3)', function () {
  this.timeout(20000);
  let dir = '';
  let contexts: StationContext[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'lifeline-enroll-race-'));
    createClusterKeyFile(join(dir, 'cluster.key'));
  });
  afterEach(async () => {
    for (const c of contexts.splice(0)) await c.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const open = async (id: string): Promise<StationContext> => {
    const c = await StationContext.open({ store: `sqlite:${join(dir, 'station.db')}`, keyFile: join(dir, 'cluster.key'), stationId: id, leaseMs: 60000, create: true });
    contexts.push(c);
    return c;
  };

  /**
   * Y starts first and is held at its first store call named in `heldY` until X has written its trust anchor;
   * X starts once Y has made the call named `startXAfter` ('*': its first store call). Returns both outcomes and what the NIC and store hold.
   */
  async function race(heldY: string[], startXAfter: string) {
    const x = await open('X');
    const y = await open('Y');
    const pskX = new Uint8Array(randomBytes(32));
    const pskY = new Uint8Array(randomBytes(32));
    const anchors: { by: string; psk: string }[] = [];
    const port = await deadPort();
    let anchored!: () => void;
    const xAnchored = new Promise<void>((r) => (anchored = r));
    let yReached!: () => void;
    const yAt = new Promise<void>((r) => (yReached = r));
    (y as unknown as { store: Store }).store = holdBack(y.store, heldY, xAnchored, (m) => (startXAfter === '*' || m === startXAfter) && yReached());
    const yRun = y.enroll(emulatorControl(fakeEmulator(port, anchors, 'Y', () => {})), 'nic-5', pskY, 300).then(() => null, (e: Error & { code?: string }) => e);
    await yAt;
    const xRun = x.enroll(emulatorControl(fakeEmulator(port, anchors, 'X', anchored)), 'nic-5', pskX, 300).then(() => null, (e: Error & { code?: string }) => e);
    const [ex, ey] = await Promise.all([xRun, yRun]);
    return { ex, ey, anchors, pskX, stored: await x.store.getNic('nic-5'), lease: await x.store.getLease('nic-5') };
  }

  function check(r: Awaited<ReturnType<typeof race>>): void {
    assert.equal(r.ey?.code, 'E_FENCED', `Y loses the lease: ${r.ey?.message}`);
    assert.notEqual(r.ex?.code, 'E_FENCED', `X holds the lease (its key exchange only fails for want of a NIC): ${r.ex?.message}`);
    assert.equal(r.lease?.owner, 'X');
    assert.deepEqual(r.anchors.map((a) => a.by), ['X'], 'only the lease holder writes the trust anchor');
    assert.equal(Buffer.from(r.stored!.psk).toString('hex'), r.anchors[0].psk, "the store holds the PSK the NIC holds: X's");
    assert.deepEqual(r.stored!.psk, r.pskX);
    assert.equal(r.stored!.meta.enrolled, true);
    assert.equal(r.stored!.meta.checkpointBlock, 65536, "the NIC's checkpoint block is recorded (D4)");
  }

  it("the loser read 'no such NIC' before the winner recorded it: its record does not replace the winner's", async () => {
    // Y has started (and may have looked the NIC up: absent) and is held before any store write; X records,
    // leases and anchors it; then Y goes on.
    check(await race(['addNicIfAbsent', 'updateNic', 'acquireLease'], '*'));
  });

  it("the loser's insert landed first: the winner, holding the lease, replaces it with its own", async () => {
    check(await race(['acquireLease'], 'acquireLease'));
  });
});
