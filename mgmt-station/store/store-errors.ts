/**
 * The coded errors of the store's rules, built in one place so that every backend (sql-store.ts,
 * memory-store.ts) fails the same way with the same advice for the same case.
 */
import { UsageError } from '../../common/errors.js';
import type { Fence, Lease } from './store.js';

/** The caller's lease check (DESIGN §5 fencing): returns the lease it holds, else throws E_FENCED. */
export function checkFence(nic: string, fence: Fence, lease: Lease | null, what: string): Lease {
  if (lease && lease.owner === fence.station && lease.epoch === fence.epoch) return lease;
  const holder = !lease || lease.epoch === 0
    ? 'nobody has taken a lease on it; acquire one first'
    : lease.owner === null
      ? `its lease was released at epoch ${lease.epoch}; acquire it again`
      : `${lease.owner} holds it at epoch ${lease.epoch}; stop serving this NIC`;
  throw new UsageError('E_FENCED', `station ${fence.station} (epoch ${fence.epoch}) may not ${what} for ${nic}: ${holder}`);
}

export function notEnrolled(nic: string): UsageError {
  return new UsageError('E_NOT_FOUND', `no NIC ${nic} is enrolled; enroll it first ('mgmt-station enroll ${nic} --psk-file FILE')`);
}

export function noSa(nic: string, generation: number): UsageError {
  return new UsageError('E_NOT_FOUND', `${nic} has no SA generation ${generation}`);
}

export function noCommand(nic: string, index: number): UsageError {
  return new UsageError('E_NOT_FOUND', `${nic} has no command at log index ${index}`);
}

export function spiInUse(spi: number, nic: string, generation: number): UsageError {
  return new UsageError(
    'E_SPI_IN_USE',
    `inbound SPI 0x${spi.toString(16).padStart(8, '0')} is already used by ${nic} generation ${generation}; choose another SPI`,
  );
}

export function illegal(msg: string): UsageError {
  return new UsageError('E_ILLEGAL_TRANSITION', msg);
}

/** The SA-state rules of putSa, activateSa and setSaState, with their messages. */
export const saRules = {
  retiredReused: (nic: string, gen: number) => illegal(`SA generation ${gen} of ${nic} is retired; a retired SA cannot be reused`),
  secondActive: (nic: string, active: number) =>
    illegal(`${nic} already has active SA generation ${active}; store the new one as pending and use activateSa`),
  retiredActivated: (nic: string, gen: number) => illegal(`SA generation ${gen} of ${nic} is retired and cannot become active again`),
  retiredFinal: (nic: string, gen: number) => illegal(`SA generation ${gen} of ${nic} is retired; that is final`),
  setActive: () => new UsageError('E_USAGE', 'use activateSa to make an SA active'),
};

/** A command log that does not verify, where a decision depends on it: fail closed, nothing written. */
export function logAltered(nic: string, problem: string | null): UsageError {
  return new UsageError('E_STORE', `the command log of ${nic} does not verify (${problem}); nothing was recorded. Run 'mgmt-station audit ${nic}' and restore the store from a backup`);
}
