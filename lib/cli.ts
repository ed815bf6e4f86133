/**
 * What both executables share: exit codes, one-line errors, JSON output and the progress line.
 *
 * Exit codes (documented in README "CLI reference"):
 *   0 success · 1 the operation failed (timeout, refused, mismatch) · 2 usage error (bad arguments)
 *   3 cannot reach the emulator, station, NIC or store · 4 internal error (a bug: please report)
 */
import { LifelineError } from '../firmware/errors.js';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3, INTERNAL: 4 } as const;

/** `prog ... | head` closes stdout early: that is not an error. */
export function exitQuietlyOnEpipe(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.OK);
    throw e;
  });
}

export function exitCodeFor(e: unknown): number {
  if (!(e instanceof LifelineError)) return EXIT.INTERNAL;
  switch (e.code) {
    case 'E_USAGE':
    case 'E_ILLEGAL_TRANSITION':
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
export function fail(prog: string, e: unknown, json = false): never {
  const code = e instanceof LifelineError ? e.code : 'E_INTERNAL';
  const msg = e instanceof Error ? e.message : String(e);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: { code, message: msg } }) + '\n');
  process.stderr.write(`${prog}: ${code}: ${msg}\n`);
  if (!(e instanceof LifelineError) && process.env.LIFELINE_DEBUG) console.error(e);
  process.exit(exitCodeFor(e));
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

export function parseHostPort(s: string, defPort: number): { host: string; port: number } {
  const m = /^([^:]+)(?::(\d+))?$/.exec(s);
  if (!m) throw new LifelineError('E_USAGE', `expected HOST:PORT, got '${s}'`);
  const port = m[2] ? Number(m[2]) : defPort;
  if (port < 0 || port > 65535) throw new LifelineError('E_USAGE', `port out of range in '${s}'`);
  return { host: m[1], port };
}
