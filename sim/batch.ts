/**
 * Runs of the simulator in bulk, in one process: a range of seeds, or the enumeration (enumerate.ts). The CLI
 * (cli.ts) forks one of these per core and hands out chunks of seeds; each chunk comes back as a Tally, which adds
 * up. Also usable in-process (the test slice).
 */
import type { MutationName } from '../common/mutation.js';
import { enumerate, type EnumerationSummary } from './enumerate.js';
import { World } from './world.js';

/** What a number of runs add up to. */
export interface Tally {
  seeds: number;
  /** Runs that broke an invariant: the seed (or case) and the violation. */
  violations: { run: string; violation: string }[];
  counts: Record<string, number>;
  steps: number;
  virtualMs: number;
  /** CPU of the runs (this process: user + system), and its distribution per seed in 1-ms buckets. */
  cpuMs: number;
  cpuHistogram: number[];
}

export function emptyTally(): Tally {
  return { seeds: 0, violations: [], counts: {}, steps: 0, virtualMs: 0, cpuMs: 0, cpuHistogram: [] };
}

export function addTally(a: Tally, b: Tally): Tally {
  a.seeds += b.seeds;
  a.violations.push(...b.violations);
  for (const [k, v] of Object.entries(b.counts)) a.counts[k] = (a.counts[k] ?? 0) + v;
  a.steps += b.steps;
  a.virtualMs += b.virtualMs;
  a.cpuMs += b.cpuMs;
  b.cpuHistogram.forEach((n, i) => (a.cpuHistogram[i] = (a.cpuHistogram[i] ?? 0) + (n ?? 0)));
  return a;
}

/** The CPU ms per seed below which `q` of the seeds fall (from the histogram: to the ms). */
export function cpuQuantile(t: Tally, q: number): number {
  const want = q * t.seeds;
  let seen = 0;
  for (let i = 0; i < t.cpuHistogram.length; i++) {
    seen += t.cpuHistogram[i] ?? 0;
    if (seen >= want) return i + 1;
  }
  return t.cpuHistogram.length;
}

export interface SeedOptions {
  mutations?: MutationName[];
  /** Stop at the first violation (a mutation search). */
  stopAtFirst?: boolean;
  /** The stations' cluster sharing (default first-come, as the pinned seeds). */
  sharing?: 'first-come' | 'balanced';
}

/** Seeds `from`..`to`, traceless (a failing seed is replayed with its trace by whoever reports it). */
export async function runSeeds(from: number, to: number, o: SeedOptions = {}): Promise<Tally> {
  const t = emptyTally();
  for (let seed = from; seed <= to; seed++) {
    const c0 = process.cpuUsage();
    const r = await new World({ seed, trace: false, mutations: o.mutations, times: o.sharing ? { sharing: o.sharing } : undefined }).run();
    const c = process.cpuUsage(c0);
    const ms = (c.user + c.system) / 1000;
    t.seeds++;
    t.cpuMs += ms;
    const b = Math.min(Math.floor(ms), 999);
    t.cpuHistogram[b] = (t.cpuHistogram[b] ?? 0) + 1;
    t.steps += r.steps;
    t.virtualMs += r.virtualMs;
    for (const [k, v] of Object.entries(r.counts)) t.counts[k] = (t.counts[k] ?? 0) + v;
    if (!r.ok) {
      t.violations.push({ run: `seed ${seed}`, violation: r.violation! });
      if (o.stopAtFirst) break;
    }
  }
  for (let i = 0; i < t.cpuHistogram.length; i++) t.cpuHistogram[i] ??= 0;
  return t;
}

export type BatchRequest =
  | { kind: 'seeds'; from: number; to: number; mutations: MutationName[]; stopAtFirst: boolean; sharing?: 'first-come' | 'balanced' }
  | { kind: 'enumerate'; mutations: MutationName[]; stopAtFirst: boolean };

export type BatchReply =
  | { kind: 'seeds'; tally: Tally }
  | { kind: 'enumerate'; summary: EnumerationSummary }
  | { kind: 'error'; message: string };

/** A forked worker: answers each request from the CLI until told to stop (the channel closes). */
async function serve(): Promise<void> {
  process.on('message', (m: BatchRequest) => {
    void (async (): Promise<BatchReply> => {
      try {
        if (m.kind === 'seeds') return { kind: 'seeds', tally: await runSeeds(m.from, m.to, m) };
        const summary = await enumerate(undefined, (_, r) => !(m.stopAtFirst && !r.ok), m.mutations);
        return { kind: 'enumerate', summary };
      } catch (e) {
        return { kind: 'error', message: (e as Error).stack ?? String(e) };
      }
    })().then((reply) => process.send!(reply));
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.send && process.argv[2] === '--worker') void serve();
