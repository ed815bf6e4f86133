/**
 * The emulator's local control API: JSON over HTTP on 127.0.0.1 (never another address).
 *
 *   GET  /                               -> a small HTML index: these endpoints, and where the fleet page is (the station
 *                                           daemon's, docs/FLEET-PAGE.md)
 *   GET  /v1/health                      -> { pid, nics, running, failed, booting (NICs not booted yet: lazy boot,
 *                                            fleet.ts; 0 once all have), busyPoll: { maxUs, windowUs, hits, misses, backoffs }, udpIo,
 *                                            sharedSockets: null | { noNic, portClosed } (datagrams the shared sockets dropped) }
 *   GET  /v1/nics                        -> [status, ...]               (status: see NicNode.status())
 *   GET  /v1/nics/:id                    -> status                      (:id = nic-N or its address)
 *   (Every endpoint under /v1/nics boots a NIC not booted yet before it answers: lazy boot, fleet.ts.)
 *   GET  /v1/nics/:id/exec-log           -> [{ at, command, via, rmcpSeq, tag, generation, ... }]
 *   POST /v1/nics/:id/host   {event}     -> { from, to }   events: hang suspend wake crash power-loss power-restore
 *                                                            cable-pull cable-plug reset power-up power-down power-cycle
 *   POST /v1/nics/:id/sa     {sa}        -> { generation } manual keying: the host driver writes and commits an SA
 *   POST /v1/nics/:id/config {clearManagement: [cmd...]} -> {} the seed's cold-boot option ([] = refuse all)
 *   POST /v1/nics/:id/policy {text, source} -> {}       cluster policy (seed INI); E_POLICY names source:line
 *   POST /v1/nics/:id/trust-anchor {psk} -> {}          enrolment: the admin writes the IKE pre-shared key (64 hex)
 *   POST /v1/nics/:id/ipmi-users {enabled, users: [{name, password, privilege?, enabled?}]} -> {}
 *                                                       IPMI lanplus on/off and its users (at most 8; privilege user,
 *                                                       operator or administrator, default administrator), written to
 *                                                       the EEPROM; every IPMI session ends
 *   POST /v1/nics/:id/fault  {kind:'tear-next-write', atByte}
 *   POST /v1/shutdown                    -> {}                          stops the emulator cleanly
 *   GET  /metrics                        -> Prometheus text (emulator-metrics.ts, docs/METRICS.md): fleet totals, no
 *                                           series per NIC. No credential, like the rest of this API (loopback only,
 *                                           nothing it answers holds a key: ARCHITECTURE.md "Decisions").
 * Errors, as the station daemon's API answers them (lib/json-http.ts): { ok: false, error: { code, message } } with
 * HTTP 400 (E_USAGE and other bad requests: a body that is not a JSON object, a field of the wrong type, bad hex, a
 * malformed NIC id), 404 (E_NOT_FOUND), 405 with Allow (a known endpoint asked with the wrong method), 409 (the NIC's
 * state refuses it: E_NIC_DOWN, the NIC is not running or lost power mid-write; E_SPI_IN_USE, the NIC already holds
 * that SPI; E_ILLEGAL_TRANSITION, a host event its host state does not take), 500 (E_INTERNAL: a bug), 502 (another
 * code: the NIC failed, e.g. its EEPROM).
 */
import http from 'node:http';
import type { Fleet } from './fleet.js';
import { LifelineError, UsageError } from '../common/errors.js';
import { hexField, saFromJson } from '../lib/sa-json.js';
import { decodePathSegment, errorBody, httpStatusOf, readJsonBody, sendJson } from '../lib/json-http.js';
import { HOST_EVENTS } from '../firmware/host-state.js';
import type { IpmiUsersConfig } from '../firmware/ipmi/ipmi-users-record.js';
import { requireLoopback } from '../lib/cli.js';

const LAB_EVENTS = [...HOST_EVENTS.filter((e) => e !== 'boot-complete'), 'power-restore', 'cable-pull', 'cable-plug'];

export interface ControlServer { port: number; close(): Promise<void> }

export async function startControlServer(fleet: Fleet, host: string, port: number, onShutdown: () => void): Promise<ControlServer> {
  requireLoopback('--control', `${host}:${port}`, host);
  // Made at the first scrape: an emulator nobody scrapes loads no prom-client and runs no event-loop monitor.
  let metrics: Promise<import('./emulator-metrics.js').EmulatorMetrics> | null = null;
  const server = http.createServer(async (req, res) => {
    if (req.method === 'GET' && (req.url ?? '/').split('?')[0] === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(INDEX);
      return;
    }
    if (req.method === 'GET' && (req.url ?? '/').split('?')[0] === '/metrics') {
      try {
        metrics ??= import('./emulator-metrics.js').then((m) => new m.EmulatorMetrics(fleet));
        const m = await metrics;
        const { sendMetrics } = await import('../lib/prometheus.js');
        await sendMetrics(res, m.registry, () => m.update());
      } catch (e) {
        sendJson(res, 500, errorBody('E_INTERNAL', (e as Error).message));
      }
      return;
    }
    try {
      sendJson(res, 200, await route(fleet, req.method ?? 'GET', req.url ?? '/', await readJsonBody(req, 1 << 20), onShutdown));
    } catch (e) {
      const code = e instanceof LifelineError ? e.code : 'E_INTERNAL';
      if (e instanceof MethodNotAllowed) sendJson(res, 405, errorBody(code, e.message), { allow: e.allow });
      else sendJson(res, httpStatusOf(code), errorBody(code, (e as Error).message));
    }
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

/** GET /: what this API is, and where to look at the fleet. */
const INDEX = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Lifeline nic-emulator</title></head>
<body style="font:14px system-ui,sans-serif;max-width:44rem;margin:2rem auto">
<h1>Lifeline nic-emulator: control API</h1>
<p>This is the emulated NICs' local control API (JSON). The <b>fleet page</b> is served by the station daemon
(<code>mgmt-station serve</code>), by default at <a href="http://127.0.0.1:8664/">http://127.0.0.1:8664/</a>
(docs/FLEET-PAGE.md).</p>
<ul>
<li><a href="/v1/health">GET /v1/health</a>: the emulator process</li>
<li><a href="/v1/nics">GET /v1/nics</a>: every NIC's status; GET /v1/nics/ID, /v1/nics/ID/exec-log</li>
<li>POST /v1/nics/ID/host {"event": "hang"}: drive the host (nic-emulator host ID EVENT)</li>
<li><a href="/metrics">GET /metrics</a>: Prometheus metrics (docs/METRICS.md)</li>
</ul></body></html>
`;

/** A known endpoint asked with the wrong method: HTTP 405 with an Allow header. */
class MethodNotAllowed extends UsageError {
  constructor(readonly allow: string, method: string, path: string) {
    super('E_USAGE', `${path} takes ${allow}, not ${method}`);
  }
}

/** body[field] as a string; `def` when absent; E_USAGE naming the field when it is anything else. */
function stringField(body: Record<string, unknown>, field: string, def?: string): string {
  const v = body[field];
  if (v === undefined && def !== undefined) return def;
  if (typeof v !== 'string') throw new UsageError('E_USAGE', `${field} must be a string, got ${v === null ? 'null' : typeof v}`);
  return v;
}

/**
 * The body of POST ipmi-users as the machine takes it: `enabled` a boolean, `users` an array of { name, password,
 * privilege (default administrator), enabled (default true) }. The machine checks names, passwords and the count
 * (E_USAGE naming the user, never repeating a password).
 */
function ipmiUsersFromJson(body: Record<string, unknown>): IpmiUsersConfig {
  if (typeof body.enabled !== 'boolean') throw new UsageError('E_USAGE', 'ipmi-users needs enabled: true|false');
  const users = body.users ?? [];
  if (!Array.isArray(users)) throw new UsageError('E_USAGE', 'users must be an array of { name, password, privilege?, enabled? }');
  return {
    enabled: body.enabled,
    users: users.map((u: unknown, i: number) => {
      if (typeof u !== 'object' || u === null || Array.isArray(u)) throw new UsageError('E_USAGE', `users[${i}] must be an object { name, password, privilege?, enabled? }`);
      const o = u as Record<string, unknown>;
      const privilege = o.privilege ?? 'administrator';
      const enabled = o.enabled ?? true;
      if (typeof enabled !== 'boolean') throw new UsageError('E_USAGE', `users[${i}].enabled must be true or false`);
      return { name: o.name as string, password: o.password as string, privilege: privilege as IpmiUsersConfig['users'][number]['privilege'], enabled };
    }),
  };
}

/** Methods of the endpoints under /v1/nics/:id ('' = the NIC itself). */
const NIC_ENDPOINTS: Record<string, 'GET' | 'POST'> = {
  '': 'GET', 'exec-log': 'GET', host: 'POST', sa: 'POST', config: 'POST', policy: 'POST', 'trust-anchor': 'POST', fault: 'POST',
  'ipmi-users': 'POST',
};
const TOP_ENDPOINTS: Record<string, 'GET' | 'POST'> = { '/v1/health': 'GET', '/v1/nics': 'GET', '/v1/shutdown': 'POST', '/metrics': 'GET' };

function route(fleet: Fleet, method: string, url: string, body: Record<string, unknown>, onShutdown: () => void): unknown {
  const path = url.split('?')[0].replace(/\/+$/, '') || '/';
  const top = TOP_ENDPOINTS[path];
  if (top !== undefined && top !== method) throw new MethodNotAllowed(top, method, path);
  if (path === '/v1/health') {
    return {
      pid: process.pid,
      nics: fleet.nics.length,
      running: fleet.nics.filter((n) => n.runState === 'running').length,
      failed: fleet.nics.filter((n) => n.runState === 'failed').length,
      booting: fleet.booting,
      busyPoll: fleet.busyPoll?.stats() ?? null,
      udpIo: fleet.udpIo,
      sharedSockets: fleet.sharedDrops,
    };
  }
  if (path === '/v1/nics') return fleet.nics.map((n) => n.status());
  if (path === '/v1/shutdown') {
    setImmediate(onShutdown);
    return {};
  }
  const m = /^\/v1\/nics\/([^/]+)(?:\/([a-z-]+))?$/.exec(path);
  const sub = m?.[2] ?? '';
  if (!m || !Object.hasOwn(NIC_ENDPOINTS, sub)) throw new LifelineError('E_NOT_FOUND', `no such endpoint: ${method} ${path}`);
  if (NIC_ENDPOINTS[sub] !== method) throw new MethodNotAllowed(NIC_ENDPOINTS[sub], method, path);
  const id = decodePathSegment(m[1]);
  const nic = fleet.get(id);
  if (!nic) throw new LifelineError('E_NOT_FOUND', `no NIC '${id}' in this emulator (ids are nic-1..nic-${fleet.nics.length})`);
  switch (sub) {
    case '':
      return nic.status();
    case 'exec-log':
      return nic.execLog;
    case 'host': {
      const ev = stringField(body, 'event');
      if (!LAB_EVENTS.includes(ev)) throw new UsageError('E_USAGE', `unknown host event '${ev}'; use one of ${LAB_EVENTS.join(', ')}`);
      return nic.applyHostEvent(ev as Parameters<typeof nic.applyHostEvent>[0]);
    }
    case 'sa':
      return nic.installSa(saFromJson(body.sa));
    case 'config': {
      const cm = body.clearManagement;
      if (!Array.isArray(cm) || !cm.every((c) => typeof c === 'string')) throw new UsageError('E_USAGE', 'config needs clearManagement: [commands] (strings)');
      nic.setClearManagement(cm);
      return {};
    }
    case 'policy':
      nic.setClusterPolicy(stringField(body, 'text', ''), stringField(body, 'source', 'policy'));
      return {};
    case 'trust-anchor':
      nic.setTrustAnchor(hexField(body.psk, 'psk'));
      return {};
    case 'ipmi-users':
      nic.setIpmiUsers(ipmiUsersFromJson(body));
      return {};
    case 'fault': {
      if (body.kind !== 'tear-next-write') throw new UsageError('E_USAGE', `unknown fault ${JSON.stringify(body.kind) ?? 'undefined'}; use tear-next-write`);
      const at = body.atByte;
      if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) throw new UsageError('E_USAGE', `atByte must be a whole number >= 0, got ${JSON.stringify(at) ?? 'undefined'}`);
      nic.tearNextEepromWrite(at);
      return {};
    }
  }
  throw new LifelineError('E_INTERNAL', `endpoint ${method} ${path} is listed but not routed`);
}
