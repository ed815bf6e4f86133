/**
 * The finite part of the proof (issue 14): instead of sampling schedules, enumerate them.
 *
 *  - a command: its station killed (restarted at once, or after the other station took the NIC over), paused past
 *    its lease, its NIC's power lost, both the station killed and the NIC's power lost, or the NIC's cable pulled,
 *    after every step of the system from the moment the caller sends it until the caller hears back;
 *  - an SA refresh (IKE and the two-phase commit): the same faults and a host crash after every step of it;
 *  - a restore: a busy stretch (commands, a refresh, more commands), then the store, or the NIC's EEPROM, put back
 *    to the backup taken after any one of its steps; an attacker sends every datagram it captured again (at once,
 *    and after the NIC has rebooted), and the stations send more commands.
 *
 * Every case is a scripted run of the world (world.ts `scenario`) with one NIC, two stations and a store whose
 * calls are two steps (commit, then reply), so a crash also falls between a commit and its reply. Each ends as any
 * run does: quiesce, then the invariants (no nonce twice, no replay accepted, no command twice, every caller told
 * the truth, every NIC answering its owner). A case is named `scenario:fault:step` and replays alone.
 */
import type { CommandKind } from '../mgmt-station/core/session.js';
import type { MutationName } from '../common/mutation.js';
import { World, type SimResult } from './world.js';

export type Fault =
  | 'crash-station' | 'crash-failover' | 'pause-station' | 'nic-power' | 'crash-and-power' | 'cable' | 'host-crash'
  | 'restore-store' | 'restore-eeprom' | 'tamper-delete' | 'tamper-edit';

interface Window {
  /** Start counting steps (the window opens). */
  open(): void;
  /** The window closes (what it was about has finished); `size`: a window of something other than steps. */
  close(size?: number): void;
}

interface Scenario {
  name: string;
  faults: Fault[];
  body(w: World, win: Window): Promise<void>;
}

const ENUM_SEED = 1;
const NIC = 'nic-1';

function station(w: World, name: string) {
  const s = w.stations.get(name);
  if (!s) throw new Error(`no station ${name}`);
  return s;
}

async function send(w: World, via: string, kind: CommandKind): Promise<void> {
  await w.drive(w.command(station(w, via), NIC, kind), 15_000);
}

const SCENARIOS: Scenario[] = [
  {
    name: 'command',
    faults: ['crash-station', 'crash-failover', 'pause-station', 'nic-power', 'crash-and-power', 'cable'],
    async body(w, win) {
      await w.runFor(3000); // A owns the NIC and has synced with it
      win.open();
      await send(w, 'A', 'power-cycle');
      win.close();
      await send(w, 'A', 'reset'); // and the next one still works
    },
  },
  {
    name: 'commit',
    faults: ['crash-station', 'crash-failover', 'pause-station', 'nic-power', 'cable', 'host-crash'],
    async body(w, win) {
      await w.runFor(3000);
      const a = station(w, 'A');
      const nic = await w.store.getNic(NIC);
      win.open();
      await w.drive(a.core.keyExchangeExclusive(nic!, 'refresh', 10_000), 15_000);
      win.close();
      await send(w, 'A', 'power-cycle');
    },
  },
  {
    name: 'busy',
    faults: ['restore-store', 'restore-eeprom'],
    async body(w, win) {
      await w.runFor(3000);
      win.open();
      await send(w, 'A', 'power-cycle');
      await send(w, 'A', 'reset');
      const nic = await w.store.getNic(NIC);
      await w.drive(station(w, 'A').core.keyExchangeExclusive(nic!, 'refresh', 10_000), 15_000);
      await send(w, 'A', 'power-down');
      await send(w, 'A', 'power-up');
      win.close();
    },
  },
  {
    // The busy stretch, then one row of the command log deleted or its outcome changed by someone with write access
    // to the store but not the cluster key (the window: the rows); the station restarts and commands go on.
    name: 'tamper',
    faults: ['tamper-delete', 'tamper-edit'],
    async body(w, win) {
      await SCENARIOS[2].body(w, { open: () => undefined, close: () => undefined });
      win.open();
      win.close(w.store.raw.commandLog.get(NIC)!.length - 1);
    },
  },
];

function world(scenario: (w: World) => Promise<void>, trace: boolean, mutations: MutationName[] = []): World {
  return new World({
    // Small sequence blocks on both sides: a restored backup's marks then fall below numbers already used.
    seed: ENUM_SEED, nics: 1, stations: 2, faults: 'none', twoStepStore: true, trace, mutations, policy: 'esp', checkpointBlock: 8, reserveBlock: 8n,
    times: { refreshIntervalS: 3600 }, scenario,
  });
}

/** Steps in a scenario's window, from a run without faults (and that run's result). */
async function windowSize(s: Scenario, mutations: MutationName[]): Promise<{ size: number; r: SimResult }> {
  let start = -1;
  let size = -1;
  const w = world(async (w) => s.body(w, { open: () => (start = w.sched.steps), close: (n) => (size = n ?? w.sched.steps - start) }), false, mutations);
  const r = await w.run();
  if (r.ok && size <= 0) throw new Error(`enumeration scenario ${s.name} has an empty window`);
  return { size, r };
}

/** One case: the scenario with `fault` after step `k` of its window. */
export async function runCase(scenario: string, fault: Fault, k: number, trace = false, mutations: MutationName[] = []): Promise<SimResult> {
  const s = SCENARIOS.find((x) => x.name === scenario);
  if (!s) throw new Error(`no enumeration scenario '${scenario}' (there are: ${SCENARIOS.map((x) => x.name).join(', ')})`);
  let backup: ReturnType<World['storeBackup']> | null = null;
  let image: { at: number; image: Uint8Array } | null = null;
  return world(async (w) => {
    const nic = w.nics.get(NIC)!;
    const tampering = fault === 'tamper-delete' || fault === 'tamper-edit';
    const win: Window = {
      open: () =>
        !tampering &&
        w.eachStep((n) => {
          if (n < k) return true;
          if (fault === 'crash-station') w.crashStation(station(w, 'A'), 1000);
          else if (fault === 'crash-failover') w.crashStation(station(w, 'A'), 8000); // B takes the NIC over first
          else if (fault === 'cable') w.cablePull(nic, 2000);
          else if (fault === 'pause-station') w.pauseStation(station(w, 'A'), 7000); // past its lease: B takes over
          else if (fault === 'nic-power') w.powerLoss(nic, 1000);
          else if (fault === 'crash-and-power') {
            // Issue 14 case 3: the station dies before it stores the outcome, and the NIC loses power too.
            w.crashStation(station(w, 'A'), 1000);
            w.powerLoss(nic, 500);
          }
          else if (fault === 'host-crash') nic.event('crash');
          else if (fault === 'restore-store') backup = w.storeBackup();
          else image = { at: w.sched.now, image: nic.snapshot() };
          return false;
        }),
      close: () => {
        if (fault === 'tamper-delete') w.deleteLogRow(NIC, k);
        if (fault === 'tamper-edit') w.editLogRow(NIC, k);
      },
    };
    await s.body(w, win);
    if (tampering) {
      // A station process that starts now must refuse the edited log (E_STORE), and nothing runs twice.
      w.crashStation(station(w, 'A'), 1000);
      await w.runFor(1500);
      await send(w, 'A', 'power-cycle');
      await send(w, 'B', 'reset');
    }
    if (fault === 'restore-store' || fault === 'restore-eeprom') {
      // The backup of step k comes back, and the stations go on: commands through the owner and the other.
      if (backup) {
        // The operator's way: the station stopped, the store restored, the station started again.
        w.crashStation(station(w, 'A'), 1000);
        w.restoreStore(backup);
      }
      if (image) w.restoreEeprom(nic, image);
      // An attacker who captured the scenario's traffic sends it all again: nothing of it may be accepted.
      w.replayCapturedTo(nic);
      await w.runFor(500);
      w.replayCapturedTo(nic);
      await send(w, 'A', 'power-cycle');
      await send(w, 'B', 'reset');
      await send(w, 'A', 'power-up');
    }
  }, trace, mutations).run();
}

export interface EnumerationSummary {
  cases: number;
  violations: { name: string; violation: string }[];
  byScenario: Record<string, { window: number; cases: number }>;
  counts: Record<string, number>;
  cpuMs: number;
}

/** Every case of every scenario (or those of `only`). */
export async function enumerate(
  only?: string, onCase?: (name: string, r: SimResult) => boolean | void, mutations: MutationName[] = [],
): Promise<EnumerationSummary> {
  const t0 = process.cpuUsage();
  const out: EnumerationSummary = { cases: 0, violations: [], byScenario: {}, counts: {}, cpuMs: 0 };
  for (const s of SCENARIOS) {
    if (only && s.name !== only) continue;
    const { size, r: base } = await windowSize(s, mutations);
    out.byScenario[s.name] = { window: size, cases: 1 };
    out.cases++;
    if (!base.ok) {
      // Fails without any fault (only ever with a mutation on: the production code passes, see the test).
      out.violations.push({ name: `${s.name}:none:0`, violation: base.violation! });
      if (onCase?.(`${s.name}:none:0`, base) === false) return finish();
      continue;
    }
    for (const fault of s.faults) {
      for (let k = 0; k <= size; k++) {
        const r = await runCase(s.name, fault, k, false, mutations);
        const name = `${s.name}:${fault}:${k}`;
        out.cases++;
        out.byScenario[s.name].cases++;
        for (const [c, v] of Object.entries(r.counts)) out.counts[c] = (out.counts[c] ?? 0) + v;
        if (!r.ok) out.violations.push({ name, violation: r.violation! });
        if (onCase?.(name, r) === false) return finish();
      }
    }
  }
  return finish();

  function finish(): EnumerationSummary {
    const c = process.cpuUsage(t0);
    out.cpuMs = (c.user + c.system) / 1000;
    return out;
  }
}

export const SCENARIO_NAMES = SCENARIOS.map((s) => s.name);
