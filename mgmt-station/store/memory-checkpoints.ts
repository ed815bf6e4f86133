/**
 * The MAC-sealed runtime rows (row-mac.ts) in memory, as sql-checkpoints.ts has them over SQL: sequence
 * checkpoints (DESIGN §2.6) and NIC sync epochs (DESIGN §7). Every path that reads a row verifies it first and
 * throws E_STORE on a mismatch before anything is written; writes are fenced and monotonic. Each function
 * is synchronous: run inside one MemoryStore call, it is atomic.
 */
import type { MemorySeqRow, MemoryTables } from './memory-tables.js';
import { seqAltered, type RowMacs } from './row-mac.js';
import { checkFence, noSa } from './store-errors.js';
import type { Fence, SeqCheckpoint } from './store.js';
import * as v from './validate.js';

/** The checkpoint row of (nic, generation), verified; undefined if there is none. */
function seqRow(t: MemoryTables, macs: RowMacs, nic: string, gen: number): MemorySeqRow | undefined {
  const r = t.seqCheckpoints.get(nic)?.get(gen);
  if (!r) return undefined;
  // A raw edit may put any value here; only a bigint is what a station sealed (a number would pass the MAC).
  if (typeof r.outReserved !== 'bigint' || typeof r.inHighest !== 'bigint') throw seqAltered(nic, gen);
  macs.verifySeq(nic, gen, r.outReserved, r.inHighest, r.mac);
  return r;
}

function writeSeq(t: MemoryTables, macs: RowMacs, nic: string, gen: number, outReserved: bigint, inHighest: bigint, now: number): void {
  const row: MemorySeqRow = { nic, generation: gen, outReserved, inHighest, updatedAt: now, mac: macs.seqMac(nic, gen, outReserved, inHighest) };
  const gens = t.seqCheckpoints.get(nic);
  if (gens) gens.set(gen, row);
  else t.seqCheckpoints.set(nic, new Map([[gen, row]]));
}

/** What every checkpoint write checks first, in SQL's order: the lease, then the SA (E_NOT_FOUND). */
function writable(t: MemoryTables, nic: string, gen: number, fence: Fence, what: string): void {
  checkFence(nic, fence, t.leases.get(nic) ?? null, what);
  if (!t.sas.get(nic)?.has(gen)) throw noSa(nic, gen);
}

export function readCheckpoint(t: MemoryTables, macs: RowMacs, nic: string, gen: number): SeqCheckpoint | null {
  const r = seqRow(t, macs, nic, gen);
  return r ? { nic, generation: gen, outReserved: r.outReserved, inHighest: r.inHighest, updatedAt: r.updatedAt } : null;
}

/** Raise one counter to `value` (never lowers it); the value now stored. */
export function raiseCheckpoint(
  t: MemoryTables, macs: RowMacs, nic: string, gen: number, field: 'outReserved' | 'inHighest', value: bigint, now: number, fence: Fence,
): bigint {
  writable(t, nic, gen, fence, 'checkpoint sequence numbers');
  const cur = seqRow(t, macs, nic, gen);
  if (cur && value <= cur[field]) return cur[field]; // monotonic: never lower a checkpoint
  const next = { outReserved: cur?.outReserved ?? 0n, inHighest: cur?.inHighest ?? 0n, [field]: value };
  writeSeq(t, macs, nic, gen, next.outReserved, next.inHighest, now);
  return value;
}

/** An exclusive block of `size` outbound numbers at or above `minNext` and above every earlier block; its first. */
export function claimBlock(
  t: MemoryTables, macs: RowMacs, nic: string, gen: number, minNext: bigint, size: bigint, now: number, fence: Fence,
): bigint {
  writable(t, nic, gen, fence, 'claim sequence numbers');
  const cur = seqRow(t, macs, nic, gen);
  const reserved = cur?.outReserved ?? 0n;
  const start = minNext > reserved ? minNext : reserved + 1n;
  const end = start + size - 1n;
  v.assertU64('claimed block end', end);
  writeSeq(t, macs, nic, gen, end, cur?.inHighest ?? 0n, now);
  return start;
}

/** The NIC's highest sync epoch, verified; 0 if none was recorded. */
export function readSyncEpoch(t: MemoryTables, macs: RowMacs, nic: string): number {
  const r = t.syncEpochs.get(nic);
  if (!r) return 0;
  macs.verifySync(nic, r.maxEpoch, r.mac);
  return r.maxEpoch;
}

/** Raise the NIC's highest sync epoch to `epoch` (never lowers it); the value now stored. */
export function raiseSyncEpoch(t: MemoryTables, macs: RowMacs, nic: string, epoch: number, now: number, fence: Fence): number {
  checkFence(nic, fence, t.leases.get(nic) ?? null, 'record a sync epoch');
  const cur = readSyncEpoch(t, macs, nic);
  if (epoch <= cur) return cur;
  t.syncEpochs.set(nic, { nic, maxEpoch: epoch, updatedAt: now, mac: macs.syncMac(nic, epoch) });
  return epoch;
}
