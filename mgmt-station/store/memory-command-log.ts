/**
 * The hash-chained command log in memory, as sql-command-log.ts has it over SQL; the chain and its rules are
 * command-log.ts, shared, so the rows carry the same hashes and MACs. Synchronous: atomic inside one call.
 */
import { checkRef, nextEntry, refIndex, unsealed, type EntryFields, type LogSealer, type SealedEntry } from './command-log.js';
import type { MemoryTables } from './memory-tables.js';
import { checkFence, noCommand } from './store-errors.js';
import type { CommandLogEntry, CommandOutcome, CommandRef, Fence } from './store.js';

/** Check the lease, seal the next entry from the stored head (fail closed on tampering), store it and the new head. */
export function appendEntry(
  t: MemoryTables, sealer: LogSealer, nic: string, fence: Fence, what: string, make: (rows: readonly SealedEntry[]) => EntryFields,
): CommandLogEntry {
  checkFence(nic, fence, t.leases.get(nic) ?? null, what);
  const rows = t.commandLog.get(nic);
  const fields = make(rows ?? []);
  let tail: number | null = null;
  for (const r of rows ?? []) if (tail === null || r.index > tail) tail = r.index;
  const next = nextEntry(sealer, nic, t.commandHeads.get(nic) ?? null, tail, fence, fields);
  if (rows) rows.push(next.entry);
  else t.commandLog.set(nic, [next.entry]);
  t.commandHeads.set(nic, next.head);
  return unsealed(next.entry);
}

/** An outcome entry completes the command entry at `index`: it repeats the command's name and wire identity. */
export function outcomeFields(
  rows: readonly SealedEntry[], nic: string, ref: CommandRef, outcome: CommandOutcome, time: number, syncEpoch: number | undefined,
): EntryFields {
  const index = refIndex(ref);
  const at = rows[index - 1]; // rows are in index order from 1: look there first
  const cmd = at?.index === index && at.kind === 'command' ? at : rows.find((r) => r.index === index && r.kind === 'command');
  if (!cmd) throw noCommand(nic, index);
  checkRef(nic, ref, cmd.hash);
  return { kind: 'outcome', ref: index, command: cmd.command, rmcpSeq: cmd.rmcpSeq, asfTag: cmd.asfTag, outcome, time, syncEpoch: syncEpoch ?? null };
}

/** The rows in index order (what SQL's ORDER BY idx reads): a new array of the live rows. */
export function readLog(t: MemoryTables, nic: string): SealedEntry[] {
  return [...(t.commandLog.get(nic) ?? [])].sort((a, b) => a.index - b.index);
}
