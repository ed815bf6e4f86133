/**
 * What the in-memory store (mgmt-station/store/memory-store.ts) promises beyond the store contract, which it
 * passes like the SQL backends (store-contract.test.ts): snapshots and restores for the simulator, raw access
 * for tampering, connections sharing one set of tables, keys held as copies, and rows sealed with exactly the
 * hashes and MACs an SQL store writes.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ClusterKey } from '../../mgmt-station/store/cluster-key.js';
import { MemoryStore } from '../../mgmt-station/store/memory-store.js';
import { openStore } from '../../mgmt-station/store/open-store.js';
import type { Fence, Store } from '../../mgmt-station/store/store.js';
import { prng } from '../support/prng.js';
import { KEY, nic, OTHER_KEY, pair, rejectsWith, T0, TTL } from './contract/harness.js';

/** Everything a station can read from the store, for comparing two moments. */
async function view(s: Store): Promise<unknown> {
  const nics = await s.listNics();
  const per = [];
  for (const n of nics) {
    const sas = await s.listSas(n.id);
    per.push({
      sas, active: await s.getActiveSa(n.id), bySpi: await Promise.all(sas.map((x) => s.findSaBySpi(x.pair.fromNic.spi))),
      checkpoints: await Promise.all(sas.map((x) => s.getCheckpoint(n.id, x.pair.generation))),
      log: await s.readCommandLog(n.id), commands: await s.listCommands(n.id), audit: await s.auditCommandLog(n.id),
      sync: await s.getSyncEpoch(n.id),
    });
  }
  return { nics, per, leases: await s.listLeases(), stations: await s.listStations() };
}

/** Two NICs with SAs, checkpoints, a log, sync epochs, leases and a station. */
async function populate(s: Store): Promise<Record<string, Fence>> {
  const fences: Record<string, Fence> = {};
  for (const id of ['nic-1', 'nic-2']) {
    await s.addNicIfAbsent(nic(id));
    const l = await s.acquireLease(id, 'st-a', T0, TTL);
    assert.ok(l.acquired);
    const f = { station: 'st-a', epoch: l.lease.epoch };
    fences[id] = f;
    await s.putSa(id, { pair: pair(1), state: 'active', ike: null }, T0, f);
    await s.putSa(id, { pair: pair(2), state: 'pending', ike: null }, T0, f);
    await s.reserveOutbound(id, 1, 1024n, T0, f);
    await s.recordInbound(id, 1, 9n, T0, f);
    await s.appendCommand(id, { time: T0, command: 'reset', outcome: 'sent', syncEpoch: 2 }, f);
    await s.updateOutcome(id, 1, 'acked', T0 + 1, f);
    await s.recordSyncEpoch(id, 2, T0, f);
  }
  await s.touchStation('st-a', '127.0.0.2:7000', T0);
  return fences;
}

describe('MemoryStore', () => {
  it('is built synchronously, kind memory, url memory:', () => {
    const s = new MemoryStore(KEY);
    assert.deepEqual([s.kind, s.url], ['memory', 'memory:']);
  });

  describe('snapshot and restore (a backup and its restore, DESIGN §7)', () => {
    it('a restored snapshot reads exactly as the store did then, on every connection; SPIs used since are free again', async () => {
      const db = new MemoryStore(KEY);
      const f = await populate(db);
      const then = await view(db);
      const snap = db.snapshot();

      // Everything moves on: a commit, more numbers, more commands, a takeover, a new NIC and station.
      const later = pair(3);
      await db.putSa('nic-1', { pair: later, state: 'pending', ike: null }, T0 + 5, f['nic-1']);
      await db.activateSa('nic-1', 3, T0 + 5, f['nic-1']);
      await db.claimOutbound('nic-1', 3, 1n, 100n, T0 + 5, f['nic-1']);
      await db.appendCommand('nic-1', { time: T0 + 6, command: 'power-down', outcome: 'sent', syncEpoch: 3 }, f['nic-1']);
      await db.recordSyncEpoch('nic-1', 3, T0 + 6, f['nic-1']);
      const took = await db.acquireLease('nic-2', 'st-b', T0 + TTL, TTL);
      assert.ok(took.acquired);
      await db.reserveOutbound('nic-2', 1, 5000n, T0 + TTL, { station: 'st-b', epoch: took.lease.epoch });
      await db.addNicIfAbsent(nic('nic-3'));
      await db.touchStation('st-b', '127.0.0.3:7000', T0 + 7);
      assert.notDeepEqual(await view(db), then);

      const other = db.connect(KEY);
      db.restore(snap);
      assert.deepEqual(await view(db), then);
      assert.deepEqual(await view(other), then, 'another connection sees the restored store');
      // The SA written after the snapshot is gone, and its SPI with it (the unique-SPI index is rebuilt).
      assert.equal(await db.findSaBySpi(later.fromNic.spi), null);
      const g = await db.acquireLease('nic-2', 'st-c', T0 + 10 * TTL, TTL);
      assert.ok(g.acquired);
      await db.putSa('nic-2', { pair: { ...pair(5), fromNic: later.fromNic }, state: 'pending', ike: null }, T0, { station: 'st-c', epoch: g.lease.epoch });
      // The snapshot can be restored again: restoring and writing on did not change it.
      db.restore(snap);
      assert.deepEqual(await view(db), then);
    });

    it('a snapshot is a deep copy: neither the store\'s calls nor raw edits change it, and editing it changes no store', async () => {
      const db = new MemoryStore(KEY);
      const f = await populate(db);
      const snap = db.snapshot();
      const frozen = structuredClone(snap);
      await db.reserveOutbound('nic-1', 1, 4096n, T0 + 1, f['nic-1']);
      await db.setSaState('nic-1', 2, 'retired', T0 + 1, f['nic-1']);
      await db.appendCommand('nic-1', { time: T0 + 2, command: 'reset', outcome: 'sent' }, f['nic-1']);
      await db.recordSyncEpoch('nic-1', 9, T0 + 2, f['nic-1']);
      await db.renewLease('nic-1', f['nic-1'], T0 + 3, TTL);
      db.raw.commandLog.get('nic-2')![0].outcome = 'failed';
      db.raw.seqCheckpoints.get('nic-2')!.get(1)!.outReserved = 1n;
      db.raw.syncEpochs.delete('nic-2');
      assert.deepEqual(snap, frozen);

      db.restore(snap);
      const restored = await view(db);
      snap.commandLog.get('nic-1')!.length = 0;
      snap.seqCheckpoints.get('nic-1')!.get(1)!.outReserved = 7n;
      snap.nics.get('nic-1')!.psk.fill(0);
      snap.leases.clear();
      assert.deepEqual(await view(db), restored);
    });

    it('a snapshot of another cluster\'s store is not restored (E_KEYFILE)', () => {
      const snap = new MemoryStore(OTHER_KEY).snapshot();
      assert.throws(() => new MemoryStore(KEY).restore(snap), (e: Error & { code?: string }) => e.code === 'E_KEYFILE');
    });
  });

  describe('raw access (someone with write access to the store but not the cluster key)', () => {
    it('exposes the live runtime tables only: no NIC or SA rows, so no key', async () => {
      const db = new MemoryStore(KEY);
      const f = await populate(db);
      assert.deepEqual(Object.keys(db.raw).sort(), ['commandHeads', 'commandLog', 'leases', 'members', 'seqCheckpoints', 'syncEpochs']);
      // Live: an edit is what the store reads next.
      db.raw.leases.delete('nic-1');
      await rejectsWith(db.reserveOutbound('nic-1', 1, 1n, T0, f['nic-1']), 'E_FENCED', /acquire one first/);
      db.raw.commandHeads.delete('nic-2');
      await rejectsWith(db.appendCommand('nic-2', { time: T0, command: 'reset', outcome: 'sent' }, f['nic-2']), 'E_STORE', /audit nic-2/);
    });

    it('a row copied in from a snapshot is a rollback its MAC cannot see; a field edited in it is E_STORE', async () => {
      const db = new MemoryStore(KEY);
      const f = await populate(db);
      const snap = db.snapshot();
      await db.reserveOutbound('nic-1', 1, 9000n, T0 + 1, f['nic-1']);
      await db.recordSyncEpoch('nic-1', 5, T0 + 1, f['nic-1']);
      db.raw.seqCheckpoints.get('nic-1')!.set(1, { ...snap.seqCheckpoints.get('nic-1')!.get(1)! });
      db.raw.syncEpochs.set('nic-1', { ...snap.syncEpochs.get('nic-1')! });
      assert.equal((await db.getCheckpoint('nic-1', 1))?.outReserved, 1024n);
      assert.equal(await db.getSyncEpoch('nic-1'), 2);
      db.raw.seqCheckpoints.get('nic-1')!.get(1)!.inHighest = 1n;
      await rejectsWith(db.getCheckpoint('nic-1', 1), 'E_STORE', /nic-1 SA generation 1 was altered outside a station/);
      // A number where a bigint belongs is not what a station sealed either, though its decimal text is.
      db.raw.seqCheckpoints.get('nic-2')!.get(1)!.outReserved = 1024 as unknown as bigint;
      await rejectsWith(db.claimOutbound('nic-2', 1, 1n, 1n, T0, f['nic-2']), 'E_STORE', /altered/);
    });
  });

  describe('connections and calls', () => {
    it('connections share the tables; close ends one connection only; another cluster key is E_KEYFILE', async () => {
      const db = new MemoryStore(KEY);
      const a = db.connect(KEY);
      const b = db.connect(KEY);
      await a.addNicIfAbsent(nic('nic-1'));
      await a.close();
      await a.close();
      await rejectsWith(a.getNic('nic-1'), 'E_STORE', /closed/);
      assert.equal((await b.getNic('nic-1'))?.id, 'nic-1');
      assert.equal((await db.connect(KEY).listNics()).length, 1);
      assert.throws(() => db.connect(OTHER_KEY), (e: Error & { code?: string }) => e.code === 'E_KEYFILE' && /cluster key/.test(e.message));
    });

    it('keys handed in and out are copies: a caller changing its bytes changes nothing stored', async () => {
      const db = new MemoryStore(KEY);
      const n = nic('nic-1');
      const psk = Uint8Array.from(n.psk);
      await db.addNicIfAbsent(n);
      n.psk.fill(0);
      (await db.getNic('nic-1'))!.psk.fill(0);
      assert.deepEqual((await db.getNic('nic-1'))!.psk, psk);
      const l = await db.acquireLease('nic-1', 'st-a', T0, TTL);
      assert.ok(l.acquired);
      const p = pair(1);
      const enc = Uint8Array.from(p.toNic.encKey);
      await db.putSa('nic-1', { pair: p, state: 'active', ike: null }, T0, { station: 'st-a', epoch: l.lease.epoch });
      p.toNic.encKey.fill(0);
      (await db.getActiveSa('nic-1'))!.pair.toNic.encKey.fill(0);
      assert.deepEqual((await db.getSa('nic-1', 1))!.pair.toNic.encKey, enc);
    });

    it('a call that fails after reading changed nothing (atomic like a transaction)', async () => {
      const db = new MemoryStore(KEY);
      const f = await populate(db);
      const before = db.snapshot();
      const max = (1n << 64n) - 1n;
      await rejectsWith(db.claimOutbound('nic-1', 1, max, 2n, T0, f['nic-1']), 'E_USAGE', /claimed block end/);
      const clash = { ...pair(3), fromNic: (await db.getSa('nic-2', 1))!.pair.fromNic };
      await rejectsWith(db.putSa('nic-1', { pair: clash, state: 'pending', ike: null }, T0, f['nic-1']), 'E_SPI_IN_USE', /nic-2 generation 1/);
      await rejectsWith(db.activateSa('nic-1', 9, T0, f['nic-1']), 'E_NOT_FOUND');
      await rejectsWith(db.updateOutcome('nic-1', 9, 'acked', T0, f['nic-1']), 'E_NOT_FOUND');
      assert.deepEqual(db.snapshot(), before);
    });
  });

  describe('the same hashes and MACs as an SQL store', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'lifeline-memory-vs-sqlite-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('one seeded sequence of calls on both leaves byte-identical log rows, heads, checkpoint and sync MACs', async () => {
      const key = ClusterKey.fromBytes(new Uint8Array(randomBytes(32)), 'test');
      const file = join(dir, 'twin.db');
      const sqlite = await openStore('sqlite:' + file, key, { synchronous: 'NORMAL' });
      const memory = new MemoryStore(key);
      const rnd = prng(0x5eed);
      try {
        const fixed = pair(1);
        for (const s of [sqlite, memory]) {
          await s.addNicIfAbsent(nic('nic-1'));
          assert.ok((await s.acquireLease('nic-1', 'st-a', T0, TTL)).acquired);
          await s.putSa('nic-1', { pair: fixed, state: 'active', ike: null }, T0, { station: 'st-a', epoch: 1 });
        }
        const f = { station: 'st-a', epoch: 1 };
        for (const s of [sqlite, memory]) await s.appendCommand('nic-1', { time: T0, command: 'power-cycle', outcome: 'sent' }, f);
        for (let i = 1; i <= 40; i++) {
          const r = rnd.int(5);
          const epoch = rnd.int(3) === 0 ? undefined : 1 + rnd.int(50);
          for (const s of [sqlite, memory]) {
            if (r === 0) await s.appendCommand('nic-1', { time: T0 + i, command: 'reset', outcome: 'sent', syncEpoch: epoch }, f);
            if (r === 1) await s.updateOutcome('nic-1', 1, epoch ? 'sent' : 'acked', T0 + i, f, epoch);
            if (r === 2) await s.reserveOutbound('nic-1', 1, BigInt(i * 1000), T0 + i, f);
            if (r === 3) await s.claimOutbound('nic-1', 1, 1n, BigInt(1 + i), T0 + i, f);
            if (r === 4) await s.recordSyncEpoch('nic-1', 1 + i, T0 + i, f);
          }
        }
        const kinds = new Set((await memory.readCommandLog('nic-1')).map((e) => `${e.kind}:${e.syncEpoch === null ? 'v1' : 'v2'}`));
        assert.equal(kinds.size, 4, `the seed exercises both entry kinds in both forms: ${[...kinds].join(', ')}`);
        assert.deepEqual(await memory.readCommandLog('nic-1'), await sqlite.readCommandLog('nic-1'));
        assert.deepEqual(await memory.getCheckpoint('nic-1', 1), await sqlite.getCheckpoint('nic-1', 1));
        await sqlite.close();

        const raw = new Database(file, { readonly: true });
        try {
          const macs = (raw.prepare('SELECT mac FROM command_log ORDER BY idx').all() as { mac: string }[]).map((r) => r.mac);
          assert.deepEqual(memory.raw.commandLog.get('nic-1')!.map((e) => e.mac), macs);
          assert.deepEqual({ ...memory.raw.commandHeads.get('nic-1')! }, raw.prepare('SELECT idx AS "index", hash, mac FROM command_heads').get());
          const seq = raw.prepare('SELECT out_reserved, mac FROM seq_checkpoints').get() as { out_reserved: string; mac: string };
          const mseq = memory.raw.seqCheckpoints.get('nic-1')!.get(1)!;
          assert.deepEqual([mseq.outReserved.toString(), mseq.mac], [seq.out_reserved, seq.mac]);
          const sync = raw.prepare('SELECT max_epoch, mac FROM sync_epochs').get() as { max_epoch: number; mac: string } | undefined;
          const msync = memory.raw.syncEpochs.get('nic-1');
          assert.deepEqual(msync && [msync.maxEpoch, msync.mac], sync && [sync.max_epoch, sync.mac]);
        } finally {
          raw.close();
        }
      } finally {
        await sqlite.close();
      }
    });
  });
});
