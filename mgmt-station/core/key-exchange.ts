/**
 * The station's IKE driver for one NIC: runs the sans-I/O IkeInitiator (protocol/ike) over a UDP socket to
 * the host agent, and records the outcome in the store in the order the commit needs (DESIGN §2.5):
 *   child-sa (host staged it, sent SA_READY)  -> store it as 'pending'
 *   switch-outbound (SA_CONFIRM arrived)      -> make it 'active' in the store, then use it
 *   commit-aborted / failed                   -> the current SA stays in use; the pending row is retired
 * With a peer that did not announce the commit extension (N(COMMIT_SUPPORTED), a standard IKEv2 peer such as
 * strongSwan) the same effects come in plain IKEv2's order: child-sa and switch-outbound together when our
 * exchange's answer arrives, so nothing waits for an SA_READY that such a peer never sends (protocol/README.md).
 *
 * `enroll()` runs IKE_SA_INIT + IKE_AUTH (with the first child SA); `refresh()` runs CREATE_CHILD_SA on the
 * IKE SA this driver holds (rekeying that IKE SA first once it is `ikeRekeyMs` old, RFC 7296 §2.18), or a new
 * IKE SA when it holds none (e.g. after a station restart) or when the host agent does not answer within half the
 * refresh's timeout (it restarted with its host and forgot our IKE SA); the whole refresh, fallback included, ends
 * within the caller's timeout.
 *
 * One exchange at a time: the initiator and its commit have a single slot, so a second `enroll()`/`refresh()`
 * waits until the one under way has finished and then runs its own (each caller gets an SA negotiated after
 * it asked). An exchange that times out or loses its IKE SA gives the IKE SA up: the initiator's abandon() sends
 * one INFORMATIONAL { D(IKE) } (§1.4.1), whatever the host still sends for it is ignored (no late SA_ACK, so the
 * host discards its pending slot, DESIGN §2.5) and its 'pending' row is retired at once; the next exchange starts
 * a new IKE SA. A Child SA request the peer refused (NO_PROPOSAL_CHOSEN, TEMPORARY_FAILURE ...) leaves the IKE SA
 * as it is; TEMPORARY_FAILURE (E_IKE_BUSY: the peer is rekeying too, §2.25) is retried within the timeout.
 *
 * Between our exchanges the peer may rekey the Child SA or the IKE SA (a standard peer's lifetimes): its new Child
 * SA is stored 'pending' when we answer and made 'active' when the peer deletes the old one (§2.8), and
 * `onActivated` tells the caller to move its session over. A 'pending' row that no exchange can finish any more
 * (its process died between SA_READY and SA_CONFIRM) is retired by the next exchange of the NIC.
 */
import { IkeInitiator, type IkeEffect } from '../../protocol/index.js';
import { LifelineError } from '../../common/errors.js';
import type { SaPair, SecurityPolicy, EspTransform } from '../../wire/sa.js';
import type { Fence, IkeSaSnapshot, NicRecord, Store } from '../store/store.js';
import { sleep, type IkeSocket, type StationEnv, type Timer } from './env.js';

export interface KeyExchangeOptions {
  store: Store;
  fence: () => Fence;
  env: StationEnv;
  stationId: string;
  policy?: SecurityPolicy;
  espTransforms?: EspTransform[];
  esn?: boolean;
  bind?: string;
  /** Rekey the held IKE SA (§1.3.2, §2.18) before a refresh once it is this old (ms; default 4 h, strongSwan's). */
  ikeRekeyMs?: number;
  /** Called with every IKE SA's ikev2_decryption_table line (for `keys --wireshark`), a rekeyed one's too. */
  onIkeKeys?: (nic: string, uatLine: string) => void;
  /** The peer's own Child SA rekey made this SA active in the store outside our exchanges: use it from now on. */
  onActivated?: (nic: string, sa: SaPair) => void;
  log?: (level: string, msg: string) => void;
}

/**
 * A 'pending' SA row older than this (and than the exchange's own timeout) belongs to no exchange that can still
 * commit it: the host agent discards an unacknowledged pending slot after 20 s (protocol/ike/ike-responder.ts).
 */
const STALE_PENDING_MS = 60_000;
/** 200 ms, 400, 800, 1.6 s: a host agent that does not answer is taken as gone after 3 s (RFC 7296 §2.4). */
const STATION_RETRANSMIT = { baseMs: 200, factor: 2, tries: 4 };

/**
 * The share of a refresh's timeout that CREATE_CHILD_SA on the held IKE SA may use (an IKE SA rekey before it
 * included); the rest is left for a new IKE SA (IKE_SA_INIT + IKE_AUTH) when the host agent does not answer it (it
 * restarted and forgot the IKE SA).
 */
const CHILD_SHARE_OF_TIMEOUT = 0.5;
/** strongSwan's default IKE SA rekey_time. */
export const DEFAULT_IKE_REKEY_MS = 4 * 3600_000;
/** TEMPORARY_FAILURE (§2.25): try again after 100-400 ms, while the caller's timeout allows. */
const BUSY_RETRY_MS = 100;
/** New attempts after the store refused the inbound SPI drawn (retryBusy). */
const SPI_CLASH_RETRIES = 3;

export interface ExchangeResult { nic: string; generation: number; kind: 'enroll' | 'refresh'; exchange: 'IKE_AUTH' | 'CREATE_CHILD_SA'; ms: number }

/** What a failed exchange was refused or lost: only 'ike' (and our own deadline) costs the IKE SA. */
type Scope = 'ike' | 'child' | 'rekey';

class ExchangeError extends LifelineError {
  /** `ikeGone`: the IKE SA cannot carry the exchange (no answer, or it closed): a new IKE SA may. */
  constructor(code: LifelineError['code'], message: string, readonly scope: Scope, readonly ikeGone = false) {
    super(code, message);
  }
}

export class KeyExchange {
  private initiator: IkeInitiator | null = null;
  private socket: IkeSocket | null = null;
  private timer: Timer | null = null;
  private waiting: { resolve: (sa: SaPair) => void; reject: (e: Error) => void } | null = null;
  private ikeWaiting: { resolve: () => void; reject: (e: Error) => void } | null = null;
  /** Generations stored 'pending' by the current IKE SA and neither activated nor retired yet. */
  private readonly staged = new Map<number, SaPair>();
  /**
   * The SA this driver last stored (putSa) and activated, as it stored it: the session that goes over to it takes
   * it from here instead of reading it back and unwrapping its keys (StationCore.runKeyExchange).
   */
  lastActivated: SaPair | null = null;
  /** When the current IKE SA was established or last rekeyed (env.mono). */
  private ikeSince = 0;
  /** Datagrams from the peer since the current attempt began (an error then says what the peer did answer). */
  private heard = 0;
  private chain: Promise<void> = Promise.resolve();
  /** The tail of the exchanges asked for: each waits for the ones before it. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly nic: NicRecord, private readonly o: KeyExchangeOptions) {}

  get hasIkeSa(): boolean {
    return this.initiator?.state === 'established';
  }

  /** IKE_SA_INIT + IKE_AUTH with the first child SA, then the two-phase commit. */
  enroll(timeoutMs = 10000): Promise<ExchangeResult> {
    return this.run('enroll', timeoutMs);
  }

  /** CREATE_CHILD_SA on the held IKE SA (or a new IKE SA), then the two-phase commit. */
  refresh(timeoutMs = 10000): Promise<ExchangeResult> {
    return this.run('refresh', timeoutMs);
  }

  private run(kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    const r = this.queue.then(() => this.runNow(kind, timeoutMs));
    this.queue = r.catch(() => undefined);
    return r;
  }

  /**
   * A timeout names the phase that ran out (CREATE_CHILD_SA's half, or the new IKE SA's rest) with that phase's
   * time; the user waited for the whole exchange, so the message says that too (issue 17: "2498 ms" after 5.2 s).
   */
  private async runNow(kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    const started = this.o.env.mono();
    let fellBack = false;
    try {
      return await this.runPhases(kind, timeoutMs, () => (fellBack = true));
    } catch (e) {
      if (!(e instanceof ExchangeError) || e.code !== 'E_IKE_TIMEOUT') throw e;
      const all = Math.round(this.o.env.mono() - started);
      const first = fellBack ? 'CREATE_CHILD_SA on the held IKE SA got no answer first; ' : '';
      throw new ExchangeError(e.code, `${e.message} (${first}${all} ms in all)`, e.scope, e.ikeGone);
    }
  }

  private async runPhases(kind: 'enroll' | 'refresh', timeoutMs: number, onFallback: () => void): Promise<ExchangeResult> {
    await this.open();
    // The generations read here number the first attempt; a later one (a retry, the fallback) reads them again.
    let known: number | undefined = await this.retireStalePending(timeoutMs);
    const generation = (): Promise<number> => {
      const g = this.nextGeneration(known);
      known = undefined;
      return g;
    };
    const t0 = this.o.env.mono();
    const left = (): number => timeoutMs - (this.o.env.mono() - t0);
    if (kind === 'refresh' && this.initiator?.canRefresh === true) {
      // CREATE_CHILD_SA gets at most half the caller's timeout, so that a host agent that forgot our IKE SA (the
      // host rebooted, or another process keyed the NIC) always leaves the other half for a new IKE SA: the
      // caller's timeout bounds the whole refresh, fallback included (worst case: timeoutMs).
      const share = timeoutMs * CHILD_SHARE_OF_TIMEOUT;
      try {
        await this.rekeyIkeSaIfDue(share);
        const sa = await this.retryBusy(() => this.attempt(true, share - (this.o.env.mono() - t0), generation), () => share - (this.o.env.mono() - t0));
        return { nic: this.nic.id, generation: sa.generation, kind, exchange: 'CREATE_CHILD_SA', ms: this.o.env.mono() - t0 };
      } catch (e) {
        if (!(e instanceof ExchangeError && e.ikeGone)) throw e;
        onFallback();
        this.o.log?.('info', `${(e as Error).message}; the host agent restarted? starting a new IKE SA`);
      }
    }
    const sa = await this.retryBusy(() => this.attempt(false, left(), generation), left);
    return { nic: this.nic.id, generation: sa.generation, kind, exchange: 'IKE_AUTH', ms: this.o.env.mono() - t0 };
  }

  /**
   * §2.25: a peer busy with its own rekey answers TEMPORARY_FAILURE; ask again shortly, within the time left. And an
   * inbound SPI drawn at random that another SA in the store already uses (E_SPI_IN_USE when the SA is stored as
   * pending, before anything is sent under it or any commit step): a new attempt draws another SPI, at most
   * SPI_CLASH_RETRIES times (SPIs are unique store-wide for adoption by SPI; 20,000 random ones meet with a chance
   * of about 5 %).
   */
  private async retryBusy(f: () => Promise<SaPair>, left: () => number): Promise<SaPair> {
    let clashes = 0;
    for (;;) {
      try {
        return await f();
      } catch (e) {
        if ((e as LifelineError).code === 'E_SPI_IN_USE' && ++clashes <= SPI_CLASH_RETRIES && left() > 4 * BUSY_RETRY_MS) {
          this.o.log?.('info', `${this.nic.id}: ${(e as Error).message}; trying again with another SPI`);
          continue;
        }
        const wait = BUSY_RETRY_MS * (1 + (this.o.env.random(1)[0] & 3));
        if ((e as LifelineError).code !== 'E_IKE_BUSY' || left() < wait + 4 * BUSY_RETRY_MS) throw e;
        this.o.log?.('info', `${this.nic.id}: ${(e as Error).message}; trying again in ${wait} ms`);
        await sleep(this.o.env, wait);
      }
    }
  }

  /**
   * Rekey the held IKE SA (§2.18) once it is `ikeRekeyMs` old: CREATE_CHILD_SA { SA(IKE), Ni, KEi }, then D(IKE)
   * of the old one. Refused (the peer is busy, or rekeying it too: §2.8.2 settles that) it goes on as it is; no
   * answer in time gives it up (the caller then starts a new IKE SA).
   */
  private async rekeyIkeSaIfDue(timeoutMs: number): Promise<void> {
    const initiator = this.initiator;
    if (!initiator?.canRefresh || this.o.env.mono() - this.ikeSince < (this.o.ikeRekeyMs ?? DEFAULT_IKE_REKEY_MS)) return;
    const done = new Promise<void>((resolve, reject) => (this.ikeWaiting = { resolve, reject }));
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.o.env.after(Math.max(0, timeoutMs / 2), () => reject(new ExchangeError('E_IKE_TIMEOUT', `${this.nic.id}: no answer from the host agent to our IKE SA rekey in ${Math.round(timeoutMs / 2)} ms`, 'ike', true)));
    });
    try {
      await this.perform(initiator.rekeyIkeSa(this.o.env.now()), initiator);
      await Promise.race([done, timeout]);
    } catch (e) {
      if (e instanceof ExchangeError && e.ikeGone) {
        await this.abandon(initiator, 'no answer to our IKE SA rekey');
        throw e;
      }
      this.o.log?.('info', `${this.nic.id}: IKE SA rekey not done (${(e as Error).message}); the IKE SA goes on`);
      this.ikeSince = this.o.env.mono(); // not again before another lifetime
    } finally {
      timer?.cancel();
      this.ikeWaiting = null;
    }
  }

  /** One exchange (CREATE_CHILD_SA on the held IKE SA, or a new IKE SA) through the commit. */
  private async attempt(useChild: boolean, timeoutMs: number, generation: () => Promise<number>): Promise<SaPair> {
    const next = await generation();
    if (useChild && !this.initiator?.canRefresh) {
      throw new ExchangeError('E_IKE_STATE', `${this.nic.id}: the IKE SA went away before CREATE_CHILD_SA`, 'ike', true);
    }
    if (!useChild) {
      // An IKE SA still held (an enrolment while one is up) is replaced: tell the host (§1.4.1) rather than leave
      // it to INITIAL_CONTACT or its table's limit.
      if (this.initiator) await this.abandon(this.initiator, 'replaced by a new IKE SA');
      this.initiator = new IkeInitiator({
        random: (n) => this.o.env.random(n),
        psk: this.nic.psk,
        id: `${this.o.stationId}.station.lifeline`,
        peerId: `${this.nic.id}.host.lifeline`,
        policy: this.o.policy,
        espTransforms: this.o.espTransforms,
        esn: this.o.esn,
        retransmit: STATION_RETRANSMIT,
        nextGeneration: next,
      });
    } else this.initiator!.setNextGeneration(next);
    const done = new Promise<SaPair>((resolve, reject) => (this.waiting = { resolve, reject }));
    let timer: Timer | undefined;
    const initiator = this.initiator!;
    this.heard = 0;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.o.env.after(Math.max(0, timeoutMs), () => reject(new ExchangeError('E_IKE_TIMEOUT', this.timeoutMessage(initiator, useChild, timeoutMs), 'ike', true)));
    });
    let committed = false;
    let failure: unknown = null;
    try {
      await this.perform(useChild ? initiator.refresh(this.o.env.now()) : initiator.connect(this.o.env.now()), initiator);
      const sa = await Promise.race([done, timeout]);
      committed = true;
      return sa;
    } catch (e) {
      failure = e;
      throw e;
    } finally {
      timer?.cancel();
      this.waiting = null;
      // A refused Child SA leaves the IKE SA usable (and nothing staged); anything else gives the IKE SA up.
      if (!committed && !(failure instanceof ExchangeError && failure.scope === 'child' && initiator.state === 'established')) {
        await this.abandon(initiator, (failure as Error | null)?.message ?? 'exchange abandoned');
      }
    }
  }

  /**
   * Why our deadline passed, from what the peer did answer: nothing at all (the host OS down, or its agent
   * unreachable), IKE_SA_INIT only, or the exchange but no SA_READY/SA_CONFIRM (the commit extension was
   * negotiated, so a standard peer is not the cause: plain mode never waits for those).
   */
  private timeoutMessage(initiator: IkeInitiator, useChild: boolean, ms: number): string {
    const who = `${this.nic.id}: the host agent (${this.nic.address}:${this.nic.ikePort})`;
    const t = `${Math.round(ms)} ms`;
    if (this.heard === 0) {
      return `${who} did not answer ${useChild ? 'CREATE_CHILD_SA' : 'IKE_SA_INIT'} in ${t}: is the host OS up and its IKE agent reachable?`;
    }
    if (initiator.state === 'auth-sent' || initiator.state === 'init-sent') {
      return `${who} answered IKE_SA_INIT but not ${initiator.state === 'auth-sent' ? 'IKE_AUTH' : 'with a usable IKE_SA_INIT'} in ${t} (a host under an IKE_SA_INIT flood, or a lost answer)`;
    }
    if (initiator.commitMode && initiator.commitState !== 'idle') {
      return `${who} negotiated the Child SA but the two-phase commit did not finish in ${t} (commit state '${initiator.commitState}': no SA_READY or SA_CONFIRM); the current SA stays in use`;
    }
    return `${who} did not answer ${useChild ? 'CREATE_CHILD_SA' : 'IKE_AUTH'} in ${t}`;
  }

  /**
   * The exchange is given up (our deadline, or its IKE SA failed): the initiator sends one INFORMATIONAL { D(IKE) }
   * (§1.4.1; nothing if the IKE SA is already dead or was never established), then nothing the host still sends
   * for it is acted on (in particular no SA_ACK goes out late: the host then discards its pending slot, DESIGN
   * §2.5), and every SA it had stored as 'pending' is retired — the station never uses it. (If the host had already
   * committed one, the NIC keeps the SA the station goes on using: it never discards the SA that most recently
   * authenticated a station packet.)
   */
  private async abandon(initiator: IkeInitiator, why: string): Promise<void> {
    if (this.initiator === initiator) {
      const fx = initiator.abandon(this.o.env.now(), why);
      await this.chain; // effects already under way finish first (a 'child-sa' store write among them)
      await this.perform(fx, initiator);
      this.initiator = null;
      this.timer?.cancel();
      this.timer = null;
    }
    await this.chain;
    for (const g of [...this.staged.keys()]) await this.retireStaged(g);
  }

  /**
   * Plain mode numbers SAs on the station: above every generation the store holds for the NIC. `known`: the
   * generations the caller has just read (retireStalePending's read, for the first attempt of a run).
   */
  private async nextGeneration(known?: number): Promise<number> {
    let max = known ?? 0;
    if (known === undefined) for (const s of await this.o.store.listNicSaStates(this.nic.id)) max = Math.max(max, s.generation);
    return max + 1;
  }

  /**
   * Retire the NIC's 'pending' rows that no exchange can commit any more (see STALE_PENDING_MS). Returns the highest
   * generation the store holds for the NIC (0: none), from the same read (keys are not read: listNicSaStates).
   */
  private async retireStalePending(timeoutMs: number): Promise<number> {
    const before = this.o.env.now() - Math.max(STALE_PENDING_MS, 2 * timeoutMs);
    let max = 0;
    for (const s of await this.o.store.listNicSaStates(this.nic.id)) {
      max = Math.max(max, s.generation);
      if (s.state !== 'pending' || s.updatedAt > before) continue;
      this.o.log?.('info', `${this.nic.id}: retiring SA generation ${s.generation}, left pending by an exchange that never finished`);
      await this.o.store.setSaState(this.nic.id, s.generation, 'retired', this.o.env.now(), this.o.fence()).catch(() => undefined);
    }
    return max;
  }

  private async open(): Promise<void> {
    if (this.socket) return;
    this.socket = await this.o.env.openIkeSocket(this.o.bind ?? '127.0.0.1', (msg) => {
      const initiator = this.initiator;
      if (!initiator) return; // no exchange, or an abandoned one: ignored
      this.heard++;
      const fx = initiator.receive(msg, this.o.env.now());
      this.chain = this.chain.then(() => this.perform(fx, initiator)).catch((e) => this.failed(e));
    });
  }

  /** A store write for the peer's effects failed (fenced, store down): whoever waits hears it, else it is logged. */
  private failed(e: unknown): void {
    if (this.waiting) this.waiting.reject(e as Error);
    else this.o.log?.('warn', `${this.nic.id}: ${(e as Error).message}`);
  }

  /** Carry out the effects `initiator` asked for, unless that initiator's exchange was abandoned meanwhile. */
  private async perform(fx: IkeEffect[], initiator: IkeInitiator): Promise<void> {
    const store = this.o.store;
    for (const e of fx) {
      if (this.initiator !== initiator) return;
      switch (e.kind) {
        case 'send':
          this.socket?.send(e.bytes, this.nic.ikePort, this.nic.address);
          break;
        case 'established':
        case 'ike-rekeyed': {
          // A new IKE SA, or new keys and SPIs for it (§2.18): Wireshark needs its line (the old one stays exported).
          this.ikeSince = this.o.env.mono();
          const line = initiator.decryptionTableLine();
          if (line) this.o.onIkeKeys?.(this.nic.id, line);
          if (e.kind === 'ike-rekeyed') {
            this.o.log?.('info', `${this.nic.id}: IKE SA rekeyed (${e.oldSpiI}/${e.oldSpiR} -> ${e.spiI}/${e.spiR})`);
            this.ikeWaiting?.resolve();
          }
          break;
        }
        case 'child-sa':
          // Commit mode: the host staged it and said SA_READY: remember it before acknowledging. Plain mode: our
          // exchange's answer (switch-outbound follows at once), or a rekey the peer started (it follows when the
          // peer deletes the old SA).
          this.staged.set(e.sa.generation, e.sa);
          await store.putSa(this.nic.id, { pair: e.sa, state: 'pending', ike: this.ikeSnapshot() }, this.o.env.now(), this.o.fence());
          break;
        case 'switch-outbound': {
          // SA_CONFIRM (or plain IKEv2's completed exchange): the NIC holds it. Persist, then use it (the old one
          // stays as 'previous').
          await store.activateSa(this.nic.id, e.sa.generation, this.o.env.now(), this.o.fence());
          this.lastActivated = this.staged.get(e.sa.generation) ?? null;
          this.staged.delete(e.sa.generation);
          if (this.waiting) this.waiting.resolve(e.sa);
          else this.o.onActivated?.(this.nic.id, e.sa); // the peer's own rekey (§2.8): move the session over
          break;
        }
        case 'commit-aborted':
          await this.retireStaged(e.generation);
          this.waiting?.reject(new ExchangeError('E_IKE_STATE', `${this.nic.id}: SA generation ${e.generation} was not committed (${e.message})`, 'ike'));
          break;
        case 'failed':
          if (e.scope === 'rekey') {
            this.ikeWaiting?.reject(new LifelineError(e.code, `${this.nic.id}: ${e.message}`));
            break;
          }
          if (e.scope === 'ike') for (const g of [...this.staged.keys()]) await this.retireStaged(g);
          this.waiting?.reject(new ExchangeError(e.code, `${this.nic.id}: ${e.message}`, e.scope, e.scope === 'ike' && e.code === 'E_IKE_TIMEOUT'));
          this.ikeWaiting?.reject(new LifelineError(e.code, `${this.nic.id}: ${e.message}`));
          break;
        case 'closed':
          // The peer deleted the IKE SA (host shutting down, or its own policy), or we gave it up. A Child SA
          // exchange still waiting cannot finish: say so now rather than at the deadline.
          this.waiting?.reject(new ExchangeError('E_IKE_STATE', `${this.nic.id}: the IKE SA closed during the exchange (${e.message})`, 'ike', true));
          this.ikeWaiting?.reject(new LifelineError('E_IKE_STATE', `${this.nic.id}: the IKE SA closed (${e.message})`));
          break;
        case 'log':
          // Warnings, and which mode the IKE SA runs in (commit or plain IKEv2); the rest is the initiator's detail.
          if (e.level === 'warn' || e.event === 'ike.established') this.o.log?.(e.level, `${this.nic.id}: ${e.message}`);
          break;
        default:
          break;
      }
    }
    this.schedule();
  }

  /**
   * What the store keeps of the IKE SA: its SPIs and SK_e keys, for `keys --ikev2` (Wireshark's
   * ikev2_decryption_table). The IKE SA itself is not resumed after a station restart; the next refresh
   * then runs a new IKE_SA_INIT + IKE_AUTH (documented in docs/STATION.md).
   */
  private ikeSnapshot(): IkeSaSnapshot | null {
    const k = this.initiator?.ikeKeys();
    if (!k) return null;
    const none = new Uint8Array(0);
    return {
      spiI: k.spiI, spiR: k.spiR, initiator: true, skD: none, skAi: none, skAr: none, skEi: k.skEi, skEr: k.skEr, skPi: none, skPr: none,
      nextRequestId: 0, nextPeerRequestId: 0, transforms: { encr: 20, encrKeyBits: 128, prf: 5, integ: 0, dh: 31 },
    };
  }

  private async retireStaged(generation: number): Promise<void> {
    this.staged.delete(generation);
    await this.o.store.setSaState(this.nic.id, generation, 'retired', this.o.env.now(), this.o.fence()).catch(() => undefined);
  }

  private schedule(): void {
    this.timer?.cancel();
    this.timer = null;
    const at = this.initiator?.pollTimeout();
    if (at === null || at === undefined) return;
    const initiator = this.initiator!;
    this.timer = this.o.env.after(Math.max(0, at - this.o.env.now()), () => {
      this.timer = null;
      if (this.initiator !== initiator) return;
      const fx = initiator.handleTimeout(this.o.env.now());
      this.chain = this.chain.then(() => this.perform(fx, initiator)).catch((e) => this.failed(e));
    });
  }

  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    const s = this.socket;
    this.socket = null;
    if (s) await s.close();
  }
}
