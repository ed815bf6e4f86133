/**
 * The emulated host's IKE agent: an IKEv2 responder (RFC 7296) plus the host half of the
 * two-phase commit (DESIGN §2.5, ../commit.ts). It exists only while the host OS is up; its
 * only persistent state is the NIC's EEPROM (see recover()). Sans-I/O like the initiator.
 *
 *   --> IKE_SA_INIT { SA, KEi, Ni }   <-- { SA, KEr, Nr } | { N(COOKIE) } | { N(NO_PROPOSAL_CHOSEN) } | { N(INVALID_KE_PAYLOAD) }
 *   --> IKE_AUTH { IDi, AUTH, ..., N(COMMIT_SUPPORTED), SA, TSi, TSr }
 *          <-- { IDr, AUTH, N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr } | { N(AUTHENTICATION_FAILED) }
 *   commit mode (both announced COMMIT_SUPPORTED):
 *       nic-write-pending;  INFORMATIONAL { N(SA_READY) } -->   <-- { }
 *   --> INFORMATIONAL { N(SA_ACK) }          nic-commit;   <-- { N(SA_CONFIRM) }
 *   plain mode (a standard peer): nic-write-pending, nic-commit, then the IKE_AUTH response.
 *   --> CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, KEi, TSi, TSr }  <-- { SA, Nr, KEr, TSi, TSr } (then the commit again)
 *   --> CREATE_CHILD_SA { SA(IKE), Ni, KEi }  <-- { SA(IKE), Nr, KEr }   IKE SA rekey (ike-rekey.ts)
 *
 * IKE_SA_INIT floods (§2.6, RFC 8019): cookie.ts decides before any DH or state; half-open IKE
 * SAs expire after halfOpenTimeoutMs; `drops` counts every refusal by reason, `stats` the DH work.
 * The exchanges after IKE_SA_INIT live in responder-exchanges.ts (one section per exchange).
 */
import { equalBytes, hex } from '../../common/bytes.js';
import { ProtocolError, UsageError, isLifelineError } from '../../common/errors.js';
import type { EspTransform, SecurityPolicy } from '../../wire/sa.js';
import { HostCommit } from '../commit.js';
import { DEFAULT_FLOOD_POLICY, InitGuard, type FloodPolicy } from './cookie.js';
import { EXCHANGE, PROTO_IKE } from './constants.js';
import { DropCounter, type DatagramSource, type IkeEffect, log } from './effects.js';
import { decodeHeader, fromInitiator, isResponse, type EncodedPayload, type IkeHeader } from './ike-message.js';
import { encodeDelete, encodeNotify } from './ike-payloads.js';
import { answerInit, plainErrorAnswer, readInitRequest } from './ike-sa-init.js';
import { IkeSaCore } from './ike-sa.js';
import { NOTIFY } from './notify.js';
import { DEFAULT_RETRANSMIT, assertRetransmitPolicy, type RetransmitPolicy } from './retransmit.js';
import { ResponderExchanges, type Purpose, type Session, type SessionState } from './responder-exchanges.js';

export interface ResponderOptions {
  random: (n: number) => Uint8Array;
  /** The NIC's trust anchor (DESIGN §3). */
  psk: Uint8Array;
  /** Our ID_FQDN (IDr). */
  id: string;
  /** If set, only this IDi may authenticate. */
  peerId?: string;
  /** Generation number for the next SA staged on the NIC (the EEPROM knows the last one). */
  nextGeneration: number;
  /** ESP ciphers accepted (default both). */
  espTransforms?: EspTransform[];
  /** Accept ESN when offered (default true; the station decides, DESIGN §2.2). */
  allowEsn?: boolean;
  /** Refuse a CREATE_CHILD_SA without KE (default false). */
  requirePfs?: boolean;
  policy?: SecurityPolicy;
  /** How long a pending SA waits for SA_ACK before it is discarded (default 20 s). */
  commitTimeoutMs?: number;
  retransmit?: RetransmitPolicy;
  /** Established IKE SAs kept (default 8; the oldest goes first). */
  maxSessions?: number;
  /**
   * Announce and run the two-phase commit (N(COMMIT_SUPPORTED), default true). Off, the agent is a
   * plain IKEv2 responder: a Child SA is written and committed before its exchange is answered.
   */
  commitExtension?: boolean;
  /** IKE_SA_INIT flood defence (cookie.ts); unset fields take DEFAULT_FLOOD_POLICY. */
  flood?: Partial<FloodPolicy>;
}

export type ResolvedResponderOptions = Required<Omit<ResponderOptions, 'peerId' | 'nextGeneration' | 'flood'>> & { peerId?: string; flood: FloodPolicy };

/** What receive() is told about the datagram besides its bytes (effects.ts). */
export type { DatagramSource } from './effects.js';

export class IkeResponder {
  private readonly o: ResolvedResponderOptions;
  private readonly sessions = new Map<string, Session>();
  private readonly commit = new HostCommit();
  private readonly dropped = new DropCounter();
  private readonly guard: InitGuard;
  private readonly x: ResponderExchanges;
  private readonly counters = { dhComputations: 0, cookiesSent: 0, halfOpenExpired: 0, halfOpenEvicted: 0 };

  constructor(opts: ResponderOptions) {
    if (typeof opts?.random !== 'function') throw new UsageError('E_USAGE', 'IkeResponder: random(n) is required');
    if (!(opts.psk instanceof Uint8Array) || opts.psk.length === 0) throw new UsageError('E_USAGE', 'IkeResponder: psk must be non-empty bytes');
    if (typeof opts.id !== 'string' || opts.id.length === 0) throw new UsageError('E_USAGE', 'IkeResponder: id (FQDN) is required');
    const retransmit = opts.retransmit ?? DEFAULT_RETRANSMIT;
    assertRetransmitPolicy(retransmit);
    this.o = {
      random: opts.random,
      psk: opts.psk,
      id: opts.id,
      peerId: opts.peerId,
      espTransforms: opts.espTransforms ?? ['aes-gcm-16', 'chacha20-poly1305'],
      allowEsn: opts.allowEsn ?? true,
      requirePfs: opts.requirePfs ?? false,
      policy: opts.policy ?? 'esp',
      commitTimeoutMs: opts.commitTimeoutMs ?? 20_000,
      retransmit,
      maxSessions: opts.maxSessions ?? 8,
      commitExtension: opts.commitExtension ?? true,
      flood: { ...DEFAULT_FLOOD_POLICY, ...opts.flood },
    };
    if (!(this.o.commitTimeoutMs > 0)) throw new UsageError('E_USAGE', 'IkeResponder: commitTimeoutMs must be > 0');
    if (!(Number.isInteger(this.o.maxSessions) && this.o.maxSessions >= 1)) throw new UsageError('E_USAGE', 'IkeResponder: maxSessions must be >= 1');
    this.guard = new InitGuard(this.o.flood, this.o.random);
    this.x = new ResponderExchanges(this.o, this.sessions, this.commit);
    this.setNextGeneration(opts.nextGeneration);
  }

  /** The NIC's EEPROM moved on (e.g. a manual SA was written): stage later SAs above `n - 1`. */
  setNextGeneration(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new UsageError('E_USAGE', `nextGeneration must be an integer 1..2^32-1, got ${n}`);
    this.x.nextGeneration = n;
  }

  /**
   * A (re)started agent finds a pending slot in the NIC's EEPROM: no IKE SA survived the
   * restart, so nobody can ever acknowledge it. Discard it; the active SA stays in force.
   */
  recover(pendingGeneration: number | null): IkeEffect[] {
    if (pendingGeneration === null) return [];
    return [
      { kind: 'nic-discard', generation: pendingGeneration },
      log('info', 'ike.recover', `agent restarted: pending SA generation ${pendingGeneration} can no longer be confirmed, discarded`),
    ];
  }

  /**
   * Graceful host shutdown: INFORMATIONAL { D(IKE) } on every established IKE SA (§1.4.1), so
   * the station learns at once instead of after its retransmissions. The Child SAs stay on the
   * NIC. A pending SA can no longer be confirmed and is discarded.
   */
  shutdown(now: number): IkeEffect[] {
    return this.addressed(this.shutdownFx(now), null);
  }

  private shutdownFx(now: number): IkeEffect[] {
    const fx: IkeEffect[] = [];
    const d = this.commit.discard();
    if (d) fx.push({ kind: 'nic-discard', generation: d.id.generation });
    for (const [key, s] of [...this.sessions]) {
      if (s.state !== 'established') {
        this.sessions.delete(key);
        continue;
      }
      s.core.clearQueue();
      s.closing = true;
      const bytes = s.core.request(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])], { kind: 'delete-ike', why: 'shutdown' }, now);
      if (bytes) fx.push({ kind: 'send', bytes });
    }
    return fx;
  }

  /**
   * Rekeys an established IKE SA (§1.3.2; a standard peer's lifetime policy, or a test). `session`
   * is its SPI as 16 hex digits (our SPI); default: the only established one.
   */
  rekeyIkeSa(now: number, session?: string): IkeEffect[] {
    return this.addressed(this.x.startIkeRekey(this.pick(session, 'rekeyIkeSa'), now), null);
  }

  /** Rekeys the Child SA of an IKE SA (CREATE_CHILD_SA { N(REKEY_SA), ... }, §1.3.3) as a standard peer would. */
  rekeyChild(now: number, session?: string): IkeEffect[] {
    return this.addressed(this.x.startChildRekey(this.pick(session, 'rekeyChild'), now), null);
  }

  private pick(session: string | undefined, what: string): Session {
    const est = [...this.sessions.values()].filter((s) => s.state === 'established' && !s.closing && !s.rekeyedTo);
    const s = session === undefined ? (est.length === 1 ? est[0] : undefined) : est.find((x) => x.key === session);
    if (!s) throw new UsageError('E_IKE_STATE', `IkeResponder.${what}(): no such established IKE SA${session ? ` '${session}'` : ' (give its SPI: there are ' + est.length + ')'}`);
    return s;
  }

  /** Dropped inputs by reason (never thrown, RFC 7296 §2.21 / STYLE 4). */
  get drops(): Record<string, number> {
    return this.dropped.record;
  }

  /** Work and defence counters (RFC 8019): DH computations, cookies sent, half-open SAs expired/evicted, cookie mode. */
  stats(now?: number): { dhComputations: number; cookiesSent: number; halfOpenExpired: number; halfOpenEvicted: number; halfOpen: number; cookieMode: boolean; cookieSecrets: number } {
    const halfOpen = this.halfOpenCount();
    return { ...this.counters, halfOpen, cookieMode: this.guard.cookieMode(halfOpen, now ?? -Infinity), cookieSecrets: this.guard.jar.rotations };
  }

  /** Number of IKE SAs in each state (for status output and tests). */
  get sessionStates(): SessionState[] {
    return [...this.sessions.values()].map((s) => s.state);
  }

  /** Our SPIs (16 hex digits) of the established IKE SAs, oldest first. */
  get establishedSpis(): string[] {
    return [...this.sessions.values()].filter((s) => s.state === 'established').map((s) => s.key);
  }

  /** SPIs, SK_e and Message ID counters of an IKE SA (tests, Wireshark). */
  ikeSa(session: string): { spiI: Uint8Array; spiR: Uint8Array; skEi: Uint8Array; skEr: Uint8Array; weAreOriginalInitiator: boolean } | null {
    const s = this.sessions.get(session);
    const k = s?.core.keys;
    return s && k ? { spiI: s.core.spiI, spiR: s.core.spiR, skEi: k.skEi, skEr: k.skEr, weAreOriginalInitiator: s.core.originalInitiator } : null;
  }

  get commitState(): 'idle' | 'pending' {
    return this.commit.state;
  }

  private drop(reason: string, fx: IkeEffect[], detail?: string): IkeEffect[] {
    return this.dropped.drop(reason, fx, detail);
  }

  private halfOpenCount(source?: string): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.state === 'half-open' && (source === undefined || s.source === source)) n++;
    return n;
  }

  // ---- timers -------------------------------------------------------------------------------

  pollTimeout(): number | null {
    let t = this.commit.deadline;
    const min = (d: number | null): void => {
      if (d !== null && (t === null || d < t)) t = d;
    };
    for (const s of this.sessions.values()) {
      min(s.core.deadline);
      if (s.state !== 'established') min(s.created + this.o.flood.halfOpenTimeoutMs);
    }
    return t;
  }

  handleTimeout(now: number): IkeEffect[] {
    return this.addressed(this.timeoutFx(now), null);
  }

  private timeoutFx(now: number): IkeEffect[] {
    const fx: IkeEffect[] = [];
    const expired = this.commit.expire(now);
    if (expired) this.x.commitTimedOut(expired, now, fx);
    for (const [key, s] of [...this.sessions]) {
      if (s.state !== 'established' && now >= s.created + this.o.flood.halfOpenTimeoutMs) {
        // RFC 8019 §4.1: a half-open SA is kept only briefly (its peer never sent IKE_AUTH), and so is
        // one whose IKE_AUTH failed (kept that long only to answer a retransmission from the cache).
        if (s.state === 'half-open') this.counters.halfOpenExpired++;
        this.x.removeSession(key, fx);
        continue;
      }
      const r = s.core.onTimeout(now);
      if (!r) continue;
      if ('resend' in r) {
        fx.push({ kind: 'send', bytes: r.resend });
        continue;
      }
      this.x.removeSession(key, fx); // §2.4: the peer is gone
      if (r.dead.purpose.kind !== 'delete-ike') {
        fx.push({ kind: 'failed', scope: 'ike', code: 'E_IKE_TIMEOUT', message: `station did not answer ${r.dead.purpose.kind}: IKE SA ${key} dropped (RFC 7296 §2.4)` });
      }
    }
    return fx;
  }

  // ---- input --------------------------------------------------------------------------------

  /**
   * One datagram from a station. Never throws; bad input is dropped and counted. `from` (the
   * sender's address) feeds the §2.6 cookie and the per-source half-open limit; without it all
   * senders share one address for the cookie and the per-source limit is off.
   */
  receive(bytes: Uint8Array, now: number, from?: DatagramSource): IkeEffect[] {
    const fx: IkeEffect[] = [];
    const src = from ? { address: from.address, ...(from.port !== undefined ? { port: from.port } : {}) } : null;
    try {
      return this.addressed(this.dispatch(bytes, now, src, fx), src);
    } catch (e) {
      if (isLifelineError(e)) return this.addressed(this.drop(e.code, fx, e.message), src);
      return this.addressed(this.drop('internal', fx, String(e)), src);
    }
  }

  /**
   * §2.11: an answer goes to where its request came from (`source`); a request of ours goes to the
   * peer its IKE SA was made with, so a datagram from another address (spoofed, or a replayed
   * capture) never redirects our retransmissions, SA_READY or deletes.
   */
  private addressed(fx: IkeEffect[], source: DatagramSource | null): IkeEffect[] {
    for (const e of fx) {
      if (e.kind !== 'send' || e.to) continue;
      const h = decodeHeader(e.bytes);
      const s = this.sessions.get(hex(fromInitiator(h) ? h.spiI : h.spiR));
      const to = isResponse(h) ? source ?? s?.peer : s?.peer ?? source;
      if (to) e.to = to;
    }
    return fx;
  }

  private dispatch(bytes: Uint8Array, now: number, from: DatagramSource | null, fx: IkeEffect[]): IkeEffect[] {
    if (!(bytes instanceof Uint8Array)) return this.drop('E_USAGE', fx);
    const h = decodeHeader(bytes);
    if (h.majorVersion !== 2) {
      if (h.majorVersion > 2 && !isResponse(h)) {
        // §2.5: drop it, and say which version we speak (unauthenticated, no state).
        fx.push({ kind: 'send', bytes: plainErrorAnswer(h, NOTIFY.INVALID_MAJOR_VERSION) });
      }
      return this.drop('E_VERSION', fx);
    }
    if (h.exchange === EXCHANGE.IKE_SA_INIT && !isResponse(h) && fromInitiator(h) && h.spiR.every((b) => b === 0)) return this.onInit(h, bytes, now, from, fx);
    // Our SPI names the session: SPIr when the peer is the original initiator, SPIi after we rekeyed (§2.18).
    const key = hex(fromInitiator(h) ? h.spiR : h.spiI);
    const s = this.sessions.get(key);
    if (!s) return this.drop('spi', fx);
    if (!s.core.fromPeer(h)) return fromInitiator(h) || equalBytes(h.spiI, s.core.spiI) ? this.drop('spi', fx) : this.drop('unexpected', fx, 'message without the I flag');
    if (isResponse(h)) {
      if (!s.core.isOurResponse(h)) return this.drop('msgid', fx);
      return this.x.onResponse(s, s.core.openResponse(h, bytes), now, fx);
    }
    const cls = s.core.classifyRequest(h, bytes);
    if (cls === 'drop') return this.drop('msgid', fx);
    if (cls === 'retransmit') {
      fx.push({ kind: 'send', bytes: s.core.cachedResponse as Uint8Array });
      return fx;
    }
    if (s.state === 'failed') return this.drop('state', fx);
    const wanted = s.state === 'half-open' ? h.exchange === EXCHANGE.IKE_AUTH : h.exchange === EXCHANGE.CREATE_CHILD_SA || h.exchange === EXCHANGE.INFORMATIONAL;
    if (!wanted) return this.drop('unexpected', fx, `exchange ${h.exchange} in state ${s.state}`);
    const opened = s.core.openRequest(h, bytes); // E_ICV throws: dropped, nothing changes
    if ('error' in opened) return this.answerError(s, h, bytes, opened.error, fx);
    try {
      if (h.exchange === EXCHANGE.IKE_AUTH) return this.x.onAuth(s, h, bytes, opened.inner, now, fx);
      if (h.exchange === EXCHANGE.CREATE_CHILD_SA) return this.x.onCreateChild(s, h, bytes, opened.inner, now, fx);
      return this.x.onInformational(s, h, bytes, opened.inner, now, fx);
    } catch (e) {
      // Handlers validate before they change anything; a syntax error found there earns INVALID_SYNTAX.
      if (!(e instanceof ProtocolError) || e.code !== 'E_IKE_SYNTAX') throw e;
      return this.answerError(s, h, bytes, encodeNotify(NOTIFY.INVALID_SYNTAX), fx);
    }
  }

  /**
   * INVALID_SYNTAX (§2.21) or UNSUPPORTED_CRITICAL_PAYLOAD (§2.5), only ever inside a verified SK
   * payload. An IKE_AUTH that earns one leaves no IKE SA (§2.21.2).
   */
  private answerError(s: Session, h: IkeHeader, bytes: Uint8Array, error: EncodedPayload, fx: IkeEffect[]): IkeEffect[] {
    if (s.state === 'half-open') s.state = 'failed';
    this.drop('answered-error', fx);
    fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, [error]) });
    return fx;
  }

  // ---- IKE_SA_INIT --------------------------------------------------------------------------

  private onInit(h: IkeHeader, bytes: Uint8Array, now: number, from: DatagramSource | null, fx: IkeEffect[]): IkeEffect[] {
    const source = from?.address ?? null;
    if (h.messageId !== 0) return this.drop('msgid', fx);
    for (const s of this.sessions.values()) {
      if (!equalBytes(s.core.spiI, h.spiI) || s.core.originalInitiator) continue;
      // §2.1: a retransmitted IKE_SA_INIT gets the same answer; anything else with this SPIi is dropped.
      if (s.core.classifyRequest(h, bytes) === 'retransmit') {
        fx.push({ kind: 'send', bytes: s.core.cachedResponse as Uint8Array });
        return fx;
      }
      return this.drop('spi', fx, 'SPIi already in use');
    }
    const req = readInitRequest(h, bytes);
    if ('kind' in req) {
      fx.push({ kind: 'send', bytes: req.bytes }, log('warn', 'ike.init-refused', req.message));
      return fx;
    }
    // RFC 8019 §4: the cheap checks (cookie, per-source count) before any DH or state.
    const admission = this.guard.admit(
      { cookie: req.cookie, ni: req.ni, ip: source ?? '', spiI: h.spiI },
      { halfOpen: this.halfOpenCount(), fromSource: source === null ? 0 : this.halfOpenCount(source) },
      now,
    );
    if (admission === 'demand-cookie' || admission === 'bad-cookie') {
      // §2.6: HDR(A,0), N(COOKIE); stateless, no DH.
      this.counters.cookiesSent++;
      fx.push({ kind: 'send', bytes: plainErrorAnswer(h, NOTIFY.COOKIE, this.guard.jar.make(req.ni, source ?? '', h.spiI, now)) });
      return this.drop(admission === 'bad-cookie' ? 'cookie-invalid' : 'cookie-required', fx);
    }
    if (admission === 'per-source-limit') return this.drop('per-source-limit', fx, `${source} holds ${this.o.flood.maxHalfOpenPerSource} half-open IKE SAs`);
    this.counters.dhComputations++;
    const r = answerInit(req, this.o.random, (spi) => this.sessions.has(spi));
    if (r.kind === 'refuse') {
      fx.push({ kind: 'send', bytes: r.bytes }, log('warn', 'ike.init-refused', r.message));
      return fx;
    }
    const core = new IkeSaCore<Purpose>({ spiI: new Uint8Array(h.spiI), spiR: r.spiR, originalInitiator: false, retransmit: this.o.retransmit });
    core.keys = r.keys;
    core.remember(0, new Uint8Array(bytes), r.response);
    this.makeRoom(fx);
    const key = hex(r.spiR);
    this.sessions.set(key, this.x.newSession(key, core, {
      state: 'half-open',
      ni: r.ni,
      nr: r.nr,
      initRequest: new Uint8Array(bytes),
      initResponse: r.response,
      source,
      peer: from,
      created: now,
      cookieVerified: req.cookie !== null,
    }));
    fx.push({ kind: 'send', bytes: r.response });
    return fx;
  }

  /** A full half-open table loses its oldest entry that never returned a cookie (it may be spoofed), else its oldest. */
  private makeRoom(fx: IkeEffect[]): void {
    if (this.halfOpenCount() < this.o.flood.maxHalfOpen) return;
    let victim: string | undefined;
    for (const [k, s] of this.sessions) if (s.state === 'half-open' && !s.cookieVerified) { victim = k; break; }
    if (!victim) for (const [k, s] of this.sessions) if (s.state === 'half-open') { victim = k; break; }
    if (!victim) return;
    this.counters.halfOpenEvicted++;
    this.x.removeSession(victim, fx);
    fx.push(log('info', 'ike.evict', `half-open IKE SA table full: dropped ${victim}`));
  }

  /**
   * Everything that must not change on bad input (used by the fuzz tests). `halfOpen: false`
   * leaves out half-open IKE SAs, which any well-formed IKE_SA_INIT may legitimately create.
   */
  snapshot(halfOpen = true): string {
    const sessions = [...this.sessions]
      .filter(([, s]) => halfOpen || s.state !== 'half-open')
      .map(([k, s]) => [k, s.state, s.core.snapshot(), [...s.children].map(([c, x]) => [c, x.status, x.sa.generation])]);
    return JSON.stringify({ sessions, commit: this.commit.state, pending: this.commit.pending?.id ?? null, next: this.x.nextGeneration });
  }
}
