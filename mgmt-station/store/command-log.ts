/**
 * The per-NIC command log as a hash chain (issue 5, after the seed's "running message digest
 * checkpointed outside the server"):
 *
 *   hash(n) = SHA-256(hash(n-1) || canonical(entry n)),  hash(0) = 32 zero bytes
 *
 * Two additions make the chain useful against someone who can write to the database but does not hold
 * the cluster key:
 *  - every row carries mac = HMAC-SHA-256(audit key, hash), so a rewritten row cannot be re-sealed, and
 *    the first row that fails names the first bad index even if the whole chain after it was recomputed;
 *  - the head (index, hash) is checkpointed with its own MAC in a separate table after every append,
 *    so deleting entries from the end is detected too. New entries chain from the sealed head, not
 *    from the last row, so a deleted tail stays a visible gap; a head that fails its MAC, or rows beyond
 *    it, make the store refuse further entries (fail closed: no command is acknowledged on a log that
 *    was tampered with until someone audits it).
 * (Rolling the log and its head back together to an older state is only detectable against a copy of
 * the head kept elsewhere; the audit report prints the head for that purpose.)
 *
 * The canonical form is a JSON array with a fixed field order: only strings, integers and null, so
 * JSON.stringify is deterministic.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { ClusterKey } from './cluster-key.js';
import type { AuditReport, CommandLogEntry } from './store.js';

export const GENESIS_HASH = '0'.repeat(64);

/** The fields a row's hash covers. */
export type ChainedFields = Omit<CommandLogEntry, 'prevHash' | 'hash'>;

export function canonicalEntry(e: ChainedFields): string {
  return JSON.stringify([
    'lifeline-cmdlog-v1', e.nic, e.index, e.kind, e.ref, e.time, e.station, e.epoch,
    e.command, e.rmcpSeq, e.asfTag, e.outcome,
  ]);
}

export function entryHash(prevHash: string, e: ChainedFields): string {
  return createHash('sha256').update(Buffer.from(prevHash, 'hex')).update(canonicalEntry(e), 'utf8').digest('hex');
}

/** A log row as stored, with its MAC. */
export interface SealedEntry extends CommandLogEntry {
  mac: string;
}

export interface SealedHead {
  index: number;
  hash: string;
  mac: string;
}

/** MACs under a sub-key of the cluster key: only a station of the cluster can extend the log. */
export class LogSealer {
  readonly #key: Uint8Array;

  constructor(clusterKey: ClusterKey) {
    this.#key = clusterKey.subkey('command log mac v1');
  }

  rowMac(hash: string): string {
    return createHmac('sha256', this.#key).update('row\0' + hash).digest('hex');
  }

  headMac(nic: string, index: number, hash: string): string {
    return createHmac('sha256', this.#key).update(JSON.stringify(['head', nic, index, hash])).digest('hex');
  }

  verifyHead(nic: string, head: SealedHead): boolean {
    return sameHex(this.headMac(nic, head.index, head.hash), head.mac);
  }

  /** The next entry after `prev` (null: the log is empty), hashed and sealed. */
  seal(prev: { index: number; hash: string } | null, fields: Omit<ChainedFields, 'index'>): SealedEntry {
    const index = prev ? prev.index + 1 : 1;
    const prevHash = prev ? prev.hash : GENESIS_HASH;
    const chained: ChainedFields = { ...fields, index };
    const hash = entryHash(prevHash, chained);
    return { ...chained, prevHash, hash, mac: this.rowMac(hash) };
  }
}

function sameHex(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string' || a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Verify rows (sorted by index) and the head; report the first index that cannot be trusted. */
export function auditChain(nic: string, rows: SealedEntry[], head: SealedHead | null, sealer: LogSealer): AuditReport {
  const report = (firstBadIndex: number | null, problem: string | null): AuditReport => ({
    nic,
    ok: problem === null,
    entries: rows.length,
    head: head ? { index: head.index, hash: head.hash } : null,
    firstBadIndex,
    problem,
  });

  let prevHash = GENESIS_HASH;
  const kinds = new Map<number, string>();
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const expected = i + 1;
    if (r.index !== expected) {
      return report(expected, `entry ${expected} is missing (next row has index ${r.index})`);
    }
    if (r.nic !== nic) return report(expected, `entry ${expected} names NIC ${r.nic}`);
    if (!sameHex(r.prevHash, prevHash)) {
      return report(expected, `entry ${expected} does not link to entry ${expected - 1} (prev hash differs)`);
    }
    if (!sameHex(entryHash(prevHash, r), r.hash)) {
      return report(expected, `entry ${expected} was altered (its content does not match its hash)`);
    }
    if (!sameHex(sealer.rowMac(r.hash), r.mac)) {
      return report(expected, `entry ${expected} is not sealed by this cluster's key (rewritten outside a station)`);
    }
    if (r.kind === 'outcome' ? r.ref === null || kinds.get(r.ref) !== 'command' : r.kind !== 'command' || r.ref !== null) {
      return report(expected, `entry ${expected} refers to entry ${r.ref}, which is not an earlier command`);
    }
    kinds.set(r.index, r.kind);
    prevHash = r.hash;
  }

  const n = rows.length;
  if (head === null) {
    return n === 0 ? report(null, null) : report(1, `the log has ${n} entries but no head checkpoint`);
  }
  if (!sealer.verifyHead(nic, head)) {
    return report(Math.max(1, Math.min(head.index, n)), 'the head checkpoint was altered (its MAC does not verify)');
  }
  if (head.index > n) {
    return report(n + 1, `entries ${n + 1}..${head.index} were deleted (the head checkpoint is at ${head.index})`);
  }
  if (head.index < n) {
    return report(head.index + 1, `entries ${head.index + 1}..${n} were added without a head checkpoint`);
  }
  if (n > 0 && !sameHex(head.hash, prevHash)) {
    return report(n, `the chain does not end at the checkpointed head hash`);
  }
  return report(null, null);
}
