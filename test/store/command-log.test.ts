/** The hash-chained command log, checked without a database (mgmt-station/store/command-log.ts). */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { ClusterKey } from '../../mgmt-station/store/cluster-key.js';
import {
  auditChain, canonicalEntry, entryHash, GENESIS_HASH, LogSealer, type SealedEntry, type SealedHead,
} from '../../mgmt-station/store/command-log.js';

const sealer = new LogSealer(ClusterKey.fromHex('11'.repeat(32)));
const T0 = 1_700_000_000_000;

function chain(n: number): { rows: SealedEntry[]; head: SealedHead } {
  const rows: SealedEntry[] = [];
  for (let i = 0; i < n; i++) {
    const prev = rows.length ? rows[rows.length - 1] : null;
    const outcome = i === 2;
    rows.push(sealer.seal(prev, {
      nic: 'nic-1', kind: outcome ? 'outcome' : 'command', ref: outcome ? 1 : null, time: T0 + i, station: 'st-a', epoch: 1,
      command: 'reset', rmcpSeq: i, asfTag: i, outcome: outcome ? 'acked' : 'sent', syncEpoch: null,
    }));
  }
  const last = rows[rows.length - 1];
  return { rows, head: { index: last.index, hash: last.hash, mac: sealer.headMac('nic-1', last.index, last.hash) } };
}

describe('command log hash chain', () => {
  it('hash(n) = SHA-256(hash(n-1) || canonical entry), hash(0) = 32 zero bytes', () => {
    const { rows } = chain(2);
    const [e1, e2] = rows;
    assert.equal(canonicalEntry(e1), `["lifeline-cmdlog-v1","nic-1",1,"command",null,${T0},"st-a",1,"reset",0,0,"sent"]`);
    const h1 = createHash('sha256').update(Buffer.alloc(32)).update(canonicalEntry(e1)).digest('hex');
    assert.equal(e1.prevHash, GENESIS_HASH);
    assert.equal(e1.hash, h1);
    assert.equal(e2.prevHash, h1);
    assert.equal(e2.hash, entryHash(h1, e2));
  });

  it('an entry with a sync epoch hashes in the v2 form: the v1 fields, then the epoch', () => {
    const e = { ...chain(1).rows[0], syncEpoch: 7 };
    assert.equal(canonicalEntry(e), `["lifeline-cmdlog-v2","nic-1",1,"command",null,${T0},"st-a",1,"reset",0,0,"sent",7]`);
    // A row written before sync epochs existed has no such field at all: it hashes as it always did.
    const { syncEpoch: _none, ...v1Row } = chain(1).rows[0];
    assert.equal(canonicalEntry(v1Row as typeof e), canonicalEntry({ ...v1Row, syncEpoch: null }));
    assert.match(canonicalEntry(v1Row as typeof e), /^\["lifeline-cmdlog-v1",/);
  });

  it('a chain mixing entries with and without a sync epoch audits clean; changing an epoch is caught', () => {
    const rows: SealedEntry[] = [];
    for (let i = 0; i < 4; i++) {
      rows.push(sealer.seal(rows[i - 1] ?? null, {
        nic: 'nic-1', kind: 'command', ref: null, time: T0 + i, station: 'st-a', epoch: 1,
        command: 'reset', rmcpSeq: i, asfTag: 0, outcome: 'sent', syncEpoch: i % 2 ? 40 + i : null,
      }));
    }
    const last = rows[3];
    const head = { index: 4, hash: last.hash, mac: sealer.headMac('nic-1', 4, last.hash) };
    assert.equal(auditChain('nic-1', rows, head, sealer).ok, true);
    for (const [i, syncEpoch] of [[0, 1], [1, null], [1, 42]] as const) {
      const bad = rows.map((r) => ({ ...r }));
      bad[i].syncEpoch = syncEpoch;
      const r = auditChain('nic-1', bad, head, sealer);
      assert.deepEqual([r.ok, r.firstBadIndex], [false, i + 1], `entry ${i + 1} syncEpoch -> ${syncEpoch}`);
      assert.match(r.problem!, /altered/);
    }
  });

  it('an intact chain with its head audits clean; so does an empty log', () => {
    const { rows, head } = chain(5);
    assert.deepEqual(auditChain('nic-1', rows, head, sealer), {
      nic: 'nic-1', ok: true, entries: 5, head: { index: 5, hash: head.hash }, firstBadIndex: null, problem: null,
    });
    assert.equal(auditChain('nic-1', [], null, sealer).ok, true);
  });

  const cases: [string, (c: { rows: SealedEntry[]; head: SealedHead | null }) => void, number, RegExp][] = [
    ['a field edited in entry 3', (c) => { c.rows[2].outcome = 'failed'; }, 3, /entry 3 was altered/],
    ['entry 2 deleted', (c) => { c.rows.splice(1, 1); }, 2, /entry 2 is missing/],
    ['entry 4 re-linked', (c) => { c.rows[3].prevHash = c.rows[1].hash; }, 4, /does not link/],
    ['entry 2 rewritten with a recomputed hash', (c) => {
      const e = c.rows[1];
      e.command = 'power-down';
      e.hash = entryHash(e.prevHash, e);
      c.rows[2].prevHash = e.hash;
      c.rows[2].hash = entryHash(c.rows[2].prevHash, c.rows[2]);
    }, 2, /not sealed/],
    ['the tail deleted', (c) => { c.rows.splice(3); }, 4, /entries 4\.\.5 were deleted/],
    ['an entry appended without a head checkpoint', (c) => {
      const extra = sealer.seal(c.rows[4], { ...c.rows[4], kind: 'command', ref: null });
      c.rows.push(extra);
    }, 6, /without a head checkpoint/],
    ['the head altered', (c) => { c.head!.index = 4; }, 4, /head checkpoint was altered/],
    ['the head removed', (c) => { c.head = null; }, 1, /no head checkpoint/],
    ['an outcome pointing at a later entry', (c) => {
      const e = c.rows[2];
      Object.assign(e, sealer.seal(c.rows[1], { ...e, ref: 4 }));
    }, 3, /not an earlier command/],
  ];
  for (const [what, mutate, bad, re] of cases) {
    it(`names the first bad index: ${what}`, () => {
      const c: { rows: SealedEntry[]; head: SealedHead | null } = chain(5);
      mutate(c);
      const r = auditChain('nic-1', c.rows, c.head, sealer);
      assert.equal(r.ok, false);
      assert.equal(r.firstBadIndex, bad, r.problem ?? '');
      assert.match(r.problem!, re);
    });
  }

  it('a log sealed under another cluster key does not verify', () => {
    const { rows, head } = chain(3);
    const other = new LogSealer(ClusterKey.fromHex('22'.repeat(32)));
    const r = auditChain('nic-1', rows, head, other);
    assert.deepEqual([r.ok, r.firstBadIndex], [false, 1]);
  });
});
