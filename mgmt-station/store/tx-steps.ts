/**
 * Transaction steps shared by the store methods (sql-store.ts): generator fragments used with
 * `yield*` inside a transaction body, so they run under the same lock as the write they guard.
 */
import { UsageError } from '../../common/errors.js';
import { leaseFromRow } from './row-codec.js';
import { sql, type Tx } from './sql-driver.js';
import type { Fence, Lease, SaState } from './store.js';

/** Lock the NIC's lease row and check the caller still holds it at this epoch (DESIGN §5 fencing). */
export function* fenced(nic: string, fence: Fence, forUpdate: string, what: string): Tx<Lease> {
  const [row] = yield sql(`SELECT nic, owner, epoch, expires_at FROM leases WHERE nic = ?${forUpdate}`, nic);
  const lease = row ? leaseFromRow(row) : null;
  if (!lease || lease.owner !== fence.station || lease.epoch !== fence.epoch) {
    const holder = !lease || lease.epoch === 0
      ? 'nobody has taken a lease on it; acquire one first'
      : lease.owner === null
        ? `its lease was released at epoch ${lease.epoch}; acquire it again`
        : `${lease.owner} holds it at epoch ${lease.epoch}; stop serving this NIC`;
    throw new UsageError('E_FENCED', `station ${fence.station} (epoch ${fence.epoch}) may not ${what} for ${nic}: ${holder}`);
  }
  return lease;
}

export function* requireNic(nic: string): Tx<void> {
  const rows = yield sql('SELECT id FROM nics WHERE id = ?', nic);
  if (rows.length === 0) throw new UsageError('E_NOT_FOUND', `no NIC ${nic} is enrolled; enrol it first`);
}

export function* saState(nic: string, generation: number): Tx<SaState> {
  const [r] = yield sql('SELECT state FROM sas WHERE nic = ? AND generation = ?', nic, generation);
  if (!r) throw new UsageError('E_NOT_FOUND', `${nic} has no SA generation ${generation}`);
  return String(r.state) as SaState;
}

export function illegal(msg: string): UsageError {
  return new UsageError('E_ILLEGAL_TRANSITION', msg);
}

export function isGenerator<T>(x: T | Tx<T>): x is Tx<T> {
  return typeof (x as Tx<T>)?.next === 'function' && typeof (x as Tx<T>)[Symbol.iterator] === 'function';
}
