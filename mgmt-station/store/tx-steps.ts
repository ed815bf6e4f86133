/**
 * Transaction steps shared by the store methods (sql-store.ts): generator fragments used with
 * `yield*` inside a transaction body, so they run under the same lock as the write they guard.
 */
import { leaseFromRow } from './row-codec.js';
import { sql, type Tx } from './sql-driver.js';
import { checkFence, noSa, notEnrolled } from './store-errors.js';
import { RETIRED_SAS_KEPT, type Fence, type Lease, type SaState } from './store.js';
export { liveLease } from './store.js';

/** Lock the NIC's lease row and check the caller still holds it at this epoch (DESIGN §5 fencing). */
export function* fenced(nic: string, fence: Fence, forUpdate: string, what: string): Tx<Lease> {
  const [row] = yield sql(`SELECT nic, owner, epoch, expires_at FROM leases WHERE nic = ?${forUpdate}`, nic);
  return checkFence(nic, fence, row ? leaseFromRow(row) : null, what);
}

/**
 * Every lease with its liveness as the store reports it (Store.Lease.expiresAt): the later of the row's own expiry
 * and its owner's member row's (Store.renewMember). Columns as leaseFromRow reads them; append WHERE / ORDER BY.
 */
export const LIVE_LEASES =
  'SELECT l.nic, l.owner, l.epoch, CASE WHEN m.expires_at > l.expires_at THEN m.expires_at ELSE l.expires_at END AS expires_at ' +
  'FROM leases l LEFT JOIN cluster_members m ON m.station = l.owner';

/** Every member row's expiry by station (a handful of rows: read whole inside a lease transaction). */
export function* memberExpiries(): Tx<Map<string, number>> {
  const rows = yield sql('SELECT station, expires_at FROM cluster_members');
  return new Map(rows.map((r) => [String(r.station), Number(r.expires_at)]));
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
