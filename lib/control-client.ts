/** Client of the emulator's control API (nic-emulator/control-server.ts). */
import http from 'node:http';
import { LifelineError, UsageError, type ErrorCode } from '../common/errors.js';
import { parseHostPort } from './cli.js';

export const DEFAULT_CONTROL = '127.0.0.1:8623';

/** How long a request to the control API may go unanswered, unless the caller gives longer (mgmt-station --timeout). */
export const DEFAULT_CONTROL_TIMEOUT_MS = 5000;

/** mgmt-station's wait for the control API: its --timeout, and at least DEFAULT_CONTROL_TIMEOUT_MS. */
export function controlTimeoutMs(timeoutMs: number): number {
  return Math.max(timeoutMs, DEFAULT_CONTROL_TIMEOUT_MS);
}

export class ControlClient {
  /** Sent as `Authorization: Bearer TOKEN` when set (a station daemon's control API wants it: mgmt-station/daemon.ts). */
  token: string | null = null;
  /**
   * A keep-alive agent to send through (keepAliveAgent()), for a caller that makes many requests (the station daemon
   * enrolling a fleet: two per NIC); null: one connection per request, closed after its answer.
   */
  agent: http.Agent | null = null;

  /**
   * `option` is the command-line option that gave the address (nic-emulator's `--control`, mgmt-station's
   * `--emulator`): errors name it, so the user knows what to change.
   */
  constructor(readonly host: string, readonly port: number, private readonly timeoutMs = DEFAULT_CONTROL_TIMEOUT_MS, private readonly option?: string) {}

  /**
   * HOST[:PORT] (default port 8623), checked as `nic-emulator start` checks it: a bad one is E_USAGE (exit 2).
   * A request that gets no answer within `timeoutMs` is E_TIMEOUT.
   */
  static parse(hostPort: string, option?: string, timeoutMs = DEFAULT_CONTROL_TIMEOUT_MS): ControlClient {
    const { host, port } = parseHostPort(hostPort, 8623, option ?? 'emulator control address');
    if (port === 0) throw new UsageError('E_USAGE', `${option ?? 'emulator control address'}: port 0 in '${hostPort}' cannot be connected to; give the emulator's control port`);
    return new ControlClient(host, port, timeoutMs, option);
  }

  get<T = unknown>(path: string): Promise<T> {
    return this.request('GET', path);
  }

  post<T = unknown>(path: string, body: unknown = {}): Promise<T> {
    return this.request('POST', path, body);
  }

  private request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = this.agent ? {} : { connection: 'close' };
    if (data) headers['content-type'] = 'application/json';
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    return new Promise<T>((resolve, reject) => {
      const req = http.request(
        { host: this.host, port: this.port, method, path, timeout: this.timeoutMs, agent: this.agent ?? false, headers },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              reject(new LifelineError('E_UNREACHABLE', `emulator at ${this.host}:${this.port} answered non-JSON (is it a nic-emulator?)`));
              return;
            }
            const err = (parsed as { error?: { code: ErrorCode; message: string } }).error;
            if ((res.statusCode ?? 500) >= 400 && err) reject(new LifelineError(err.code, err.message));
            else resolve(parsed as T);
          });
        },
      );
      // A connection that was taken and then not answered is a hung or overloaded emulator, not an absent one.
      let timedOut = false;
      req.on('timeout', () => {
        timedOut = true;
        req.destroy();
      });
      req.on('error', (e) =>
        reject(
          timedOut
            ? new LifelineError('E_TIMEOUT', `the emulator control API at ${this.host}:${this.port} did not answer ${method} ${path} within ${this.timeoutMs} ms; is the emulator stopped (SIGSTOP) or overloaded?${method === 'POST' ? ' The request may have taken effect there.' : ''}`)
            : new LifelineError('E_UNREACHABLE', `cannot reach the emulator control API at ${this.host}:${this.port} (${e.message}); start it with 'nic-emulator start' or pass ${this.option ? `${this.option} HOST:PORT` : 'its control address (HOST:PORT)'}`),
        ),
      );
      if (data) req.write(data);
      req.end();
    });
  }
}

/**
 * An agent that keeps connections open between requests, for a process that makes many to one server (a fleet verb:
 * the CLI to its station daemon, the daemon to the emulator's control API): each request then costs two segments on
 * an open connection instead of a connection's set-up and tear-down (a TCP handshake, FINs; on this project's VM
 * every segment to a sleeping process is a wake-up, docs/PERFORMANCE.md "Station scale"). An idle connection is
 * closed after `idleMs` (below the 5 s a Node server keeps one, so a request never goes out on a connection the
 * server is closing), and does not keep the process alive (Node unrefs idle sockets).
 */
export function keepAliveAgent(maxSockets: number, idleMs = 2000): http.Agent {
  return new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: idleMs, scheduling: 'lifo' });
}
