/**
 * Edits behind the store's back, by someone with write access to the store but not the cluster key (DESIGN §7
 * "tampering without the cluster key"): raw SQL on the SQL backends, the `raw` tables of the memory backend.
 * One interface, so every tamper case of the contract runs on every backend.
 */
import type { MemoryStore } from '../../../mgmt-station/store/memory-store.js';
import type { MemorySeqRow, MemorySyncRow } from '../../../mgmt-station/store/memory-tables.js';

/** A row as the backend stores it, copied out: only ever compared, or written back with putSeqRow/putSyncRow. */
export type StoredRow = Record<string, unknown>;

export interface LogPatch {
  command?: string;
  outcome?: string;
  hash?: string;
  prevHash?: string;
  syncEpoch?: number | null;
}

export interface Tamper {
  editLog(nic: string, index: number, patch: LogPatch): Promise<void>;
  deleteLog(nic: string, index: number): Promise<void>;
  deleteHead(nic: string): Promise<void>;
  /** The checkpoint row of (nic, generation) as stored, MAC included; null if none. */
  seqRow(nic: string, generation: number): Promise<StoredRow | null>;
  /** Write a row got from seqRow back in place (an older version of it: a rollback). */
  putSeqRow(row: StoredRow): Promise<void>;
  editSeq(nic: string, generation: number, patch: { outReserved?: bigint; inHighest?: bigint; mac?: string }): Promise<void>;
  syncRow(nic: string): Promise<StoredRow | null>;
  putSyncRow(row: StoredRow): Promise<void>;
  editSync(nic: string, patch: { maxEpoch?: number; mac?: string }): Promise<void>;
}

type Query = (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

const LOG_COLUMN: Record<keyof LogPatch, string> = {
  command: 'command', outcome: 'outcome', hash: 'hash', prevHash: 'prev_hash', syncEpoch: 'sync_epoch',
};

/** UPDATE table SET <patch> WHERE <key>, with $n placeholders (the SQLite place rewrites them to ?). */
async function update(query: Query, table: string, set: Record<string, unknown>, where: Record<string, unknown>): Promise<void> {
  const sets = Object.keys(set).map((c, i) => `${c} = $${i + 1}`);
  const n = sets.length;
  const wheres = Object.keys(where).map((c, i) => `${c} = $${n + i + 1}`);
  await query(`UPDATE ${table} SET ${sets.join(', ')} WHERE ${wheres.join(' AND ')}`, [...Object.values(set), ...Object.values(where)]);
}

const text = (v: bigint | undefined): string | undefined => (v === undefined ? undefined : v.toString());
const defined = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

export function sqlTamper(query: Query): Tamper {
  return {
    editLog: (nic, index, patch) =>
      update(query, 'command_log', Object.fromEntries(Object.entries(patch).map(([k, v]) => [LOG_COLUMN[k as keyof LogPatch], v])), { nic, idx: index }),
    deleteLog: async (nic, index) => {
      await query('DELETE FROM command_log WHERE nic = $1 AND idx = $2', [nic, index]);
    },
    deleteHead: async (nic) => {
      await query('DELETE FROM command_heads WHERE nic = $1', [nic]);
    },
    seqRow: async (nic, generation) =>
      (await query('SELECT * FROM seq_checkpoints WHERE nic = $1 AND generation = $2', [nic, generation]))[0] ?? null,
    putSeqRow: (r) =>
      update(query, 'seq_checkpoints', { out_reserved: r.out_reserved, in_highest: r.in_highest, updated_at: r.updated_at, mac: r.mac },
        { nic: r.nic, generation: r.generation }),
    editSeq: (nic, generation, p) =>
      update(query, 'seq_checkpoints', defined({ out_reserved: text(p.outReserved), in_highest: text(p.inHighest), mac: p.mac }), { nic, generation }),
    syncRow: async (nic) => (await query('SELECT * FROM sync_epochs WHERE nic = $1', [nic]))[0] ?? null,
    putSyncRow: (r) => update(query, 'sync_epochs', { max_epoch: r.max_epoch, updated_at: r.updated_at, mac: r.mac }, { nic: r.nic }),
    editSync: (nic, p) => update(query, 'sync_epochs', defined({ max_epoch: p.maxEpoch, mac: p.mac }), { nic }),
  };
}

export function memoryTamper(db: MemoryStore): Tamper {
  const raw = db.raw;
  const logRow = (nic: string, index: number) => {
    const r = raw.commandLog.get(nic)?.find((e) => e.index === index);
    if (!r) throw new Error(`tamper: ${nic} has no log row ${index}`);
    return r;
  };
  const seq = (nic: string, generation: number) => {
    const r = raw.seqCheckpoints.get(nic)?.get(generation);
    if (!r) throw new Error(`tamper: ${nic} has no checkpoint for generation ${generation}`);
    return r;
  };
  const sync = (nic: string) => {
    const r = raw.syncEpochs.get(nic);
    if (!r) throw new Error(`tamper: ${nic} has no sync epoch row`);
    return r;
  };
  return {
    editLog: async (nic, index, patch) => void Object.assign(logRow(nic, index), patch),
    deleteLog: async (nic, index) => {
      const rows = raw.commandLog.get(nic) ?? [];
      rows.splice(rows.indexOf(logRow(nic, index)), 1);
    },
    deleteHead: async (nic) => void raw.commandHeads.delete(nic),
    seqRow: async (nic, generation) => {
      const r = raw.seqCheckpoints.get(nic)?.get(generation);
      return r ? { ...r } : null;
    },
    putSeqRow: async (r) => void raw.seqCheckpoints.get(String(r.nic))!.set(Number(r.generation), { ...r } as unknown as MemorySeqRow),
    editSeq: async (nic, generation, p) => void Object.assign(seq(nic, generation), defined(p)),
    syncRow: async (nic) => {
      const r = raw.syncEpochs.get(nic);
      return r ? { ...r } : null;
    },
    putSyncRow: async (r) => void raw.syncEpochs.set(String(r.nic), { ...r } as unknown as MemorySyncRow),
    editSync: async (nic, p) => void Object.assign(sync(nic), defined(p)),
  };
}
