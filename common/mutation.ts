/**
 * Switches that put a fixed hole back, for the simulator's mutation check (sim/mutations.ts, docs/SIMULATION.md): a
 * simulator that cannot find a bug put back has no teeth. Each names one fix of issue 14 (or a rule of a later part); the code of that fix asks
 * `mutated(name)` and, when it is on, behaves as before the fix. They are off unless the simulator turns them on
 * (never in the emulator or the station processes): production pays one Set lookup on an empty set.
 */
export type MutationName =
  /** Hole 1: the NIC issues no fresh sync epoch (a station whose store went back reuses IVs and command identities). */
  | 'epoch-reuse'
  /** Hole 2: the NIC seals its answers with IV = its own sequence number, which a restored EEPROM sends again. */
  | 'nic-counter-iv'
  /** Hole 2: after a boot the NIC takes packets of the last epoch it issued without a sync (captured packets run). */
  | 'boot-keeps-epoch'
  /** Hole 3: the executed-command record lives in RAM only and is taken as complete after a power loss. */
  | 'exec-record-ram'
  /** Hole 4: a command whose session was lost is reported E_FENCED ("use that station"), not as the store has it. */
  | 'lost-means-fenced'
  /** Hole 5: a session acts on its command log without verifying the chain first. */
  | 'no-log-audit'
  /** Alerts (docs/ALERTS.md): the NIC does not use up an alert IV slot it sealed with, so two alerts share an IV. */
  | 'alert-iv-reuse';

export const MUTATIONS: readonly MutationName[] = ['epoch-reuse', 'nic-counter-iv', 'boot-keeps-epoch', 'exec-record-ram', 'lost-means-fenced', 'no-log-audit', 'alert-iv-reuse'];

const on = new Set<MutationName>();

export function mutated(name: MutationName): boolean {
  return on.size > 0 && on.has(name);
}

/** The simulator's switch: exactly these mutations on (none: production behaviour). */
export function setMutations(names: readonly MutationName[]): void {
  on.clear();
  for (const n of names) on.add(n);
}
