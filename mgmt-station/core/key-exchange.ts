/**
 * The station's IKE driver for one NIC: runs the sans-I/O IkeInitiator (protocol/ike) over a UDP socket to
 * the host agent, and records the outcome in the store in the order the commit needs (DESIGN §2.5):
 *   child-sa (host staged it, sent SA_READY)  -> store it as 'pending'
 *   switch-outbound (SA_CONFIRM arrived)      -> make it 'active' in the store, then use it
 *   commit-aborted / failed                   -> the current SA stays in use; the pending row is retired
 * `enroll()` runs IKE_SA_INIT + IKE_AUTH (with the first child SA); `refresh()` runs CREATE_CHILD_SA on the
 * IKE SA this driver holds, or a new IKE SA when it holds none (e.g. after a station restart) or when the host
 * agent does not answer CREATE_CHILD_SA within half the refresh's timeout (it restarted with its host and forgot
 * our IKE SA); the whole refresh, fallback included, ends within the caller's timeout.
 *
 * One exchange at a time: the initiator and its commit have a single slot, so a second `enroll()`/`refresh()`
 * waits until the one under way has finished and then runs its own (each caller gets an SA negotiated after
 * it asked). An exchange that fails or times out abandons its IKE SA: whatever the host still sends for it is
 * ignored (no late SA_ACK, so the host discards its pending slot, DESIGN §2.5) and its 'pending' row is retired
 * at once; the next exchange starts a new IKE SA. A 'pending' row that no exchange can finish any more (its
 * process died between SA_READY and SA_CONFIRM) is retired by the next exchange of the NIC.
 */
import { IkeInitiator, type IkeEffect } from '../../protocol/index.js';
import { LifelineError } from '../../common/errors.js';
import type { SaPair, SecurityPolicy, EspTransform } from '../../wire/sa.js';
import type { Fence, IkeSaSnapshot, NicRecord, Store } from '../store/store.js';
import type { IkeSocket, StationEnv, Timer } from './env.js';

export interface KeyExchangeOptions {
  store: Store;
  fence: () => Fence;
  env: StationEnv;
  stationId: string;
  policy?: SecurityPolicy;
  espTransforms?: EspTransform[];
  esn?: boolean;
  bind?: string;
  /** Called with every IKE SA's ikev2_decryption_table line (for `keys --wireshark`). */
  onIkeKeys?: (nic: string, uatLine: string) => void;
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
 * The share of a refresh's timeout that CREATE_CHILD_SA on the held IKE SA may use; the rest is left for a new
 * IKE SA (IKE_SA_INIT + IKE_AUTH) when the host agent does not answer it (it restarted and forgot the IKE SA).
 */
const CHILD_SHARE_OF_TIMEOUT = 0.5;

export interface ExchangeResult { nic: string; generation: number; kind: 'enroll' | 'refresh'; exchange: 'IKE_AUTH' | 'CREATE_CHILD_SA'; ms: number }

export class KeyExchange {
  private initiator: IkeInitiator | null = null;
  private socket: IkeSocket | null = null;
  private timer: Timer | null = null;
  private waiting: { resolve: (sa: SaPair) => void; reject: (e: Error) => void } | null = null;
  private staged: SaPair | null = null;
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

  private async runNow(kind: 'enroll' | 'refresh', timeoutMs: number): Promise<ExchangeResult> {
    await this.open();
    await this.retireStalePending(timeoutMs);
    const t0 = this.o.env.mono();
    if (kind === 'refresh' && this.initiator?.canRefresh === true) {
      // CREATE_CHILD_SA gets at most half the caller's timeout, so that a host agent that forgot our IKE SA (the
      // host rebooted, or another process keyed the NIC) always leaves the other half for a new IKE SA: the
      // caller's timeout bounds the whole refresh, fallback included (worst case: timeoutMs).
      try {
        const sa = await this.attempt(true, timeoutMs * CHILD_SHARE_OF_TIMEOUT);
        return { nic: this.nic.id, generation: sa.generation, kind, exchange: 'CREATE_CHILD_SA', ms: this.o.env.mono() - t0 };
      } catch (e) {
        if ((e as LifelineError).code !== 'E_IKE_TIMEOUT') throw e;
        this.o.log?.('info', `${this.nic.id}: no answer to CREATE_CHILD_SA; the host agent restarted? starting a new IKE SA`);
      }
    }
    const sa = await this.attempt(false, timeoutMs - (this.o.env.mono() - t0));
    return { nic: this.nic.id, generation: sa.generation, kind, exchange: 'IKE_AUTH', ms: this.o.env.mono() - t0 };
  }

  /** One exchange (CREATE_CHILD_SA on the held IKE SA, or a new IKE SA) through the commit. */
  private async attempt(useChild: boolean, timeoutMs: number): Promise<SaPair> {
    if (!useChild) {
      this.initiator = new IkeInitiator({
        random: (n) => this.o.env.random(n),
        psk: this.nic.psk,
        id: `${this.o.stationId}.station.lifeline`,
        peerId: `${this.nic.id}.host.lifeline`,
        policy: this.o.policy,
        espTransforms: this.o.espTransforms,
        esn: this.o.esn,
        retransmit: STATION_RETRANSMIT,
      });
    }
    const done = new Promise<SaPair>((resolve, reject) => (this.waiting = { resolve, reject }));
    let timer: Timer | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = this.o.env.after(Math.max(0, timeoutMs), () => reject(new LifelineError('E_IKE_TIMEOUT', `key exchange with ${this.nic.id}'s host agent (${this.nic.address}:${this.nic.ikePort}) did not finish in ${Math.round(timeoutMs)} ms; the host OS must be up`)));
    });
    const initiator = this.initiator!;
    let committed = false;
    try {
      await this.perform(useChild ? initiator.refresh(this.o.env.now()) : initiator.connect(this.o.env.now()), initiator);
      const sa = await Promise.race([done, timeout]);
      committed = true;
      return sa;
    } finally {
      timer?.cancel();
      this.waiting = null;
      if (!committed) await this.abandon(initiator);
    }
  }

  /**
   * The exchange failed or timed out: drop its IKE SA, so nothing the host still sends for it is acted on (in
   * particular no SA_ACK goes out late: the host then discards its pending slot, DESIGN §2.5), and retire the SA
   * it had stored as 'pending' — the station never uses it. (If the host had already committed it, the NIC keeps
   * the SA the station goes on using: it never discards the SA that most recently authenticated a station packet.)
   */
  private async abandon(initiator: IkeInitiator): Promise<void> {
    if (this.initiator === initiator) {
      this.initiator = null;
      this.timer?.cancel();
      this.timer = null;
    }
    await this.chain; // effects already under way finish first (a 'child-sa' store write among them)
    if (this.staged) await this.retireStaged(this.staged.generation);
  }

  /** Retire the NIC's 'pending' rows that no exchange can commit any more (see STALE_PENDING_MS). */
  private async retireStalePending(timeoutMs: number): Promise<void> {
    const before = this.o.env.now() - Math.max(STALE_PENDING_MS, 2 * timeoutMs);
    for (const s of await this.o.store.listSas(this.nic.id)) {
      if (s.state !== 'pending' || s.updatedAt > before) continue;
      this.o.log?.('info', `${this.nic.id}: retiring SA generation ${s.pair.generation}, left pending by an exchange that never finished`);
      await this.o.store.setSaState(this.nic.id, s.pair.generation, 'retired', this.o.env.now(), this.o.fence()).catch(() => undefined);
    }
  }

  private async open(): Promise<void> {
    if (this.socket) return;
    this.socket = await this.o.env.openIkeSocket(this.o.bind ?? '127.0.0.1', (msg) => {
      const initiator = this.initiator;
      if (!initiator) return; // no exchange, or an abandoned one: ignored
      const fx = initiator.receive(msg, this.o.env.now());
      this.chain = this.chain.then(() => this.perform(fx, initiator)).catch((e) => this.waiting?.reject(e));
    });
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
        case 'established': {
          const line = this.initiator?.decryptionTableLine();
          if (line) this.o.onIkeKeys?.(this.nic.id, line);
          break;
        }
        case 'child-sa':
          // The host staged it in the NIC's pending slot and said SA_READY: remember it before acknowledging.
          this.staged = e.sa;
          await store.putSa(this.nic.id, { pair: e.sa, state: 'pending', ike: this.ikeSnapshot() }, this.o.env.now(), this.o.fence());
          break;
        case 'switch-outbound':
          // SA_CONFIRM: the NIC holds it committed. Persist, then use it (the old one stays as 'previous').
          await store.activateSa(this.nic.id, e.sa.generation, this.o.env.now(), this.o.fence());
          this.staged = null;
          this.waiting?.resolve(e.sa);
          break;
        case 'commit-aborted':
          await this.retireStaged(e.generation);
          this.waiting?.reject(new LifelineError('E_IKE_STATE', `${this.nic.id}: SA generation ${e.generation} was not committed (${e.message})`));
          break;
        case 'failed':
          if (this.staged) await this.retireStaged(this.staged.generation);
          this.waiting?.reject(new LifelineError(e.code, `${this.nic.id}: ${e.message}`));
          break;
        case 'log':
          if (e.level !== 'debug') this.o.log?.(e.level, `${this.nic.id}: ${e.message}`);
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
   * then runs a new IKE_SA_INIT + IKE_AUTH (documented in README).
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
    this.staged = null;
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
      this.chain = this.chain.then(() => this.perform(fx, initiator)).catch((e) => this.waiting?.reject(e));
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
