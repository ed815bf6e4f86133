/**
 * Start one of our executables as a child process and wait for its ready line: `start --json` / `serve --json`
 * print one JSON object on stdout once they listen. Used by `npm start`, `npm run demo` and `replay`.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { LifelineError } from '../common/errors.js';

export interface ReadyChild<T> { child: ChildProcess; ready: T }

export function spawnReady<T = Record<string, unknown>>(bin: string, args: string[], what: string, opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<ReadyChild<T>> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'ignore'], ...opts });
  return new Promise((resolve, reject) => {
    let buf = '';
    let settled = false;
    const t = setTimeout(() => {
      settled = true;
      child.kill('SIGKILL');
      reject(new LifelineError('E_TIMEOUT', `${what} did not start in ${opts.timeoutMs ?? 20000} ms`));
    }, opts.timeoutMs ?? 20000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      if (settled) return;
      buf += c;
      // Only complete lines: a chunk may end in the middle of the JSON object.
      const line = buf.split('\n').slice(0, -1).find((l) => l.startsWith('{'));
      if (!line) return;
      settled = true;
      clearTimeout(t);
      let ready: T & { ok?: boolean; error?: { code?: string; message?: string } };
      try {
        ready = JSON.parse(line);
      } catch {
        child.kill('SIGKILL');
        return reject(new LifelineError('E_INTERNAL', `${what} printed a ready line that is not JSON: ${line.slice(0, 200)}`));
      }
      // `--json` failures print {"ok":false,"error":{...}} on stdout before exiting (lib/cli.ts fail()).
      if (ready.ok === false) return reject(new LifelineError('E_UNREACHABLE', `${what} failed to start: ${ready.error?.code ?? '?'}: ${ready.error?.message ?? line}`));
      resolve({ child, ready });
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      if (settled) return;
      settled = true;
      reject(new LifelineError('E_UNREACHABLE', `${what} exited with ${code} before it was ready`));
    });
  });
}
