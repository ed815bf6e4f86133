/**
 * What the fleet page (docs/FLEET-PAGE.md) reads from the station daemon: the fleet at a glance, a page of the NIC
 * list with a filter, one NIC in full, and the live stream (server-sent events) the page follows. It reads what the
 * daemon already keeps — the poll state of every NIC (DaemonCore.nics), its counters, the sessions' drops — and
 * three whole-fleet reads of the store (NIC list, leases, SA states: none unwraps a key), made at most once a
 * second however many pages watch (SNAPSHOT_MS), so 10,000 NICs cost the store three queries a second.
 */
import type http from 'node:http';
import type { StationContext } from './context.js';
import type { DaemonCore } from './core/daemon-core.js';
import type { AlertRecord, Lease, NicRecord, SaSummary } from './store/store.js';
import { alertJson } from './events-verb.js';
import { LifelineError, UsageError } from '../common/errors.js';

/** A snapshot is reused this long (ms): the page's reads and the event stream's ticks share it. */
export const SNAPSHOT_MS = 1000;
/** The event stream sends the glance every TICK_MS; alerts go out as they are stored. */
export const TICK_MS = 1000;
/** Seconds of per-second activity kept (commands, failures, polls, alerts): the chart's window. */
export const WINDOW_S = 60;
/** A page of the NIC list: at most this many rows. */
export const MAX_PAGE = 500;
/** Alerts in the glance; commands and alerts in a NIC's page. */
const GLANCE_ALERTS = 20;
const NIC_COMMANDS = 50;
const NIC_ALERTS = 50;
/** The NIC list (listNics unwraps every PSK) is read again after this long, or at once when the set of NICs changed. */
const NIC_LIST_MS = 30_000;
/** Event-stream clients at once; more are refused (E_BUSY, 503): each holds a socket. */
export const MAX_STREAMS = 64;

/** A NIC's host state as the page groups it (the same set as lifeline_station_nic_hosts, docs/METRICS.md). */
export function hostGroup(host: string): string {
  if (host === 'S0' || host === 'S3' || host === 'S5') return host.toLowerCase();
  if (host === 'owned elsewhere') return 'owned_elsewhere';
  if (host.startsWith('unknown')) return 'unknown';
  return 'other';
}
export const HOST_GROUPS = ['s0', 's3', 's5', 'unknown', 'owned_elsewhere', 'other'];

/** The age of a NIC's active SA, in buckets the glance counts. */
const AGE_BUCKETS: [string, number][] = [['< 1 min', 60_000], ['< 1 h', 3_600_000], ['< 1 day', 86_400_000], ['< 7 days', 7 * 86_400_000], ['older', Infinity]];
function ageBucket(ms: number): string {
  for (const [name, below] of AGE_BUCKETS) if (ms < below) return name;
  return 'older';
}
/** The active SA's generation, in buckets. */
function generationBucket(g: number): string {
  return g === 1 ? '1' : g < 10 ? '2-9' : g < 100 ? '10-99' : '100+';
}

/** One row of the NIC list. */
export interface NicRow {
  id: string;
  address: string;
  host: string;
  hostGroup: string;
  owner: string | null;
  epoch: number;
  generation: number | null;
  /** When the active SA became active (ms since the epoch); null without one. */
  activeSince: number | null;
  lastError: string | null;
  refreshes: number;
  dropped: number;
}

interface Snapshot {
  at: number;
  rows: NicRow[];
  byId: Map<string, NicRow>;
  alerts: AlertRecord[];
}

/** "nic-2" before "nic-10". */
const collator = new Intl.Collator('en', { numeric: true });

export class FleetView {
  private snap: Snapshot | null = null;
  private building: Promise<Snapshot> | null = null;
  private nicList: { at: number; nics: NicRecord[] } | null = null;
  /** Per second of the last WINDOW_S: commands ok and failed (the API's verbs), polls failed, alerts. */
  private readonly seconds: { t: number; ok: number; failed: number; pollsFailed: number; alerts: number }[] = [];
  private lastPollFailures: number | null = null;
  private sampler: NodeJS.Timeout | null = null;
  private readonly streams = new Set<http.ServerResponse>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly ctx: StationContext, private readonly core: DaemonCore, private readonly now: () => number = Date.now) {}

  /** A verb of the daemon's API finished (daemon.ts): counted in the last minute's activity. */
  recordVerb(outcome: string): void {
    const s = this.second();
    if (outcome === 'ok') s.ok++;
    else s.failed++;
  }

  /**
   * The core counts failed polls in a running total: its growth since the last call goes into this second. The
   * daemon calls it every second (start()), so a page opened an hour later sees the last minute's, not the hour's.
   */
  samplePolls(): void {
    let failures = 0;
    for (const [k, v] of this.core.counters.polls) if (k !== 'ok') failures += v;
    if (this.lastPollFailures !== null) this.second().pollsFailed += Math.max(0, failures - this.lastPollFailures);
    this.lastPollFailures = failures;
  }

  /** Sample the polls every second until close(). */
  start(): void {
    this.samplePolls();
    this.sampler ??= setInterval(() => this.samplePolls(), 1000);
    this.sampler.unref();
  }

  /** A session stored an alert: counted, and sent to every page at once. */
  recordAlert(a: AlertRecord): void {
    this.second().alerts++;
    this.snap?.alerts.unshift(a);
    if (this.snap && this.snap.alerts.length > GLANCE_ALERTS) this.snap.alerts.length = GLANCE_ALERTS;
    this.broadcast('alert', alertJson(a));
  }

  private second(): (typeof this.seconds)[number] {
    const t = Math.floor(this.now() / 1000);
    let last = this.seconds[this.seconds.length - 1];
    if (!last || last.t !== t) {
      this.seconds.push((last = { t, ok: 0, failed: 0, pollsFailed: 0, alerts: 0 }));
      while (this.seconds.length > 0 && this.seconds[0].t <= t - WINDOW_S) this.seconds.shift();
    }
    return last;
  }

  /** The fleet as of at most SNAPSHOT_MS ago; one build at a time. */
  private async snapshot(): Promise<Snapshot> {
    if (this.snap && this.now() - this.snap.at < SNAPSHOT_MS) return this.snap;
    this.building ??= this.build().finally(() => (this.building = null));
    return (this.snap = await this.building);
  }

  private async build(): Promise<Snapshot> {
    const now = this.now();
    const store = this.ctx.store;
    if (!this.nicList || now - this.nicList.at > NIC_LIST_MS || this.nicList.nics.length < this.core.nics.size) {
      const nics = await store.listNics();
      nics.sort((a, b) => collator.compare(a.id, b.id));
      this.nicList = { at: now, nics };
    }
    const [leases, sas, alerts] = await Promise.all([store.listLeases(), store.listSaStates(), store.listAlerts({ limit: GLANCE_ALERTS })]);
    const leaseOf = new Map<string, Lease>(leases.map((l) => [l.nic, l]));
    const activeOf = new Map<string, SaSummary>();
    for (const s of sas) if (s.state === 'active') activeOf.set(s.nic, s);
    const drops = this.ctx.drops().nics;
    const rows: NicRow[] = [];
    const byId = new Map<string, NicRow>();
    for (const n of this.nicList.nics) {
      const st = this.core.nics.get(n.id);
      const l = leaseOf.get(n.id);
      const a = activeOf.get(n.id);
      const host = st?.host ?? 'unknown';
      const row: NicRow = {
        id: n.id, address: `${n.address}:${n.securePort}`, host, hostGroup: hostGroup(host),
        owner: l && l.owner !== null && l.expiresAt > now ? l.owner : null, epoch: l?.epoch ?? 0,
        generation: a?.generation ?? null, activeSince: a?.updatedAt ?? null, lastError: st?.lastError ?? null,
        refreshes: st?.refreshes ?? 0, dropped: Object.values(drops[n.id] ?? {}).reduce((x, y) => x + y, 0),
      };
      rows.push(row);
      byId.set(n.id, row);
    }
    return { at: now, rows, byId, alerts: alerts.reverse() };
  }

  /** The fleet at a glance (GET /v1/fleet, and the `glance` event of the stream). */
  async glance(): Promise<Record<string, unknown>> {
    const snap = await this.snapshot();
    const now = this.now();
    const count = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, 0])) as Record<string, number>;
    const hosts = count(HOST_GROUPS);
    const owners: Record<string, number> = {};
    const ages = count([...AGE_BUCKETS.map(([n]) => n), 'no SA']);
    const generations = count(['1', '2-9', '10-99', '100+', 'no SA']);
    let failing = 0;
    for (const r of snap.rows) {
      hosts[r.hostGroup]++;
      const o = r.owner ?? 'none';
      owners[o] = (owners[o] ?? 0) + 1;
      if (r.generation === null || r.activeSince === null) {
        ages['no SA']++;
        generations['no SA']++;
      } else {
        ages[ageBucket(now - r.activeSince)]++;
        generations[generationBucket(r.generation)]++;
      }
      if (r.lastError !== null) failing++;
    }
    const d = this.ctx.drops();
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(d.socket)) drops[`socket: ${k}`] = v;
    for (const per of Object.values(d.nics)) for (const [k, v] of Object.entries(per)) drops[k] = (drops[k] ?? 0) + v;
    const t0 = Math.floor(now / 1000) - WINDOW_S + 1;
    const activity = { t: [] as number[], ok: [] as number[], failed: [] as number[], pollsFailed: [] as number[], alerts: [] as number[] };
    const bySecond = new Map(this.seconds.map((s) => [s.t, s]));
    for (let t = t0; t < t0 + WINDOW_S; t++) {
      const s = bySecond.get(t);
      activity.t.push(t);
      activity.ok.push(s?.ok ?? 0);
      activity.failed.push(s?.failed ?? 0);
      activity.pollsFailed.push(s?.pollsFailed ?? 0);
      activity.alerts.push(s?.alerts ?? 0);
    }
    const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);
    return {
      station: this.ctx.o.stationId, at: new Date(now).toISOString(), nics: snap.rows.length, failing,
      hosts, owners, saAge: ages, saGeneration: generations,
      lastMinute: { commands: sum(activity.ok) + sum(activity.failed), failed: sum(activity.failed), pollsFailed: sum(activity.pollsFailed), alerts: sum(activity.alerts) },
      activity, drops, alerts: snap.alerts.map(alertJson),
    };
  }

  /**
   * A page of the NIC list (GET /v1/fleet/nics): `q` a part of the id or address, `host` a host group, `owner` a
   * station id ('none': no live lease), `problem` only NICs whose last poll failed; `offset`, `limit` (≤ MAX_PAGE).
   */
  async list(p: URLSearchParams): Promise<{ total: number; offset: number; rows: (NicRow & { saAgeMs: number | null })[] }> {
    const snap = await this.snapshot();
    const q = (p.get('q') ?? '').trim().toLowerCase();
    const host = p.get('host') || null;
    const owner = p.get('owner') || null;
    const problem = p.get('problem') === '1';
    if (host !== null && !HOST_GROUPS.includes(host)) throw new UsageError('E_USAGE', `host must be one of ${HOST_GROUPS.join(', ')}, got '${host}'`);
    const offset = intParam(p, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(p, 'limit', 100, 1, MAX_PAGE);
    const hits = snap.rows.filter((r) =>
      (q === '' || r.id.toLowerCase().includes(q) || r.address.includes(q)) &&
      (host === null || r.hostGroup === host) &&
      (owner === null || (r.owner ?? 'none') === owner) &&
      (!problem || r.lastError !== null));
    const now = this.now();
    return { total: hits.length, offset, rows: hits.slice(offset, offset + limit).map((r) => ({ ...r, saAgeMs: r.activeSince === null ? null : now - r.activeSince })) };
  }

  /** One NIC in full (GET /v1/fleet/nics/:id): its record, poll state, lease, SAs with history, command log and audit, alerts, drops. */
  async nic(id: string): Promise<Record<string, unknown>> {
    const store = this.ctx.store;
    const n = await store.getNic(id);
    if (!n) throw new LifelineError('E_NOT_FOUND', `no NIC '${id}' in this station's store`);
    const [sas, lease, commands, audit, alerts] = await Promise.all([
      store.listSas(id), store.getLease(id), store.listCommands(id), store.auditCommandLog(id), store.listAlerts({ nic: id, limit: NIC_ALERTS }),
    ]);
    const st = this.core.nics.get(id);
    const now = this.now();
    const iso = (ms: number | null | undefined) => (ms ? new Date(ms).toISOString() : null);
    return {
      id, address: n.address, ports: { clear: n.clearPort, secure: n.securePort, ike: n.ikePort }, enrolled: n.meta.enrolled === true,
      enrolledAt: iso(n.enrolledAt),
      host: st?.host ?? 'unknown', hostGroup: hostGroup(st?.host ?? 'unknown'), lastError: st?.lastError ?? null, refreshes: st?.refreshes ?? 0,
      lastRefresh: iso(st?.lastRefresh), unansweredPolls: st?.unanswered ?? 0, refreshFailures: st?.refreshFailures ?? 0, retryRefreshAt: iso(st?.retryRefreshAt),
      lease: lease && { owner: lease.owner, epoch: lease.epoch, expiresAt: iso(lease.expiresAt), live: lease.owner !== null && lease.expiresAt > now },
      // Newest first; no key, only what a capture shows anyway (SPIs) and what the store records of its life.
      sas: sas.reverse().map((s) => ({
        generation: s.pair.generation, state: s.state, since: iso(s.updatedAt), ageMs: now - s.updatedAt, origin: s.pair.origin, policy: s.pair.policy,
        transform: s.pair.transform, esn: s.pair.esn, toNicSpi: hex8(s.pair.toNic.spi), fromNicSpi: hex8(s.pair.fromNic.spi), ikeSa: s.ike !== null,
      })),
      commands: {
        total: commands.length,
        newest: commands.slice(-NIC_COMMANDS).reverse().map((c) => ({
          index: c.index, time: iso(c.time), command: c.command, outcome: c.outcome, outcomeTime: iso(c.outcomeTime), station: c.station, rmcpSeq: c.rmcpSeq, asfTag: c.asfTag,
        })),
      },
      audit: { ok: audit.ok, entries: audit.entries, head: audit.head?.index ?? null, firstBadIndex: audit.firstBadIndex, problem: audit.problem },
      alerts: alerts.reverse().map(alertJson),
      dropped: this.ctx.drops().nics[id] ?? {},
    };
  }

  /**
   * GET /v1/fleet/events: a server-sent event stream (text/event-stream). `glance` every TICK_MS (the glance JSON),
   * `alert` as soon as a session stores one (events --json's object), a comment line as keep-alive.
   */
  async stream(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (this.streams.size >= MAX_STREAMS) throw new LifelineError('E_BUSY', `${MAX_STREAMS} pages already follow this daemon; close one`);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    res.write('retry: 1000\n\n');
    this.streams.add(res);
    const gone = () => {
      this.streams.delete(res);
      if (this.streams.size === 0 && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    };
    req.once('close', gone);
    res.once('close', gone);
    this.send(res, 'glance', await this.glance());
    this.timer ??= setInterval(() => void this.tick(), TICK_MS);
  }

  private async tick(): Promise<void> {
    if (this.streams.size === 0) return;
    try {
      this.broadcast('glance', await this.glance());
    } catch (e) {
      this.broadcast('error', { code: (e as LifelineError).code ?? 'E_INTERNAL', message: (e as Error).message });
    }
  }

  private broadcast(event: string, data: unknown): void {
    for (const res of this.streams) this.send(res, event, data);
  }

  private send(res: http.ServerResponse, event: string, data: unknown): void {
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Ends every stream (the daemon stops). */
  close(): void {
    if (this.sampler) clearInterval(this.sampler);
    this.sampler = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const res of this.streams) res.end();
    this.streams.clear();
  }
}

const hex8 = (n: number) => '0x' + n.toString(16).padStart(8, '0');

function intParam(p: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const v = p.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError('E_USAGE', `${name} must be a whole number from ${min} to ${max}, got '${v}'`);
  return n;
}
