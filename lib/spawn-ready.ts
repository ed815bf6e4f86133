/**
 * Start one of our executables as a child process and wait for its ready line: `start --json` / `serve --json`
 * print one JSON object on stdout once they listen. Used by `npm start`, `npm run demo` and `replay`.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { LifelineError } from '../firmware/errors.js';

export interface ReadyChild<T> { child: ChildProcess; ready: T }

export function spawnReady<T = Record<string, unknown>>(bin: string, args: string[], what: string, opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<ReadyChild<T>> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'ignore'], ...opts });
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new LifelineError('E_TIMEOUT', `${what} did not start in ${opts.timeoutMs ?? 20000} ms`));
    }, opts.timeoutMs ?? 20000);
    child.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      const line = buf.split('\n').find((l) => l.startsWith('{'));
      if (line) {
        clearTimeout(t);
        resolve({ child, ready: JSON.parse(line) as T });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new LifelineError('E_UNREACHABLE', `${what} exited with ${code} before it was ready`));
    });
  });
}
