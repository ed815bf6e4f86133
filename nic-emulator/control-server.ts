/**
 * The emulator's local control API: JSON over HTTP on 127.0.0.1 (never another address).
 *
 *   GET  /v1/health                      -> { pid, nics, running, failed, busyPoll: { maxUs, windowUs, hits, misses, backoffs } }
 *   GET  /v1/nics                        -> [status, ...]               (status: see NicNode.status())
 *   GET  /v1/nics/:id                    -> status                      (:id = nic-N or its address)
 *   GET  /v1/nics/:id/exec-log           -> [{ at, command, via, rmcpSeq, tag, generation, ... }]
 *   POST /v1/nics/:id/host   {event}     -> { from, to }   events: hang suspend wake crash power-loss power-restore
 *                                                            cable-pull cable-plug reset power-up power-down power-cycle
 *   POST /v1/nics/:id/sa     {sa}        -> { generation } manual keying: the host driver writes and commits an SA
 *   POST /v1/nics/:id/config {clearManagement: [cmd...]} -> {} the seed's cold-boot option ([] = refuse all)
 *   POST /v1/nics/:id/policy {text, source} -> {}       cluster policy (seed INI); E_POLICY names source:line
 *   POST /v1/nics/:id/trust-anchor {psk} -> {}          enrolment: the admin writes the IKE pre-shared key (64 hex)
 *   POST /v1/nics/:id/fault  {kind:'tear-next-write', atByte}
 *   POST /v1/shutdown                    -> {}                          stops the emulator cleanly
 * Errors: HTTP 4xx/5xx with { error: { code, message } }.
 */
import http from 'node:http';
import type { Fleet } from './fleet.js';
import { LifelineError, UsageError } from '../firmware/errors.js';
import { saFromJson } from '../lib/sa-json.js';
import { fromHex } from '../firmware/bytes.js';
import { HOST_EVENTS } from '../firmware/host-state.js';

const LAB_EVENTS = [...HOST_EVENTS.filter((e) => e !== 'boot-complete'), 'power-restore', 'cable-pull', 'cable-plug'];

export interface ControlServer { port: number; close(): Promise<void> }

export async function startControlServer(fleet: Fleet, host: string, port: number, onShutdown: () => void): Promise<ControlServer> {
  if (!/^127\.\d+\.\d+\.\d+$/.test(host) && host !== 'localhost') {
    throw new UsageError('E_USAGE', `--control must be a loopback address (127.x.y.z), got ${host}`);
  }
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => {
      body += c;
      if (body.length > 1 << 20) req.destroy();
    });
    req.on('end', async () => {
      let status = 200;
      let out: unknown;
      try {
        out = await route(fleet, req.method ?? 'GET', req.url ?? '/', body ? JSON.parse(body) : {}, onShutdown);
      } catch (e) {
        const code = e instanceof LifelineError ? e.code : e instanceof SyntaxError ? 'E_USAGE' : 'E_INTERNAL';
        status = code === 'E_NOT_FOUND' ? 404 : code === 'E_INTERNAL' ? 500 : code === 'E_NIC_DOWN' ? 409 : 400;
        out = { error: { code, message: (e as Error).message } };
      }
      const text = JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(text);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

function route(fleet: Fleet, method: string, url: string, body: Record<string, unknown>, onShutdown: () => void): unknown {
  const path = url.split('?')[0].replace(/\/+$/, '');
  if (method === 'GET' && path === '/v1/health') {
    return {
      pid: process.pid,
      nics: fleet.nics.length,
      running: fleet.nics.filter((n) => n.runState === 'running').length,
      failed: fleet.nics.filter((n) => n.runState === 'failed').length,
      busyPoll: fleet.busyPoll?.stats() ?? null,
    };
  }
  if (method === 'GET' && path === '/v1/nics') return fleet.nics.map((n) => n.status());
  if (method === 'POST' && path === '/v1/shutdown') {
    setImmediate(onShutdown);
    return {};
  }
  const m = /^\/v1\/nics\/([^/]+)(?:\/([a-z-]+))?$/.exec(path);
  if (!m) throw new LifelineError('E_NOT_FOUND', `no such endpoint: ${method} ${path}`);
  const nic = fleet.get(decodeURIComponent(m[1]));
  if (!nic) throw new LifelineError('E_NOT_FOUND', `no NIC '${decodeURIComponent(m[1])}' in this emulator (ids are nic-1..nic-${fleet.nics.length})`);
  const sub = m[2] ?? '';
  if (method === 'GET' && sub === '') return nic.status();
  if (method === 'GET' && sub === 'exec-log') return nic.execLog;
  if (method === 'POST' && sub === 'host') {
    const ev = String(body.event ?? '');
    if (!LAB_EVENTS.includes(ev)) throw new UsageError('E_USAGE', `unknown host event '${ev}'; use one of ${LAB_EVENTS.join(', ')}`);
    return nic.applyHostEvent(ev as Parameters<typeof nic.applyHostEvent>[0]);
  }
  if (method === 'POST' && sub === 'sa') return nic.installSa(saFromJson(body.sa));
  if (method === 'POST' && sub === 'config') {
    if (!Array.isArray(body.clearManagement)) throw new UsageError('E_USAGE', 'config needs clearManagement: [commands]');
    nic.setClearManagement(body.clearManagement.map(String));
    return {};
  }
  if (method === 'POST' && sub === 'policy') {
    nic.setClusterPolicy(String(body.text ?? ''), String(body.source ?? 'policy'));
    return {};
  }
  if (method === 'POST' && sub === 'trust-anchor') {
    nic.setTrustAnchor(fromHex(String(body.psk ?? '')));
    return {};
  }
  if (method === 'POST' && sub === 'fault') {
    if (body.kind !== 'tear-next-write') throw new UsageError('E_USAGE', `unknown fault '${String(body.kind)}'; use tear-next-write`);
    nic.tearNextEepromWrite(Number(body.atByte ?? 0));
    return {};
  }
  throw new LifelineError('E_NOT_FOUND', `no such endpoint: ${method} ${path}`);
}
