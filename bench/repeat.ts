/**
 * The same bench run several times in a row, for the targets whose figures move from run to run on a shared
 * machine (docs/PERFORMANCE.md: the secure/clear ratio and the throughput against ipmi_sim). One run says
 * whether a target passed once; this says how often it passes, and over what range its figure moves.
 *
 *   node dist/bench/repeat.js RUNS [bench options]      e.g. node dist/bench/repeat.js 5 --only net,ipmi
 *
 * Each run is a separate `node dist/bench/bench.js [bench options]` (its own processes, watchdog and clean-up),
 * one after another, never two at once. JSON on stdout: per target, every run's value, min / median / max, and
 * how many runs passed, failed or did not measure it; each run's progress lines go to stderr. A run that fails
 * (exit code, no JSON) is counted as such and the next one still runs. Exit code 0 when every run produced
 * its JSON, 1 otherwise, 2 for bad usage.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { percentile, round } from './stats.js';
import type { TargetCheck } from './report.js';

const BENCH = resolve(import.meta.dirname, 'bench.js');
const MAX_RUNS = 20;

export interface TargetSummary {
  id: string;
  what: string;
  target: string;
  unit: string;
  /** One entry per run, in order (null: that run did not measure it). */
  values: (number | null)[];
  min: number | null;
  median: number | null;
  max: number | null;
  passed: number;
  failed: number;
  notMeasured: number;
}

export interface RepeatSummary {
  bench: 'lifeline-repeat';
  date: string;
  command: string;
  runs: number;
  /** Runs that ended without their JSON (with why). */
  failedRuns: { run: number; error: string }[];
  targets: TargetSummary[];
  durationSeconds: number;
}

/** Folds the runs' target lists (each as bench.js printed it) into one summary per target id. */
export function summarize(runs: (TargetCheck[] | null)[]): TargetSummary[] {
  const byId = new Map<string, TargetSummary>();
  runs.forEach((targets, i) => {
    for (const t of targets ?? []) {
      let s = byId.get(t.id);
      if (!s) {
        s = { id: t.id, what: t.what, target: t.target, unit: t.unit, values: new Array(runs.length).fill(null), min: null, median: null, max: null, passed: 0, failed: 0, notMeasured: 0 };
        byId.set(t.id, s);
      }
      s.values[i] = t.value;
    }
  });
  for (const s of byId.values()) {
    runs.forEach((targets) => {
      const t = targets?.find((x) => x.id === s.id);
      if (!t || t.pass === null) s.notMeasured++;
      else if (t.pass) s.passed++;
      else s.failed++;
    });
    const measured = s.values.filter((v): v is number => v !== null);
    s.min = measured.length ? Math.min(...measured) : null;
    s.max = measured.length ? Math.max(...measured) : null;
    s.median = measured.length ? percentile(measured, 50) : null;
  }
  return [...byId.values()];
}

let current: ChildProcess | null = null;

/** One bench run; resolves with its targets, or with the reason it produced none. */
function runOnce(args: string[], run: number): Promise<{ targets: TargetCheck[] } | { error: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BENCH, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    let partial = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const l of lines) process.stderr.write(`[run ${run}] ${l}\n`);
    });
    child.once('error', (e) => done({ error: e.message }));
    child.once('exit', (code, sig) => {
      current = null;
      if (code !== 0) return done({ error: `bench exited with ${code ?? sig}` });
      try {
        const j = JSON.parse(out) as { targets?: TargetCheck[] };
        if (!Array.isArray(j.targets)) return done({ error: 'bench printed JSON without targets' });
        done({ targets: j.targets });
      } catch {
        done({ error: 'bench did not print JSON' });
      }
    });
  });
}

async function main(argv: string[]): Promise<number> {
  const runs = Number(argv[0]);
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) {
    process.stderr.write(`repeat: the first argument is the number of runs, 1..${MAX_RUNS}, got ${JSON.stringify(argv[0] ?? '')}\n` +
      'usage: node dist/bench/repeat.js RUNS [bench options, e.g. --only net,ipmi]\n');
    return 2;
  }
  const args = argv.slice(1);
  // The bench run in progress stops its own children on SIGTERM (bench.ts): pass the signal on, wait for it.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      if (!current) process.exit(130);
      current.once('exit', () => process.exit(130));
      current.kill('SIGTERM');
    });
  }
  const t0 = performance.now();
  const results: (TargetCheck[] | null)[] = [];
  const failedRuns: RepeatSummary['failedRuns'] = [];
  for (let i = 1; i <= runs; i++) {
    process.stderr.write(`[repeat] run ${i} of ${runs}: node dist/bench/bench.js ${args.join(' ')}\n`);
    const r = await runOnce(args, i);
    if ('error' in r) {
      failedRuns.push({ run: i, error: r.error });
      results.push(null);
    } else {
      results.push(r.targets);
    }
  }
  const summary: RepeatSummary = {
    bench: 'lifeline-repeat',
    date: new Date().toISOString(),
    command: `node dist/bench/repeat.js ${argv.join(' ')}`,
    runs,
    failedRuns,
    targets: summarize(results),
    durationSeconds: round((performance.now() - t0) / 1000),
  };
  process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
  if (process.stderr.isTTY) {
    for (const t of summary.targets) {
      if (t.passed + t.failed === 0) continue;
      process.stderr.write(`  ${t.what.padEnd(60)} passed ${t.passed} of ${t.passed + t.failed}  (${t.target}; ${t.min} .. ${t.max}, median ${t.median} ${t.unit})\n`);
    }
  }
  return failedRuns.length === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
