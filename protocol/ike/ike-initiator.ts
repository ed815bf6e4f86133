/**
 * The management station's IKEv2 initiator (RFC 7296) for one IKE SA with one emulated host,
 * plus the station half of the two-phase commit (DESIGN §2.5, ../commit.ts). Sans-I/O: it
 * takes `now` and bytes, returns effects; randomness is injected; timers are data.
 *
 *   connect():  IKE_SA_INIT { SA, KEi, Ni } -->            <-- { SA, KEr, Nr }
 *               IKE_AUTH { IDi, AUTH, N(INITIAL_CONTACT), N(USE_TRANSPORT_MODE), SA, TSi, TSr } -->
 *                                                          <-- { IDr, AUTH, N(USE_TRANSPORT_MODE), SA, TSi, TSr }
 *   refresh():  CREATE_CHILD_SA { N(REKEY_SA), N(USE_TRANSPORT_MODE), SA, Ni, KEi, TSi, TSr } -->
 *                                                          <-- { N(USE_TRANSPORT_MODE), SA, Nr, KEr, TSi, TSr }
 *   commit:     <-- INFORMATIONAL { N(SA_READY) }   { } -->
 *               INFORMATIONAL { N(SA_ACK) } -->            <-- { N(SA_CONFIRM) }   => switch-outbound
 *               INFORMATIONAL { D(ESP old) } -->            <-- { D(ESP old) }     (after a rekey)
 *
 * The host agent never starts CREATE_CHILD_SA (the refresh timer is the station's, DESIGN §2.5),
 * so the simultaneous-rekey collision of §2.8.1 cannot occur; a CREATE_CHILD_SA request from the
 * host is answered NO_ADDITIONAL_SAS. Deleting the IKE SA does not retire the Child SA: it lives
 * on in the NIC's EEPROM (that is Lifeline's point), the station keeps using it.
 */
import { concat, equalBytes, hex } from '../../common/bytes.js';
import { UsageError, isLifelineError, type ErrorCode } from '../../common/errors.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../../wire/sa.js';
import { StationCommit, commitIdOf, type StationCommitState } from '../commit.js';
import { makeChildOffer, readChildAnswer, type ChildOffer } from './child-exchange.js';
import { randomEspSpi } from './child-sa.js';
import { EXCHANGE, NONCE_LENGTH, PAYLOAD, PROTO_ESP, PROTO_IKE } from './constants.js';
import { DropCounter, type IkeEffect, log } from './effects.js';
import { authPayloads, verifyPeerAuth } from './ike-auth.js';
import { decodeHeader, fromInitiator, isResponse, type EncodedPayload, type IkeHeader, type RawPayload } from './ike-message.js';
import { decodeDelete, encodeDelete, encodeNotify } from './ike-payloads.js';
import { buildInitRequest, readInitResponse } from './ike-sa-init.js';
import { IkeSaCore } from './ike-sa.js';
import { COMMIT_DATA_LENGTH, NOTIFY, decodeCommitId, encodeCommitId, type CommitId } from './notify.js';
import { describeError, errorCodeFor, findNotify, firstError, maybe, notifiesOf, spi4 } from './payload-helpers.js';
import { DEFAULT_RETRANSMIT, assertRetransmitPolicy, type RetransmitPolicy } from './retransmit.js';
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
}

export type InitiatorState = 'idle' | 'init-sent' | 'auth-sent' | 'established' | 'closing' | 'closed' | 'failed';
type InitiatorEvent = 'connect' | 'init-response' | 'auth-response' | 'close' | 'closed' | 'fail';

/** The IKE SA life cycle; anything not listed is illegal. */
export const INITIATOR_TABLE: Record<InitiatorState, Partial<Record<InitiatorEvent, InitiatorState>>> = {
  idle: { connect: 'init-sent', close: 'closed' },
  'init-sent': { 'init-response': 'auth-sent', close: 'closed', fail: 'failed' },
  'auth-sent': { 'auth-response': 'established', close: 'closed', closed: 'closed', fail: 'failed' },
  established: { close: 'closing', closed: 'closed', fail: 'failed' },
  closing: { closed: 'closed', fail: 'failed' },
  closed: {},
  failed: {},
};

/** A Child SA exchange in flight; `earlyReady` holds an SA_READY that overtook its answer. */
type ChildPurpose = { kind: 'auth' | 'child'; x: ChildOffer; earlyReady: CommitId | null };

/** What each of our outstanding requests is for (the response is read accordingly). */
type Purpose =
  | { kind: 'init' }
  | ChildPurpose
  | { kind: 'ack'; id: CommitId }
  | { kind: 'ping' }
  | { kind: 'delete-child'; spi: number }
  | { kind: 'delete-ike' };

const MAX_COOKIE_ROUNDS = 3;

export class IkeInitiator {
  private readonly o: Required<Omit<InitiatorOptions, 'peerId'>> & { peerId?: string };
  private s: InitiatorState = 'idle';
  private core: IkeSaCore<Purpose> | null = null;
  private ni: Uint8Array = new Uint8Array(0);
  private nr: Uint8Array = new Uint8Array(0);
  private kePriv: Uint8Array = new Uint8Array(0);
  private initRequest: Uint8Array = new Uint8Array(0);
  private initResponse: Uint8Array = new Uint8Array(0);
  private cookieRounds = 0;
  private current: SaPair | null = null;
  /** An IKE_AUTH / CREATE_CHILD_SA is sent or queued and its answer not yet read. */
  private childInFlight = false;
  private readonly commit = new StationCommit();
  private readonly dropped = new DropCounter();

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
    };
  }

  // ---- state --------------------------------------------------------------------------------

  get state(): InitiatorState {
    return this.s;
  }

  get commitState(): StationCommitState {
    return this.commit.state;
  }

  /** The SA in use for outbound traffic (confirmed by the host), if this IKE SA produced one. */
  get currentSa(): SaPair | null {
    return this.current;
  }

  /** True when refresh() may be called: established, no Child SA exchange or commit running. */
  get canRefresh(): boolean {
    return this.s === 'established' && this.commit.state === 'idle' && !this.childInFlight;
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
    this.ni = this.o.random(NONCE_LENGTH);
    this.kePriv = this.o.random(32);
    this.core = new IkeSaCore<Purpose>({ spiI, spiR: new Uint8Array(8), originalInitiator: true, retransmit: this.o.retransmit });
    this.initRequest = buildInitRequest({ spiI, kePriv: this.kePriv, ni: this.ni, cookie: null });
    this.core.requestPlain(this.initRequest, EXCHANGE.IKE_SA_INIT, { kind: 'init' }, now);
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
        `IKE initiator: refresh() needs an established IKE SA with no Child SA exchange or commit running (state '${this.s}', commit '${this.commit.state}')`,
      );
    }
    const { offer, payloads } = makeChildOffer({
      inAuth: false,
      spiFromNic: randomEspSpi(this.o.random, (x) => x === this.current?.fromNic.spi),
      transforms: this.o.espTransforms,
      esn: this.o.esn,
      ni: this.o.random(NONCE_LENGTH),
      kePriv: this.o.pfs ? this.o.random(32) : null,
      rekeySpi: this.current ? this.current.fromNic.spi : null,
    });
    this.childInFlight = true;
    return this.sendRequest(EXCHANGE.CREATE_CHILD_SA, payloads, { kind: 'child', x: offer, earlyReady: null }, now);
  }

  /** Liveness check (§1.4): an empty INFORMATIONAL request; its answer yields `alive`. */
  ping(now: number): IkeEffect[] {
    if (this.s !== 'established') throw new UsageError('E_IKE_STATE', `IKE initiator: ping() in state '${this.s}'`);
    return this.sendRequest(EXCHANGE.INFORMATIONAL, [], { kind: 'ping' }, now);
  }

  /** Deletes the IKE SA (§1.4.1). The Child SA stays installed on both ends (the NIC keeps it). */
  close(now: number): IkeEffect[] {
    if (this.s === 'closed' || this.s === 'failed' || this.s === 'closing') return [];
    const fx: IkeEffect[] = [];
    this.abortCommit(fx, 'IKE SA closed');
    if (this.s !== 'established' || !this.core) {
      this.go('close');
      fx.push({ kind: 'closed', message: 'closed before the IKE SA was established' });
      return fx;
    }
    this.core.clearQueue();
    this.go('close');
    fx.push(...this.sendRequest(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])], { kind: 'delete-ike' }, now));
    return fx;
  }

  private sendRequest(exchange: number, payloads: EncodedPayload[], purpose: Purpose, now: number): IkeEffect[] {
    const bytes = (this.core as IkeSaCore<Purpose>).request(exchange, payloads, purpose, now);
    return bytes ? [{ kind: 'send', bytes }] : [];
  }

  // ---- timers -------------------------------------------------------------------------------

  pollTimeout(): number | null {
    return this.core && this.s !== 'closed' && this.s !== 'failed' ? this.core.deadline : null;
  }

  handleTimeout(now: number): IkeEffect[] {
    const fx: IkeEffect[] = [];
    if (!this.core || this.s === 'closed' || this.s === 'failed') return fx;
    const r = this.core.onTimeout(now);
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
    this.abortCommit(fx, 'IKE SA dead');
    this.go('fail');
    fx.push({
      kind: 'failed',
      scope: 'ike',
      code: 'E_IKE_TIMEOUT',
      message: `no answer from the host agent to ${r.dead.purpose.kind} after ${this.o.retransmit.tries} tries: is the host OS up? (RFC 7296 §2.4)`,
    });
    return fx;
  }

  private abortCommit(fx: IkeEffect[], why: string): void {
    const sa = this.commit.abort();
    if (sa) fx.push({ kind: 'commit-aborted', generation: sa.generation, message: `${why}; the current SA stays in use` });
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
    const core = this.core;
    if (h.majorVersion !== 2) return this.drop('E_VERSION', fx);
    if (!core || this.s === 'closed' || this.s === 'failed' || this.s === 'idle') return this.drop('state', fx);
    if (fromInitiator(h) || !equalBytes(h.spiI, core.spiI)) return this.drop('spi', fx);
    if (this.s === 'init-sent') {
      if (!core.isOurResponse(h)) return this.drop('unexpected', fx);
      return this.onInitResponse(h, bytes, now, fx);
    }
    if (!equalBytes(h.spiR, core.spiR)) return this.drop('spi', fx);
    if (h.exchange === EXCHANGE.IKE_SA_INIT) return this.drop('unexpected', fx);
    if (isResponse(h)) {
      if (!core.isOurResponse(h)) return this.drop('msgid', fx);
      return this.onResponse(core.openResponse(h, bytes), now, fx);
    }
    const cls = core.classifyRequest(h, bytes);
    if (cls === 'drop') return this.drop('msgid', fx);
    if (cls === 'retransmit') {
      fx.push({ kind: 'send', bytes: core.cachedResponse as Uint8Array });
      return fx;
    }
    const opened = core.openRequest(h, bytes); // E_ICV throws: dropped, nothing changes
    if ('error' in opened) return this.answer(h, bytes, [opened.error], fx);
    return this.onRequest(h, bytes, opened.inner, now, fx);
  }

  private answer(h: IkeHeader, request: Uint8Array, payloads: EncodedPayload[], fx: IkeEffect[]): IkeEffect[] {
    fx.push({ kind: 'send', bytes: (this.core as IkeSaCore<Purpose>).respond(h, request, payloads) });
    return fx;
  }

  // ---- IKE_SA_INIT --------------------------------------------------------------------------

  private onInitResponse(h: IkeHeader, bytes: Uint8Array, now: number, fx: IkeEffect[]): IkeEffect[] {
    const core = this.core as IkeSaCore<Purpose>;
    const r = readInitResponse(h, bytes, { spiI: core.spiI, kePriv: this.kePriv, ni: this.ni });
    if (r.kind === 'cookie') {
      // §2.6: repeat IKE_SA_INIT with the cookie first; same SPIi, nonce and KE.
      if (this.cookieRounds >= MAX_COOKIE_ROUNDS) return this.drop('cookie', fx, 'too many COOKIE rounds');
      this.cookieRounds++;
      this.initRequest = buildInitRequest({ spiI: core.spiI, kePriv: this.kePriv, ni: this.ni, cookie: r.cookie });
      core.replacePlain(this.initRequest, now);
      fx.push({ kind: 'send', bytes: this.initRequest });
      return fx;
    }
    if (r.kind === 'refused') return this.fail(r.code, r.message, fx);

    // Everything verified: commit the new state, then IKE_AUTH.
    core.spiR = r.spiR;
    core.keys = r.keys;
    this.nr = r.nr;
    this.initResponse = new Uint8Array(bytes);
    core.finishRequest(now);
    this.go('init-response');

    const child = makeChildOffer({
      inAuth: true,
      spiFromNic: randomEspSpi(this.o.random, () => false),
      transforms: this.o.espTransforms,
      esn: this.o.esn,
      ni: this.ni,
      kePriv: null,
      rekeySpi: null,
    });
    const payloads = authPayloads({ idPayloadType: PAYLOAD.IDi, id: this.o.id, psk: this.o.psk, realMessage: this.initRequest, peerNonce: this.nr, skP: r.keys.skPi });
    if (this.o.initialContact) payloads.push(encodeNotify(NOTIFY.INITIAL_CONTACT));
    payloads.push(...child.payloads);
    this.childInFlight = true;
    fx.push(...this.sendRequest(EXCHANGE.IKE_AUTH, payloads, { kind: 'auth', x: child.offer, earlyReady: null }, now));
    return fx;
  }

  private fail(code: ErrorCode, message: string, fx: IkeEffect[]): IkeEffect[] {
    this.abortCommit(fx, 'IKE SA failed');
    this.core?.clearQueue();
    this.go('fail');
    fx.push({ kind: 'failed', scope: 'ike', code, message });
    return fx;
  }

  // ---- responses to our requests ------------------------------------------------------------

  private onResponse(inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const core = this.core as IkeSaCore<Purpose>;
    const purpose = (core.outstanding as { purpose: Purpose }).purpose;
    switch (purpose.kind) {
      case 'auth':
        this.onAuthResponse(inner, purpose, now, fx);
        break;
      case 'child':
        this.onChildAnswer(inner, purpose, now, fx);
        break;
      case 'ack':
        this.onAckResponse(inner, purpose.id, now, fx);
        break;
      case 'ping':
        fx.push({ kind: 'alive' });
        break;
      case 'delete-child':
        fx.push(log('debug', 'ike.child-deleted', `old Child SA ${purpose.spi.toString(16)} deleted at the host`));
        break;
      case 'delete-ike':
        this.go('closed');
        fx.push({ kind: 'closed', message: 'IKE SA deleted' });
        return fx;
      case 'init':
        return this.drop('unexpected', fx);
    }
    if (this.s === 'established' || this.s === 'closing') {
      const next = core.finishRequest(now);
      if (next) fx.push({ kind: 'send', bytes: next });
    }
    return fx;
  }

  private onAuthResponse(inner: RawPayload[], x: ChildPurpose, now: number, fx: IkeEffect[]): void {
    const core = this.core as IkeSaCore<Purpose>;
    const keys = core.keys as NonNullable<typeof core.keys>;
    const ns = notifiesOf(inner);
    const idrBody = maybe(inner, PAYLOAD.IDr);
    const authBody = maybe(inner, PAYLOAD.AUTH);
    const err = firstError(ns);
    if (!idrBody || !authBody) {
      // §2.21.2: an IKE_AUTH response without AUTH means the IKE SA was not created.
      if (err?.notifyType === NOTIFY.AUTHENTICATION_FAILED) {
        this.fail('E_IKE_AUTH', 'host answered AUTHENTICATION_FAILED: the pre-shared key or our ID does not match the NIC enrolment', fx);
      } else {
        this.fail(err ? errorCodeFor(err.notifyType) : 'E_IKE_SYNTAX', err ? `IKE_AUTH refused: ${describeError(err)}` : 'IKE_AUTH response without IDr/AUTH', fx);
      }
      return;
    }
    const v = verifyPeerAuth({
      idBody: idrBody,
      authBody,
      psk: this.o.psk,
      realMessage: this.initResponse,
      ourNonce: this.ni,
      skP: keys.skPr,
      expectedId: this.o.peerId,
    });
    if (!v.ok) {
      this.fail('E_IKE_AUTH', `host agent failed authentication: ${v.message}`, fx);
      return;
    }
    const peer = v.peer;
    this.go('auth-response');
    fx.push({ kind: 'established', spiI: core.spiIHex, spiR: core.spiRHex }, log('info', 'ike.established', `IKE SA with ${peer} up`));
    this.onChildAnswer(inner, x, now, fx);
  }

  /** The Child SA part of an IKE_AUTH / CREATE_CHILD_SA answer: stage the SA until SA_READY. */
  private onChildAnswer(inner: RawPayload[], x: ChildPurpose, now: number, fx: IkeEffect[]): void {
    const core = this.core as IkeSaCore<Purpose>;
    const skD = (core.keys as NonNullable<typeof core.keys>).skD;
    this.childInFlight = false;
    const r = readChildAnswer(inner, x.x, { inAuth: x.kind === 'auth', ikeNr: this.nr, skD, policy: this.o.policy });
    if (!r.ok) {
      fx.push({ kind: 'failed', scope: 'child', code: r.code, message: `${x.kind === 'auth' ? 'IKE_AUTH' : 'CREATE_CHILD_SA'}: ${r.message}` });
      return;
    }
    if (!r.transportMode) fx.push(log('warn', 'ike.mode', 'host did not confirm USE_TRANSPORT_MODE; using the SA anyway (UDP/664 only)'));
    this.commit.derived(r.sa, x.x.role);
    fx.push(log('info', 'ike.child-derived', `Child SA ${r.sa.toNic.spi.toString(16)}/${r.sa.fromNic.spi.toString(16)} derived; waiting for SA_READY`));
    if (x.earlyReady && this.commit.matches(x.earlyReady)) this.acceptReady(x.earlyReady, now, fx);
  }

  private onAckResponse(inner: RawPayload[], id: CommitId, now: number, fx: IkeEffect[]): void {
    const ns = notifiesOf(inner);
    const confirm = findNotify(ns, NOTIFY.SA_CONFIRM);
    if (confirm) {
      const sa = this.commit.confirm(decodeCommitId(confirm.data));
      if (sa) {
        const old = this.current;
        this.current = sa;
        fx.push({ kind: 'switch-outbound', sa }, log('info', 'ike.switch', `host confirmed generation ${sa.generation}: switching outbound`));
        if (old && old.fromNic.spi !== sa.fromNic.spi) {
          // §1.4.1 / §2.8: the replaced SA is closed once the new one is in use.
          const del = encodeDelete(PROTO_ESP, [spi4(old.fromNic.spi)]);
          fx.push(...this.sendRequest(EXCHANGE.INFORMATIONAL, [del], { kind: 'delete-child', spi: old.fromNic.spi }, now));
        }
        return;
      }
    }
    if (this.commit.ackId && this.commit.ackId.generation === id.generation) {
      const why = findNotify(ns, NOTIFY.CHILD_SA_NOT_FOUND) ? 'host no longer holds the pending SA (its SA_ACK deadline passed)' : 'host did not confirm';
      this.abortCommit(fx, why);
    }
  }

  // ---- requests from the host agent ---------------------------------------------------------

  private onRequest(h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    if (h.exchange === EXCHANGE.CREATE_CHILD_SA) {
      return this.answer(h, bytes, [encodeNotify(NOTIFY.NO_ADDITIONAL_SAS)], fx);
    }
    if (h.exchange !== EXCHANGE.INFORMATIONAL) return this.drop('unexpected', fx);
    let ns;
    let deletes;
    try {
      ns = notifiesOf(inner);
      deletes = inner.filter((p) => p.type === PAYLOAD.DELETE).map((p) => decodeDelete(p.body));
    } catch {
      return this.answer(h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
    }
    if (deletes.some((d) => d.protocol === PROTO_IKE)) {
      this.answer(h, bytes, [], fx);
      this.abortCommit(fx, 'host deleted the IKE SA');
      this.core?.clearQueue();
      this.go('closed');
      fx.push({ kind: 'closed', message: 'the host agent deleted the IKE SA (host shutting down?)' });
      return fx;
    }
    const ready = findNotify(ns, NOTIFY.SA_READY);
    if (ready) {
      if (ready.data.length !== COMMIT_DATA_LENGTH) return this.answer(h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
      let id: CommitId;
      try {
        id = decodeCommitId(ready.data);
      } catch {
        return this.answer(h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
      }
      return this.onReady(h, bytes, id, now, fx);
    }
    // §1.4.1: answer a Child SA delete with our half of those SAs; empty request = liveness.
    const ours: Uint8Array[] = [];
    for (const d of deletes) {
      if (d.protocol !== PROTO_ESP) continue;
      for (const spi of d.spis) {
        if (this.current && equalBytes(spi, spi4(this.current.toNic.spi))) ours.push(spi4(this.current.fromNic.spi));
      }
    }
    if (ours.length) fx.push(log('warn', 'ike.peer-delete', 'host deleted the current Child SA at IKE level; the NIC keeps it, so we keep using it'));
    return this.answer(h, bytes, ours.length ? [encodeDelete(PROTO_ESP, ours)] : [], fx);
  }

  /** SA_READY: answer {}, then SA_ACK if it names the SA our exchange just derived. */
  private onReady(h: IkeHeader, bytes: Uint8Array, id: CommitId, now: number, fx: IkeEffect[]): IkeEffect[] {
    const core = this.core as IkeSaCore<Purpose>;
    if (this.commit.matches(id) && this.commit.can('ready')) {
      this.answer(h, bytes, [], fx);
      this.acceptReady(id, now, fx);
      return fx;
    }
    const out = core.outstanding?.purpose;
    if (out && (out.kind === 'child' || out.kind === 'auth') && out.x.spiFromNic === id.spiFromNic) {
      // The READY overtook the answer to our exchange: keep it until the answer arrives.
      out.earlyReady = id;
      return this.answer(h, bytes, [], fx);
    }
    fx.push(log('warn', 'ike.ready-unknown', `SA_READY for an SA we did not derive (gen ${id.generation}); answering CHILD_SA_NOT_FOUND`));
    return this.answer(h, bytes, [encodeNotify(NOTIFY.CHILD_SA_NOT_FOUND, new Uint8Array(0), PROTO_ESP, spi4(id.spiToNic))], fx);
  }

  private acceptReady(id: CommitId, now: number, fx: IkeEffect[]): void {
    const core = this.core as IkeSaCore<Purpose>;
    const r = this.commit.ready(id);
    if (r.first) fx.push({ kind: 'child-sa', sa: r.sa, role: r.role });
    const out = core.outstanding?.purpose;
    if (out?.kind === 'ack' && out.id.generation === id.generation) return; // SA_ACK already on its way
    const ack = core.request(EXCHANGE.INFORMATIONAL, [encodeNotify(NOTIFY.SA_ACK, encodeCommitId(commitIdOf(r.sa)))], { kind: 'ack', id: commitIdOf(r.sa) }, now);
    if (ack) fx.push({ kind: 'send', bytes: ack });
  }

  // ---- tools --------------------------------------------------------------------------------

  /** SPIs and SK_* of this IKE SA (for the Wireshark UAT and for tests), once IKE_SA_INIT is done. */
  ikeKeys(): { spiI: Uint8Array; spiR: Uint8Array; skEi: Uint8Array; skEr: Uint8Array } | null {
    const c = this.core;
    return c?.keys ? { spiI: c.spiI, spiR: c.spiR, skEi: c.keys.skEi, skEr: c.keys.skEr } : null;
  }

  /** The `ikev2_decryption_table` line that lets Wireshark/tshark decrypt this IKE SA. */
  decryptionTableLine(): string | null {
    const k = this.ikeKeys();
    return k ? ikev2DecryptionTableLine(k) : null;
  }

  /** Everything that must not change on bad input (used by the fuzz tests). */
  snapshot(): string {
    return JSON.stringify({
      s: this.s,
      core: this.core?.snapshot() ?? null,
      commit: this.commit.state,
      staged: this.commit.staged ? hex(concat(spi4(this.commit.staged.sa.toNic.spi), spi4(this.commit.staged.sa.fromNic.spi))) : null,
      current: this.current ? this.current.generation : null,
      nr: hex(this.nr),
    });
  }
}
