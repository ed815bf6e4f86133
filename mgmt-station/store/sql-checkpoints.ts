/**
 * Transaction bodies for the MAC-sealed runtime rows (row-mac.ts) over SQL: sequence checkpoints (DESIGN
 * §2.6) and NIC sync epochs (DESIGN §7). Every path that reads a row verifies its MAC before using it and
 * throws E_STORE on a mismatch, before anything is written (fail closed: the transaction rolls back).
 * Writes are fenced (tx-steps.ts) and monotonic: a checkpoint or an epoch is never lowered.
 */
import type { RowMacs } from './row-mac.js';
import { sql, type Tx } from './sql-driver.js';
import type { Fence, SeqCheckpoint } from './store.js';
import { fenced, saState } from './tx-steps.js';
import * as v from './validate.js';

/** Column names of the two counters, for messages and the generic raise. */
export type SeqColumn = 'out_reserved' | 'in_highest';

interface SeqRow {
  out: bigint;
  inn: bigint;
  updatedAt: number;
}

/** The checkpoint row of (nic, generation), verified; null if there is none. */
function* seqRow(nic: string, gen: number, macs: RowMacs): Tx<SeqRow | null> {
  const [r] = yield sql('SELECT out_reserved, in_highest, updated_at, mac FROM seq_checkpoints WHERE nic = ? AND generation = ?', nic, gen);
  if (!r) return null;
  // Verify the stored text before parsing it: a verified value is one a station wrote, so it parses.
  const [out, inn] = [String(r.out_reserved), String(r.in_highest)];
  macs.verifySeq(nic, gen, out, inn, r.mac);
  return { out: BigInt(out), inn: BigInt(inn), updatedAt: Number(r.updated_at) };
}

function* writeSeq(nic: string, gen: number, out: bigint, inn: bigint, now: number, macs: RowMacs): Tx<void> {
  yield sql(
    `INSERT INTO seq_checkpoints (nic, generation, out_reserved, in_highest, updated_at, mac) VALUES (?, ?, ?, ?, ?, ?)
     ON CONFLICT (nic, generation) DO UPDATE SET out_reserved = excluded.out_reserved,
       in_highest = excluded.in_highest, updated_at = excluded.updated_at, mac = excluded.mac`,
    nic, gen, out.toString(), inn.toString(), now, macs.seqMac(nic, gen, out, inn),
  );
}

export function* readCheckpoint(nic: string, gen: number, macs: RowMacs): Tx<SeqCheckpoint | null> {
  const r = yield* seqRow(nic, gen, macs);
  return r && { nic, generation: gen, outReserved: r.out, inHighest: r.inn, updatedAt: r.updatedAt };
}

/** Raise one counter to `value` (never lowers it); the value now stored. */
export function* raiseCheckpoint(
  nic: string, gen: number, column: SeqColumn, value: bigint, now: number, fence: Fence, fu: string, macs: RowMacs,
): Tx<bigint> {
  yield* fenced(nic, fence, fu, 'checkpoint sequence numbers');
  yield* saState(nic, gen);
  const cur = yield* seqRow(nic, gen, macs);
  const [out, inn] = cur ? [cur.out, cur.inn] : [0n, 0n];
  const old = column === 'out_reserved' ? out : inn;
  if (cur && value <= old) return old; // monotonic: never lower a checkpoint
  yield* column === 'out_reserved' ? writeSeq(nic, gen, value, inn, now, macs) : writeSeq(nic, gen, out, value, now, macs);
  return value;
}

/** An exclusive block of `size` outbound numbers at or above `minNext` and above every earlier block; its first. */
export function* claimBlock(
  nic: string, gen: number, minNext: bigint, size: bigint, now: number, fence: Fence, fu: string, macs: RowMacs,
): Tx<bigint> {
  yield* fenced(nic, fence, fu, 'claim sequence numbers');
  yield* saState(nic, gen);
  const cur = yield* seqRow(nic, gen, macs);
  const reserved = cur?.out ?? 0n;
  const start = minNext > reserved ? minNext : reserved + 1n;
  const end = start + size - 1n;
  v.assertU64('claimed block end', end);
  yield* writeSeq(nic, gen, end, cur?.inn ?? 0n, now, macs);
  return start;
}

/** The NIC's highest sync epoch, verified; 0 if none was recorded. */
export function* readSyncEpoch(nic: string, macs: RowMacs): Tx<number> {
  const [r] = yield sql('SELECT max_epoch, mac FROM sync_epochs WHERE nic = ?', nic);
  if (!r) return 0;
  const epoch = Number(r.max_epoch);
  macs.verifySync(nic, epoch, r.mac);
  return epoch;
}

/** Raise the NIC's highest sync epoch to `epoch` (never lowers it); the value now stored. */
export function* raiseSyncEpoch(nic: string, epoch: number, now: number, fence: Fence, fu: string, macs: RowMacs): Tx<number> {
  yield* fenced(nic, fence, fu, 'record a sync epoch');
  const cur = yield* readSyncEpoch(nic, macs);
  if (epoch <= cur) return cur;
  yield sql(
    `INSERT INTO sync_epochs (nic, max_epoch, updated_at, mac) VALUES (?, ?, ?, ?)
     ON CONFLICT (nic) DO UPDATE SET max_epoch = excluded.max_epoch, updated_at = excluded.updated_at, mac = excluded.mac`,
    nic, epoch, now, macs.syncMac(nic, epoch),
  );
  return epoch;
}
