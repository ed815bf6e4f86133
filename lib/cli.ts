/**
 * What both executables share: exit codes, one-line errors, JSON output and the progress line.
 *
 * Exit codes (docs/CLI.md, "Exit codes"):
 *   0 success · 1 the operation failed (timeout, refused, illegal host transition, mismatch) · 2 usage error (bad
 *   arguments, unusable files: E_USAGE, E_TABLE, E_POLICY)
 *   3 cannot reach the emulator, station, NIC or store · 4 internal error (a bug: please report)
 */
import { LifelineError, UsageError } from '../common/errors.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, INTERNAL: 4 } as const;

/** `prog ... | head` closes stdout early: that is not an error. */
export function exitQuietlyOnEpipe(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.OK);
    throw e;
  });
}

/**
 * Node's util.parseArgs rejects an unknown option, an option value it cannot take or a stray positional with a
 * TypeError coded ERR_PARSE_ARGS_*: that is the user's mistake, so E_USAGE (exit 2), on one line. Any other
 * error is returned unchanged.
 */
export function asUsageError(e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (e instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) {
    return new UsageError('E_USAGE', `${oneLine(e.message)} (see --help)`);
  }
  return e;
}

/**
 * Errors are printed as one line: newlines inside a message become spaces, and other control characters (from
 * a binary file quoted in a message) are shown as \xNN rather than sent to the terminal.
 */
function oneLine(s: string): string {
  return s
    .replace(/\s*\n\s*/g, ' ')
    .trim()
    .replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function exitCodeFor(err: unknown): number {
  const e = asUsageError(err);
  if (!(e instanceof LifelineError)) return EXIT.INTERNAL;
  switch (e.code) {
    // An illegal host transition (hang a host that is off) is the lab refusing the operation, not a mistyped
    // command line: exit 1, like a NIC that refuses a command.
    case 'E_USAGE':
    case 'E_TABLE':
    case 'E_POLICY':
      return EXIT.USAGE;
    case 'E_UNREACHABLE':
    case 'E_STORE':
      return EXIT.UNREACHABLE;
    case 'E_INTERNAL':
      return EXIT.INTERNAL;
    default:
      return EXIT.FAILED;
  }
}

/** Print the error as one line (`prog: CODE: message`) and exit with its code. */
export function fail(prog: string, err: unknown, json = false): never {
  const e = asUsageError(err);
  const code = e instanceof LifelineError ? e.code : 'E_INTERNAL';
  const msg = oneLine(e instanceof Error ? e.message : String(e));
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code, message: msg } }) + '\n');
  process.stderr.write(`${prog}: ${code}: ${msg}\n`);
  if (!(e instanceof LifelineError) && process.env.LIFELINE_DEBUG) console.error(e);
  process.exit(exitCodeFor(e));
}

/**
 * A counter by reason, the one way both tools print one: `dropped=0`, or `dropped=3 (replay=2,icv=1)` with the
 * reasons that are not zero.
 */
export function fmtCounts(name: string, counts: Record<string, number> | null | undefined): string {
  const nonzero = Object.entries(counts ?? {}).filter(([, v]) => v > 0);
  const total = nonzero.reduce((a, [, v]) => a + v, 0);
  return nonzero.length ? `${name}=${total} (${nonzero.map(([k, v]) => `${k}=${v}`).join(',')})` : `${name}=0`;
}

export function printJson(v: unknown): void {
  process.stdout.write(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x), 2) + '\n');
}

/** A progress line on a TTY (stderr), nothing otherwise: long fleet operations show where they are. */
export function progress(label: string): { update(done: number, total: number): void; done(): void } {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return {
    update(done, total) {
      if (!tty) return;
      const now = Date.now();
      if (done !== total && now - last < 100) return;
      last = now;
      const width = 30;
      const filled = Math.round((done / Math.max(total, 1)) * width);
      process.stderr.write(`\r${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`);
    },
    done() {
      if (tty) process.stderr.write('\n');
    },
  };
}

/** HOST[:PORT] with PORT 0..65535 (`defPort` when absent); E_USAGE naming `what` (e.g. the option) otherwise. */
export function parseHostPort(s: string, defPort: number, what = 'address'): { host: string; port: number } {
  const m = /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) throw new UsageError('E_USAGE', `${what}: expected HOST:PORT with a numeric port, got '${s}'`);
  const port = m[2] ? Number(m[2]) : defPort;
  if (port < 0 || port > 65535) throw new UsageError('E_USAGE', `${what}: port out of range (0..65535) in '${s}'`);
  return { host: m[1], port };
}

/** A loopback host: 127.0.0.0/8 or localhost. The control APIs listen nowhere else. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** E_USAGE naming `option` and `value` unless `host` is loopback (a control API address: docs/CLI.md). */
export function requireLoopback(option: string, value: string, host: string): void {
  if (!isLoopbackHost(host)) throw new UsageError('E_USAGE', `${option} ${value}: the control API is on loopback only; give 127.x.y.z or localhost`);
}

/** The whole number given for --NAME, `def` when absent; E_USAGE unless it is within min..max. */
export function intOption(v: string | undefined, def: number, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  const n = /^\d+$/.test(v) ? Number(v) : NaN;
  const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `${min}..${max}`;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError('E_USAGE', `--${name} must be a whole number ${range}, got '${v}'`);
  return n;
}
