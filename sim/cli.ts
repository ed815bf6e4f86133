#!/usr/bin/env node
/**
 * `npm run sim`: the deterministic simulator (docs/SIMULATION.md). By default the long budget: seeds 1..100000 and
 * the full enumeration, on one worker process per core. A violation prints the seed's trace and the command that
 * replays it; the summary gives the counts, the CPU per seed and the wall time.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UsageError } from '../common/errors.js';
import { MUTATIONS, type MutationName } from '../common/mutation.js';
import { EXIT, exitQuietlyOnEpipe, fail, printJson } from '../lib/cli.js';
import { addTally, cpuQuantile, emptyTally, type BatchReply, type BatchRequest, type Tally } from './batch.js';
import { runCase, SCENARIO_NAMES, type EnumerationSummary, type Fault } from './enumerate.js';
import { World, type SimResult } from './world.js';

const HELP = `Usage: npm run sim -- [options]

The deterministic whole-system simulator (docs/SIMULATION.md). Without options: the long budget,
seeds 1..100000 and the full enumeration, on one worker per core.

  --seeds A..B          run seeds A to B (default 1..100000)
  --seed N              run one seed and print its trace (how a failure is replayed)
  --enumerate           run only the enumeration (every crash, pause, power loss, restore, edit point)
  --no-enumerate        run only the seeds
  --case S:F:K          run one enumeration case (scenario:fault:step) and print its trace
  --sharing MODE        the stations' cluster sharing: first-come (default: a primary and its backups, as the
                        pinned seeds) or balanced (rendezvous over live members, serve's default)
  --mutation NAME       revert one fix of issue 14 (${MUTATIONS.join(', ')}); the runs must then fail
  --find-mutations      for each mutation, the first seed (up to --seeds) and enumeration case that finds it
  --jobs N              worker processes (default: ${availableParallelism()}, the cores)
  --trace-lines N       lines of a failing run's trace to print (default 60)
  --verbose             with --seed/--case: the whole trace as it happens
  --json                the summary as JSON on stdout
  -h, --help            this help

Exit codes: 0 no violation (with --mutation: the mutation was found), 1 violations (with --mutation: not found),
2 usage error, 4 internal error.`;

const WORKER = fileURLToPath(new URL('./batch.js', import.meta.url));
/** Seeds a worker runs per request: small enough to balance two cores, big enough to keep the pipe quiet. */
const CHUNK = 250;
/** V8 runs its helpers (GC, compiler) on the worker's thread: the CPU a run takes is then the CPU it uses. */
const WORKER_FLAGS = ['--single-threaded'];

interface Options {
  from: number;
  to: number;
  enumerate: boolean;
  seeds: boolean;
  jobs: number;
  mutations: MutationName[];
  json: boolean;
  traceLines: number;
  stopAtFirst: boolean;
  sharing: Sharing;
}

type Sharing = 'first-come' | 'balanced';

function sharingMode(s: string | undefined): Sharing {
  if (s === undefined || s === 'first-come' || s === 'balanced') return s ?? 'first-come';
  throw new UsageError('E_USAGE', `--sharing must be first-come or balanced, got '${s}'`);
}

function parseRange(s: string): [number, number] {
  const m = /^(\d+)\.\.(\d+)$/.exec(s);
  if (!m || Number(m[1]) < 1 || Number(m[2]) < Number(m[1])) throw new UsageError('E_USAGE', `--seeds takes A..B with 1 <= A <= B, got '${s}'`);
  return [Number(m[1]), Number(m[2])];
}

function positiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError('E_USAGE', `${what} must be a positive integer, got '${s}'`);
  return n;
}

function mutationName(s: string): MutationName {
  if (!(MUTATIONS as readonly string[]).includes(s)) throw new UsageError('E_USAGE', `--mutation must be one of ${MUTATIONS.join(', ')}; got '${s}'`);
  return s as MutationName;
}

/** A pool of forked workers taking requests in turn. */
class Pool {
  private readonly workers: ChildProcess[] = [];

  constructor(n: number) {
    for (let i = 0; i < n; i++) this.workers.push(fork(WORKER, ['--worker'], { execArgv: WORKER_FLAGS, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  }

  get size(): number {
    return this.workers.length;
  }

  request(i: number, req: BatchRequest): Promise<BatchReply> {
    const w = this.workers[i];
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null) => reject(new Error(`simulator worker ${i} exited (${code}) before answering`));
      w.once('exit', onExit);
      w.once('message', (m: BatchReply) => {
        w.off('exit', onExit);
        resolve(m);
      });
      w.send(req);
    });
  }

  close(): void {
    for (const w of this.workers) w.disconnect();
  }
}

async function runAll(o: Options): Promise<{ tally: Tally; enumeration: EnumerationSummary | null; wallMs: number }> {
  const t0 = performance.now();
  const pool = new Pool(o.jobs);
  const tally = emptyTally();
  let enumeration: EnumerationSummary | null = null;
  let next = o.from;
  // With stopAtFirst, the seeds stop at the first seed that fails and the enumeration at its first case: each
  // reports its own first finding (--find-mutations shows both).
  let seedFound = false;
  const progress = process.stderr.isTTY && !o.json;
  const show = () => progress && process.stderr.write(`\r  seeds ${tally.seeds}/${o.seeds ? o.to - o.from + 1 : 0}${enumeration ? `, enumeration ${enumeration.cases} cases` : ''}, violations ${tally.violations.length}   `);
  try {
    await Promise.all(
      Array.from({ length: pool.size }, async (_, i) => {
        // The first worker takes the enumeration first, the others start on seeds.
        if (i === 0 && o.enumerate) {
          const r = await pool.request(0, { kind: 'enumerate', mutations: o.mutations, stopAtFirst: o.stopAtFirst });
          if (r.kind === 'error') throw new Error(r.message);
          enumeration = (r as Extract<BatchReply, { kind: 'enumerate' }>).summary;
          show();
        }
        while (o.seeds && next <= o.to && !(o.stopAtFirst && seedFound)) {
          const from = next;
          const to = Math.min(o.to, from + CHUNK - 1);
          next = to + 1;
          const r = await pool.request(i, { kind: 'seeds', from, to, mutations: o.mutations, stopAtFirst: o.stopAtFirst, sharing: o.sharing });
          if (r.kind === 'error') throw new Error(r.message);
          addTally(tally, (r as Extract<BatchReply, { kind: 'seeds' }>).tally);
          if (tally.violations.length > 0) seedFound = true;
          show();
        }
      }),
    );
  } finally {
    pool.close();
    if (progress) process.stderr.write('\n');
  }
  tally.violations.sort((a, b) => Number(a.run.split(' ')[1]) - Number(b.run.split(' ')[1]));
  return { tally, enumeration, wallMs: performance.now() - t0 };
}

const fmt = (n: number) => n.toLocaleString('en-US');

function summaryText(o: Options, r: { tally: Tally; enumeration: EnumerationSummary | null; wallMs: number }): string {
  const t = r.tally;
  const c = (k: string) => fmt(t.counts[k] ?? 0) ;
  const lines: string[] = [];
  const what = [o.seeds ? `seeds ${o.from}..${o.to}` : null, r.enumeration ? `enumeration (${fmt(r.enumeration.cases)} cases)` : null].filter(Boolean).join(' + ');
  lines.push(`lifeline sim: ${what}${o.mutations.length ? `, mutation ${o.mutations.join(',')}` : ''}${o.sharing === 'balanced' ? ', seeds with balanced sharing' : ''}, ${o.jobs} worker(s)`);
  if (o.seeds && t.seeds > 0) {
    lines.push(`  seeds run            ${fmt(t.seeds)}, violations ${t.violations.length}`);
    lines.push(`  commands             ${c('commands')} issued: ${c('acked')} acknowledged, ${c('unknown')} reported unknown, ${c('notRun')} reported not run; ${c('executions')} executions`);
    lines.push(`  faults               ${c('fault crash')} kills, ${c('fault pause')} pauses, ${c('fault nicPower')} NIC power losses, ${c('fault cable')} cable pulls, ${c('fault host')} host events, ${c('fault partition')} partitions, ${c('fault net')} lossy-network episodes, ${c('restores')} restores, ${c('fault tamper')} store edits, ${c('fault replay')} replays`);
    lines.push(`  alerts               ${c('alerts stored')} stored, ${c('alert duplicates')} duplicates answered from the store (docs/ALERTS.md)`);
    lines.push(`  datagrams            ${c('sent')} sent, ${c('lost')} lost, ${c('duplicated')} duplicated, ${c('reordered')} reordered, ${c('partitioned')} cut by partitions; ${c('espPackets')} ESP packets checked`);
    lines.push(`  steps                ${fmt(t.steps)} (${fmt(Math.round(t.virtualMs / 1000))} s of virtual time)`);
    lines.push(`  CPU per seed         mean ${(t.cpuMs / t.seeds).toFixed(1)} ms, median ≤ ${cpuQuantile(t, 0.5)} ms, p99 ≤ ${cpuQuantile(t, 0.99)} ms (target ≤ 20 ms mean)`);
  }
  if (r.enumeration) {
    const e = r.enumeration;
    const by = Object.entries(e.byScenario).map(([k, v]) => `${k} ${v.cases} (window ${v.window})`).join(', ');
    lines.push(`  enumeration          ${fmt(e.cases)} cases: ${by}; violations ${e.violations.length}; ${(e.cpuMs / 1000).toFixed(1)} s CPU`);
  }
  lines.push(`  wall time            ${(r.wallMs / 1000).toFixed(1)} s`);
  return lines.join('\n');
}

/** Replay a failing run with its trace on and print the end of it. */
async function explain(run: string, o: Options): Promise<string> {
  let r: SimResult;
  let replay: string;
  const mut = o.mutations.length ? ` --mutation ${o.mutations[0]}` : '';
  if (run.startsWith('seed ')) {
    const seed = Number(run.slice(5));
    r = await new World({ seed, trace: true, mutations: o.mutations, traceLines: o.traceLines, times: { sharing: o.sharing } }).run();
    replay = `npm run sim -- --seed ${seed}${mut}${o.sharing === 'balanced' ? ' --sharing balanced' : ''}`;
  } else {
    const [s, f, k] = run.split(':');
    r = await runCase(s, f as Fault, Number(k), true, o.mutations);
    replay = `npm run sim -- --case ${run}${mut}`;
  }
  return [`--- ${run}: ${r.violation}`, ...r.trace.slice(-o.traceLines), `--- replay: ${replay}`].join('\n');
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      enumerate: { type: 'boolean' },
      'no-enumerate': { type: 'boolean' },
      case: { type: 'string' },
      mutation: { type: 'string' },
      sharing: { type: 'string' },
      'find-mutations': { type: 'boolean' },
      jobs: { type: 'string' },
      'trace-lines': { type: 'string' },
      verbose: { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const mutations = values.mutation ? [mutationName(values.mutation)] : [];
  const traceLines = values['trace-lines'] ? positiveInt(values['trace-lines'], '--trace-lines') : 60;
  const sharing = sharingMode(values.sharing);

  // One run, with its trace.
  if (values.seed || values.case) {
    const verbose = values.verbose === true;
    const r = values.seed
      ? await new World({ seed: positiveInt(values.seed, '--seed'), trace: true, verbose, mutations, traceLines, times: { sharing } }).run()
      : await (async () => {
          const [s, f, k] = values.case!.split(':');
          if (!SCENARIO_NAMES.includes(s) || !f || !/^\d+$/.test(k ?? '')) throw new UsageError('E_USAGE', `--case takes scenario:fault:step (scenarios: ${SCENARIO_NAMES.join(', ')}), got '${values.case}'`);
          return runCase(s, f as Fault, Number(k), true, mutations);
        })();
    if (values.json) printJson({ ok: r.ok, violation: r.violation, steps: r.steps, virtualMs: r.virtualMs, counts: r.counts, trace: r.trace });
    else {
      if (!verbose) process.stdout.write(r.trace.slice(-traceLines).join('\n') + '\n');
      process.stdout.write(`${r.ok ? 'ok' : `VIOLATION ${r.violation}`} (${fmt(r.steps)} steps, ${(r.virtualMs / 1000).toFixed(1)} s virtual)\n`);
    }
    process.exitCode = r.ok ? EXIT.OK : EXIT.FAILED;
    return;
  }

  const [from, to] = values.seeds ? parseRange(values.seeds) : [1, 100_000];
  const jobs = values.jobs ? positiveInt(values.jobs, '--jobs') : availableParallelism();
  const o: Options = {
    from, to, jobs, mutations, json: values.json === true, traceLines, stopAtFirst: mutations.length > 0, sharing,
    enumerate: values['no-enumerate'] !== true, seeds: values.enumerate !== true,
  };

  if (values['find-mutations']) {
    const rows: { mutation: MutationName; seed: string | null; case: string | null }[] = [];
    for (const m of MUTATIONS) {
      const r = await runAll({ ...o, mutations: [m], stopAtFirst: true });
      const seed = r.tally.violations[0]?.run ?? null;
      const c = r.enumeration?.violations[0]?.name ?? null;
      rows.push({ mutation: m, seed, case: c });
      if (!o.json) process.stdout.write(`${m.padEnd(18)} first seed: ${seed ?? `none in ${o.from}..${o.to}`}; enumeration: ${c ?? 'none'}\n`);
    }
    if (o.json) printJson(rows);
    process.exitCode = rows.every((x) => x.seed || x.case) ? EXIT.OK : EXIT.FAILED;
    return;
  }

  const r = await runAll(o);
  const violations = [...r.tally.violations.map((v) => v.run), ...(r.enumeration?.violations.map((v) => v.name) ?? [])];
  if (o.json) {
    printJson({
      seeds: o.seeds ? { from: o.from, to: o.to, run: r.tally.seeds } : null, jobs: o.jobs, mutations: o.mutations,
      violations: [...r.tally.violations, ...(r.enumeration?.violations.map((v) => ({ run: v.name, violation: v.violation })) ?? [])],
      counts: r.tally.counts, steps: r.tally.steps, virtualMs: r.tally.virtualMs,
      cpuMsPerSeed: r.tally.seeds ? { mean: r.tally.cpuMs / r.tally.seeds, median: cpuQuantile(r.tally, 0.5), p99: cpuQuantile(r.tally, 0.99) } : null,
      enumeration: r.enumeration, wallMs: r.wallMs,
    });
  } else {
    process.stdout.write(summaryText(o, r) + '\n');
    // The first few failures, replayed with their traces.
    for (const run of violations.slice(0, 3)) process.stdout.write('\n' + (await explain(run, o)) + '\n');
    if (violations.length > 3) process.stdout.write(`\n(${violations.length - 3} more violations: ${violations.slice(3, 20).join(', ')}${violations.length > 20 ? ', ...' : ''})\n`);
  }
  const found = violations.length > 0;
  process.exitCode = (o.mutations.length > 0 ? !found : found) ? EXIT.FAILED : EXIT.OK;
}

exitQuietlyOnEpipe();
main(process.argv.slice(2)).catch((e) => fail('sim', e));
