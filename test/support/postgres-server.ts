/**
 * A private PostgreSQL for tests, from Debian's binaries (/usr/lib/postgresql/N/bin: initdb + pg_ctl):
 * a fresh cluster in a temp directory, listening on a free loopback port with its unix socket inside
 * that directory, fsync off, trust authentication. initdb refuses to run as root, so under root the
 * binaries run as the `postgres` system user (spawn uid/gid) and the temp directory is given to it.
 * Every step has a time limit; stop() shuts down with `pg_ctl -m immediate` and deletes the directory,
 * and a process 'exit' hook does the same if a test run dies before stop().
 *
 * LIFELINE_PG_BIN overrides the binary directory.
 */
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PostgresServer {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres, with `?schema=NAME` if given. */
  url(schema?: string): string;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  pgCtl: string;
}

function findBinaries(): Binaries | null {
  const dirs: string[] = [];
  if (process.env.LIFELINE_PG_BIN) dirs.push(process.env.LIFELINE_PG_BIN);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
    dirs.push(...versions.map((v) => join(root, v, 'bin')));
  }
  for (const d of dirs) {
    const initdb = join(d, 'initdb');
    const pgCtl = join(d, 'pg_ctl');
    if (existsSync(initdb) && existsSync(pgCtl)) return { initdb, pgCtl };
  }
  return null;
}

/** The system user to run as when we are root, or null if we are not root. */
function runAs(): { uid: number; gid: number } | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return null;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) return null;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** Why PostgreSQL tests cannot run here, or null if they can. */
export function postgresUnavailable(): string | null {
  if (!findBinaries()) {
    return 'PostgreSQL binaries not found (install Debian package postgresql, or set LIFELINE_PG_BIN to the directory holding initdb and pg_ctl)';
  }
  if (typeof process.getuid === 'function' && process.getuid() === 0 && !runAs()) {
    return 'running as root and there is no `postgres` system user to run initdb as (install Debian package postgresql)';
  }
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function run(file: string, args: string[], cwd: string, user: { uid: number; gid: number } | null, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' }, ...(user ?? {}) },
      (err, stdout, stderr) => {
        if (err) {
          const why = err.killed ? `timed out after ${timeoutMs} ms` : err.message;
          reject(new Error(`${file} ${args.join(' ')}: ${why}\n${stderr}`));
        } else {
          resolve(stdout);
        }
      },
    );
  });
}

/** Start a private PostgreSQL; typically in a before() hook with a 30 s timeout. */
/** `port`: listen there (a test's own range) rather than on a free port found at start. */
export async function startPostgres(opts: { initTimeoutMs?: number; startTimeoutMs?: number; port?: number } = {}): Promise<PostgresServer> {
  const why = postgresUnavailable();
  if (why) throw new Error(why);
  const bin = findBinaries()!;
  const user = runAs();
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-pg-'));
  if (user) chownSync(dir, user.uid, user.gid);
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const stopSync = (): void => {
    spawnSync(bin.pgCtl, ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '10'], { cwd: dir, timeout: 15000, stdio: 'ignore', ...(user ?? {}) });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopSync);
  try {
    await run(
      bin.initdb,
      ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync', '--no-instructions'],
      dir, user, opts.initTimeoutMs ?? 30000,
    );
    let port = 0;
    let lastError: unknown;
    for (let attempt = 0; attempt < (opts.port ? 1 : 3); attempt++) {
      port = opts.port ?? (await freePort());
      const settings = [
        `-p ${port}`, `-k ${dir}`, `-c listen_addresses=127.0.0.1`, '-c fsync=off', '-c synchronous_commit=off',
        '-c full_page_writes=off', '-c max_connections=50', '-c shared_buffers=16MB',
      ].join(' ');
      try {
        await run(bin.pgCtl, ['start', '-D', data, '-l', log, '-w', '-t', String(Math.ceil((opts.startTimeoutMs ?? 20000) / 1000)), '-o', settings],
          dir, user, (opts.startTimeoutMs ?? 20000) + 5000);
        lastError = undefined;
        break;
      } catch (e) {
        lastError = e; // most likely someone took the port between freePort() and the bind: try another
      }
    }
    if (lastError) {
      const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-10).join('\n') : '';
      throw new Error(`${(lastError as Error).message}\nserver log:\n${tail}`);
    }
    let stopped = false;
    return {
      port,
      url: (schema?: string) => `postgres://postgres@127.0.0.1:${port}/postgres` + (schema ? `?schema=${schema}` : ''),
      stop: async () => {
        if (stopped) return;
        stopped = true;
        process.removeListener('exit', stopSync);
        try {
          await run(bin.pgCtl, ['stop', '-D', data, '-m', 'immediate', '-w', '-t', '10'], dir, user, 15000);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (e) {
    process.removeListener('exit', stopSync);
    stopSync();
    throw e;
  }
}
