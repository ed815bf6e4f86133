/**
 * `mgmt-station serve`: the station daemon. It owns the NICs it holds leases on (DESIGN §5), polls each one
 * over the secure channel (System State), refreshes SAs on its timer only when the host answers IKE (the host
 * agent exists only while the OS is up, DESIGN §2.4-2.5), and serves the CLI's verbs over a local JSON API so
 * commands go through one process that holds the sequence state.
 *
 * Control API (loopback only), at DEFAULT_CONTROL (127.0.0.1:8664) unless `serve --control` names another address.
 * The fleet page and its reads (fleet-page-server.ts, docs/FLEET-PAGE.md) need no credential:
 *   GET  /  /page/*  /vendor/*              -> the page's files
 *   GET  /v1/fleet                          -> the fleet at a glance (fleet-view.ts)
 *   GET  /v1/fleet/nics?q&host&owner&problem&offset&limit -> { total, offset, rows } a page of the NIC list
 *   GET  /v1/fleet/nics/:id                 -> one NIC: poll state, lease, SAs with history, commands, audit, alerts
 *   GET  /v1/fleet/events                   -> server-sent events: glance every second, alert as stored
 * Every other request but GET /v1/identity carries the daemon's credential, `Authorization:
 * Bearer TOKEN`: TOKEN is 32 random bytes (64 hex digits) made at each start and written into the announce file
 * (announce.ts announceFile(), mode 0600, beside an SQLite store), where the CLI of the same user reads it. A request without it or
 * with another is answered 401 { ok: false, error: { code: 'E_AUTH' } } before its body is read: nothing runs. (The
 * 0600 cluster key guards the store; this guards the process that holds the store open.)
 *   GET  /v1/identity                       -> { id, pid }   no credential: a second daemon of this station finds
 *                                              the first at the address the store records (what `ps` shows anyway)
 *   GET  /v1/status                         -> { id, pid, heartbeats, socketDrops, busyPoll, nics: [{ id, host, lastRefresh (ISO),
 *                                              refreshes, lastError, busy, unansweredPolls, dropped: { reason: count } }] };
 *                                              host: the S-state the last poll read, 'unknown (last S0)' after a
 *                                              failed poll; unansweredPolls: in a row (see UNANSWERED_POLLS_BEFORE_REKEY);
 *                                              refreshFailures: in a row; retryRefreshAt: epoch ms (and retryRefreshAtIso), when the daemon may
 *                                              try its own next refresh (null: at any time; core/daemon-core.ts);
 *                                              busyPoll: { maxUs, hits, misses, backoffs } (lib/answer-poll.ts)
 *   GET  /v1/nics                           -> { nics: [{ id, address, ports: { clear, secure, ike }, enrolled, ownedBy }] }
 *                                              the NICs of the store (the CLI finds a NIC by address or pattern here);
 *                                              ownedBy: the other station whose live lease holds it, else null
 *   POST /v1/nics/:id/:verb[?timeout=MS]  (ping|state|capabilities|reset|power-up|power-down|power-cycle|refresh)
 *                                           -> the same JSON the CLI prints with --json; MS (the CLI's --timeout)
 *                                              replaces the daemon's --timeout for this request
 *   POST /v1/nics/:id/enroll[?timeout=MS]    { psk: 64 hex, emulator: HOST:PORT }  -> as `enroll NIC --json`
 *                                              (the key exchange gets at least 10 s)
 *   POST /v1/nics/:id/sa-manual[?timeout=MS] { sa: SaPairJson (lib/sa-json.ts), emulator } -> as `sa manual NIC --json`
 *   GET  /metrics                           -> Prometheus text (station-metrics.ts, docs/METRICS.md). It takes the API's
 *                                              credential or a scrape-only one: 32 other random bytes made at each
 *                                              start and written alone into metricsTokenFile() (0600, beside the
 *                                              announce file), which Prometheus reads as `authorization:
 *                                              credentials_file` at every scrape. That token opens /metrics and
 *                                              nothing else: what Prometheus holds cannot power-cycle a NIC.
 * Errors, as the emulator's control API answers them (lib/json-http.ts): { ok: false, error: { code, message } } with
 * the HTTP status of the code: 400 a bad request (E_USAGE), 401 E_AUTH, 404 E_NOT_FOUND, 409 the NIC's or the
 * station's state refuses it (E_FENCED, ...), 500 E_INTERNAL (a bug), 502 the NIC or its host failed (E_IKE_*, ...),
 * 503 the store or the emulator is unreachable, 504 no answer in time (E_TIMEOUT, E_OUTCOME_UNKNOWN).
 * Every verb that changes a NIC's SA or PSK runs here while the daemon runs (the CLI forwards enroll, refresh
 * and sa manual, one NIC or all): the daemon's session and key exchange then move with it. A change made by
 * another process anyway (--no-daemon, a station elsewhere with this id) is noticed at the next poll and before
 * each verb: the session reloads when the store's active SA is not its own (StationContext.syncWithStore), the
 * key exchange is made anew when the stored PSK changed.
 * A restart (even kill -9) resumes from the store: SAs, sequence reservations and the command log.
 */
import http from 'node:http';
import { readFileSync, rmSync } from 'node:fs';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { emulatorControl, type StationContext } from './context.js';
import { LifelineError, UsageError } from '../common/errors.js';
import type { Logger } from '../lib/log.js';
import { metricsTokenFile } from './announce.js';
import type { AlertRecord } from './store/store.js';
import { ControlClient, controlTimeoutMs, keepAliveAgent } from '../lib/control-client.js';
import { hexField, saFromJson } from '../lib/sa-json.js';
import { decodePathSegment, errorBody, httpStatusOf, readJsonBody, sendJson } from '../lib/json-http.js';
import { writeSecretFile } from '../lib/secret-file.js';
import { DaemonCore, type DaemonTimes } from './core/daemon-core.js';
import type { CommandKind, ReadKind } from './core/session.js';
import { outcomeOf } from './core/station.js';
import type { StationMetrics } from './station-metrics.js';
import { FleetView } from './fleet-view.js';
import { isPageRequest, servePage } from './fleet-page-server.js';
import { MAX_FLEET_CONCURRENCY } from '../lib/fleet-run.js';

export { validateLifetime } from './core/daemon-core.js';

/** An epoch-ms time as ISO 8601, null for 0 or none (never). */
const iso = (ms: number | null | undefined): string | null => (ms ? new Date(ms).toISOString() : null);

/** Where `serve` puts its control API and fleet page unless --control says otherwise: stable, so the page's address is. */
export const DEFAULT_CONTROL = '127.0.0.1:8664';

export interface DaemonOptions extends DaemonTimes {
  controlHost: string;
  controlPort: number;
  /** Where the daemon announces its control address, so CLI verbs find it (announceFile()). */
  announceFile: string;
  /** The store it serves, as announcedStore() names it: recorded in the announce file, checked by the CLI. */
  store: string;
}

const READS: Record<string, ReadKind> = { ping: 'presence-ping', state: 'system-state-request', capabilities: 'capabilities-request' };
const COMMANDS = ['reset', 'power-up', 'power-down', 'power-cycle'];

/** The daemon process: its control API and announce file around the daemon's decisions (core/daemon-core.ts). */
export class StationDaemon {
  private server: http.Server | null = null;
  readonly core: DaemonCore;
  port = 0;
  /** The credential of this run (see the file comment): its SHA-256, compared in constant time. */
  private readonly token = randomBytes(32).toString('hex');
  private readonly tokenHash = createHash('sha256').update(this.token).digest();
  /** The scrape-only credential of this run (GET /metrics only), and the series it serves (made in start()). */
  private readonly metricsToken = randomBytes(32).toString('hex');
  private readonly metricsTokenHash = createHash('sha256').update(this.metricsToken).digest();
  private metrics: StationMetrics | null = null;
  /** The fleet page's reads and event stream (fleet-view.ts, docs/FLEET-PAGE.md). */
  readonly fleet: FleetView;
  /**
   * Connections to the emulators' control APIs, kept open between requests: an enrolment makes two (the NIC's
   * record, its trust anchor), and a fleet's enrolment runs many at once (lib/fleet-run.ts).
   */
  private readonly emulatorAgent = keepAliveAgent(MAX_FLEET_CONCURRENCY);

  constructor(private readonly ctx: StationContext, private readonly o: DaemonOptions, log: Logger) {
    this.core = new DaemonCore(ctx, o, (level, msg, fields) => log.log(level, msg, fields));
    ctx.keyingLog = (level, msg, fields) => log.log(level, msg, fields);
    // Every alert this daemon's sessions store (docs/ALERTS.md): one log line, rate-limited per NIC like the rest.
    this.fleet = new FleetView(ctx, this.core);
    ctx.o.onAlert = (a) => {
      this.fleet.recordAlert(a);
      logAlert(a);
    };
    const logAlert = (a: AlertRecord) => log.log(a.severity >= 0x08 ? 'warn' : 'info', 'alert', { nic: a.nic, event: a.event, severity: a.severity, petSequence: a.petSequence, alertId: a.alertId });
  }

  get heartbeats(): DaemonCore['heartbeats'] {
    return this.core.heartbeats;
  }

  async start(): Promise<void> {
    await this.refuseIfRunningElsewhere();
    // Loaded here, not at import: the CLI imports this file and must not pay for prom-client.
    const { StationMetrics } = await import('./station-metrics.js');
    this.metrics = new StationMetrics(this.ctx, this.core);
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.controlPort, this.o.controlHost, () => resolve());
    });
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : this.o.controlPort;
    // 0600, and a new file each time (lib/secret-file.ts): it holds the credential.
    writeSecretFile(metricsTokenFile(this.o.announceFile), this.metricsToken + '\n');
    writeSecretFile(this.o.announceFile, JSON.stringify({ pid: process.pid, control: `${this.o.controlHost}:${this.port}`, id: this.ctx.o.stationId, store: this.o.store, timeoutMs: this.o.timeoutMs, token: this.token }) + '\n');
    await this.ctx.store.touchStation(this.ctx.o.stationId, `${this.o.controlHost}:${this.port}`, this.ctx.now());
    this.fleet.start();
    await this.core.start(await this.ctx.udp());
  }

  /**
   * One daemon per station id and store, also when this store is reached by another name (a symlinked path, another
   * spelling of a PostgreSQL URL) and so by another announce file: the store records where this station's daemon
   * last listened (touchStation); a daemon still answering there as this station is running. Two daemons of one
   * station would fight over its IKE SAs and its sessions.
   */
  private async refuseIfRunningElsewhere(): Promise<void> {
    const id = this.ctx.o.stationId;
    const prior = (await this.ctx.store.listStations()).find((s) => s.id === id);
    if (!prior?.address) return;
    const st = await fetch(`http://${prior.address}/v1/identity`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.json() as Promise<{ id?: string; pid?: number }>)
      .catch(() => null); // nothing answers there: that daemon is gone
    if (st && st.id === id && st.pid !== process.pid) {
      throw new LifelineError('E_RUNNING', `station '${id}' already has a daemon on this store: pid ${st.pid} at http://${prior.address}; stop it first (kill ${st.pid}) or use another --id`);
    }
  }

  /** Does the request carry this run's credential (Authorization: Bearer TOKEN)? `orMetrics`: or the scrape-only one. */
  private authorized(req: http.IncomingMessage, orMetrics = false): boolean {
    const m = /^Bearer ([0-9a-f]{64})$/i.exec(req.headers.authorization ?? '');
    if (m === null) return false;
    const h = createHash('sha256').update(m[1].toLowerCase()).digest();
    // Both compared, in constant time: which one matched is not told by the time taken.
    const api = timingSafeEqual(h, this.tokenHash);
    const scrape = timingSafeEqual(h, this.metricsTokenHash);
    return api || (orMetrics && scrape);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let status = 200;
    let out: unknown;
    /** A verb of the API being served (counted and timed for /metrics), and how it ended. */
    let timed: { verb: string; t0: number } | null = null;
    let outcome = 'ok';
    const headers: Record<string, string> = {};
    try {
      const url = new URL(req.url ?? '/', 'http://daemon');
      const path = url.pathname;
      if (req.method === 'GET' && path === '/v1/identity') {
        out = { id: this.ctx.o.stationId, pid: process.pid };
        return;
      }
      if (isPageRequest(req.method, path)) {
        out = await servePage(this.fleet, req, res, url); // null: answered there (a file, the event stream)
        return;
      }
      if (req.method === 'GET' && path === '/metrics' && this.metrics && this.authorized(req, true)) {
        const m = this.metrics;
        await sendMetricsAnswer(res, m);
        return;
      }
      if (!this.authorized(req)) {
        status = 401;
        headers['www-authenticate'] = 'Bearer realm="lifeline station daemon"';
        out = errorBody('E_AUTH', `the station daemon's control API needs its credential (Authorization: Bearer TOKEN, TOKEN from ${this.o.announceFile}, mode 0600); the mgmt-station CLI of the same user sends it`);
        req.resume(); // the body is not read: drain it so the answer can be sent
        return;
      }
      // The CLI's --timeout for this verb (?timeout=MS); the daemon's own --timeout when absent.
      const t = url.searchParams.get('timeout');
      const timeoutMs = t === null ? this.o.timeoutMs : Number(t);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('E_USAGE', `timeout must be a positive whole number of ms, got '${t}'`);
      if (req.method === 'GET' && path === '/v1/status') {
        const drops = this.ctx.drops();
        out = {
          id: this.ctx.o.stationId, pid: process.pid, heartbeats: this.heartbeats, socketDrops: drops.socket,
          busyPoll: this.ctx.answerPoll(),
          nics: [...this.core.nics].map(([id, s]) => ({
            // Times as ISO 8601 strings, as everywhere else; retryRefreshAt stays in epoch ms beside its ISO form
            // (scripts compare it with Date.now()).
            id, host: s.host, lastRefresh: iso(s.lastRefresh), refreshes: s.refreshes, lastError: s.lastError, busy: s.busy,
            unansweredPolls: s.unanswered, refreshFailures: s.refreshFailures, retryRefreshAt: s.retryRefreshAt || null,
            retryRefreshAtIso: iso(s.retryRefreshAt), dropped: drops.nics[id] ?? {},
          })),
        };
      } else if (req.method === 'GET' && path === '/v1/nics') {
        const nics = [];
        const owners = await this.ctx.ownersElsewhere();
        for (const n of await this.ctx.store.listNics()) {
          nics.push({
            id: n.id, address: n.address, ports: { clear: n.clearPort, secure: n.securePort, ike: n.ikePort },
            enrolled: n.meta.enrolled === true, ownedBy: owners.get(n.id) ?? null,
          });
        }
        out = { nics };
      } else {
        const m = /^\/v1\/nics\/([^/]+)\/([a-z-]+)$/.exec(path);
        if (req.method !== 'POST' || !m) throw new LifelineError('E_NOT_FOUND', `no such endpoint: ${req.method} ${path}`);
        const [nic, verb] = [decodePathSegment(m[1]), m[2]];
        timed = { verb, t0: performance.now() };
        const body = await readJsonBody(req, 65536);
        const emu = () => {
          const c = ControlClient.parse(String(body.emulator ?? ''), undefined, controlTimeoutMs(timeoutMs));
          c.agent = this.emulatorAgent;
          return emulatorControl(c);
        };
        if (READS[verb]) out = await this.core.read(nic, READS[verb], timeoutMs);
        else if (COMMANDS.includes(verb)) out = await this.core.command(nic, verb as CommandKind, timeoutMs);
        else if (verb === 'enroll') {
          const psk = hexField(body.psk, 'psk');
          if (psk.length !== 32) throw new UsageError('E_USAGE', `enroll needs { psk: 64 hex digits, emulator: HOST:PORT }; psk is ${psk.length} bytes`);
          out = await this.core.enroll(emu(), nic, psk, timeoutMs);
        } else if (verb === 'sa-manual') out = await this.core.manualSa(emu(), nic, saFromJson(body.sa));
        else if (verb === 'refresh') out = await this.core.refresh(nic, null, timeoutMs);
        else throw new UsageError('E_USAGE', `unknown verb '${verb}'`);
        // Rounded as the CLI rounds them when it runs the verb itself.
        const o = out as { rttMs?: unknown; ms?: unknown };
        if (typeof o.rttMs === 'number') o.rttMs = Math.round(o.rttMs * 1000) / 1000;
        if (typeof o.ms === 'number') o.ms = Math.round(o.ms * 1000) / 1000;
        out = { ok: true, ...(out as object) };
      }
    } catch (e) {
      const code = e instanceof LifelineError ? e.code : 'E_INTERNAL';
      status = httpStatusOf(code);
      out = errorBody(code, (e as Error).message);
      outcome = outcomeOf(e);
      this.core.countStoreError(e);
    } finally {
      if (timed) {
        this.metrics?.observeVerb(timed.verb, outcome, (performance.now() - timed.t0) / 1000);
        this.fleet.recordVerb(outcome);
      }
      if (res.headersSent) return; // a scrape answered above
      sendJson(res, status, out, headers);
    }
  }

  async stop(): Promise<void> {
    // Out of the cluster's members first: the other stations take our NICs at their next round (DaemonCore.leave).
    await this.core.leave().catch(() => this.core.stop()); // a store that fails: the member row lapses on its own
    this.fleet.close();
    // Only our own announce file: a file naming another process belongs to another daemon of this station.
    try {
      if ((JSON.parse(readFileSync(this.o.announceFile, 'utf8')) as { pid?: number }).pid === process.pid) {
        rmSync(this.o.announceFile, { force: true });
        rmSync(metricsTokenFile(this.o.announceFile), { force: true });
      }
    } catch {
      /* gone or unreadable: not ours to remove */
    }
    this.emulatorAgent.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await this.ctx.close();
  }
}

/** A scrape's answer: the station's series, read from the cores just before they render. */
async function sendMetricsAnswer(res: http.ServerResponse, m: StationMetrics): Promise<void> {
  const { sendMetrics } = await import('../lib/prometheus.js');
  await sendMetrics(res, m.registry, () => m.update());
}
