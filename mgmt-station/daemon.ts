/**
 * `mgmt-station serve`: the station daemon. It owns the NICs it holds leases on (DESIGN §5), polls each one
 * over the secure channel (System State), refreshes SAs on its timer only when the host answers IKE (the host
 * agent exists only while the OS is up, DESIGN §2.4-2.5), and serves the CLI's verbs over a local JSON API so
 * commands go through one process that holds the sequence state.
 *
 * Control API (127.0.0.1 only):
 *   GET  /v1/status                         -> { id, pid, heartbeats, socketDrops, busyPoll, nics: [{ id, host, lastRefresh,
 *                                              refreshes, lastError, busy, unansweredPolls, dropped: { reason: count } }] };
 *                                              host: the S-state the last poll read, 'unknown (last S0)' after a
 *                                              failed poll; unansweredPolls: in a row (see UNANSWERED_POLLS_BEFORE_REKEY);
 *                                              busyPoll: { maxUs, hits, misses, backoffs } (lib/answer-poll.ts)
 *   GET  /v1/nics                           -> { nics: [{ id, enrolled, ownedBy }] }   the NICs of the store;
 *                                              ownedBy: the other station whose live lease holds it, else null
 *   POST /v1/nics/:id/:verb[?timeout=MS]  (ping|state|capabilities|reset|power-up|power-down|power-cycle|refresh)
 *                                           -> the same JSON the CLI prints with --json; MS (the CLI's --timeout)
 *                                              replaces the daemon's --timeout for this request
 *   POST /v1/nics/:id/enroll[?timeout=MS]    { psk: 64 hex, emulator: HOST:PORT }  -> as `enroll NIC --json`
 *                                              (the key exchange gets at least 10 s)
 *   POST /v1/nics/:id/sa-manual[?timeout=MS] { sa: SaPairJson (lib/sa-json.ts), emulator } -> as `sa manual NIC --json`
 * Every verb that changes a NIC's SA or PSK runs here while the daemon runs (the CLI forwards enroll, refresh
 * and sa manual, one NIC or all): the daemon's session and key exchange then move with it. A change made by
 * another process anyway (--no-daemon, a station elsewhere with this id) is noticed at the next poll and before
 * each verb: the session reloads when the store's active SA is not its own (StationContext.syncWithStore), the
 * key exchange is made anew when the stored PSK changed.
 * A restart (even kill -9) resumes from the store: SAs, sequence reservations and the command log.
 */
import http from 'node:http';
import { readFileSync, realpathSync, writeFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { StationContext } from './context.js';
import { LifelineError, UsageError } from '../common/errors.js';
import type { CommandKind, ReadKind } from './nic-session.js';
import type { Logger } from '../lib/log.js';
import type { NicRecord } from './store/store.js';
import { redactedStoreUrl, sqlitePathOf } from './store/store-url.js';
import { ControlClient, controlTimeoutMs } from '../lib/control-client.js';
import { hexField, saFromJson } from '../lib/sa-json.js';
import { decodePathSegment, readJsonBody } from '../lib/json-http.js';
import type { ExchangeResult } from './key-exchange.js';
import { HEARTBEAT_SPI } from '../wire/sa.js';
import { answerProbe, HEARTBEAT_LENGTH } from '../wire/heartbeat-frame.js';

export interface DaemonOptions {
  /** Seconds between SA refreshes of a NIC (DESIGN §2.5). */
  refreshIntervalS: number;
  /** Longest time a host may be down (no refresh possible) that the lifetime must still cover. */
  maxDownTimeS: number;
  /** SA lifetime in seconds; Infinity = the seed's default. */
  lifetimeS: number;
  pollIntervalMs: number;
  timeoutMs: number;
  controlHost: string;
  controlPort: number;
  /** Where the daemon announces its control address, so CLI verbs find it (announceFile()). */
  announceFile: string;
  /** The store it serves, as announcedStore() names it: recorded in the announce file, checked by the CLI. */
  store: string;
  /** Lease renewals happen every poll; the lease must outlast a poll interval. */
  leaseMs: number;
}

const READS: Record<string, ReadKind> = { ping: 'presence-ping', state: 'system-state-request', capabilities: 'capabilities-request' };
const COMMANDS = ['reset', 'power-up', 'power-down', 'power-cycle'];

/**
 * NICs polled at once. Their network waits overlap, so one NIC that does not answer costs the others nothing;
 * the bound keeps a large fleet's round from opening thousands of exchanges at once. Lease renewal never waits
 * for it (StationDaemon.tick).
 */
const MAX_POLLS_IN_FLIGHT = 32;

/**
 * Polls in a row that got no answer at all (E_TIMEOUT) before the daemon tries a key exchange with the NIC's host
 * on its own: the NIC may no longer hold our SA (re-keyed by a station elsewhere, or its EEPROM replaced). If the
 * host is up, the exchange keys the NIC anew and polls resume; if the NIC is just unreachable, it fails like the
 * polls. At most one such attempt per REKEY_RETRY_MS, so an unreachable NIC costs one exchange's timeout per 30 s.
 */
const UNANSWERED_POLLS_BEFORE_REKEY = 3;
const REKEY_RETRY_MS = 30_000;

/** Runs at most `max` tasks at once, the rest in arrival order. */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    while (this.active >= this.max) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/**
 * A store URL as the announce file names it: an SQLite store by its absolute path (sqlite:var/x.db and
 * sqlite:/abs/var/x.db are one store), any other URL as given with its password masked (it is written to a file).
 */
export function announcedStore(storeUrl: string): string {
  const path = sqlitePathOf(storeUrl);
  if (path !== null && path !== ':memory:') {
    const file = resolvePath(path);
    // The directory without symlinks, so that every path to the same file names the same daemon.
    let dir = dirname(file);
    try {
      dir = realpathSync(dir);
    } catch {
      /* not there yet: the store will be created, nobody can run on it */
    }
    return `sqlite:${join(dir, basename(file))}`;
  }
  return redactedStoreUrl(storeUrl);
}

/**
 * Where the daemon of station `id` on `storeUrl` announces itself: beside an SQLite store, else under ./var, named
 * by the station id and a hash of the store (announcedStore), so that two stores in one directory, or two
 * PostgreSQL databases, each have their own daemon per station id.
 */
export function announceFile(storeUrl: string, id: string): string {
  const store = announcedStore(storeUrl);
  const file = sqlitePathOf(store);
  const dir = file !== null && file !== ':memory:' ? dirname(file) : resolvePath('var');
  const hash = createHash('sha256').update(store).digest('hex').slice(0, 12);
  return join(dir, `station-${id}.${hash}.daemon.json`);
}

export function validateLifetime(o: Pick<DaemonOptions, 'refreshIntervalS' | 'maxDownTimeS' | 'lifetimeS'>): void {
  if (!(o.refreshIntervalS > 0)) throw new UsageError('E_USAGE', '--refresh-interval must be > 0 seconds');
  if (!(o.maxDownTimeS >= 0)) throw new UsageError('E_USAGE', '--max-down-time must be >= 0 seconds');
  if (o.refreshIntervalS + o.maxDownTimeS > o.lifetimeS) {
    throw new UsageError(
      'E_USAGE',
      `refresh interval (${o.refreshIntervalS} s) + max down time (${o.maxDownTimeS} s) exceeds the SA lifetime (${o.lifetimeS} s): an SA could expire while the host is down; raise --lifetime or lower the others`,
    );
  }
}

interface NicState {
  lastRefresh: number;
  host: string;
  lastError: string | null;
  refreshes: number;
  busy: boolean;
  /** Polls in a row with no answer (E_TIMEOUT); and when the daemon last re-keyed on that account (ms, 0 = never). */
  unanswered: number;
  rekeyTriedAt: number;
}

export class StationDaemon {
  private server: http.Server | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly nics = new Map<string, NicState>();
  private stopped = false;
  private readonly polls = new Limiter(MAX_POLLS_IN_FLIGHT);
  port = 0;
  readonly heartbeats = { answered: 0, unknownSpi: 0, badProbe: 0, ownedElsewhere: 0, adopted: 0 };

  constructor(private readonly ctx: StationContext, private readonly o: DaemonOptions, private readonly log: Logger) {
    validateLifetime(o);
    if (o.pollIntervalMs >= o.leaseMs) throw new UsageError('E_USAGE', `--poll-interval (${o.pollIntervalMs} ms) must be shorter than --lease-ms (${o.leaseMs} ms): the lease is renewed at every poll`);
  }

  async start(): Promise<void> {
    await this.refuseIfRunningElsewhere();
    this.server = http.createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.o.controlPort, this.o.controlHost, () => resolve());
    });
    const a = this.server.address();
    this.port = typeof a === 'object' && a ? a.port : this.o.controlPort;
    writeFileSync(this.o.announceFile, JSON.stringify({ pid: process.pid, control: `${this.o.controlHost}:${this.port}`, id: this.ctx.o.stationId, store: this.o.store, timeoutMs: this.o.timeoutMs }) + '\n');
    await this.ctx.store.touchStation(this.ctx.o.stationId, `${this.o.controlHost}:${this.port}`, this.ctx.now());
    const mux = await this.ctx.udp();
    mux.register(HEARTBEAT_SPI, (bytes, from) => void this.onHeartbeat(bytes, from).catch(() => undefined));
    // Restore every NIC's channel from the store right away: no key exchange needed (DESIGN §2.6, §4 station cold
    // boot). The ready line waits for that first round's polls; the timer keeps renewing leases meanwhile.
    const first = await this.tick();
    this.schedule();
    await first.polls;
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
    const st = await fetch(`http://${prior.address}/v1/status`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.json() as Promise<{ id?: string; pid?: number }>)
      .catch(() => null); // nothing answers there: that daemon is gone
    if (st && st.id === id && st.pid !== process.pid) {
      throw new LifelineError('E_RUNNING', `station '${id}' already has a daemon on this store: pid ${st.pid} at http://${prior.address}; stop it first (kill ${st.pid}) or use another --id`);
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick().catch((e) => this.log.log('warn', 'poll round failed', { error: (e as Error).message })).finally(() => this.schedule()), this.o.pollIntervalMs);
  }

  /**
   * One poll round. First every lease is renewed, in one pass over the store and before any network wait
   * (DESIGN §5: a daemon renews its leases at every poll): a NIC that does not answer must never delay the
   * renewal of another NIC's lease, or a live owner would lose NICs to its backup. Then each owned NIC is polled
   * (System State, a refresh when due) in the background, at most MAX_POLLS_IN_FLIGHT at once and one at a time
   * per NIC (`busy`); the next round does not wait for them. Resolves once the leases are renewed, with a
   * promise that settles when the polls this round started have finished.
   */
  private async tick(): Promise<{ polls: Promise<unknown> }> {
    const owned: NicRecord[] = [];
    for (const n of await this.ctx.store.listNics()) {
      const st = this.nicState(n.id);
      try {
        await this.ctx.fence(n.id);
        owned.push(n);
      } catch (e) {
        // Another live station owns it: not ours to poll (DESIGN §5). Drop any stale claim we had.
        if ((e as LifelineError).code === 'E_FENCED') {
          this.ctx.dropSession(n.id);
          st.host = 'owned elsewhere';
        } else st.lastError = (e as Error).message;
      }
    }
    const polls: Promise<void>[] = [];
    for (const n of owned) {
      const st = this.nicState(n.id);
      if (st.busy) continue; // its previous poll still waits for the NIC: its lease was renewed above all the same
      st.busy = true;
      polls.push(this.polls.run(() => this.poll(n, st)).finally(() => (st.busy = false)));
    }
    return { polls: Promise.allSettled(polls) }; // wrapped: an async function would wait for a returned promise
  }

  private nicState(nic: string): NicState {
    let st = this.nics.get(nic);
    if (!st) this.nics.set(nic, (st = { lastRefresh: Date.now(), host: 'unknown', lastError: null, refreshes: 0, busy: false, unanswered: 0, rekeyTriedAt: 0 }));
    return st;
  }

  /** Poll one NIC whose lease this round renewed: read the host state, refresh the SA when due. */
  private async poll(n: NicRecord, st: NicState): Promise<void> {
    if (this.stopped) return;
    try {
      await this.ctx.syncWithStore(n); // another process may have re-keyed it (see the file comment)
      const s = await this.ctx.session(n.id);
      if (this.ctx.takeovers.has(n.id)) await this.afterTakeover(n.id);
      const r = await s.read('system-state-request', Math.min(this.o.timeoutMs, this.o.pollIntervalMs), true);
      const code = (r.response as { systemState?: number }).systemState;
      st.host = code === 0 ? 'S0' : code === 3 ? 'S3' : code === 5 ? 'S5' : `state ${code}`;
      st.unanswered = 0;
      const due = Date.now() - st.lastRefresh >= this.o.refreshIntervalS * 1000;
      // Refresh only when the host can be up (S0); a hung host does not answer IKE and the attempt just fails.
      if (due && code === 0 && n.psk.length > 0 && n.meta.enrolled === true) await this.refresh(n.id, st);
      st.lastError = null;
    } catch (e) {
      const code = (e as LifelineError).code;
      const error = (e as Error).message;
      // Said once per new error, not at every poll of a NIC that stays unreachable (status shows the latest).
      if (error !== st.lastError) this.log.log('warn', 'poll failed', { nic: n.id, code, error });
      st.lastError = error;
      // The host state is no longer known: show the last one read as stale rather than as current.
      if (!st.host.startsWith('unknown')) st.host = st.host === 'owned elsewhere' ? 'unknown' : `unknown (last ${st.host})`;
      // The SA's counter is used up (RFC 4303 §3.3.3): refresh now rather than on the timer.
      if (code === 'E_SEQ_EXHAUSTED' && n.meta.enrolled === true) {
        await this.refresh(n.id, st).then(() => (st.lastError = null)).catch((e2) => (st.lastError = (e2 as Error).message));
      }
      if (code === 'E_TIMEOUT') await this.rekeyIfSilent(n, st);
    }
  }

  /** See UNANSWERED_POLLS_BEFORE_REKEY. Only for an enrolled NIC (a PSK to run IKE with); a manual SA has none. */
  private async rekeyIfSilent(n: NicRecord, st: NicState): Promise<void> {
    st.unanswered++;
    const now = Date.now();
    if (st.unanswered < UNANSWERED_POLLS_BEFORE_REKEY || now - st.rekeyTriedAt < REKEY_RETRY_MS) return;
    if (n.psk.length === 0 || n.meta.enrolled !== true) return;
    st.rekeyTriedAt = now;
    this.log.log('warn', 'NIC does not answer under its SA; trying a key exchange with its host', { nic: n.id, unansweredPolls: st.unanswered });
    try {
      await this.refresh(n.id, st);
      st.unanswered = 0;
      st.lastError = null;
    } catch (e) {
      this.log.log('warn', 'key exchange after unanswered polls failed', { nic: n.id, code: (e as LifelineError).code, error: (e as Error).message });
    }
  }

  /**
   * We took the NIC over (its owner's lease lapsed): tell the NIC. (The session, when it opened, already finished
   * the commands the former owner logged as sent but never saw acknowledged: context.ts.)
   */
  private async afterTakeover(nic: string): Promise<void> {
    this.ctx.takeovers.delete(nic);
    const s = await this.ctx.session(nic);
    const lease = await this.ctx.store.getLease(nic);
    const mux = await this.ctx.udp();
    this.log.log('info', 'took NIC over', { nic, epoch: lease?.epoch });
    await s.notifyOwner(lease?.epoch ?? 0, { address: mux.address, port: mux.port }, this.o.timeoutMs).catch((e) =>
      this.log.log('warn', 'owner notice not acknowledged', { nic, error: (e as Error).message }),
    );
  }

  /**
   * A heartbeat probe from a NIC (DESIGN §2.3). The probe names the SA it was sent under; a station that does
   * not hold that SA yet adopts it from the store (DESIGN §5 "adoption by SPI") — only after the probe
   * verified, and only if the lease is free — and answers without a key exchange.
   */
  private async onHeartbeat(bytes: Uint8Array, from: { address: string; port: number }): Promise<void> {
    if (bytes.length !== HEARTBEAT_LENGTH) {
      this.heartbeats.badProbe++;
      return;
    }
    const spi = ((bytes[4] << 24) | (bytes[5] << 16) | (bytes[6] << 8) | bytes[7]) >>> 0;
    const stored = await this.ctx.store.findSaBySpi(spi);
    if (!stored) {
      this.heartbeats.unknownSpi++;
      return;
    }
    const answer = answerProbe(bytes, stored.pair);
    if (!answer.ok) {
      this.heartbeats.badProbe++;
      return;
    }
    try {
      await this.ctx.fence(stored.nic);
    } catch {
      this.heartbeats.ownedElsewhere++;
      return;
    }
    const mux = await this.ctx.udp();
    mux.send(answer.bytes, from.port, from.address);
    this.heartbeats.answered++;
    if (this.ctx.takeovers.has(stored.nic)) {
      this.heartbeats.adopted++;
      await this.afterTakeover(stored.nic);
    }
  }

  /** A refresh of a NIC of the store (`st`: its poll state, made only once the NIC is known: no phantom in status). */
  private async refresh(nic: string, st: NicState | null, timeoutMs = this.o.timeoutMs): Promise<ExchangeResult> {
    const n = await this.ctx.store.getNic(nic);
    if (!n) throw new LifelineError('E_NOT_FOUND', `NIC '${nic}' is not enrolled`);
    st ??= this.nicState(nic);
    const r = await this.ctx.keyExchange(n, 'refresh', Math.max(timeoutMs, 5000));
    st.lastRefresh = Date.now();
    st.refreshes++;
    this.log.log('info', 'SA refreshed', { nic, generation: r.generation, exchange: r.exchange, ms: Math.round(r.ms) });
    return r;
  }

  /** `enroll NIC --psk-file F`, forwarded by the CLI: StationContext.enroll, here, so this process's key exchange holds the new PSK. */
  private async enroll(nicId: string, body: Record<string, unknown>, timeoutMs: number): Promise<ExchangeResult> {
    const psk = hexField(body.psk, 'psk');
    if (psk.length !== 32) throw new UsageError('E_USAGE', `enroll needs { psk: 64 hex digits, emulator: HOST:PORT }; psk is ${psk.length} bytes`);
    const r = await this.ctx.enroll(ControlClient.parse(String(body.emulator ?? ''), undefined, controlTimeoutMs(timeoutMs)), nicId, psk, Math.max(timeoutMs, 10000));
    this.nicState(r.nic).lastRefresh = Date.now();
    this.log.log('info', 'NIC enrolled', { nic: r.nic, generation: r.generation });
    return r;
  }

  /**
   * `sa manual NIC`, forwarded by the CLI with the SA it made (RFC 4301 manual keying): StationContext.installManualSa,
   * here, so this process's session moves to it.
   */
  private async manualSa(nicId: string, body: Record<string, unknown>, timeoutMs: number): Promise<object> {
    const r = await this.ctx.installManualSa(ControlClient.parse(String(body.emulator ?? ''), undefined, controlTimeoutMs(timeoutMs)), nicId, saFromJson(body.sa));
    this.log.log('info', 'manual SA installed', { nic: r.nic, generation: r.generation });
    return r;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let status = 200;
    let out: unknown;
    try {
      const url = new URL(req.url ?? '/', 'http://daemon');
      const path = url.pathname;
      // The CLI's --timeout for this verb (?timeout=MS); the daemon's own --timeout when absent.
      const t = url.searchParams.get('timeout');
      const timeoutMs = t === null ? this.o.timeoutMs : Number(t);
      if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new UsageError('E_USAGE', `timeout must be a positive whole number of ms, got '${t}'`);
      if (req.method === 'GET' && path === '/v1/status') {
        const drops = this.ctx.drops();
        out = {
          id: this.ctx.o.stationId, pid: process.pid, heartbeats: this.heartbeats, socketDrops: drops.socket,
          busyPoll: this.ctx.answerPoll(),
          nics: [...this.nics].map(([id, s]) => ({
            id, host: s.host, lastRefresh: s.lastRefresh, refreshes: s.refreshes, lastError: s.lastError, busy: s.busy,
            unansweredPolls: s.unanswered, dropped: drops.nics[id] ?? {},
          })),
        };
      } else if (req.method === 'GET' && path === '/v1/nics') {
        const nics = [];
        for (const n of await this.ctx.store.listNics()) nics.push({ id: n.id, enrolled: n.meta.enrolled === true, ownedBy: await this.ctx.ownerElsewhere(n.id) });
        out = { nics };
      } else {
        const m = /^\/v1\/nics\/([^/]+)\/([a-z-]+)$/.exec(path);
        if (req.method !== 'POST' || !m) throw new LifelineError('E_NOT_FOUND', `no such endpoint: ${req.method} ${path}`);
        const [nic, verb] = [decodePathSegment(m[1]), m[2]];
        const body = await readJsonBody(req, 65536);
        if (READS[verb] || COMMANDS.includes(verb)) {
          const stored = await this.ctx.store.getNic(nic);
          if (stored) await this.ctx.syncWithStore(stored);
        }
        if (READS[verb]) out = await (await this.ctx.session(nic)).read(READS[verb], timeoutMs);
        else if (COMMANDS.includes(verb)) out = await (await this.ctx.session(nic)).command(verb as CommandKind, timeoutMs);
        else if (verb === 'enroll') out = await this.enroll(nic, body, timeoutMs);
        else if (verb === 'sa-manual') out = await this.manualSa(nic, body, timeoutMs);
        else if (verb === 'refresh') {
          out = await this.refresh(nic, null, timeoutMs);
        } else throw new UsageError('E_USAGE', `unknown verb '${verb}'`);
        // Rounded as the CLI rounds them when it runs the verb itself.
        const o = out as { rttMs?: unknown; ms?: unknown };
        if (typeof o.rttMs === 'number') o.rttMs = Math.round(o.rttMs * 1000) / 1000;
        if (typeof o.ms === 'number') o.ms = Math.round(o.ms * 1000) / 1000;
        out = { ok: true, ...(out as object) };
      }
    } catch (e) {
      const code = e instanceof LifelineError ? e.code : 'E_INTERNAL';
      status = code === 'E_NOT_FOUND' ? 404 : code === 'E_INTERNAL' ? 500 : 400;
      out = { ok: false, error: { code, message: (e as Error).message } };
    }
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(out, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    // Only our own announce file: a file naming another process belongs to another daemon of this station.
    try {
      if ((JSON.parse(readFileSync(this.o.announceFile, 'utf8')) as { pid?: number }).pid === process.pid) rmSync(this.o.announceFile, { force: true });
    } catch {
      /* gone or unreadable: not ours to remove */
    }
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await this.ctx.close();
  }
}

