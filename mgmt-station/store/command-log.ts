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
 * JSON.stringify is deterministic. Entries without a sync epoch keep the version-1 form byte for byte, so
 * logs written before sync epochs existed still verify; an entry with one is 'lifeline-cmdlog-v2': the
 * version-1 fields, then the epoch. The tag differs, so no entry of one form hashes as one of the other.
 */
import { createHash, createHmac } from 'node:crypto';
import { UsageError } from '../../common/errors.js';
import type { ClusterKey } from './cluster-key.js';
import { wireIdentity, type AuditReport, type CommandLogEntry, type CommandRecord, type CommandRef, type Fence } from './store.js';

export const GENESIS_HASH = '0'.repeat(64);

/** The fields a row's hash covers. */
export type ChainedFields = Omit<CommandLogEntry, 'prevHash' | 'hash'>;

export function canonicalEntry(e: ChainedFields): string {
  // `== null`: a row read from a version-1 caller may lack the field altogether; it hashes as version 1.
  return e.syncEpoch == null
    ? JSON.stringify(['lifeline-cmdlog-v1', e.nic, e.index, e.kind, e.ref, e.time, e.station, e.epoch, e.command, e.rmcpSeq, e.asfTag, e.outcome])
    : JSON.stringify(['lifeline-cmdlog-v2', e.nic, e.index, e.kind, e.ref, e.time, e.station, e.epoch, e.command, e.rmcpSeq, e.asfTag, e.outcome, e.syncEpoch]);
}

export function entryHash(prevHash: string, e: ChainedFields): string {
  return hashOf(prevHash, canonicalEntry(e));
}

function hashOf(prevHash: string, canonical: string): string {
  return createHash('sha256').update(Buffer.from(prevHash, 'hex')).update(canonical, 'utf8').digest('hex');
}

/** A log row as stored, with its MAC. */
export interface SealedEntry extends CommandLogEntry {
  mac: string;
}

/** The entry as the Store interface gives it: the row without its MAC. */
export function unsealed(r: SealedEntry): CommandLogEntry {
  // Field by field (what `{ mac, ...entry }` gives, in its order): a rest pattern copies generically.
  return {
    kind: r.kind, ref: r.ref, command: r.command, rmcpSeq: r.rmcpSeq, asfTag: r.asfTag, outcome: r.outcome, time: r.time,
    syncEpoch: r.syncEpoch, nic: r.nic, station: r.station, epoch: r.epoch, index: r.index, prevHash: r.prevHash, hash: r.hash,
  };
}

export interface SealedHead {
  index: number;
  hash: string;
  mac: string;
}

/** Rows and heads a sealer remembers having verified (by their whole content): an audit re-reads the same rows. */
const VERIFIED_MAX = 8192;

const rowMemo = (prevHash: string, hash: string, mac: string, canonical: string): string => `r\0${prevHash}\0${hash}\0${mac}\0${canonical}`;
const headMemo = (nic: string, h: SealedHead): string => `h\0${nic}\0${h.index}\0${h.hash}\0${h.mac}`;

/** What LogSealer.verifyRow read from a row that verified (and the hash it was chained after). */
type VerifiedRow = Omit<SealedEntry, 'prevHash'> & { prevHash: string };

/** Does row `r`, chained after `prevHash`, hold exactly (===) the values it held when it verified as `v`? */
function sameRow(v: VerifiedRow, prevHash: string, r: SealedEntry): boolean {
  return v.prevHash === prevHash && v.hash === r.hash && v.mac === r.mac && v.nic === r.nic && v.index === r.index &&
    v.kind === r.kind && v.ref === r.ref && v.time === r.time && v.station === r.station && v.epoch === r.epoch &&
    v.command === r.command && v.rmcpSeq === r.rmcpSeq && v.asfTag === r.asfTag && v.outcome === r.outcome &&
    v.syncEpoch === r.syncEpoch;
}

/** MACs under a sub-key of the cluster key: only a station of the cluster can extend the log. */
export class LogSealer {
  readonly #key: Uint8Array;
  /**
   * Content of rows and heads that verified (every field the check reads, so an edited row is a new key and is
   * checked again): a pure function's results, bounded. An audit is O(rows) and runs at every sync.
   */
  readonly #verified = new Set<string>();

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
    const memo = headMemo(nic, head);
    if (this.#verified.has(memo)) return true;
    const ok = sameHex(this.headMac(nic, head.index, head.hash), head.mac);
    if (ok) this.remember(memo);
    return ok;
  }

  /** Does row `r`, chained after `prevHash`, hash to its `hash` and carry this cluster's MAC on it? */
  verifyRow(prevHash: string, r: SealedEntry): 'ok' | 'hash' | 'mac' {
    const seen = this.#verifiedRows.get(r);
    if (seen !== undefined && sameRow(seen, prevHash, r)) return 'ok';
    const canonical = canonicalEntry(r);
    const memo = rowMemo(prevHash, r.hash, r.mac, canonical);
    if (!this.#verified.has(memo)) {
      if (!sameHex(hashOf(prevHash, canonical), r.hash)) return 'hash';
      if (!sameHex(this.rowMac(r.hash), r.mac)) return 'mac';
      this.remember(memo);
    }
    this.#rememberRow(prevHash, r);
    return 'ok';
  }

  /**
   * Rows (the very objects) that verified, with every value the check read from them as it was then: a row read
   * again (an audit at every sync re-reads the whole log) is 'ok' without building its canonical form again if
   * all those values are still the same primitives. A row edited in place (a raw edit of the store) differs in
   * some value and is checked again; a copy (a restored snapshot) is another object, found by #verified.
   */
  readonly #verifiedRows = new WeakMap<SealedEntry, VerifiedRow>();

  #rememberRow(prevHash: string, r: SealedEntry): void {
    const v: VerifiedRow = {
      prevHash, nic: r.nic, index: r.index, kind: r.kind, ref: r.ref, time: r.time, station: r.station, epoch: r.epoch,
      command: r.command, rmcpSeq: r.rmcpSeq, asfTag: r.asfTag, outcome: r.outcome, syncEpoch: r.syncEpoch, hash: r.hash, mac: r.mac,
    };
    // Only primitives compare by value: a row holding an object (only a raw edit could put one there) is never cached.
    for (const k in v) {
      const x = (v as unknown as Record<string, unknown>)[k];
      if (typeof x === 'object' && x !== null) return;
    }
    this.#verifiedRows.set(r, v);
  }

  private remember(memo: string): void {
    if (this.#verified.size >= VERIFIED_MAX) this.#verified.clear();
    this.#verified.add(memo);
  }

  /** The next entry after `prev` (null: the log is empty), hashed and sealed. */
  seal(prev: { index: number; hash: string } | null, fields: Omit<ChainedFields, 'index'>): SealedEntry {
    const index = prev ? prev.index + 1 : 1;
    const prevHash = prev ? prev.hash : GENESIS_HASH;
    // The row's fields one by one, in the order (and with the values) `{ ...fields, index, prevHash, hash, mac }`
    // would give for a caller's EntryFields: an append builds one object instead of two spreads.
    const row: SealedEntry = {
      kind: fields.kind, ref: fields.ref, command: fields.command, rmcpSeq: fields.rmcpSeq, asfTag: fields.asfTag, outcome: fields.outcome,
      time: fields.time, syncEpoch: fields.syncEpoch, nic: fields.nic, station: fields.station, epoch: fields.epoch, index,
      prevHash, hash: '', mac: '',
    };
    const canonical = canonicalEntry(row);
    row.hash = hashOf(prevHash, canonical);
    row.mac = this.rowMac(row.hash);
    this.remember(rowMemo(prevHash, row.hash, row.mac, canonical)); // sealed here: it verifies
    this.#rememberRow(prevHash, row);
    return row;
  }

  /** The MAC of a new head checkpoint (and the head remembered as verified). */
  sealHead(nic: string, index: number, hash: string): SealedHead {
    const head = { index, hash, mac: this.headMac(nic, index, hash) };
    this.remember(headMemo(nic, head));
    return head;
  }
}

/**
 * What a caller decides about a new log entry; the NIC, index, station and epoch come from the append itself.
 * rmcpSeq = asfTag = -1: let the store assign the wire identity from the index (wireIdentity()).
 */
export type EntryFields = Omit<ChainedFields, 'nic' | 'index' | 'station' | 'epoch'>;

/**
 * The next entry of `nic`'s log, sealed, and its new head: the part of an append that both backends share.
 * `head` is the stored head checkpoint, `tailIndex` the highest index among the stored rows (null: no rows).
 *
 * Chain from the sealed head, not from the last row: rows deleted behind our back stay visible as a gap to
 * the audit instead of being papered over by the next entry. A head that does not verify, or rows beyond it,
 * mean tampering: refuse to log (and so to acknowledge) until audited (E_STORE).
 */
export function nextEntry(
  sealer: LogSealer, nic: string, head: SealedHead | null, tailIndex: number | null, fence: Fence, fields: EntryFields,
): { entry: SealedEntry; head: SealedHead } {
  if ((head && !sealer.verifyHead(nic, head)) || (tailIndex !== null && (!head || tailIndex > head.index))) {
    throw new UsageError('E_STORE', `the command log of ${nic} was altered outside a station; run \`mgmt-station audit ${nic}\` and restore the store`);
  }
  const wire = fields.rmcpSeq < 0 ? wireIdentity((head?.index ?? 0) + 1) : fields;
  const entry = sealer.seal(head, {
    kind: fields.kind, ref: fields.ref, command: fields.command, rmcpSeq: wire.rmcpSeq, asfTag: wire.asfTag, outcome: fields.outcome,
    time: fields.time, syncEpoch: fields.syncEpoch, nic, station: fence.station, epoch: fence.epoch,
  });
  return { entry, head: sealer.sealHead(nic, entry.index, entry.hash) };
}

/**
 * The log folded by `ref` into one record per command (listCommands): its latest outcome, and the latest sync
 * epoch it was sent under (the command entry's, or a later 'sent' outcome entry's that carries one: a re-send).
 * Outcome entries whose `ref` names no earlier command are skipped (the audit reports them).
 */
export function foldCommands(nic: string, entries: readonly CommandLogEntry[]): CommandRecord[] {
  const byIndex = new Map<number, CommandRecord>();
  for (const e of entries) {
    if (e.kind === 'command') {
      byIndex.set(e.index, {
        nic, index: e.index, time: e.time, station: e.station, epoch: e.epoch, command: e.command,
        rmcpSeq: e.rmcpSeq, asfTag: e.asfTag, outcome: e.outcome, syncEpoch: e.syncEpoch ?? null, firstSyncEpoch: e.syncEpoch ?? null, hash: e.hash,
        outcomeTime: e.time, outcomeStation: e.station, outcomeEpoch: e.epoch,
      });
    } else {
      const c = e.ref === null ? undefined : byIndex.get(e.ref);
      if (!c) continue;
      // 'acked' is final: the NIC ran the command and a caller may have been told so; a later entry of a process
      // that lost track of it (a stale 'unknown') does not undo that.
      if (c.outcome === 'acked') continue;
      c.outcome = e.outcome;
      c.outcomeTime = e.time;
      c.outcomeStation = e.station;
      c.outcomeEpoch = e.epoch;
      if (e.outcome === 'sent' && e.syncEpoch != null) c.syncEpoch = e.syncEpoch;
    }
  }
  return [...byIndex.values()];
}

/**
 * May command `index` get a new outcome entry by compare-and-set (Store.updateOutcomeIf)? Only while it is still
 * 'sent' and was last sent under `expectEpoch`: two processes that both found it not executed cannot both send it.
 */
export function resendAllowed(nic: string, entries: readonly CommandLogEntry[], ref: CommandRef, expectEpoch: number): boolean {
  const index = refIndex(ref);
  const c = foldCommands(nic, entries.filter((e) => e.index === index || e.ref === index)).find((x) => x.index === index);
  return c !== undefined && c.outcome === 'sent' && c.syncEpoch === expectEpoch && (typeof ref === 'number' || c.hash === ref.hash);
}

export function refIndex(ref: CommandRef): number {
  return typeof ref === 'number' ? ref : ref.index;
}

/** Does the command entry with hash `hash` satisfy `ref` (E_STORE if it names another command)? */
export function checkRef(nic: string, ref: CommandRef, hash: string): void {
  if (typeof ref !== 'number' && ref.hash !== hash) {
    throw new UsageError('E_STORE', `${nic}'s command log holds another command at index ${ref.index} than the one named: the store went back (restored from a backup?) after it was logged; nothing was recorded`);
  }
}

/** Equal strings (hex digests, MACs), compared in time that depends only on their length. */
export function sameHex(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string' || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
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
    const v = sealer.verifyRow(prevHash, r);
    if (v === 'hash') return report(expected, `entry ${expected} was altered (its content does not match its hash)`);
    if (v === 'mac') return report(expected, `entry ${expected} is not sealed by this cluster's key (rewritten outside a station)`);
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
