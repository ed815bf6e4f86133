/**
 * The management station's IKEv2 initiator (RFC 7296) for one IKE SA with one emulated host,
 * plus the station half of the two-phase commit (DESIGN §2.5, ../commit.ts). Sans-I/O: it
 * takes `now` and bytes, returns effects; randomness is injected; timers are data.
 *
 *   connect():  IKE_SA_INIT { SA, KEi, Ni } -->        <-- { SA, KEr, Nr } | { N(COOKIE) } (§2.6: again with it)
 *               IKE_AUTH { IDi, AUTH, N(INITIAL_CONTACT), N(COMMIT_SUPPORTED), N(USE_TRANSPORT_MODE), SA, TSi, TSr } -->
 *                                                      <-- { IDr, AUTH, [N(COMMIT_SUPPORTED),] N(USE_TRANSPORT_MODE), SA, TSi, TSr }
 *   refresh():  CREATE_CHILD_SA { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr } -->
 *                                                      <-- { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr }
 *   commit (the host announced COMMIT_SUPPORTED):
 *               <-- INFORMATIONAL { N(SA_READY) }   { } -->
 *               INFORMATIONAL { N(SA_ACK) } -->        <-- { N(SA_CONFIRM) }   => switch-outbound
 *   plain mode (a standard peer): child-sa, switch-outbound as soon as the answer arrives.
 *               INFORMATIONAL { D(ESP old) } -->        <-- { D(ESP old) }     (after a rekey)
 *   rekeyIkeSa(): CREATE_CHILD_SA { SA(IKE), Ni, KEi } --> ... (ike-rekey.ts), then D(IKE) on the old SA
 *   abandon():  INFORMATIONAL { D(IKE) } -->  once, unanswered: the shell gave up on this IKE SA
 *
 * The peer may rekey the Child SA or the IKE SA too (station-child.ts, ike-rekey.ts), with the
 * §2.8.1/§2.8.2 collisions. Deleting the IKE SA does not retire the Child SA: it lives on in the
 * NIC's EEPROM (that is Lifeline's point), the station keeps using it.
 */
import { concat, hex } from '../../common/bytes.js';
import { UsageError, isLifelineError, type ErrorCode } from '../../common/errors.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../../wire/sa.js';
import { StationCommit, type StationCommitState } from '../commit.js';
import { makeChildOffer } from './child-exchange.js';
import { randomEspSpi } from './child-sa.js';
import { EXCHANGE, NONCE_LENGTH, PAYLOAD, PROTO_IKE } from './constants.js';
import { DropCounter, type IkeEffect, log } from './effects.js';
import { authPayloads } from './ike-auth.js';
import { decodeHeader, fromInitiator, isResponse, type EncodedPayload, type IkeHeader } from './ike-message.js';
import { encodeDelete, encodeNotify } from './ike-payloads.js';
import { buildInitRequest, readInitResponse } from './ike-sa-init.js';
import { IkeSaCore } from './ike-sa.js';
import { NOTIFY } from './notify.js';
import { spi4 } from './payload-helpers.js';
import { DEFAULT_RETRANSMIT, assertRetransmitPolicy, type RetransmitPolicy } from './retransmit.js';
import { StationExchanges, type Purpose } from './station-child.js';
import { ikev2DecryptionTableLine } from './wireshark-uat.js';

export interface InitiatorOptions {
  random: (n: number) => Uint8Array;
  /** The NIC's trust anchor written at enrolment (DESIGN §3). */
  psk: Uint8Array;
  /** Our identity, sent as ID_FQDN in IDi. */
  id: string;
  /** The host agent's expected ID_FQDN; other identities fail authentication. */
  peerId?: string;
  /** ESP ciphers offered, in preference order (default AES-GCM-16/128). */
  espTransforms?: EspTransform[];
  /** Offer 64-bit ESN (default false: Wireshark 4.0 cannot check ESN packets, DESIGN §2.2). */
  esn?: boolean;
  policy?: SecurityPolicy;
  /** Send KEi in CREATE_CHILD_SA for perfect forward secrecy (§1.3.1). Default true. */
  pfs?: boolean;
  /** Send N(INITIAL_CONTACT) in IKE_AUTH so the host forgets older IKE SAs (§2.4). Default true. */
  initialContact?: boolean;
  retransmit?: RetransmitPolicy;
  /**
   * Announce and run the two-phase commit (N(COMMIT_SUPPORTED), default true). Whatever this says,
   * the commit runs only if the peer announces it too; otherwise Child SAs are in force when their
   * exchange completes (plain IKEv2).
   */
  commitExtension?: boolean;
  /** Plain mode: the generation the station gives the next SA (the store knows the last one). Default 1. */
  nextGeneration?: number;
}

export type ResolvedInitiatorOptions = Required<Omit<InitiatorOptions, 'peerId' | 'nextGeneration'>> & { peerId?: string };

export type InitiatorState = 'idle' | 'init-sent' | 'auth-sent' | 'established' | 'closing' | 'closed' | 'failed';
type InitiatorEvent = 'connect' | 'init-response' | 'auth-response' | 'close' | 'closed' | 'fail' | 'abandon';

/** The IKE SA life cycle; anything not listed is illegal. */
export const INITIATOR_TABLE: Record<InitiatorState, Partial<Record<InitiatorEvent, InitiatorState>>> = {
  idle: { connect: 'init-sent', close: 'closed', abandon: 'closed' },
  'init-sent': { 'init-response': 'auth-sent', close: 'closed', fail: 'failed', abandon: 'closed' },
  'auth-sent': { 'auth-response': 'established', close: 'closed', closed: 'closed', fail: 'failed', abandon: 'closed' },
  established: { close: 'closing', closed: 'closed', fail: 'failed', abandon: 'closed' },
  closing: { closed: 'closed', fail: 'failed', abandon: 'closed' },
  closed: {},
  failed: {},
};

const MAX_COOKIE_ROUNDS = 3;
/** An empty byte string, for the IKE_SA_INIT material dropped once it is used. */
const EMPTY_BYTES = new Uint8Array(0);

export class IkeInitiator {
  private readonly o: ResolvedInitiatorOptions;
  private s: InitiatorState = 'idle';
  private kePriv: Uint8Array = EMPTY_BYTES;
  private initRequest: Uint8Array = EMPTY_BYTES;
  private cookieRounds = 0;
  private readonly commit = new StationCommit();
  private readonly dropped = new DropCounter();
  private readonly x: StationExchanges;

  constructor(opts: InitiatorOptions) {
    if (typeof opts?.random !== 'function') throw new UsageError('E_USAGE', 'IkeInitiator: random(n) is required');
    if (!(opts.psk instanceof Uint8Array) || opts.psk.length === 0) throw new UsageError('E_USAGE', 'IkeInitiator: psk must be non-empty bytes');
    if (typeof opts.id !== 'string' || opts.id.length === 0) throw new UsageError('E_USAGE', 'IkeInitiator: id (FQDN) is required');
    const retransmit = opts.retransmit ?? DEFAULT_RETRANSMIT;
    assertRetransmitPolicy(retransmit);
    const espTransforms = opts.espTransforms ?? ['aes-gcm-16'];
    if (espTransforms.length === 0) throw new UsageError('E_USAGE', 'IkeInitiator: offer at least one ESP transform');
    this.o = {
      random: opts.random,
      psk: opts.psk,
      id: opts.id,
      peerId: opts.peerId,
      espTransforms,
      esn: opts.esn ?? false,
      policy: opts.policy ?? 'esp',
      pfs: opts.pfs ?? true,
      initialContact: opts.initialContact ?? true,
      retransmit,
      commitExtension: opts.commitExtension ?? true,
    };
    this.x = new StationExchanges(this.o, this.commit, {
      state: () => this.s,
      go: (e) => this.go(e as InitiatorEvent),
      fail: (code, message, fx) => this.fail(code, message, fx),
    });
    this.setNextGeneration(opts.nextGeneration ?? 1);
  }

  // ---- state --------------------------------------------------------------------------------

  get state(): InitiatorState {
    return this.s;
  }

  get commitState(): StationCommitState {
    return this.commit.state;
  }

  /** Both ends announced COMMIT_SUPPORTED (known once IKE_AUTH is answered). */
  get commitMode(): boolean {
    return this.x.commitMode;
  }

  /** The SA in use for outbound traffic (confirmed by the host), if this IKE SA produced one. */
  get currentSa(): SaPair | null {
    return this.x.current;
  }

  /** True when refresh() may be called: established, no Child SA exchange or commit running. */
  get canRefresh(): boolean {
    return this.s === 'established' && this.x.idle();
  }

  /** Plain mode: the generation the next SA gets (the store knows the last one). */
  setNextGeneration(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new UsageError('E_USAGE', `nextGeneration must be an integer 1..2^32-1, got ${n}`);
    this.x.nextGeneration = n;
  }

  /** Dropped inputs by reason (never thrown, RFC 7296 §2.21 / STYLE 4). */
  get drops(): Record<string, number> {
    return this.dropped.record;
  }

  private go(e: InitiatorEvent): void {
    const next = INITIATOR_TABLE[this.s][e];
    if (next === undefined) throw new UsageError('E_ILLEGAL_TRANSITION', `IKE initiator: '${e}' is not allowed in state '${this.s}'`);
    this.s = next;
  }

  private drop(reason: string, fx: IkeEffect[], detail?: string): IkeEffect[] {
    return this.dropped.drop(reason, fx, detail);
  }

  // ---- local calls --------------------------------------------------------------------------

  /** Starts IKE_SA_INIT. */
  connect(now: number): IkeEffect[] {
    if (this.s !== 'idle') throw new UsageError('E_ILLEGAL_TRANSITION', `IKE initiator: connect() in state '${this.s}'`);
    let spiI = this.o.random(8);
    while (spiI.every((b) => b === 0)) spiI = this.o.random(8);
    this.x.ni = this.o.random(NONCE_LENGTH);
    this.kePriv = this.o.random(32);
    const core = new IkeSaCore<Purpose>({ spiI, spiR: new Uint8Array(8), originalInitiator: true, retransmit: this.o.retransmit });
    this.x.core = core;
    this.initRequest = buildInitRequest({ spiI, kePriv: this.kePriv, ni: this.x.ni, cookie: null });
    core.requestPlain(this.initRequest, EXCHANGE.IKE_SA_INIT, { kind: 'init' }, now);
    this.go('connect');
    return [{ kind: 'send', bytes: this.initRequest }];
  }

  /**
   * SA refresh (DESIGN §2.5): CREATE_CHILD_SA rekeying the current Child SA, or creating a new
   * one when this IKE SA has none yet (e.g. the IKE_AUTH child was refused or its commit aborted).
   */
  refresh(now: number): IkeEffect[] {
    if (!this.canRefresh) {
      throw new UsageError(
        'E_IKE_STATE',
        `IKE initiator: refresh() needs an established IKE SA with no Child SA exchange, IKE SA rekey or commit running (state '${this.s}', commit '${this.commit.state}')`,
      );
    }
    return this.x.startRefresh(now);
  }

  /**
   * Rekeys the IKE SA (RFC 7296 §1.3.2, §2.18): CREATE_CHILD_SA { SA(IKE), Ni, KEi } on it, then
   * D(IKE) on the old one. Child SAs move to the new IKE SA; Message IDs restart at 0.
   */
  rekeyIkeSa(now: number): IkeEffect[] {
    if (!this.canRefresh) {
      throw new UsageError('E_IKE_STATE', `IKE initiator: rekeyIkeSa() needs an established, idle IKE SA (state '${this.s}', commit '${this.commit.state}')`);
    }
    return this.x.startIkeRekey(now);
  }

  /** Liveness check (§1.4): an empty INFORMATIONAL request; its answer yields `alive`. */
  ping(now: number): IkeEffect[] {
    if (this.s !== 'established') throw new UsageError('E_IKE_STATE', `IKE initiator: ping() in state '${this.s}'`);
    return this.x.send(EXCHANGE.INFORMATIONAL, [], { kind: 'ping' }, now);
  }

  /** Deletes the IKE SA (§1.4.1). The Child SA stays installed on both ends (the NIC keeps it). */
  close(now: number): IkeEffect[] {
    if (this.s === 'closed' || this.s === 'failed' || this.s === 'closing') return [];
    const fx: IkeEffect[] = [];
    this.x.abortCommit(fx, 'IKE SA closed');
    const core = this.x.core;
    if (this.s !== 'established' || !core) {
      this.go('close');
      fx.push({ kind: 'closed', message: 'closed before the IKE SA was established' });
      return fx;
    }
    core.clearQueue();
    this.go('close');
    fx.push(...this.x.send(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])], { kind: 'delete-ike' }, now));
    return fx;
  }

  /**
   * The shell gives up on this IKE SA (its own deadline passed, the exchange is abandoned): an
   * INFORMATIONAL { D(IKE) } is sent once, unanswered and never retransmitted (§1.4.1), so the peer
   * need not wait for §2.4 to learn it; the IKE SA is closed at once. A staged SA is aborted.
   */
  abandon(now: number, why = 'abandoned by the station'): IkeEffect[] {
    if (this.s === 'closed' || this.s === 'failed') return [];
    const fx: IkeEffect[] = [];
    this.x.abortCommit(fx, why);
    const core = this.x.core;
    if ((this.s === 'established' || this.s === 'closing') && core) {
      fx.push({ kind: 'send', bytes: core.oneShot(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])]) });
    }
    this.x.forgetOthers();
    this.go('abandon');
    fx.push({ kind: 'closed', message: `IKE SA given up (${why}); INFORMATIONAL { D(IKE) } sent once` }, log('info', 'ike.abandon', why));
    void now;
    return fx;
  }

  // ---- timers -------------------------------------------------------------------------------

  pollTimeout(): number | null {
    return this.x.core && this.s !== 'closed' && this.s !== 'failed' ? this.x.deadline() : null;
  }

  handleTimeout(now: number): IkeEffect[] {
    const fx: IkeEffect[] = [];
    const core = this.x.core;
    if (!core || this.s === 'closed' || this.s === 'failed') return fx;
    this.x.othersTimeout(now, fx);
    const r = core.onTimeout(now);
    if (!r) return fx;
    if ('resend' in r) {
      fx.push({ kind: 'send', bytes: r.resend }, log('debug', 'ike.retransmit', `retransmitting ${r.resend.length} octets`));
      return fx;
    }
    // §2.4: no answer after the last retransmission: the IKE SA is dead.
    if (r.dead.purpose.kind === 'delete-ike') {
      this.go('closed');
      fx.push({ kind: 'closed', message: 'no answer to DELETE; IKE SA dropped' });
      return fx;
    }
    this.x.abortCommit(fx, 'IKE SA dead');
    if (this.s === 'established') {
      // Best effort (§1.4.1): should the peer only have lost its way back, it learns the SA is gone.
      fx.push({ kind: 'send', bytes: core.oneShot(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])]) });
    }
    this.go('fail');
    fx.push({
      kind: 'failed',
      scope: 'ike',
      code: 'E_IKE_TIMEOUT',
      message: `no answer from the peer to ${r.dead.purpose.kind} after ${this.o.retransmit.tries} tries (RFC 7296 §2.4): is the host OS up and its IKE agent reachable?`,
    });
    return fx;
  }

  // ---- input --------------------------------------------------------------------------------

  /** One datagram from the host agent. Never throws; bad input is dropped and counted. */
  receive(bytes: Uint8Array, now: number): IkeEffect[] {
    const fx: IkeEffect[] = [];
    try {
      return this.dispatch(bytes, now, fx);
    } catch (e) {
      if (isLifelineError(e)) return this.drop(e.code, fx, e.message);
      return this.drop('internal', fx, String(e));
    }
  }

  private dispatch(bytes: Uint8Array, now: number, fx: IkeEffect[]): IkeEffect[] {
    if (!(bytes instanceof Uint8Array)) return this.drop('E_USAGE', fx);
    const h = decodeHeader(bytes);
    const core = this.x.core;
    if (h.majorVersion !== 2) return this.drop('E_VERSION', fx);
    if (!core || this.s === 'closed' || this.s === 'failed' || this.s === 'idle') return this.drop('state', fx);
    if (this.s === 'init-sent') {
      if (fromInitiator(h) || !core.isOurResponse(h) || hex(h.spiI) !== core.spiIHex) return this.drop(fromInitiator(h) ? 'spi' : 'unexpected', fx);
      return this.onInitResponse(h, bytes, now, fx);
    }
    if (h.exchange === EXCHANGE.IKE_SA_INIT) return this.drop('unexpected', fx);
    const c = this.x.coreFor(h);
    if (!c) return this.drop('spi', fx);
    if (isResponse(h)) {
      if (!c.isOurResponse(h)) return this.drop('msgid', fx);
      return this.x.onResponse(c, c.openResponse(h, bytes), now, fx);
    }
    const cls = c.classifyRequest(h, bytes);
    if (cls === 'drop') return this.drop('msgid', fx);
    if (cls === 'retransmit') {
      fx.push({ kind: 'send', bytes: c.cachedResponse as Uint8Array });
      return fx;
    }
    const opened = c.openRequest(h, bytes); // E_ICV throws: dropped, nothing changes
    if ('error' in opened) {
      fx.push({ kind: 'send', bytes: c.respond(h, bytes, [opened.error]) });
      return fx;
    }
    return this.x.onRequest(c, h, bytes, opened.inner, now, fx);
  }

  // ---- IKE_SA_INIT --------------------------------------------------------------------------

  private onInitResponse(h: IkeHeader, bytes: Uint8Array, now: number, fx: IkeEffect[]): IkeEffect[] {
    const core = this.x.core as IkeSaCore<Purpose>;
    const r = readInitResponse(h, bytes, { spiI: core.spiI, kePriv: this.kePriv, ni: this.x.ni });
    if (r.kind === 'cookie') {
      // §2.6: repeat IKE_SA_INIT with the cookie first; same SPIi, nonce and KE.
      if (this.cookieRounds >= MAX_COOKIE_ROUNDS) {
        return this.fail('E_IKE_COOKIE', `the host answered ${MAX_COOKIE_ROUNDS + 1} IKE_SA_INIT in a row with a new COOKIE (§2.6): it does not accept ours; is it under attack, or is a NAT changing our address?`, fx);
      }
      this.cookieRounds++;
      this.initRequest = buildInitRequest({ spiI: core.spiI, kePriv: this.kePriv, ni: this.x.ni, cookie: r.cookie });
      core.replacePlain(this.initRequest, now);
      fx.push({ kind: 'send', bytes: this.initRequest }, log('debug', 'ike.cookie', 'host demands a cookie (§2.6): IKE_SA_INIT again with N(COOKIE)'));
      return fx;
    }
    if (r.kind === 'refused') return this.fail(r.code, r.message, fx);

    // Everything verified: commit the new state, then IKE_AUTH.
    core.spiR = r.spiR;
    core.keys = r.keys;
    this.x.nr = r.nr;
    this.x.initResponse = new Uint8Array(bytes);
    core.finishRequest(now);
    this.go('init-response');

    const child = makeChildOffer({
      inAuth: true,
      ourSpi: randomEspSpi(this.o.random, () => false),
      transforms: this.o.espTransforms,
      esn: this.o.esn,
      ni: this.x.ni,
      kePriv: null,
      rekeySpi: null,
      notifies: this.o.commitExtension ? [encodeNotify(NOTIFY.COMMIT_SUPPORTED)] : [],
    });
    const payloads: EncodedPayload[] = authPayloads({ idPayloadType: PAYLOAD.IDi, id: this.o.id, psk: this.o.psk, realMessage: this.initRequest, peerNonce: r.nr, skP: r.keys.skPi });
    // IKE_SA_INIT is answered and our AUTH signed: its request and our DH private key are not needed again (a
    // station holds an IKE SA per NIC between refreshes, issue 16).
    this.initRequest = EMPTY_BYTES;
    this.kePriv = EMPTY_BYTES;
    if (this.o.initialContact) payloads.push(encodeNotify(NOTIFY.INITIAL_CONTACT));
    payloads.push(...child.payloads);
    this.x.childInFlight = true;
    fx.push(...this.x.send(EXCHANGE.IKE_AUTH, payloads, { kind: 'auth', x: child.offer, earlyReady: null }, now));
    return fx;
  }

  private fail(code: ErrorCode, message: string, fx: IkeEffect[]): IkeEffect[] {
    this.x.abortCommit(fx, 'IKE SA failed');
    this.x.core?.clearQueue();
    this.go('fail');
    fx.push({ kind: 'failed', scope: 'ike', code, message });
    return fx;
  }

  // ---- tools --------------------------------------------------------------------------------

  /** SPIs and SK_* of the current IKE SA (for the Wireshark UAT and for tests), once IKE_SA_INIT is done. */
  ikeKeys(): { spiI: Uint8Array; spiR: Uint8Array; skEi: Uint8Array; skEr: Uint8Array } | null {
    const c = this.x.core;
    return c?.keys ? { spiI: c.spiI, spiR: c.spiR, skEi: c.keys.skEi, skEr: c.keys.skEr } : null;
  }

  /** The `ikev2_decryption_table` line that lets Wireshark/tshark decrypt this IKE SA. */
  decryptionTableLine(): string | null {
    const k = this.ikeKeys();
    return k ? ikev2DecryptionTableLine(k) : null;
  }

  /** Everything that must not change on bad input (used by the fuzz tests). */
  snapshot(): string {
    const staged = this.commit.staged;
    return JSON.stringify({
      s: this.s,
      core: this.x.core?.snapshot() ?? null,
      commit: this.commit.state,
      staged: staged ? hex(concat(spi4(staged.sa.toNic.spi), spi4(staged.sa.fromNic.spi))) : null,
      current: this.x.current ? this.x.current.generation : null,
      nr: hex(this.x.nr),
      others: this.x.othersCount(),
    });
  }
}
