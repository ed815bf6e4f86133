/**
 * Transaction bodies for the hash-chained command log over SQL (command-log.ts holds the chain itself, shared
 * with the memory backend): append under the NIC's lease lock, and read the log with its head in one snapshot.
 */
import { checkRef, nextEntry, refIndex, unsealed, type EntryFields, type LogSealer, type SealedEntry, type SealedHead } from './command-log.js';
import { headFromRow, LOG_COLUMNS, LOG_INSERT, logFromRow, logParams } from './row-codec.js';
import { sql, type Tx } from './sql-driver.js';
import { noCommand } from './store-errors.js';
import type { CommandLogEntry, CommandOutcome, CommandRef, Fence } from './store.js';
import { fenced, isGenerator } from './tx-steps.js';

/** Lock, read the tail, seal the next entry, insert it and checkpoint the head: one transaction. */
export function* appendEntry(
  nic: string, fence: Fence, fu: string, what: string, sealer: LogSealer, make: () => EntryFields | Tx<EntryFields>,
): Tx<CommandLogEntry> {
  yield* fenced(nic, fence, fu, what);
  const made = make();
  const fields = isGenerator(made) ? yield* made : made;
  const [head] = yield sql('SELECT idx, hash, mac FROM command_heads WHERE nic = ?', nic);
  const [tail] = yield sql('SELECT idx FROM command_log WHERE nic = ? ORDER BY idx DESC LIMIT 1', nic);
  const next = nextEntry(sealer, nic, head ? headFromRow(head) : null, tail ? Number(tail.idx) : null, fence, fields);
  yield sql(LOG_INSERT, ...logParams(next.entry));
  yield sql(
    `INSERT INTO command_heads (nic, idx, hash, mac) VALUES (?, ?, ?, ?)
     ON CONFLICT (nic) DO UPDATE SET idx = excluded.idx, hash = excluded.hash, mac = excluded.mac`,
    nic, next.head.index, next.head.hash, next.head.mac,
  );
  return unsealed(next.entry);
}

/** An outcome entry completes the command entry at `index`: it repeats the command's name and wire identity. */
export function* outcomeFields(nic: string, ref: CommandRef, outcome: CommandOutcome, time: number, syncEpoch: number | undefined): Tx<EntryFields> {
  const index = refIndex(ref);
  const [cmd] = yield sql(`SELECT command, rmcp_seq, asf_tag, hash FROM command_log WHERE nic = ? AND idx = ? AND kind = 'command'`, nic, index);
  if (!cmd) throw noCommand(nic, index);
  checkRef(nic, ref, String(cmd.hash));
  return {
    kind: 'outcome', ref: index, command: String(cmd.command), rmcpSeq: Number(cmd.rmcp_seq), asfTag: Number(cmd.asf_tag),
    outcome, time, syncEpoch: syncEpoch ?? null,
  };
}

export function* readLog(nic: string): Tx<SealedEntry[]> {
  const rows = yield sql(`SELECT ${LOG_COLUMNS} FROM command_log WHERE nic = ? ORDER BY idx`, nic);
  return rows.map(logFromRow);
}

/** The log and its head from one snapshot, for the audit. */
export function* readLogAndHead(nic: string): Tx<{ rows: SealedEntry[]; head: SealedHead | null }> {
  const rows = yield* readLog(nic);
  const [head] = yield sql('SELECT idx, hash, mac FROM command_heads WHERE nic = ?', nic);
  return { rows, head: head ? headFromRow(head) : null };
}
