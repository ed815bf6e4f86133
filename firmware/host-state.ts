/**
 * The emulated host's power/OS state machine (seed Fig. 6; DESIGN §4), as one transition table.
 *
 * States: `off` (soft-off, S5; the NIC stays on auxiliary power), `pre-boot` (firmware/POST, the seed's
 * "cold boot"), `up` (OS running; only here does the host IKE agent exist), `hung` (OS unresponsive),
 * `suspend` (S3). Events come from ASF commands (reset, power-up, power-down, power-cycle; DSP0136 §3.2.4.1-4),
 * from the lab's control API (hang, suspend, wake, crash, power-loss) and from the boot timer (boot-complete).
 *
 * Like h11, an event that is illegal in the current state is a UsageError and leaves the state unchanged.
 * ASF commands are never illegal (the NIC must accept them in every state): where ASF gives them no effect
 * (power-up while on, reset while off) the transition is a no-op that the table says explicitly.
 */
import { UsageError } from '../common/errors.js';
import { S0_WORKING, S3, S5_SOFT_OFF, G3_MECHANICAL_OFF } from '../wire/asf.js';

export type HostState = 'off' | 'pre-boot' | 'up' | 'hung' | 'suspend';
export const HOST_STATES: readonly HostState[] = ['off', 'pre-boot', 'up', 'hung', 'suspend'];

export type AsfCommandEvent = 'reset' | 'power-up' | 'power-down' | 'power-cycle';
export type LabEvent = 'hang' | 'suspend' | 'wake' | 'crash' | 'power-loss' | 'boot-complete';
export type HostEvent = AsfCommandEvent | LabEvent;
export const HOST_EVENTS: readonly HostEvent[] = [
  'reset', 'power-up', 'power-down', 'power-cycle', 'hang', 'suspend', 'wake', 'crash', 'power-loss', 'boot-complete',
];

/** `boot: true` starts the boot timer (pre-boot -> up after the boot delay). */
interface Transition { to: HostState; boot?: boolean }

const ALL: HostState[] = [...HOST_STATES];
const on = (s: HostState) => s !== 'off';

function row(event: HostEvent, f: (s: HostState) => Transition | null): [HostEvent, Partial<Record<HostState, Transition>>] {
  const r: Partial<Record<HostState, Transition>> = {};
  for (const s of ALL) {
    const t = f(s);
    if (t) r[s] = t;
  }
  return [event, r];
}

/** The table: TRANSITIONS[event][state] = transition, absent = illegal. */
export const TRANSITIONS: ReadonlyMap<HostEvent, Partial<Record<HostState, Transition>>> = new Map([
  // ASF Reset (0x10): a warm reset of a running system; no effect on a system that is off.
  row('reset', (s) => (on(s) ? { to: 'pre-boot', boot: true } : { to: 'off' })),
  // ASF Power-Up (0x11): from off, power on and boot; already on = no-op.
  row('power-up', (s) => (s === 'off' ? { to: 'pre-boot', boot: true } : { to: s })),
  // ASF Unconditional Power-Down (0x12): always ends in soft-off.
  row('power-down', () => ({ to: 'off' })),
  // ASF Power Cycle Reset (0x13): power down, then up; from off it simply powers up.
  row('power-cycle', () => ({ to: 'pre-boot', boot: true })),
  row('hang', (s) => (s === 'up' ? { to: 'hung' } : null)),
  row('suspend', (s) => (s === 'up' ? { to: 'suspend' } : null)),
  // Wake resumes a suspended OS; on a hung OS it stands for the operator's NMI/debugger "continue".
  row('wake', (s) => (s === 'suspend' || s === 'hung' ? { to: 'up' } : null)),
  // A crash (kernel panic) reboots: the host goes through pre-boot again.
  row('crash', (s) => (s === 'up' || s === 'hung' ? { to: 'pre-boot', boot: true } : null)),
  // Mains power lost: host and NIC lose power (G3); the emulator models the NIC side separately.
  row('power-loss', () => ({ to: 'off' })),
  row('boot-complete', (s) => (s === 'pre-boot' ? { to: 'up' } : null)),
]);

export interface TransitionResult { from: HostState; to: HostState; event: HostEvent; startBootTimer: boolean }

/** Apply one event; throws UsageError('E_ILLEGAL_TRANSITION') and changes nothing if the table has no entry. */
export function transition(state: HostState, event: HostEvent): TransitionResult {
  const r = TRANSITIONS.get(event);
  if (!r) throw new UsageError('E_ILLEGAL_TRANSITION', `unknown host event '${event}'; use one of ${HOST_EVENTS.join(', ')}`);
  const t = r[state];
  if (!t) {
    const legal = ALL.filter((s) => r[s]).join(', ');
    throw new UsageError('E_ILLEGAL_TRANSITION', `host event '${event}' is not possible in state '${state}' (only in: ${legal})`);
  }
  return { from: state, to: t.to, event, startBootTimer: t.boot === true };
}

export function isHostEvent(s: string): s is HostEvent {
  return (HOST_EVENTS as readonly string[]).includes(s);
}

/**
 * ACPI/ASF system state the NIC reports in a System State Response (DSP0136 §3.2.4.5).
 * A hung OS is still S0 (the machine is working, only software is stuck); pre-boot is S0 too.
 * `nicPowered = false` cannot answer at all; it is here for completeness of the mapping (G3).
 */
export function systemStateCode(state: HostState, nicPowered = true): number {
  if (!nicPowered) return G3_MECHANICAL_OFF;
  switch (state) {
    case 'up':
    case 'hung':
    case 'pre-boot':
      return S0_WORKING;
    case 'suspend':
      return S3;
    case 'off':
      return S5_SOFT_OFF;
  }
}

/** Does the host IKE agent exist in this state? Only while the OS is up (DESIGN §2.4). */
export function hostAgentAlive(state: HostState): boolean {
  return state === 'up';
}
