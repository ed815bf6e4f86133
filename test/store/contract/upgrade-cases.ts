/**
 * Contract cases for the schema upgrade (mgmt-station/store/schema.ts): a version-1 store, built by hand with
 * the version-1 statements (schema-v1.ts) and rows sealed as a version-1 station sealed them, opened by this
 * station. SQL backends only: the memory store has no version 1 and nothing stored to upgrade.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { LogSealer, type SealedEntry } from '../../../mgmt-station/store/command-log.js';
import { KeyWrapper } from '../../../mgmt-station/store/key-wrap.js';
import { SCHEMA_VERSION } from '../../../mgmt-station/store/schema.js';
import { KEY, nic, OTHER_KEY, pair, rejectsWith, sqlOnly, T0, TTL, type Contract, type Place } from './harness.js';
import { V1_LOG_COLUMNS, v1Statements } from './schema-v1.js';

const NO_V1 = 'it has no version 1 and nothing stored to upgrade';

type SqlPlace = Place & { sql: NonNullable<Place['sql']> };

/** A version-1 store at `p`: nic-1 enrolled and leased to st-a, a 3-entry log with its head, two checkpoints. */
async function buildV1(p: SqlPlace): Promise<{ psk: Uint8Array; log: SealedEntry[] }> {
  const q = p.sql.query;
  if (p.sql.schema) await q(`CREATE SCHEMA ${p.sql.schema}`);
  for (const stmt of v1Statements(p.sql.kind)) await q(stmt);
  await q(`INSERT INTO store_meta (k, v) VALUES ('schema_version', '1'), ('cluster_key_id', $1)`, [KEY.id]);
  const psk = new Uint8Array(randomBytes(32));
  const n = nic('nic-1', { psk });
  const wrapped = Buffer.from(new KeyWrapper(KEY).wrap(psk, { nic: 'nic-1', generation: 0, column: 'psk' }));
  await q(
    'INSERT INTO nics (id, address, secure_port, clear_port, ike_port, psk, enrolled_at, meta) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)',
    [n.id, n.address, n.securePort, n.clearPort, n.ikePort, wrapped, n.enrolledAt, JSON.stringify(n.meta)],
  );
  await q(`INSERT INTO leases (nic, owner, epoch, expires_at) VALUES ('nic-1', 'st-a', 1, $1)`, [T0 + TTL]);
  // The log as a version-1 station sealed it: no sync epoch anywhere, so the version-1 canonical form.
  const sealer = new LogSealer(KEY);
  const log: SealedEntry[] = [];
  const base = { nic: 'nic-1', station: 'st-a', epoch: 1, command: 'reset', syncEpoch: null };
  log.push(sealer.seal(null, { ...base, kind: 'command', ref: null, time: T0, rmcpSeq: 0, asfTag: 0, outcome: 'sent' }));
  log.push(sealer.seal(log[0], { ...base, kind: 'command', ref: null, time: T0 + 1, rmcpSeq: 1, asfTag: 0, outcome: 'sent' }));
  log.push(sealer.seal(log[1], { ...base, kind: 'outcome', ref: 1, time: T0 + 2, rmcpSeq: 0, asfTag: 0, outcome: 'acked' }));
  for (const e of log) {
    await q(`INSERT INTO command_log (${V1_LOG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, [
      e.nic, e.index, e.kind, e.ref, e.time, e.station, e.epoch, e.command, e.rmcpSeq, e.asfTag, e.outcome, e.prevHash, e.hash, e.mac,
    ]);
  }
  const head = log[2];
  await q('INSERT INTO command_heads (nic, idx, hash, mac) VALUES ($1, $2, $3, $4)', ['nic-1', head.index, head.hash, sealer.headMac('nic-1', head.index, head.hash)]);
  await q(`INSERT INTO seq_checkpoints (nic, generation, out_reserved, in_highest, updated_at) VALUES ('nic-1', 1, '4096', '77', $1), ('nic-1', 2, '18446744073709551615', '0', $2)`, [T0, T0]);
  return { psk, log };
}

export function upgradeCases(c: Contract): void {
  describe('schema version 1 -> 2 (in place, at open)', () => {
    it('a version-1 store opened by two stations at once: upgraded once, old entries audit, checkpoints read back', async function () {
      const p = await c.backend.fresh();
      sqlOnly(this, p, NO_V1);
      const { psk, log } = await buildV1(p);
      const [a, b] = await Promise.all([c.openAt(p), c.openAt(p)]);
      const [meta] = await p.sql.query(`SELECT v FROM store_meta WHERE k = 'schema_version'`);
      assert.equal(meta.v, String(SCHEMA_VERSION));
      assert.deepEqual(await b.auditCommandLog('nic-1'), {
        nic: 'nic-1', ok: true, entries: 3, head: { index: 3, hash: log[2].hash }, firstBadIndex: null, problem: null,
      });
      assert.deepEqual(await a.readCommandLog('nic-1'), log.map(({ mac: _m, ...e }) => e), 'rows read back as written, epoch null');
      assert.deepEqual((await a.listCommands('nic-1')).map((r) => [r.index, r.outcome, r.syncEpoch]), [[1, 'acked', null], [2, 'sent', null]]);
      assert.deepEqual(await a.getCheckpoint('nic-1', 1), { nic: 'nic-1', generation: 1, outReserved: 4096n, inHighest: 77n, updatedAt: T0 });
      assert.equal((await b.getCheckpoint('nic-1', 2))?.outReserved, (1n << 64n) - 1n);
      assert.deepEqual((await a.getNic('nic-1'))?.psk, psk);

      // The upgraded store takes version-2 writes: sealed checkpoints, a mixed log, sync epochs.
      const f = { station: 'st-a', epoch: 1 };
      await a.putSa('nic-1', { pair: pair(1), state: 'active', ike: null }, T0, f);
      assert.equal(await a.reserveOutbound('nic-1', 1, 8192n, T0 + 5, f), 8192n);
      assert.equal(await b.recordInbound('nic-1', 1, 100n, T0 + 5, f), 100n);
      assert.equal((await a.appendCommand('nic-1', { time: T0 + 6, command: 'power-cycle', outcome: 'sent', syncEpoch: 5 }, f)).index, 4);
      await b.updateOutcome('nic-1', 2, 'sent', T0 + 7, f, 6);
      assert.equal((await a.auditCommandLog('nic-1')).ok, true);
      assert.deepEqual((await a.listCommands('nic-1')).map((r) => [r.index, r.syncEpoch]), [[1, null], [2, 6], [4, 5]]);
      assert.equal(await a.recordSyncEpoch('nic-1', 6, T0 + 8, f), 6);

      // Opening it again changes nothing; the upgraded checkpoints are sealed like new ones.
      const again = await c.openAt(p);
      assert.equal((await again.getCheckpoint('nic-1', 1))?.outReserved, 8192n);
      await p.tamper.editSeq('nic-1', 2, { outReserved: 5n });
      await rejectsWith(again.getCheckpoint('nic-1', 2), 'E_STORE', /altered outside a station/);
    });

    it('a store from a newer station is refused at open; one with another cluster key is refused before any upgrade', async function () {
      const p = await c.backend.fresh();
      sqlOnly(this, p, NO_V1);
      await buildV1(p);
      await rejectsWith(c.openAt(p, OTHER_KEY), 'E_KEYFILE', /cluster key/);
      const [meta] = await p.sql.query(`SELECT v FROM store_meta WHERE k = 'schema_version'`);
      assert.equal(meta.v, '1', 'a station with the wrong key did not upgrade the store');
      await p.sql.query(`UPDATE store_meta SET v = '3' WHERE k = 'schema_version'`);
      await rejectsWith(c.openAt(p), 'E_STORE', /schema version 3, newer than this station's 2; upgrade the station/);
    });
  });
}
