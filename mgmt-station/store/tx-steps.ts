/**
 * Transaction steps shared by the store methods (sql-store.ts): generator fragments used with
 * `yield*` inside a transaction body, so they run under the same lock as the write they guard.
 */
import { leaseFromRow } from './row-codec.js';
import { sql, type Tx } from './sql-driver.js';
import { checkFence, noSa, notEnrolled } from './store-errors.js';
import { RETIRED_SAS_KEPT, type Fence, type Lease, type SaState } from './store.js';

/** Lock the NIC's lease row and check the caller still holds it at this epoch (DESIGN §5 fencing). */
export function* fenced(nic: string, fence: Fence, forUpdate: string, what: string): Tx<Lease> {
  const [row] = yield sql(`SELECT nic, owner, epoch, expires_at FROM leases WHERE nic = ?${forUpdate}`, nic);
  return checkFence(nic, fence, row ? leaseFromRow(row) : null, what);
}

export function* requireNic(nic: string): Tx<void> {
  const rows = yield sql('SELECT id FROM nics WHERE id = ?', nic);
  if (rows.length === 0) throw notEnrolled(nic);
}

export function* saState(nic: string, generation: number): Tx<SaState> {
  const [r] = yield sql('SELECT state FROM sas WHERE nic = ? AND generation = ?', nic, generation);
  if (!r) throw noSa(nic, generation);
  return String(r.state) as SaState;
}

/** Delete the NIC's retired SAs beyond the newest RETIRED_SAS_KEPT (store.ts), their sequence checkpoints first. */
export function* pruneRetired(nic: string): Tx<void> {
  const rows = yield sql(`SELECT generation FROM sas WHERE nic = ? AND state = 'retired' ORDER BY generation DESC`, nic);
  if (rows.length <= RETIRED_SAS_KEPT) return;
  const upTo = Number(rows[RETIRED_SAS_KEPT].generation);
  yield sql(`DELETE FROM seq_checkpoints WHERE nic = ? AND generation IN (SELECT generation FROM sas WHERE nic = ? AND state = 'retired' AND generation <= ?)`, nic, nic, upTo);
  yield sql(`DELETE FROM sas WHERE nic = ? AND state = 'retired' AND generation <= ?`, nic, upTo);
}

export function isGenerator<T>(x: T | Tx<T>): x is Tx<T> {
  return typeof (x as Tx<T>)?.next === 'function' && typeof (x as Tx<T>)[Symbol.iterator] === 'function';
}
