/**
 * The station daemon's decisions (`mgmt-station serve`, DESIGN §5): every poll round it renews its leases, then
 * polls each NIC it owns over the secure channel (System State), refreshes SAs on its timer only when the host is
 * up (the host agent exists only while the OS is up, DESIGN §2.4-2.5), takes NICs over whose owner's lease lapsed
 * (and tells them), and answers heartbeat probes, adopting an SA by SPI when its owner is gone. Time and timers
 * come from the station's env (core/env.ts): the daemon process (mgmt-station/daemon.ts) and the simulator run
 * this same code.
 */
import { LifelineError, UsageError } from '../../common/errors.js';
import { HEARTBEAT_SPI } from '../../wire/sa.js';
import { answerProbe, HEARTBEAT_LENGTH } from '../../wire/heartbeat-frame.js';
import type { Fence, NicRecord } from '../store/store.js';
import type { ExchangeResult } from './key-exchange.js';
import { outcomeOf, type EmulatorControl, type StationCore } from './station.js';
import { rankOf } from './rendezvous.js';
import type { CommandKind, ReadKind, RequestResult } from './session.js';
import type { Endpoint, SecurePort, Timer } from './env.js';
import type { SaPair } from '../../wire/sa.js';

export interface DaemonTimes {
  /** Seconds between SA refreshes of a NIC (DESIGN §2.5). */
  refreshIntervalS: number;
  /** Longest time a host may be down (no refresh possible) that the lifetime must still cover. */
  maxDownTimeS: number;
  /** SA lifetime in seconds; Infinity = the seed's default. */
  lifetimeS: number;
  /** Each owned NIC is polled this often. */
  pollIntervalMs: number;
  timeoutMs: number;
  /**
   * Ownership lease. Poll rounds (leases taken, renewed, handed over) run every poll interval when it is shorter,
   * else every third of the lease (roundIntervalMs): NICs are polled at their own interval all the same.
   */
  leaseMs: number;
  /**
   * How the NICs are shared with the other stations of the store (docs/STATION.md "Station cluster"): 'balanced'
   * (the default) by rendezvous hashing over the live members, with hand-overs when one joins; 'first-come': a free
   * or lapsed lease goes to whichever station asks first and stays there.
   */
  sharing?: 'balanced' | 'first-come';
}

export type DaemonLog = (level: 'info' | 'warn', msg: string, fields: Record<string, unknown>) => void;

/**
 * NICs polled at once. Their network waits overlap, so one NIC that does not answer costs the others nothing;
 * the bound keeps a large fleet's round from opening thousands of exchanges at once. Lease renewal never waits
 * for it (StationDaemon.tick).
 */
const MAX_POLLS_IN_FLIGHT = 32;
/**
 * First polls of NICs whose session is not open yet (a takeover of thousands, a cold start) run beside the polls
 * of open sessions, MAX_POLLS_IN_FLIGHT at once, but only OPENS_BESIDE_VERBS while a user's verb runs: opening a
 * session is store and CPU work, and 32 of them at once left a verb on a NIC just taken over a thirty-third of the
 * daemon (issue 16).
 */
const OPENS_BESIDE_VERBS = 4;

/**
 * Polls in a row that got no answer at all (E_TIMEOUT) before the daemon tries a key exchange with the NIC's host
 * on its own: the NIC may no longer hold our SA (re-keyed by a station elsewhere, or its EEPROM replaced). If the
 * host is up, the exchange keys the NIC anew and polls resume; if the NIC is just unreachable, it fails like the
 * polls. At most one such attempt per REKEY_RETRY_MS, so an unreachable NIC costs one exchange's timeout per 30 s.
 */
const UNANSWERED_POLLS_BEFORE_REKEY = 3;
const REKEY_RETRY_MS = 30_000;

/**
 * A refresh of the daemon's own (its timer, a used-up counter) that failed is tried again no sooner than 5 s later,
 * then 10, 20, 40 ... and at most 5 min apart, until one succeeds (any refresh: a user's too). A host that is hung
 * reads S0 but runs no IKE agent: without this the daemon would start an exchange at every poll (issue 15: 24 IKE
 * datagrams and 9 polls in 20 s). No jitter: the NICs of a fleet fail and retry at their own times anyway, and the
 * daemon's schedule stays a function of the env's clock (the simulator replays it).
 */
/**
 * Cluster sharing (DESIGN §5, docs/STATION.md "Station cluster"). A free or lapsed NIC is taken at once by its
 * preferred live member (rendezvous.ts); the member r places down its order takes it only r lease times after it
 * went free (counted from this daemon's start too), so a preferred member that is slow, or cannot get the lease, is
 * stood in for without two members racing for every NIC. A NIC taken so stays at least FALLBACK_KEEP_MS before it is
 * handed to its preferred member. A NIC that stops answering this station (UNANSWERED_POLLS_BEFORE_HANDOVER polls in
 * a row) while other members live is handed over, and for AVOID_MS this station ranks itself last for it: a network
 * that cuts one station off a NIC must not leave it owned by the one station that cannot reach it, and a NIC nobody
 * reaches must still be owned by someone.
 */
const FALLBACK_KEEP_MS = 60_000;
const UNANSWERED_POLLS_BEFORE_HANDOVER = 5;
const AVOID_MS = 60_000;

const REFRESH_RETRY_BASE_MS = 5_000;
const REFRESH_RETRY_MAX_MS = 300_000;

export function refreshRetryDelayMs(failures: number): number {
  return Math.min(REFRESH_RETRY_MAX_MS, REFRESH_RETRY_BASE_MS * 2 ** Math.min(Math.max(failures - 1, 0), 16));
}

/** Runs at most `max()` tasks at once, the rest in arrival order (a bound raised lets the waiting in one by one). */
class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(private readonly max: () => number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    while (this.active >= this.max()) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    if (this.active < this.max()) this.queue.shift()?.();
    try {
      return await task();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

export function validateLifetime(o: Pick<DaemonTimes, 'refreshIntervalS' | 'maxDownTimeS' | 'lifetimeS'>): void {
  if (!(o.refreshIntervalS > 0)) throw new UsageError('E_USAGE', '--refresh-interval must be > 0 seconds');
  if (!(o.maxDownTimeS >= 0)) throw new UsageError('E_USAGE', '--max-down-time must be >= 0 seconds');
  if (o.refreshIntervalS + o.maxDownTimeS > o.lifetimeS) {
    throw new UsageError(
      'E_USAGE',
      `refresh interval (${o.refreshIntervalS} s) + max down time (${o.maxDownTimeS} s) exceeds the SA lifetime (${o.lifetimeS} s): an SA could expire while the host is down; raise --lifetime or lower the others`,
    );
  }
}

export interface NicState {
  lastRefresh: number;
  host: string;
  lastError: string | null;
  refreshes: number;
  busy: boolean;
  /** Polls in a row with no answer (E_TIMEOUT); and when the daemon last re-keyed on that account (ms, 0 = never). */
  unanswered: number;
  rekeyTriedAt: number;
  /** Refreshes in a row that failed, and when the daemon may try its own next one (ms; 0 = at any time). */
  refreshFailures: number;
  retryRefreshAt: number;
  /** Cluster sharing (FALLBACK_KEEP_MS, AVOID_MS): not handed over before, not taken before (ms; 0 = no bound). */
  keepUntil: number;
  avoidUntil: number;
  /** When the round last started a poll of it (ms; 0 = never): polled again a poll interval later. */
  polledAt: number;
}

export class DaemonCore {
  private timer: Timer | null = null;
  /** The member row's own timer (balanced sharing): renewed every poll interval whatever the poll rounds are doing. */
  private liveTimer: Timer | null = null;
  readonly nics = new Map<string, NicState>();
  private stopped = false;
  private readonly polls = new Limiter(() => MAX_POLLS_IN_FLIGHT);
  private readonly opens = new Limiter(() => (this.using.size > 0 ? OPENS_BESIDE_VERBS : MAX_POLLS_IN_FLIGHT));
  readonly heartbeats = { answered: 0, unknownSpi: 0, badProbe: 0, ownedElsewhere: 0, adopted: 0 };
  /**
   * For the daemon's /metrics (mgmt-station/station-metrics.ts): SA refreshes run here (the daemon's own and the
   * users'), polls by outcome ('ok' or an error code as outcomeOf() names it), and store errors (E_STORE) met while
   * polling, renewing leases or serving a verb (the shell counts those of its API, daemon.ts).
   */
  readonly counters = { refreshesOk: 0, refreshesFailed: 0, polls: new Map<string, number>(), storeErrors: 0 };
  /** The live members of the store as the last round read them (this station included), in station order. */
  members: string[] = [];
  /** When this daemon first registered as a member (ms): a fallback's grace counts from it as well. */
  private joinedAt = 0;
  /** The poll rounds run on their timer (start() has scheduled it); one runs now; the member row's next renewal (ms). */
  private started = false;
  private inRound = false;
  private nextLivenessMs: number | null = null;
  /** Verbs of users under way per NIC (read, command): a NIC is not handed over while one runs. */
  private using = new Map<string, number>();

  constructor(readonly ctx: StationCore, private readonly o: DaemonTimes, private readonly log: DaemonLog) {
    validateLifetime(o);
  }

  /**
   * Answer heartbeats on the station's socket, restore every NIC's channel from the store right away (no key
   * exchange needed, DESIGN §2.6, §4 station cold boot), and poll on the timer. Resolves once the first round's
   * polls have finished; the timer keeps renewing leases meanwhile.
   */
  async start(port: SecurePort): Promise<void> {
    port.register(HEARTBEAT_SPI, (bytes, from) => void this.onHeartbeat(bytes, from, port).catch(() => undefined));
    if (this.sharing === 'balanced') {
      // Registered a round interval before the first round, so stations started together see each other before
      // any of them takes a NIC (else the first one takes the whole fleet and hands most of it over a round later).
      this.joinedAt = this.ctx.env.now();
      await this.renewMembership();
      this.scheduleLiveness();
      // A round interval, which is shorter than the lease: a member that stands in for us (rendezvous.ts) waits a
      // lease after a NIC went free, so ours is the first round to see what is ours.
      await new Promise<void>((r) => this.ctx.env.after(this.roundIntervalMs(), r));
    }
    const first = await this.tick();
    this.started = true;
    this.schedule();
    await first.polls;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = null;
    this.liveTimer?.cancel();
    this.liveTimer = null;
  }

  /**
   * Renew this station's member row and read the live members. On its own timer, not in the poll round: a round
   * waits for the store behind the polls' work (a takeover of thousands of NICs opens thousands of sessions), and a
   * member row renewed late would let the others take every NIC of a station that is only busy. The store runs it
   * on a connection of its own (the 'liveness' lane of sql-driver.ts).
   */
  private async renewMembership(): Promise<void> {
    const now = this.ctx.env.now();
    const rows = await this.ctx.store.renewMember(this.ctx.o.stationId, now, this.o.leaseMs);
    const before = this.members;
    this.members = rows.filter((m) => m.station === this.ctx.o.stationId || m.expiresAt > now).map((m) => m.station);
    // The next renewal comes early when another member's row lapses before it (that member stopped renewing: a live
    // one's row is always more than a renewal interval ahead), so its lapse is seen when it happens.
    let next = this.livenessIntervalMs();
    for (const m of rows) if (m.station !== this.ctx.o.stationId && m.expiresAt > now) next = Math.min(next, m.expiresAt - now + 1);
    this.nextLivenessMs = next;
    // A member gone (lapsed or left): its NICs are taken at a round started now, not at the next poll timer.
    if (this.started && before.some((m) => !this.members.includes(m))) this.roundNow();
  }

  /** A third of the lease, at most a poll interval: two renewals may fail before the others take our NICs. */
  private livenessIntervalMs(): number {
    return Math.max(1, Math.min(this.o.pollIntervalMs, Math.floor(this.o.leaseMs / 3)));
  }

  private scheduleLiveness(): void {
    if (this.stopped) return;
    this.liveTimer = this.ctx.env.after(this.nextLivenessMs ?? this.livenessIntervalMs(), () => {
      this.liveTimer = null;
      void this.renewMembership().catch((e) => {
        this.countStoreError(e);
        this.log('warn', 'member row not renewed', { code: (e as LifelineError).code, error: (e as Error).message });
      }).finally(() => this.scheduleLiveness());
    });
  }

  private get sharing(): 'balanced' | 'first-come' {
    return this.o.sharing ?? 'balanced';
  }

  /**
   * A clean stop: remove this station's member row, so its leases live by their own expiry only (lapsed, unless
   * taken a moment ago) and the others take its NICs at their next round instead of a lease time later.
   */
  async leave(): Promise<void> {
    this.stop();
    if (this.sharing === 'balanced') await this.ctx.store.leaveMembers(this.ctx.o.stationId);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = this.ctx.env.after(this.roundIntervalMs(), () => this.round());
  }

  /**
   * Rounds every poll interval, or every third of the lease when the poll interval is not shorter than the lease
   * (a large fleet polled every few seconds, with a lease short enough for a quick takeover: issue 16): a lease
   * (first-come) is renewed at every round, and a lapsed one is taken within a third of the lease.
   */
  private roundIntervalMs(): number {
    return this.o.pollIntervalMs < this.o.leaseMs ? this.o.pollIntervalMs : Math.max(1, Math.floor(this.o.leaseMs / 3));
  }

  private round(): void {
    this.timer = null;
    this.inRound = true;
    void this.tick().catch((e) => {
      this.countStoreError(e);
      this.log('warn', 'poll round failed', { error: (e as Error).message });
    }).finally(() => {
      this.inRound = false;
      this.schedule();
    });
  }

  /**
   * Start the next poll round now rather than at its timer (a member lapsed: renewMembership). Not while one runs:
   * the timer's round comes a poll interval after it, as ever.
   */
  private roundNow(): void {
    if (this.stopped || this.inRound || this.timer === null) return;
    this.timer.cancel();
    this.round();
  }

  /**
   * One poll round. This station's member row, renewed on its own timer (renewMembership), keeps every lease it
   * holds live (Store.renewMember: one row per poll interval, not one per NIC). Every lease is read once; then, in one
   * pass over the store,
   * the free or lapsed NICs this station is to take are taken (rendezvous order over the live members, see
   * FALLBACK_KEEP_MS; 'first-come': every free one), and the NICs another live member is now preferred for are handed
   * over if nothing of theirs is under way (a rebalance when a member joins; StationCore.quiet). All of it before any
   * network wait (DESIGN §5): a NIC that does not answer must never delay a renewal, or a live owner would lose NICs
   * to its backup. Then each owned NIC is polled (System State, a refresh when due) in the background, at most
   * MAX_POLLS_IN_FLIGHT at once and one at a time per NIC (`busy`); the next round does not wait for them. Resolves
   * once the leases are settled, with a promise that settles when the polls this round started have finished.
   */
  private async tick(): Promise<{ polls: Promise<unknown> }> {
    const me = this.ctx.o.stationId;
    const balanced = this.sharing === 'balanced';
    const owned: NicRecord[] = [];
    // The round's lease work on the store's verb lane too (Store.asUserVerb): queued behind the sessions a takeover
    // or a join is opening, a round came too late, and a stand-in took the NICs freed for us (and kept them 60 s).
    // Only these calls: the polls started below run on the default lane.
    const lane = <T>(f: () => Promise<T>): Promise<T> => (this.ctx.store.asUserVerb ? this.ctx.store.asUserVerb(f) : f());
    const nics = await lane(() => this.ctx.store.listNics());
    let fences: Map<string, Fence | LifelineError>;
    const take: string[] = [];
    const give: string[] = [];
    const now = this.ctx.env.now();
    try {
      const leases = new Map((await lane(() => this.ctx.store.listLeases())).map((l) => [l.nic, l]));
      for (const n of nics) {
        const l = leases.get(n.id);
        const st = this.nics.get(n.id);
        if (balanced && l?.owner === me && l.expiresAt > now) {
          // Ours, live by our member row (renewMembership): no write per NIC.
          this.ctx.holdLease(l);
          owned.push(n);
          if (st && this.shouldHandOver(n.id, st, now)) give.push(n.id);
        } else if (this.ctx.heldElsewhere(l)) {
          this.ctx.dropSession(n.id);
          this.nicState(n.id).host = 'owned elsewhere';
        } else if (!balanced) {
          take.push(n.id); // first-come: ours if we are first (also our own leases: renewed one by one)
        } else {
          // Ours with its lease lapsed (our member row was not renewed in time): taken back at once if nobody took it.
          // A NIC this station gave up (it stopped answering us) puts us last in its order, behind every other
          // member, so it is still taken — by us too, if nobody else does.
          const rank = l?.owner === me ? 0 : st && now < st.avoidUntil ? this.members.length : rankOf(n.id, me, this.members);
          const since = Math.max(l?.expiresAt ?? 0, this.joinedAt);
          if (rank === 0 || now >= since + rank * this.o.leaseMs) take.push(n.id);
        }
      }
      fences = take.length ? await lane(() => this.ctx.fenceAll(take)) : new Map();
    } catch (e) {
      // The store failed (E_STORE): no NIC is polled this round; the next round tries again.
      this.countStoreError(e);
      for (const n of nics) this.nicState(n.id).lastError = (e as Error).message;
      this.log('warn', 'lease renewal failed', { code: (e as LifelineError).code, error: (e as Error).message });
      return { polls: Promise.resolve() };
    }
    for (const n of nics) {
      const f = fences.get(n.id);
      if (f === undefined) continue; // ours already (above), held elsewhere, not ours to take, or gone from the store
      if (!(f instanceof LifelineError)) {
        owned.push(n);
        // Taken as a stand-in for its preferred member: kept a while before it goes back (FALLBACK_KEEP_MS).
        if (balanced && rankOf(n.id, me, this.members) > 0) this.nicState(n.id).keepUntil = now + FALLBACK_KEEP_MS;
      } else {
        // Another live station owns it: not ours to poll (DESIGN §5). Drop any stale claim we had.
        this.ctx.dropSession(n.id);
        this.nicState(n.id).host = 'owned elsewhere';
      }
    }
    if (give.length) {
      try {
        const released = new Set(await lane(() => this.ctx.release(give)));
        for (const nic of released) this.nicState(nic).host = 'handed over';
        if (released.size) this.log('info', 'handed NICs over to their preferred stations', { nics: released.size, members: this.members.length });
        for (let i = owned.length - 1; i >= 0; i--) if (released.has(owned[i].id)) owned.splice(i, 1);
      } catch (e) {
        this.countStoreError(e); // kept: handed over at a later round
        this.log('warn', 'hand-over failed', { code: (e as LifelineError).code, error: (e as Error).message });
      }
    }
    // Every NIC's active generation in one read (whether a session must reload), not a read per poll; a store that
    // fails it leaves each poll to read its own.
    const active = owned.length ? await lane(() => this.ctx.store.activeGenerations()).catch(() => null) : null;
    const polls: Promise<void>[] = [];
    for (const n of owned) {
      const st = this.nicState(n.id);
      if (st.busy) continue; // its previous poll still waits for the NIC: its lease was renewed above all the same
      // Polled a poll interval after its last poll (a round may come sooner: roundIntervalMs, roundNow); a NIC just
      // taken over at once.
      if (st.polledAt > 0 && now - st.polledAt < this.o.pollIntervalMs && !this.ctx.takeovers.has(n.id)) continue;
      st.polledAt = now;
      st.busy = true;
      const generation = active === null ? undefined : (active.get(n.id) ?? null);
      const lane = this.ctx.hasSession(n.id) ? this.polls : this.opens;
      polls.push(lane.run(() => this.poll(n, st, generation)).finally(() => (st.busy = false)));
    }
    return { polls: Promise.allSettled(polls) }; // wrapped: an async function would wait for a returned promise
  }

  /**
   * Is an owned NIC to be handed over at this round? Only at a safe point — no poll, verb, key exchange or command of
   * ours under way for it (StationCore.quiet), so every command we sent has its outcome stored — and another live
   * member is now preferred for it (a member joined, or the one we stood in for is back: after FALLBACK_KEEP_MS).
   * A NIC that stopped answering us is handed over at the end of its poll instead (giveUpIfUnreachable).
   */
  private shouldHandOver(nic: string, st: NicState, now: number): boolean {
    if (this.members.length < 2 || st.busy || (this.using.get(nic) ?? 0) > 0 || !this.ctx.quiet(nic)) return false;
    return now >= st.keepUntil && rankOf(nic, this.ctx.o.stationId, this.members) > 0;
  }

  /**
   * A NIC that has not answered UNANSWERED_POLLS_BEFORE_HANDOVER polls in a row (and a key exchange, see
   * rekeyIfSilent) while other members live: handed over at the end of its poll, the safe point of a NIC that never
   * answers (its poll lasts about a poll interval, so a round rarely finds it idle), and avoided for AVOID_MS.
   */
  private async giveUpIfUnreachable(nic: string, st: NicState): Promise<void> {
    if (this.sharing !== 'balanced' || st.unanswered < UNANSWERED_POLLS_BEFORE_HANDOVER || this.members.length < 2) return;
    if ((this.using.get(nic) ?? 0) > 0 || !this.ctx.quiet(nic)) return;
    if ((await this.ctx.release([nic])).length === 0) return;
    st.avoidUntil = this.ctx.env.now() + AVOID_MS;
    st.unanswered = 0;
    st.host = 'handed over';
    this.log('warn', 'NIC does not answer this station; handed it over to another member', { nic });
  }

  private countPoll(outcome: string): void {
    this.counters.polls.set(outcome, (this.counters.polls.get(outcome) ?? 0) + 1);
  }

  /** An E_STORE met by the daemon (the store refused or failed a read or write): counted for /metrics. */
  countStoreError(e: unknown): void {
    if ((e as LifelineError | null)?.code === 'E_STORE') this.counters.storeErrors++;
  }

  private nicState(nic: string): NicState {
    let st = this.nics.get(nic);
    if (!st) this.nics.set(nic, (st = { lastRefresh: this.ctx.env.now(), host: 'unknown', lastError: null, refreshes: 0, busy: false, unanswered: 0, rekeyTriedAt: 0, refreshFailures: 0, retryRefreshAt: 0, keepUntil: 0, avoidUntil: 0, polledAt: 0 }));
    return st;
  }

  /**
   * Poll one NIC whose lease this round renewed: read the host state, refresh the SA when due. `activeGeneration`:
   * the store's active SA generation as the round read it (undefined: not read, syncWithStore reads it).
   */
  private async poll(n: NicRecord, st: NicState, activeGeneration?: number | null): Promise<void> {
    if (this.stopped) return;
    try {
      await this.ctx.syncWithStore(n, activeGeneration); // another process may have re-keyed it (see the file comment)
      const s = await this.ctx.session(n.id, { record: n });
      if (this.ctx.takeovers.has(n.id)) await this.afterTakeover(n.id);
      const r = await s.read('system-state-request', Math.min(this.o.timeoutMs, this.o.pollIntervalMs), true);
      const code = (r.response as { systemState?: number }).systemState;
      st.host = code === 0 ? 'S0' : code === 3 ? 'S3' : code === 5 ? 'S5' : `state ${code}`;
      st.unanswered = 0;
      const due = this.ctx.env.now() - st.lastRefresh >= this.o.refreshIntervalS * 1000;
      // Refresh only when the host can be up (S0); a hung host does not answer IKE and the attempt just fails.
      if (due && code === 0 && n.psk.length > 0 && n.meta.enrolled === true) await this.ownRefresh(n.id, st);
      st.lastError = null;
      this.countPoll('ok');
    } catch (e) {
      this.countPoll(outcomeOf(e));
      this.countStoreError(e);
      const code = (e as LifelineError).code;
      const error = (e as Error).message;
      // Said once per new error, not at every poll of a NIC that stays unreachable (status shows the latest).
      if (error !== st.lastError) this.log('warn', 'poll failed', { nic: n.id, code, error });
      st.lastError = error;
      // The host state is no longer known: show the last one read as stale rather than as current.
      if (!st.host.startsWith('unknown')) st.host = st.host === 'owned elsewhere' ? 'unknown' : `unknown (last ${st.host})`;
      // The SA's counter is used up (RFC 4303 §3.3.3): refresh now rather than on the timer.
      if (code === 'E_SEQ_EXHAUSTED' && n.meta.enrolled === true) {
        await this.ownRefresh(n.id, st).then(() => (st.lastError = null)).catch((e2) => (st.lastError = (e2 as Error).message));
      }
      if (code === 'E_TIMEOUT') {
        await this.rekeyIfSilent(n, st);
        await this.giveUpIfUnreachable(n.id, st).catch((e2) => this.countStoreError(e2));
      }
    }
  }

  /** See UNANSWERED_POLLS_BEFORE_REKEY. Only for an enrolled NIC (a PSK to run IKE with); a manual SA has none. */
  private async rekeyIfSilent(n: NicRecord, st: NicState): Promise<void> {
    st.unanswered++;
    const now = this.ctx.env.now();
    if (st.unanswered < UNANSWERED_POLLS_BEFORE_REKEY || now - st.rekeyTriedAt < REKEY_RETRY_MS) return;
    if (n.psk.length === 0 || n.meta.enrolled !== true) return;
    st.rekeyTriedAt = now;
    this.log('warn', 'NIC does not answer under its SA; trying a key exchange with its host', { nic: n.id, unansweredPolls: st.unanswered });
    try {
      await this.refresh(n.id, st);
      st.unanswered = 0;
      st.lastError = null;
    } catch (e) {
      this.log('warn', 'key exchange after unanswered polls failed', { nic: n.id, code: (e as LifelineError).code, error: (e as Error).message });
    }
  }

  /**
   * We took the NIC over (its owner's lease lapsed): tell the NIC. (The session's first sync settles the commands the
   * former owner logged as sent but never saw acknowledged, and ends the former owner's epochs: core/session.ts.)
   */
  private async afterTakeover(nic: string): Promise<void> {
    this.ctx.takeovers.delete(nic);
    const s = await this.ctx.session(nic);
    // The epoch the round took it at (no read of the lease per NIC taken); the store's when this process holds none.
    const epoch = this.ctx.heldFence(nic)?.epoch ?? (await this.ctx.store.getLease(nic))?.epoch;
    const port = await this.ctx.o.port();
    this.log('info', 'took NIC over', { nic, epoch });
    await s.notifyOwner(epoch ?? 0, { address: port.address, port: port.port }, this.o.timeoutMs).catch((e) =>
      this.log('warn', 'owner notice not acknowledged', { nic, error: (e as Error).message }),
    );
  }

  /**
   * A heartbeat probe from a NIC (DESIGN §2.3). The probe names the SA it was sent under; a station that does
   * not hold that SA yet adopts it from the store (DESIGN §5 "adoption by SPI") — only after the probe
   * verified, and only if the lease is free — and answers without a key exchange.
   */
  private async onHeartbeat(bytes: Uint8Array, from: Endpoint, port: SecurePort): Promise<void> {
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
    port.send(answer.bytes, from.port, from.address);
    this.heartbeats.answered++;
    if (this.ctx.takeovers.has(stored.nic)) {
      this.heartbeats.adopted++;
      await this.afterTakeover(stored.nic);
    }
  }

  /** A refresh the daemon starts by itself (timer, used-up counter): not before the back-off after a failure allows. */
  private async ownRefresh(nic: string, st: NicState): Promise<void> {
    if (this.ctx.env.now() < st.retryRefreshAt) return;
    await this.refresh(nic, st);
  }

  /**
   * A refresh of a NIC of the store (`st`: its poll state, made only once the NIC is known: no phantom in status).
   * A failure sets the back-off of the daemon's own refreshes (refreshRetryDelayMs); a success clears it.
   */
  async refresh(nic: string, st: NicState | null, timeoutMs = this.o.timeoutMs): Promise<ExchangeResult> {
    const n = await this.ctx.store.getNic(nic);
    if (!n) throw new LifelineError('E_NOT_FOUND', `NIC '${nic}' is not enrolled`);
    const state = st ?? this.nicState(nic);
    let r: ExchangeResult;
    try {
      r = await this.ctx.keyExchange(n, 'refresh', Math.max(timeoutMs, 5000));
    } catch (e) {
      this.counters.refreshesFailed++;
      state.refreshFailures++;
      const delay = refreshRetryDelayMs(state.refreshFailures);
      state.retryRefreshAt = this.ctx.env.now() + delay;
      this.log('warn', 'SA refresh failed; the daemon tries again later', { nic, code: (e as LifelineError).code, failures: state.refreshFailures, retryInMs: delay });
      throw e;
    }
    this.counters.refreshesOk++;
    state.refreshFailures = 0;
    state.retryRefreshAt = 0;
    state.lastRefresh = this.ctx.env.now();
    state.refreshes++;
    this.log('info', 'SA refreshed', { nic, generation: r.generation, exchange: r.exchange, ms: Math.round(r.ms) });
    return r;
  }

  /** `enroll NIC --psk-file F`, forwarded by the CLI: StationCore.enroll, here, so this process's key exchange holds the new PSK. */
  async enroll(emu: EmulatorControl, nicId: string, psk: Uint8Array, timeoutMs: number): Promise<ExchangeResult> {
    const r = await this.ctx.enroll(emu, nicId, psk, Math.max(timeoutMs, 10000));
    this.nicState(r.nic).lastRefresh = this.ctx.env.now();
    this.log('info', 'NIC enrolled', { nic: r.nic, generation: r.generation });
    return r;
  }

  /**
   * `sa manual NIC`, forwarded by the CLI with the SA it made (RFC 4301 manual keying): StationCore.installManualSa,
   * here, so this process's session moves to it.
   */
  async manualSa(emu: EmulatorControl, nicId: string, sa: SaPair): Promise<object> {
    const r = await this.ctx.installManualSa(emu, nicId, sa);
    this.log('info', 'manual SA installed', { nic: r.nic, generation: r.generation });
    return r;
  }


  /** A read verb (ping, state, capabilities) on a NIC of the store: its session, synced with the store first. */
  async read(nic: string, kind: ReadKind, timeoutMs: number): Promise<RequestResult> {
    return this.inUse(nic, async () => {
      const stored = await this.ctx.store.getNic(nic);
      if (stored) await this.ctx.syncWithStore(stored);
      return (await this.ctx.session(nic, stored ? { record: stored } : undefined)).read(kind, timeoutMs);
    });
  }

  /** A command verb (reset, power-up, power-down, power-cycle), as read(). */
  async command(nic: string, kind: CommandKind, timeoutMs: number): Promise<RequestResult> {
    return this.inUse(nic, async () => {
      const stored = await this.ctx.store.getNic(nic);
      if (stored) await this.ctx.syncWithStore(stored);
      return (await this.ctx.session(nic, stored ? { record: stored } : undefined)).command(kind, timeoutMs);
    });
  }

  /**
   * Run a user's verb on the NIC, counted in `using` (not handed over meanwhile: shouldHandOver), its store work on
   * the verb lane (Store.asUserVerb: not behind the background polls' transactions).
   */
  private async inUse<T>(nic: string, f: () => Promise<T>): Promise<T> {
    this.using.set(nic, (this.using.get(nic) ?? 0) + 1);
    try {
      return await (this.ctx.store.asUserVerb ? this.ctx.store.asUserVerb(f) : f());
    } finally {
      const left = (this.using.get(nic) ?? 1) - 1;
      if (left > 0) this.using.set(nic, left);
      else this.using.delete(nic);
    }
  }
}
