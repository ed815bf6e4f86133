/**
 * The store contract (DESIGN §5, mgmt-station/store/store.ts), generated once per backend: SQLite on a
 * temp file, PostgreSQL on a private server started once for this file (test/support/postgres-server.ts),
 * and the in-memory store of the simulator (mgmt-station/store/memory-store.ts). Every test gets an empty
 * store of its own (a new SQLite file / a new PostgreSQL schema / a new MemoryStore). The backends and
 * fixtures are in contract/harness.ts; tampering behind the store's back, on every backend, in contract/tamper.ts.
 */
import assert from 'node:assert/strict';
import { LEASE_BATCH, type Fence, type Store } from '../../mgmt-station/store/store.js';
import {
  exec, ike, KEY, memoryBackend, nic, OTHER_KEY, pair, postgresBackend, rejectsWith, sqliteBackend, sqlOnly, T0, TTL, type Contract, type Place,
} from './contract/harness.js';
import { sealedRowCases } from './contract/sealed-row-cases.js';
import { syncEpochCases } from './contract/sync-epoch-cases.js';
import { upgradeCases } from './contract/upgrade-cases.js';
import { saRetentionCases } from './contract/sa-retention-cases.js';
import { alertCases } from './contract/alert-cases.js';

// --- the contract -------------------------------------------------------------------------------------

for (const backend of [sqliteBackend(), postgresBackend(), memoryBackend()]) {
  describe(`store contract: ${backend.name}`, function () {
    this.timeout(30000);
    const open: Store[] = [];
    let place: Place;
    let store: Store;

    const openAt = async (p: Place, key = KEY): Promise<Store> => {
      const s = await p.open(key);
      open.push(s);
      return s;
    };
    /** An enrolled NIC leased to station `st`; returns the fence. */
    const owned = async (s: Store, id: string, st = 'st-a', now = T0): Promise<Fence> => {
      if (!(await s.getNic(id))) await s.addNicIfAbsent(nic(id));
      const r = await s.acquireLease(id, st, now, TTL);
      assert.ok(r.acquired);
      return { station: st, epoch: r.lease.epoch };
    };

    before(async function () {
      const why = backend.unavailable();
      if (why) {
        console.log(`    skipping ${backend.name} contract tests: ${why}`);
        this.skip();
      }
      await backend.start();
    });
    after(async () => {
      if (!backend.unavailable()) await backend.stop();
    });
    beforeEach(async () => {
      place = await backend.fresh();
      store = await openAt(place);
    });
    afterEach(async () => {
      for (const s of open.splice(0)) await s.close();
    });

    const contract: Contract = {
      backend, openAt, owned,
      get place() {
        return place;
      },
      get store() {
        return store;
      },
    };

    describe('NICs', () => {
      it('stores a NIC and gives back its PSK unwrapped', async () => {
        const n = nic('nic-1');
        await store.addNicIfAbsent(n);
        assert.deepEqual(await store.getNic('nic-1'), n);
        assert.equal(await store.getNic('nic-2'), null);
      });

      it('listNics is sorted by id', async () => {
        const two = nic('nic-2');
        await store.addNicIfAbsent(two);
        await store.addNicIfAbsent(nic('nic-1'));
        const all = await store.listNics();
        assert.deepEqual(all.map((x) => x.id), ['nic-1', 'nic-2']);
        assert.deepEqual(all[1], two);
      });

      it('addNicIfAbsent inserts a new NIC only; an existing record is left as it is', async () => {
        const first = nic('nic-1');
        assert.equal(await store.addNicIfAbsent(first), true);
        assert.deepEqual(await store.getNic('nic-1'), first);
        assert.equal(await store.addNicIfAbsent(nic('nic-1', { address: '127.0.1.9', meta: {} })), false);
        assert.deepEqual(await store.getNic('nic-1'), first);
        await rejectsWith(store.addNicIfAbsent(nic('bad id')), 'E_USAGE', /nic id/);
      });

      it('two stations (two connections) adding one new NIC at once: exactly one record lands, whole', async () => {
        const other = await openAt(place);
        for (let i = 1; i <= 6; i++) {
          const [a, b] = [nic(`nic-${i}`), nic(`nic-${i}`, { address: '127.0.1.2' })];
          const [ia, ib] = await Promise.all([store.addNicIfAbsent(a), other.addNicIfAbsent(b)]);
          assert.equal(Number(ia) + Number(ib), 1, `nic-${i}: exactly one insert`);
          assert.deepEqual(await other.getNic(`nic-${i}`), ia ? a : b);
        }
      });

      it('updateNic is fenced: only the lease holder replaces the record (an enrolment race loser cannot)', async () => {
        // Both stations record the new NIC, whichever insert lands first; then they race for the lease.
        const other = await openAt(place);
        const mine = nic('nic-5');
        const theirs = nic('nic-5');
        await other.addNicIfAbsent(theirs);
        await store.addNicIfAbsent(mine);
        const won = await store.acquireLease('nic-5', 'st-x', T0, TTL);
        const lost = await other.acquireLease('nic-5', 'st-y', T0, TTL);
        assert.ok(won.acquired && !lost.acquired);
        const fx: Fence = { station: 'st-x', epoch: won.lease.epoch };
        await store.updateNic(mine, fx);
        // The loser's write, under any claim it could make, never replaces the winner's PSK.
        await rejectsWith(other.updateNic(theirs, { station: 'st-y', epoch: won.lease.epoch }), 'E_FENCED');
        await rejectsWith(other.updateNic(theirs, { station: 'st-y', epoch: won.lease.epoch + 1 }), 'E_FENCED');
        assert.deepEqual((await other.getNic('nic-5'))?.psk, mine.psk);
        // No lease at all: fenced too. After a takeover the old owner's epoch is refused.
        await store.addNicIfAbsent(nic('nic-6'));
        await rejectsWith(store.updateNic(nic('nic-6'), { station: 'st-x', epoch: 1 }), 'E_FENCED', /nobody has taken a lease/);
        const took = await other.acquireLease('nic-5', 'st-y', T0 + TTL, TTL);
        assert.ok(took.acquired);
        await rejectsWith(store.updateNic(nic('nic-5'), fx), 'E_FENCED');
        const again = nic('nic-5', { address: '127.0.1.7', meta: { re: 1 } });
        await other.updateNic(again, { station: 'st-y', epoch: took.lease.epoch });
        assert.deepEqual(await store.getNic('nic-5'), again);
      });

      it('rejects bad input with E_USAGE', async () => {
        await rejectsWith(store.addNicIfAbsent(nic('bad id')), 'E_USAGE', /nic id/);
        await rejectsWith(store.addNicIfAbsent(nic('nic-1', { securePort: 70000 })), 'E_USAGE', /securePort/);
        await rejectsWith(store.addNicIfAbsent(nic('nic-1', { psk: new Uint8Array(0) })), 'E_USAGE', /psk/);
      });
    });

    describe('SAs', () => {
      it('round-trips an SA pair with its IKE SA snapshot', async () => {
        const f = await owned(store, 'nic-1');
        const p = pair(1);
        const k = ike();
        await store.putSa('nic-1', { pair: p, state: 'pending', ike: k }, T0 + 1, f);
        assert.deepEqual(await store.getSa('nic-1', 1), { nic: 'nic-1', pair: p, state: 'pending', ike: k, updatedAt: T0 + 1 });
        assert.equal(await store.getSa('nic-1', 2), null);
      });

      it('activeGenerations: every NIC\'s active generation in one read (a poll round\'s reload hint)', async () => {
        const f1 = await owned(store, 'nic-1');
        const f2 = await owned(store, 'nic-2');
        await owned(store, 'nic-3');
        assert.deepEqual(await store.activeGenerations(), new Map());
        await store.putSa('nic-1', { pair: pair(1), state: 'pending', ike: null }, T0, f1);
        await store.activateSa('nic-1', 1, T0, f1);
        await store.putSa('nic-1', { pair: pair(2), state: 'pending', ike: null }, T0, f1);
        await store.activateSa('nic-1', 2, T0, f1);
        await store.putSa('nic-2', { pair: pair(7), state: 'pending', ike: null }, T0, f2);
        assert.deepEqual(await store.activeGenerations(), new Map([['nic-1', 2]]));
        await store.activateSa('nic-2', 7, T0, f2);
        assert.deepEqual(await store.activeGenerations(), new Map([['nic-1', 2], ['nic-2', 7]]));
      });

      it('activateSa: new active, old active -> previous, older previous -> retired', async () => {
        const f = await owned(store, 'nic-1');
        for (const g of [1, 2, 3]) await store.putSa('nic-1', { pair: pair(g), state: 'pending', ike: null }, T0, f);
        await store.activateSa('nic-1', 1, T0, f);
        await store.activateSa('nic-1', 2, T0, f);
        await store.activateSa('nic-1', 3, T0, f);
        assert.deepEqual((await store.listSas('nic-1')).map((s) => [s.pair.generation, s.state]), [[1, 'retired'], [2, 'previous'], [3, 'active']]);
        assert.equal((await store.getActiveSa('nic-1'))?.pair.generation, 3);
        await store.activateSa('nic-1', 3, T0, f); // idempotent
        await rejectsWith(store.activateSa('nic-1', 1, T0, f), 'E_ILLEGAL_TRANSITION', /retired/);
        await rejectsWith(store.activateSa('nic-1', 9, T0, f), 'E_NOT_FOUND');
      });

      it('listSaStates: every NIC\'s live SAs without keys, retired ones left out (the fleet page)', async () => {
        const f = await owned(store, 'nic-1');
        for (const g of [1, 2, 3]) await store.putSa('nic-1', { pair: pair(g), state: 'pending', ike: null }, T0 + g, f);
        for (const g of [1, 2, 3]) await store.activateSa('nic-1', g, T0 + 10 * g, f);
        assert.deepEqual(await store.listSaStates(), [
          { nic: 'nic-1', generation: 2, state: 'previous', updatedAt: T0 + 30 },
          { nic: 'nic-1', generation: 3, state: 'active', updatedAt: T0 + 30 },
        ]);
      });

      it('listSas with states: only those rows; listNicSaStates: one NIC\'s SAs, retired ones too, without keys', async () => {
        const f = await owned(store, 'nic-1');
        const f2 = await owned(store, 'nic-2');
        for (const g of [1, 2, 3]) await store.putSa('nic-1', { pair: pair(g), state: 'pending', ike: null }, T0 + g, f);
        for (const g of [1, 2, 3]) await store.activateSa('nic-1', g, T0 + 10 * g, f);
        await store.putSa('nic-1', { pair: pair(4), state: 'pending', ike: null }, T0 + 40, f);
        await store.putSa('nic-2', { pair: pair(1), state: 'pending', ike: null }, T0, f2);
        const live = await store.listSas('nic-1', ['active', 'previous']);
        assert.deepEqual(live.map((x) => [x.pair.generation, x.state]), [[2, 'previous'], [3, 'active']]);
        assert.deepEqual(live, (await store.listSas('nic-1')).filter((x) => x.state === 'active' || x.state === 'previous'));
        assert.deepEqual((await store.listSas('nic-1', ['retired'])).map((x) => x.pair.generation), [1]);
        assert.deepEqual(await store.listSas('nic-1', []), []);
        await rejectsWith(store.listSas('nic-1', ['gone' as 'active']), 'E_USAGE');
        const spis = new Map((await store.listSas('nic-1')).map((x) => [x.pair.generation, x.pair.fromNic.spi]));
        assert.deepEqual(await store.listNicSaStates('nic-1'), [
          { nic: 'nic-1', generation: 1, state: 'retired', updatedAt: T0 + 30, fromNicSpi: spis.get(1) },
          { nic: 'nic-1', generation: 2, state: 'previous', updatedAt: T0 + 30, fromNicSpi: spis.get(2) },
          { nic: 'nic-1', generation: 3, state: 'active', updatedAt: T0 + 30, fromNicSpi: spis.get(3) },
          { nic: 'nic-1', generation: 4, state: 'pending', updatedAt: T0 + 40, fromNicSpi: spis.get(4) },
        ]);
        assert.deepEqual(await store.listNicSaStates('nic-9'), []);
      });

      it('at most one active SA per NIC; retired is final', async () => {
        const f = await owned(store, 'nic-1');
        await store.putSa('nic-1', { pair: pair(1), state: 'active', ike: null }, T0, f);
        await rejectsWith(store.putSa('nic-1', { pair: pair(2), state: 'active', ike: null }, T0, f), 'E_ILLEGAL_TRANSITION', /activateSa/);
        await store.setSaState('nic-1', 1, 'retired', T0, f);
        await rejectsWith(store.setSaState('nic-1', 1, 'pending', T0, f), 'E_ILLEGAL_TRANSITION');
        await rejectsWith(store.setSaState('nic-1', 1, 'active' as 'pending', T0, f), 'E_USAGE', /activateSa/);
      });

      it('findSaBySpi finds the SA by the station-inbound SPI, never a retired one (adoption, DESIGN §5)', async () => {
        const f1 = await owned(store, 'nic-1');
        const f2 = await owned(store, 'nic-2');
        const p1 = pair(1);
        const p2 = pair(1);
        await store.putSa('nic-1', { pair: p1, state: 'active', ike: ike() }, T0, f1);
        await store.putSa('nic-2', { pair: p2, state: 'pending', ike: null }, T0, f2);
        const found = await store.findSaBySpi(p2.fromNic.spi);
        assert.equal(found?.nic, 'nic-2');
        assert.deepEqual(found?.pair, p2);
        assert.equal(await store.findSaBySpi(p2.toNic.spi), null, 'the NIC-inbound SPI is not the lookup key');
        await store.setSaState('nic-2', 1, 'retired', T0, f2);
        assert.equal(await store.findSaBySpi(p2.fromNic.spi), null);
      });

      it('an inbound SPI in use by another live SA is refused with E_SPI_IN_USE', async () => {
        const f1 = await owned(store, 'nic-1');
        const f2 = await owned(store, 'nic-2');
        const p1 = pair(1);
        await store.putSa('nic-1', { pair: p1, state: 'pending', ike: null }, T0, f1);
        const clash = pair(1, { fromNic: { ...pair(1).fromNic, spi: p1.fromNic.spi } });
        await rejectsWith(store.putSa('nic-2', { pair: clash, state: 'pending', ike: null }, T0, f2), 'E_SPI_IN_USE', /nic-1/);
        await store.setSaState('nic-1', 1, 'retired', T0, f1);
        await store.putSa('nic-2', { pair: clash, state: 'pending', ike: null }, T0, f2); // free again
      });

      it('writing an SA needs an enrolled NIC and a lease', async () => {
        await rejectsWith(store.putSa('nic-9', { pair: pair(1), state: 'pending', ike: null }, T0, { station: 'st-a', epoch: 1 }), 'E_FENCED', /acquire/);
        await rejectsWith(store.acquireLease('nic-9', 'st-a', T0, TTL), 'E_NOT_FOUND', /enrol/);
      });
    });

    describe('sequence checkpoints (DESIGN §2.6)', () => {
      it('reserveOutbound and recordInbound never lower the checkpoint', async () => {
        const f = await owned(store, 'nic-1');
        await store.putSa('nic-1', { pair: pair(1), state: 'active', ike: null }, T0, f);
        assert.equal(await store.getCheckpoint('nic-1', 1), null);
        assert.equal(await store.reserveOutbound('nic-1', 1, 1024n, T0, f), 1024n);
        assert.equal(await store.reserveOutbound('nic-1', 1, 512n, T0 + 1, f), 1024n);
        assert.equal(await store.recordInbound('nic-1', 1, 77n, T0 + 2, f), 77n);
        assert.equal(await store.recordInbound('nic-1', 1, 5n, T0 + 3, f), 77n);
        assert.deepEqual(await store.getCheckpoint('nic-1', 1), { nic: 'nic-1', generation: 1, outReserved: 1024n, inHighest: 77n, updatedAt: T0 + 2 });
      });

      it('claimOutbound hands out exclusive blocks, also to two connections at once', async () => {
        const f = await owned(store, 'nic-1');
        await store.putSa('nic-1', { pair: pair(1), state: 'active', ike: null }, T0, f);
        assert.equal(await store.claimOutbound('nic-1', 1, 1n, 1024n, T0, f), 1n);
        // A second process of the same station asks from 1 again: it gets the next block, not the same one.
        assert.equal(await store.claimOutbound('nic-1', 1, 1n, 1024n, T0, f), 1025n);
        // A sender already further on keeps its number and reserves above it.
        assert.equal(await store.claimOutbound('nic-1', 1, 5000n, 10n, T0, f), 5000n);
        assert.equal((await store.getCheckpoint('nic-1', 1))!.outReserved, 5009n);
        const starts = await Promise.all(Array.from({ length: 8 }, () => store.claimOutbound('nic-1', 1, 1n, 100n, T0, f)));
        const sorted = [...starts].sort((a, b) => (a < b ? -1 : 1));
        for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i] - sorted[i - 1] >= 100n, `overlapping blocks ${sorted.join(',')}`);
        await rejectsWith(store.claimOutbound('nic-1', 1, 1n, 1n, T0, { station: 'st-x', epoch: 9 }), 'E_FENCED');
      });

      it('holds the whole 64-bit range (ESN, RFC 4303 §2.2.1)', async () => {
        const f = await owned(store, 'nic-1');
        await store.putSa('nic-1', { pair: pair(1, { esn: true }), state: 'active', ike: null }, T0, f);
        const max = (1n << 64n) - 1n;
        assert.equal(await store.reserveOutbound('nic-1', 1, max - 1n, T0, f), max - 1n);
        assert.equal(await store.reserveOutbound('nic-1', 1, max, T0, f), max);
        assert.equal(await store.reserveOutbound('nic-1', 1, 1n << 40n, T0, f), max);
        await rejectsWith(store.reserveOutbound('nic-1', 1, max + 1n, T0, f), 'E_USAGE');
        await rejectsWith(store.reserveOutbound('nic-1', 2, 1n, T0, f), 'E_NOT_FOUND');
      });
    });

    describe('leases and fencing (DESIGN §5)', () => {
      it('acquireLeases: a poll round\'s leases in batches, each NIC by acquireLease\'s rules; unknown NICs left out', async () => {
        // More NICs than one batch, so the batches' edges are crossed.
        const n = LEASE_BATCH + 37;
        const ids = Array.from({ length: n }, (_, i) => `nic-${i + 1}`);
        for (const id of ids) await store.addNicIfAbsent(nic(id));
        // nic-1 ours already, nic-2 held by st-b, nic-3 held by st-b but lapsing, the rest free.
        await store.acquireLease('nic-1', 'st-a', T0, TTL);
        await store.acquireLease('nic-2', 'st-b', T0 + 50, TTL);
        await store.acquireLease('nic-3', 'st-b', T0 - TTL, TTL);
        const now = T0 + 10;
        const got = await store.acquireLeases([...ids, 'nic-1', 'nic-unknown'].reverse(), 'st-a', now, TTL);
        assert.equal(got.size, n);
        assert.equal(got.has('nic-unknown'), false);
        assert.deepEqual(got.get('nic-1'), { acquired: true, lease: { nic: 'nic-1', owner: 'st-a', epoch: 1, expiresAt: now + TTL }, takeover: false, previousOwner: 'st-a' });
        assert.deepEqual(got.get('nic-2'), { acquired: false, lease: { nic: 'nic-2', owner: 'st-b', epoch: 1, expiresAt: T0 + 50 + TTL } });
        assert.deepEqual(got.get('nic-3'), { acquired: true, lease: { nic: 'nic-3', owner: 'st-a', epoch: 2, expiresAt: now + TTL }, takeover: true, previousOwner: 'st-b' });
        assert.deepEqual(got.get(`nic-${n}`), { acquired: true, lease: { nic: `nic-${n}`, owner: 'st-a', epoch: 1, expiresAt: now + TTL }, takeover: false, previousOwner: null });
        // What it answered is what the store holds, and fences as acquireLease's would.
        const leases = new Map((await store.listLeases()).map((l) => [l.nic, l]));
        for (const [id, r] of got) assert.deepEqual(leases.get(id), r.lease, id);
        await rejectsWith(store.renewLease('nic-3', { station: 'st-b', epoch: 1 }, now, TTL), 'E_FENCED');
        await store.renewLease('nic-3', { station: 'st-a', epoch: 2 }, now, TTL);
        assert.equal((await store.acquireLeases([], 'st-a', now, TTL)).size, 0);
        await rejectsWith(store.acquireLeases(['bad id'], 'st-a', now, TTL), 'E_USAGE', /nic id/);
      });

      it('acquireLeases by two stations (two connections) at once: every NIC has exactly one owner', async () => {
        const other = await openAt(place);
        const ids = Array.from({ length: 40 }, (_, i) => `nic-${i + 1}`);
        for (const id of ids) await store.addNicIfAbsent(nic(id));
        const [a, b] = await Promise.all([store.acquireLeases(ids, 'st-a', T0, TTL), other.acquireLeases([...ids].reverse(), 'st-b', T0, TTL)]);
        for (const id of ids) {
          assert.equal(Number(a.get(id)!.acquired) + Number(b.get(id)!.acquired), 1, id);
          assert.equal((await store.getLease(id))!.epoch, 1);
        }
      });

      it('a free NIC is acquired at epoch 1; a live lease is refused to others and extended for its owner', async () => {
        await store.addNicIfAbsent(nic('nic-1'));
        const a = await store.acquireLease('nic-1', 'st-a', T0, TTL);
        assert.deepEqual(a, { acquired: true, lease: { nic: 'nic-1', owner: 'st-a', epoch: 1, expiresAt: T0 + TTL }, takeover: false, previousOwner: null });
        const b = await store.acquireLease('nic-1', 'st-b', T0 + TTL - 1, TTL);
        assert.deepEqual(b, { acquired: false, lease: { nic: 'nic-1', owner: 'st-a', epoch: 1, expiresAt: T0 + TTL } });
        const again = await store.acquireLease('nic-1', 'st-a', T0 + 100, TTL);
        assert.ok(again.acquired && !again.takeover && again.lease.epoch === 1 && again.lease.expiresAt === T0 + 100 + TTL);
      });

      it('after expiry a backup takes over: epoch + 1, the old claim is gone, the old owner is fenced', async () => {
        const old = await owned(store, 'nic-1', 'st-a');
        await store.putSa('nic-1', { pair: pair(1), state: 'active', ike: null }, T0, old);
        const t = await store.acquireLease('nic-1', 'st-b', T0 + TTL, TTL);
        assert.ok(t.acquired);
        assert.deepEqual([t.takeover, t.previousOwner, t.lease.owner, t.lease.epoch], [true, 'st-a', 'st-b', 2]);
        assert.deepEqual(await store.getLease('nic-1'), t.lease);
        await rejectsWith(store.renewLease('nic-1', old, T0 + TTL + 1, TTL), 'E_FENCED', /st-b holds it at epoch 2/);
        await rejectsWith(store.reserveOutbound('nic-1', 1, 99n, T0, old), 'E_FENCED');
        await rejectsWith(store.recordInbound('nic-1', 1, 99n, T0, old), 'E_FENCED');
        await rejectsWith(store.appendCommand('nic-1', { time: T0, command: 'reset', rmcpSeq: 1, asfTag: 1, outcome: 'sent' }, old), 'E_FENCED');
        await rejectsWith(store.putSa('nic-1', { pair: pair(2), state: 'pending', ike: null }, T0, old), 'E_FENCED');
        await rejectsWith(store.activateSa('nic-1', 1, T0, old), 'E_FENCED');
        await rejectsWith(store.setSaState('nic-1', 1, 'retired', T0, old), 'E_FENCED');
        await rejectsWith(store.releaseLease('nic-1', old), 'E_FENCED');
        // The old owner asking again gets nothing while the new lease is live.
        assert.equal((await store.acquireLease('nic-1', 'st-a', T0 + TTL + 1, TTL)).acquired, false);
        const now = { station: 'st-b', epoch: 2 };
        assert.equal(await store.reserveOutbound('nic-1', 1, 99n, T0, now), 99n);
        assert.equal(await store.findSaBySpi((await store.getSa('nic-1', 1))!.pair.fromNic.spi).then((s) => s?.state), 'active');
      });

      it('renewLease extends; a made-up epoch is fenced too', async () => {
        const f = await owned(store, 'nic-1');
        assert.deepEqual(await store.renewLease('nic-1', f, T0 + 400, TTL), { nic: 'nic-1', owner: 'st-a', epoch: 1, expiresAt: T0 + 400 + TTL });
        assert.equal((await store.acquireLease('nic-1', 'st-b', T0 + TTL + 1, TTL)).acquired, false);
        await rejectsWith(store.renewLease('nic-1', { station: 'st-a', epoch: 2 }, T0, TTL), 'E_FENCED');
        await rejectsWith(store.renewLease('nic-1', { station: 'st-b', epoch: 1 }, T0, TTL), 'E_FENCED');
      });

      it('a released NIC goes to the next station at the next epoch', async () => {
        const f = await owned(store, 'nic-1', 'st-a');
        await store.releaseLease('nic-1', f);
        assert.deepEqual(await store.getLease('nic-1'), { nic: 'nic-1', owner: null, epoch: 1, expiresAt: 0 });
        const b = await store.acquireLease('nic-1', 'st-b', T0 + 1, TTL);
        assert.ok(b.acquired && b.lease.epoch === 2 && !b.takeover);
        await store.addNicIfAbsent(nic('nic-0'));
        await store.acquireLease('nic-0', 'st-a', T0, TTL);
        assert.deepEqual((await store.listLeases()).map((l) => [l.nic, l.owner, l.epoch]), [['nic-0', 'st-a', 1], ['nic-1', 'st-b', 2]]);
      });

      it('a live member row keeps its leases live past their own expiry; a dead one lets them lapse', async () => {
        await owned(store, 'nic-1', 'st-a'); // the lease row expires at T0 + TTL
        assert.deepEqual(await store.renewMember('st-a', T0 + 100, 10 * TTL), [{ station: 'st-a', expiresAt: T0 + 100 + 10 * TTL }]);
        assert.deepEqual(await store.renewMember('st-b', T0 + 150, 10 * TTL), [
          { station: 'st-a', expiresAt: T0 + 100 + 10 * TTL },
          { station: 'st-b', expiresAt: T0 + 150 + 10 * TTL },
        ]);
        const late = T0 + 5 * TTL; // past the lease row's expiry, within the member row's
        assert.equal((await store.getLease('nic-1'))!.expiresAt, T0 + 100 + 10 * TTL);
        assert.deepEqual((await store.listLeases()).map((l) => [l.nic, l.owner, l.expiresAt]), [['nic-1', 'st-a', T0 + 100 + 10 * TTL]]);
        const refused = await store.acquireLease('nic-1', 'st-b', late, TTL);
        assert.ok(!refused.acquired);
        assert.deepEqual((await store.acquireLeases(['nic-1'], 'st-b', late, TTL)).get('nic-1')?.acquired, false);
        // st-a's member row lapses: the lease goes to st-b at the next epoch, a takeover.
        const taken = (await store.acquireLeases(['nic-1'], 'st-b', T0 + 100 + 10 * TTL, TTL)).get('nic-1');
        assert.ok(taken?.acquired && taken.takeover && taken.lease.epoch === 2 && taken.previousOwner === 'st-a');
        await rejectsWith(store.renewLease('nic-1', { station: 'st-a', epoch: 1 }, late, TTL), 'E_FENCED');
        // A member that leaves: its leases live by their own expiry only.
        await store.leaveMembers('st-b');
        assert.deepEqual((await store.renewMember('st-a', T0, TTL)).map((m) => m.station), ['st-a']);
        assert.equal((await store.getLease('nic-1'))!.expiresAt, T0 + 100 + 10 * TTL + TTL);
      });

      it('releaseLeases hands over, in one call, the leases held under the epochs given; others are left alone', async () => {
        const fa1 = await owned(store, 'nic-1', 'st-a');
        const fa2 = await owned(store, 'nic-2', 'st-a');
        const fb3 = await owned(store, 'nic-3', 'st-b');
        await rejectsWith(store.releaseLeases(new Map([['nic-1', -1]]), 'st-a', T0), 'E_USAGE');
        const released = await store.releaseLeases(new Map([['nic-1', fa1.epoch], ['nic-2', fa2.epoch + 1], ['nic-3', fb3.epoch]]), 'st-a', T0 + 7);
        assert.deepEqual(released, ['nic-1']);
        assert.deepEqual((await store.listLeases()).map((l) => [l.nic, l.owner, l.epoch, l.expiresAt]), [
          ['nic-1', null, 1, T0 + 7],
          ['nic-2', 'st-a', 1, T0 + TTL],
          ['nic-3', 'st-b', 1, T0 + TTL],
        ]);
        await rejectsWith(store.appendCommand('nic-1', { time: T0, command: 'reset', rmcpSeq: 1, asfTag: 1, outcome: 'sent' }, fa1), 'E_FENCED');
        const b = await store.acquireLease('nic-1', 'st-b', T0 + 8, TTL);
        assert.ok(b.acquired && b.lease.epoch === 2 && !b.takeover);
        const many = new Map<string, number>();
        for (let i = 0; i < LEASE_BATCH + 3; i++) many.set(`nic-x${i}`, 1);
        assert.deepEqual(await store.releaseLeases(many, 'st-a', T0), []);
      });

      it('two stations (two connections) racing for the same NICs: exactly one wins each', async () => {
        const other = await openAt(place);
        const ids = ['nic-1', 'nic-2', 'nic-3', 'nic-4', 'nic-5', 'nic-6'];
        for (const id of ids) await store.addNicIfAbsent(nic(id));
        const race = (now: number) =>
          Promise.all(ids.flatMap((id) => [store.acquireLease(id, 'st-a', now, TTL), other.acquireLease(id, 'st-b', now, TTL)]));
        const first = await race(T0);
        for (let i = 0; i < ids.length; i++) {
          const [a, b] = [first[2 * i], first[2 * i + 1]];
          assert.equal(Number(a.acquired) + Number(b.acquired), 1, `${ids[i]}: exactly one winner`);
          assert.equal(a.lease.epoch, 1);
        }
        // And again at takeover time: both contenders see the lease expired, only one takes it over.
        const second = await Promise.all(
          ids.flatMap((id) => [store.acquireLease(id, 'st-c', T0 + TTL, TTL), other.acquireLease(id, 'st-d', T0 + TTL, TTL)]),
        );
        for (let i = 0; i < ids.length; i++) {
          const [c, d] = [second[2 * i], second[2 * i + 1]];
          assert.equal(Number(c.acquired) + Number(d.acquired), 1, `${ids[i]}: exactly one takeover`);
          assert.equal((await store.getLease(ids[i]))?.epoch, 2);
        }
      });
    });

    describe('command log (tamper-evident, issue 5)', () => {
      const cmd = (i: number) => ({ time: T0 + i, command: i % 2 ? 'reset' : 'power-cycle', rmcpSeq: i & 0xff, asfTag: (i * 7) & 0xff, outcome: 'sent' as const });

      it('appends hash-chained entries; an outcome is a new entry; listCommands folds them', async () => {
        const f = await owned(store, 'nic-1');
        const e1 = await store.appendCommand('nic-1', cmd(1), f);
        const e2 = await store.appendCommand('nic-1', cmd(2), f);
        const e3 = await store.updateOutcome('nic-1', 1, 'acked', T0 + 10, f);
        assert.deepEqual([e1.index, e2.index, e3.index], [1, 2, 3]);
        assert.equal(e1.prevHash, '0'.repeat(64));
        assert.equal(e2.prevHash, e1.hash);
        assert.deepEqual([e3.kind, e3.ref, e3.command, e3.rmcpSeq, e3.outcome], ['outcome', 1, 'reset', 1, 'acked']);
        assert.deepEqual(await store.readCommandLog('nic-1'), [e1, e2, e3]);
        const folded = await store.listCommands('nic-1');
        assert.deepEqual(folded.map((c) => [c.index, c.command, c.outcome, c.outcomeTime]), [[1, 'reset', 'acked', T0 + 10], [2, 'power-cycle', 'sent', T0 + 2]]);
        await rejectsWith(store.updateOutcome('nic-1', 3, 'acked', T0, f), 'E_NOT_FOUND');
        assert.deepEqual(await store.auditCommandLog('nic-1'), {
          nic: 'nic-1', ok: true, entries: 3, head: { index: 3, hash: e3.hash }, firstBadIndex: null, problem: null,
        });
      });

      it('a new owner completes the old owner\'s command under its own epoch', async () => {
        const a = await owned(store, 'nic-1', 'st-a');
        await store.appendCommand('nic-1', cmd(1), a);
        const t = await store.acquireLease('nic-1', 'st-b', T0 + TTL, TTL);
        assert.ok(t.acquired);
        await store.updateOutcome('nic-1', 1, 'unknown', T0 + TTL, { station: 'st-b', epoch: 2 });
        const [c] = await store.listCommands('nic-1');
        assert.deepEqual([c.station, c.epoch, c.outcome, c.outcomeStation, c.outcomeEpoch], ['st-a', 1, 'unknown', 'st-b', 2]);
        assert.equal((await store.auditCommandLog('nic-1')).ok, true);
      });

      it('audit names the first entry edited directly in the database', async () => {
        const f = await owned(store, 'nic-1');
        for (let i = 1; i <= 5; i++) await store.appendCommand('nic-1', cmd(i), f);
        await place.tamper.editLog('nic-1', 3, { outcome: 'acked' });
        const r = await store.auditCommandLog('nic-1');
        assert.equal(r.ok, false);
        assert.equal(r.firstBadIndex, 3);
        assert.match(r.problem!, /entry 3 was altered/);
      });

      it('audit catches a rewritten chain (hashes recomputed without the cluster key) and a deleted tail', async () => {
        const f = await owned(store, 'nic-1');
        for (let i = 1; i <= 4; i++) await store.appendCommand('nic-1', cmd(i), f);
        const rows = await store.readCommandLog('nic-1');
        // Forge entry 2 consistently: new content, recomputed hash and the link from entry 3 -
        // but the MAC needs the cluster key.
        const { entryHash } = await import('../../mgmt-station/store/command-log.js');
        const forged = { ...rows[1], command: 'power-down' };
        const h = entryHash(forged.prevHash, forged);
        await place.tamper.editLog('nic-1', 2, { command: 'power-down', hash: h });
        await place.tamper.editLog('nic-1', 3, { prevHash: h });
        let r = await store.auditCommandLog('nic-1');
        assert.deepEqual([r.ok, r.firstBadIndex], [false, 2]);
        assert.match(r.problem!, /not sealed/);

        const g = await owned(store, 'nic-2');
        for (let i = 1; i <= 4; i++) await store.appendCommand('nic-2', cmd(i), g);
        await place.tamper.deleteLog('nic-2', 4);
        r = await store.auditCommandLog('nic-2');
        assert.deepEqual([r.ok, r.firstBadIndex], [false, 4]);
        assert.match(r.problem!, /deleted/);
        // The next command chains from the sealed head, so the hole stays visible.
        await store.appendCommand('nic-2', cmd(5), g);
        r = await store.auditCommandLog('nic-2');
        assert.deepEqual([r.ok, r.firstBadIndex], [false, 4]);
        assert.match(r.problem!, /entry 4 is missing/);
        // A removed head makes the store refuse to log (and so to acknowledge) further commands.
        await place.tamper.deleteHead('nic-2');
        await rejectsWith(store.appendCommand('nic-2', cmd(6), g), 'E_STORE', /audit nic-2/);
      });

      it('concurrent appends on one NIC keep one gap-free chain', async () => {
        const f = await owned(store, 'nic-1');
        const other = await openAt(place);
        await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? store : other).appendCommand('nic-1', cmd(i), f)));
        const log = await store.readCommandLog('nic-1');
        assert.deepEqual(log.map((e) => e.index), Array.from({ length: 12 }, (_, i) => i + 1));
        assert.equal((await store.auditCommandLog('nic-1')).ok, true);
      });
    });

    describe('keys are wrapped under the cluster key', () => {
      it('a station with another cluster key is refused at open (E_KEYFILE)', async () => {
        await rejectsWith(openAt(place, OTHER_KEY), 'E_KEYFILE', /cluster key/);
      });

      const unwrapped = 'it keeps keys in process memory, unwrapped, and its raw tables hold none (memory-store.test.ts)';

      it('a tampered wrapped key fails with E_STORE, never returns garbage', async function () {
        sqlOnly(this, place, unwrapped);
        await store.addNicIfAbsent(nic('nic-1'));
        const [row] = await place.sql.query(`SELECT psk FROM nics WHERE id = 'nic-1'`);
        const psk = Buffer.from(row.psk as Buffer);
        psk[20] ^= 1; // a ciphertext byte (header 5 + nonce 12)
        await exec(place, `UPDATE nics SET psk = $1 WHERE id = 'nic-1'`, [psk]);
        await rejectsWith(store.getNic('nic-1'), 'E_STORE', /altered/);
      });

      it('a wrapped key copied to another row does not unwrap there (AAD binds nic, generation, column)', async function () {
        sqlOnly(this, place, unwrapped);
        await store.addNicIfAbsent(nic('nic-1'));
        await store.addNicIfAbsent(nic('nic-2'));
        await exec(place, `UPDATE nics SET psk = (SELECT psk FROM nics WHERE id = 'nic-1') WHERE id = 'nic-2'`);
        await rejectsWith(store.getNic('nic-2'), 'E_STORE', /moved/);
        const f = await owned(store, 'nic-1');
        await store.putSa('nic-1', { pair: pair(1), state: 'previous', ike: null }, T0, f);
        await store.putSa('nic-1', { pair: pair(2), state: 'active', ike: null }, T0, f);
        await exec(place, `UPDATE sas SET to_nic_ah_key = (SELECT to_nic_ah_key FROM sas WHERE generation = 1) WHERE generation = 2`);
        await rejectsWith(store.getSa('nic-1', 2), 'E_STORE');
        await exec(place, `UPDATE sas SET from_nic_enc_key = to_nic_enc_key WHERE generation = 1`);
        await rejectsWith(store.getSa('nic-1', 1), 'E_STORE');
      });
    });

    describe('restart and membership', () => {
      it('several stations opening a new store at once all succeed (idempotent schema)', async () => {
        const fresh = await backend.fresh();
        const stores = await Promise.all([openAt(fresh), openAt(fresh), openAt(fresh)]);
        await stores[0].addNicIfAbsent(nic('nic-1'));
        assert.equal((await stores[2].getNic('nic-1'))?.id, 'nic-1');
      });


      it('everything survives close and reopen (station cold boot, DESIGN §4)', async () => {
        const f = await owned(store, 'nic-1');
        const p = pair(1);
        const k = ike();
        await store.putSa('nic-1', { pair: p, state: 'active', ike: k }, T0, f);
        await store.reserveOutbound('nic-1', 1, 4096n, T0, f);
        await store.appendCommand('nic-1', { time: T0, command: 'reset', rmcpSeq: 9, asfTag: 4, outcome: 'acked' }, f);
        await store.close();
        const again = await openAt(place);
        assert.deepEqual((await again.getActiveSa('nic-1'))?.ike, k);
        assert.deepEqual((await again.getActiveSa('nic-1'))?.pair, p);
        assert.equal((await again.getCheckpoint('nic-1', 1))?.outReserved, 4096n);
        assert.equal((await again.auditCommandLog('nic-1')).entries, 1);
        assert.deepEqual(await again.getLease('nic-1'), { nic: 'nic-1', owner: 'st-a', epoch: 1, expiresAt: T0 + TTL });
      });

      it('stations register and are listed with their last-seen time', async () => {
        await store.touchStation('st-b', '127.0.0.3:7000', T0);
        await store.touchStation('st-a', '127.0.0.2:7000', T0);
        await store.touchStation('st-b', '127.0.0.3:7000', T0 + 50);
        assert.deepEqual(await store.listStations(), [
          { id: 'st-a', address: '127.0.0.2:7000', lastSeen: T0 },
          { id: 'st-b', address: '127.0.0.3:7000', lastSeen: T0 + 50 },
        ]);
      });
    });

    // Store v2: sync epochs, sealed checkpoints and sync rows, the version-1 upgrade.
    syncEpochCases(contract);
    saRetentionCases(contract);
    sealedRowCases(contract);
    upgradeCases(contract);
    alertCases(contract);
  });
}
