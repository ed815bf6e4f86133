/**
 * A verb run on several NICs (a TARGET that is `all`, a list or a pattern: lib/nic-targets.ts), for both
 * executables: up to `concurrency` NICs at a time (DEFAULT_FLEET_CONCURRENCY, `--concurrency N`), a progress line on
 * a TTY (stderr: done/total, rate, ETA, failures by error code), one stdout line per NIC done (when the verb has one),
 * one stderr line per NIC that failed with its error code, then one summary line with the rate; or one JSON document
 * with --json (or when stdout is not a TTY and the caller asks for JSON). Exit 1 if any NIC failed.
 */
import { LifelineError, UsageError } from '../common/errors.js';
import { EXIT, printJson } from './cli.js';

/**
 * NICs a fleet verb runs at once unless `--concurrency N` says otherwise. A NIC's exchange is mostly waiting (the
 * NIC, its host agent, the store): 32 in flight keep one station process busy without opening thousands of exchanges
 * at once (the daemon's poll round uses the same bound).
 */
export const DEFAULT_FLEET_CONCURRENCY = 32;
export const MAX_FLEET_CONCURRENCY = 1024;

/** `--concurrency N`: 1..MAX_FLEET_CONCURRENCY, the default when absent; E_USAGE otherwise. */
export function concurrencyOption(v: string | undefined, def = DEFAULT_FLEET_CONCURRENCY): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 1 || n > MAX_FLEET_CONCURRENCY) {
    throw new UsageError('E_USAGE', `--concurrency must be a whole number from 1 to ${MAX_FLEET_CONCURRENCY}, got '${v}'`);
  }
  return n;
}

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
  /** NICs finished (done or failed) per second, and how many ran at once. */
  perSecond: number;
  concurrency: number;
  viaDaemon?: true;
}

export async function runFleet<T>(o: FleetRun<T>): Promise<FleetSummary<T>> {
  const concurrency = Math.max(1, o.concurrency ?? DEFAULT_FLEET_CONCURRENCY);
  const bar = fleetProgress(`${o.verb} ${o.ids.length} NICs`, o.ids.length);
  const failed: FleetSummary<T>['failed'] = [];
  const failedByCode: Record<string, number> = {};
  const results = new Map<string, T>();
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < o.ids.length) {
      const nic = o.ids[next++];
      await o.one(nic).then(
        (r) => void results.set(nic, r),
        (e: unknown) => {
          const code = e instanceof LifelineError ? e.code : 'E_INTERNAL';
          failed.push({ nic, code, error: (e as Error).message });
          failedByCode[code] = (failedByCode[code] ?? 0) + 1;
        },
      );
      bar.update(results.size + failed.length, failedByCode);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, o.ids.length) }, worker));
  bar.done();
  const seconds = (performance.now() - t0) / 1000;
  const summary: FleetSummary<T> = {
    ok: failed.length === 0, nics: o.ids.length, done: results.size, failed, failedByCode, skipped: o.skipped ?? [],
    // In the order asked for, whatever order they finished in.
    results: o.ids.filter((id) => results.has(id)).map((id) => ({ nic: id, ...(results.get(id) as T) })),
    seconds: Math.round(seconds * 1000) / 1000,
    perSecond: seconds > 0 ? Math.round(((results.size + failed.length) / seconds) * 10) / 10 : 0,
    concurrency,
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

/** `E_IKE_TIMEOUT 1, E_TIMEOUT 3`: failures by code, in code order. */
function codeCounts(byCode: Record<string, number>): string {
  return Object.entries(byCode).sort(([a], [b]) => a.localeCompare(b)).map(([c, n]) => `${c} ${n}`).join(', ');
}

/**
 * The progress line of a fleet run on a TTY (stderr), nothing otherwise: `enroll 10000 NICs [####......] 3120/10000
 * 412/s ETA 17 s, 2 failed (E_IKE_TIMEOUT 2)`, at most ten times a second.
 */
export function fleetProgress(label: string, total: number, tty = process.stderr.isTTY === true, write = (s: string) => void process.stderr.write(s)): { update(finished: number, failedByCode: Record<string, number>): void; done(): void } {
  const t0 = performance.now();
  let last = 0;
  return {
    update(finished, failedByCode) {
      if (!tty) return;
      const now = performance.now();
      if (finished !== total && now - last < 100) return;
      last = now;
      write('\r' + progressText(label, finished, total, (now - t0) / 1000, failedByCode) + '\x1b[K');
    },
    done() {
      if (tty) write('\n');
    },
  };
}

/** One progress line's text (see fleetProgress). */
export function progressText(label: string, finished: number, total: number, seconds: number, failedByCode: Record<string, number>): string {
  const width = 30;
  const filled = Math.round((finished / Math.max(total, 1)) * width);
  const rate = seconds > 0 ? finished / seconds : 0;
  const eta = rate > 0 ? `ETA ${Math.ceil((total - finished) / rate)} s` : 'ETA -';
  const failed = Object.values(failedByCode).reduce((a, b) => a + b, 0);
  return `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${finished}/${total} ${rate.toFixed(0)}/s ${eta}` +
    (failed ? `, ${failed} failed (${codeCounts(failedByCode)})` : '');
}

/**
 * `refresh: 5/6 NICs in 1.2 s, 1 failed (E_IKE_TIMEOUT 1), 2 skipped (owned by station 'B') [via daemon]` (the rate
 * is in the progress line and the JSON's perSecond).
 */
export function summaryLine(verb: string, s: Pick<FleetSummary<unknown>, 'nics' | 'done' | 'failed' | 'failedByCode' | 'skipped' | 'seconds' | 'viaDaemon'>): string {
  const codes = codeCounts(s.failedByCode);
  const owners = [...new Set(s.skipped.map((k) => k.owner))].map((w) => `'${w}'`).join(', ');
  return `${verb}: ${s.done}/${s.nics} NICs in ${s.seconds.toFixed(1)} s` +
    (s.failed.length ? `, ${s.failed.length} failed (${codes})` : '') +
    (s.skipped.length ? `, ${s.skipped.length} skipped (owned by station ${owners})` : '') +
    (s.viaDaemon ? ' [via daemon]' : '');
}
