/**
 * The station daemon's Prometheus `/metrics` (daemon.ts; every series in docs/METRICS.md). The verbs the API serves
 * are counted and timed here as they finish (`observeVerb`); everything else is a count the core already keeps
 * (StationCore.counters, DaemonCore.counters and heartbeats, the socket's drops) read at scrape time. Label values
 * come from small fixed sets — verbs, outcomes that are error codes, S-states — never a NIC id.
 */
import type { StationContext } from './context.js';
import type { DaemonCore } from './core/daemon-core.js';
import { Counter, Histogram, ScrapeGauge, TotalCounter, byLabel, newRegistry, type Registry } from '../lib/prometheus.js';

/** The API's verbs (daemon.ts): the only values of the `verb` label. */
export const METRIC_VERBS = ['ping', 'state', 'capabilities', 'reset', 'power-up', 'power-down', 'power-cycle', 'refresh', 'enroll', 'sa-manual'] as const;

/**
 * Seconds: a secure read on loopback takes ~30 µs of the station's time and a round trip well under 1 ms, a refresh
 * tens of ms, an enrolment or a timed-out command seconds (the daemon's --timeout, 2 s by default; enroll gets 10 s).
 */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The host state a poll read (NicState.host), folded into a fixed set. */
function hostLabel(host: string): string {
  if (host === 'S0' || host === 'S3' || host === 'S5') return host.toLowerCase();
  if (host === 'owned elsewhere') return 'owned_elsewhere';
  if (host.startsWith('unknown')) return 'unknown';
  return 'other';
}

export class StationMetrics {
  readonly registry: Registry = newRegistry();
  private readonly r = this.registry;
  private readonly commands: Counter<'verb' | 'outcome'>;
  private readonly duration: Histogram<'verb'>;
  private readonly info = new ScrapeGauge(this.r, 'lifeline_station_info', 'The station daemon: its station id (--id); always 1', ['station']);
  private readonly hosts = new ScrapeGauge(this.r, 'lifeline_station_nic_hosts', 'NICs the daemon tracks, by the host state its last poll read (s0, s3, s5, unknown, owned_elsewhere, other)', ['state']);
  private readonly polls = new TotalCounter(this.r, 'lifeline_station_polls_total', 'Poll rounds of a NIC (System State, and a refresh when due), by outcome (ok or an error code: timeout, fenced, ...)', ['outcome']);
  private readonly refreshes = new TotalCounter(this.r, 'lifeline_station_sa_refreshes_total', 'SA refreshes run by the daemon (its own and the users\'), by result (ok, failed)', ['result']);
  private readonly exchanges = new TotalCounter(this.r, 'lifeline_station_key_exchanges_total', 'IKEv2 key exchanges with commit (enroll: IKE_SA_INIT + IKE_AUTH; refresh: CREATE_CHILD_SA or a new IKE SA), by kind and outcome', ['kind', 'outcome']);
  private readonly leasesHeld = new ScrapeGauge(this.r, 'lifeline_station_leases_held', 'NICs this station holds a lease on');
  private readonly renewals = new TotalCounter(this.r, 'lifeline_station_lease_renewals_total', 'Leases taken or renewed (every poll round renews every lease)');
  private readonly lost = new TotalCounter(this.r, 'lifeline_station_leases_lost_total', 'Leases found held by another station where this one had one');
  private readonly takeovers = new TotalCounter(this.r, 'lifeline_station_takeovers_total', 'NICs taken over from a station whose lease lapsed (failovers)');
  private readonly storeErrors = new TotalCounter(this.r, 'lifeline_station_store_errors_total', 'E_STORE errors the daemon met (polls, lease renewals, API verbs)');
  private readonly heartbeatsSent = new TotalCounter(this.r, 'lifeline_station_heartbeats_sent_total', 'Heartbeat probes from NICs answered');
  private readonly probesIgnored = new TotalCounter(this.r, 'lifeline_station_heartbeat_probes_ignored_total', 'Heartbeat probes not answered, by reason (unknown_spi, bad_probe, owned_elsewhere)', ['reason']);
  private readonly adoptions = new TotalCounter(this.r, 'lifeline_station_adoptions_total', 'SAs adopted by SPI after a heartbeat probe (DESIGN §5)');
  private readonly socketDrops = new TotalCounter(this.r, 'lifeline_station_socket_dropped_total', 'Datagrams on the station\'s secure socket no session took, by reason (short, unknownSpi)', ['reason']);
  private readonly answerPoll = new TotalCounter(this.r, 'lifeline_station_answer_poll_events_total', 'Busy polling for answers (--busy-poll-us): hits, misses, back-offs', ['event']);

  constructor(private readonly ctx: StationContext, private readonly core: DaemonCore) {
    this.commands = new Counter({
      name: 'lifeline_station_commands_total', help: 'Verbs served by the daemon\'s API, by verb and outcome (ok or an error code in lower case: timeout, fenced, outcome_unknown, ...)',
      labelNames: ['verb', 'outcome'], registers: [this.r],
    });
    this.duration = new Histogram({
      name: 'lifeline_station_command_duration_seconds', help: 'Time to serve a verb of the daemon\'s API, request to answer, by verb',
      labelNames: ['verb'], buckets: DURATION_BUCKETS, registers: [this.r],
    });
    // Every verb has a series from the start, so rate() sees the first one.
    for (const verb of METRIC_VERBS) {
      this.commands.inc({ verb, outcome: 'ok' }, 0);
      this.duration.zero({ verb });
    }
  }

  /** A verb of the API finished: `outcome` ok or outcomeOf(error). Verbs outside METRIC_VERBS are not counted. */
  observeVerb(verb: string, outcome: string, seconds: number): void {
    if (!(METRIC_VERBS as readonly string[]).includes(verb)) return;
    this.commands.inc({ verb, outcome });
    this.duration.observe({ verb }, seconds);
  }

  /** Read the cores' counts into every series (called before each scrape renders). */
  update(): void {
    const core = this.core;
    const st = this.ctx.counters;
    this.info.set([[{ station: this.ctx.o.stationId }, 1]]);
    const hosts: Record<string, number> = {};
    for (const s of core.nics.values()) {
      const h = hostLabel(s.host);
      hosts[h] = (hosts[h] ?? 0) + 1;
    }
    this.hosts.set(byLabel('state', hosts, ['s0', 's3', 's5', 'unknown', 'owned_elsewhere', 'other']));
    this.polls.set(byLabel('outcome', Object.fromEntries(core.counters.polls), ['ok']));
    this.refreshes.set([[{ result: 'ok' }, core.counters.refreshesOk], [{ result: 'failed' }, core.counters.refreshesFailed]]);
    const kx: [Partial<Record<'kind' | 'outcome', string>>, number][] = [[{ kind: 'enroll', outcome: 'ok' }, 0], [{ kind: 'refresh', outcome: 'ok' }, 0]];
    for (const [k, v] of st.keyExchanges) {
      const [kind, outcome] = k.split('|');
      const have = kx.find(([l]) => l.kind === kind && l.outcome === outcome);
      if (have) have[1] = v;
      else kx.push([{ kind, outcome }, v]);
    }
    this.exchanges.set(kx);
    this.leasesHeld.setValue(this.ctx.leasesHeld);
    this.renewals.setValue(st.leaseRenewals);
    this.lost.setValue(st.leasesLost);
    this.takeovers.setValue(st.takeovers);
    this.storeErrors.setValue(core.counters.storeErrors);
    const hb = core.heartbeats;
    this.heartbeatsSent.setValue(hb.answered);
    this.probesIgnored.set([[{ reason: 'unknown_spi' }, hb.unknownSpi], [{ reason: 'bad_probe' }, hb.badProbe], [{ reason: 'owned_elsewhere' }, hb.ownedElsewhere]]);
    this.adoptions.setValue(hb.adopted);
    this.socketDrops.set(byLabel('reason', this.ctx.drops().socket, ['short', 'unknownSpi']));
    const ap = this.ctx.answerPoll();
    this.answerPoll.set([[{ event: 'hit' }, ap?.hits ?? 0], [{ event: 'miss' }, ap?.misses ?? 0], [{ event: 'backoff' }, ap?.backoffs ?? 0]]);
  }
}
