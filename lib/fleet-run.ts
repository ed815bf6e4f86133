/**
 * A verb run on several NICs (a TARGET that is `all`, a list or a pattern: lib/nic-targets.ts), for both
 * executables: a few NICs at a time, a progress line on a TTY (stderr), one stdout line per NIC done (when the verb
 * has one), one stderr line per NIC that failed with its error code, then one summary line; or one JSON document
 * with --json. Exit 1 if any NIC failed.
 */
import { LifelineError } from '../common/errors.js';
import { EXIT, printJson, progress } from './cli.js';

/** A NIC left alone, and whose it is (refresh all: another live station holds its lease). */
export interface Skipped { nic: string; owner: string }

export interface FleetRun<T> {
  prog: string;
  /** The verb as the summary names it (`refresh`, `host hang`). */
  verb: string;
  ids: readonly string[];
  one: (nic: string) => Promise<T>;
  /** The stdout line for a NIC done, or nothing (the summary alone). */
  line?: (nic: string, result: T) => string;
  json: boolean;
  concurrency?: number;
  skipped?: readonly Skipped[];
  viaDaemon?: boolean;
}

export interface FleetSummary<T> {
  ok: boolean;
  nics: number;
  done: number;
  failed: { nic: string; code: string; error: string }[];
  failedByCode: Record<string, number>;
  skipped: readonly Skipped[];
  results: ({ nic: string } & T)[];
  seconds: number;
  viaDaemon?: true;
}

export async function runFleet<T>(o: FleetRun<T>): Promise<FleetSummary<T>> {
  const bar = progress(`${o.verb} ${o.ids.length} NICs`);
  const queue = [...o.ids];
  const failed: FleetSummary<T>['failed'] = [];
  const results = new Map<string, T>();
  let finished = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const nic = id;
      await o.one(nic).then(
        (r) => void results.set(nic, r),
        (e: unknown) => void failed.push({ nic, code: e instanceof LifelineError ? e.code : 'E_INTERNAL', error: (e as Error).message }),
      );
      bar.update(++finished, o.ids.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.concurrency ?? 8, o.ids.length) }, worker));
  bar.done();
  const seconds = (performance.now() - t0) / 1000;
  const failedByCode: Record<string, number> = {};
  for (const f of failed) failedByCode[f.code] = (failedByCode[f.code] ?? 0) + 1;
  const summary: FleetSummary<T> = {
    ok: failed.length === 0, nics: o.ids.length, done: results.size, failed, failedByCode, skipped: o.skipped ?? [],
    // In the order asked for, whatever order they finished in.
    results: o.ids.filter((id) => results.has(id)).map((id) => ({ nic: id, ...(results.get(id) as T) })),
    seconds: Math.round(seconds * 1000) / 1000,
    ...(o.viaDaemon ? { viaDaemon: true as const } : {}),
  };
  if (o.json) printJson(summary);
  else {
    if (o.line) for (const r of summary.results) process.stdout.write(o.line(r.nic, results.get(r.nic) as T) + '\n');
    for (const f of failed) process.stderr.write(`${o.prog}: ${f.nic}: ${f.code}: ${f.error}\n`);
    process.stdout.write(summaryLine(o.verb, summary) + '\n');
  }
  if (failed.length) process.exitCode = EXIT.FAILED;
  return summary;
}

/** `refresh: 5/6 NICs in 1.2 s, 1 failed (E_IKE_TIMEOUT 1), 2 skipped (owned by station 'B') [via daemon]`. */
export function summaryLine(verb: string, s: Pick<FleetSummary<unknown>, 'nics' | 'done' | 'failed' | 'failedByCode' | 'skipped' | 'seconds' | 'viaDaemon'>): string {
  const codes = Object.entries(s.failedByCode).sort(([a], [b]) => a.localeCompare(b)).map(([c, n]) => `${c} ${n}`).join(', ');
  const owners = [...new Set(s.skipped.map((k) => k.owner))].map((w) => `'${w}'`).join(', ');
  return `${verb}: ${s.done}/${s.nics} NICs in ${s.seconds.toFixed(1)} s` +
    (s.failed.length ? `, ${s.failed.length} failed (${codes})` : '') +
    (s.skipped.length ? `, ${s.skipped.length} skipped (owned by station ${owners})` : '') +
    (s.viaDaemon ? ' [via daemon]' : '');
}
