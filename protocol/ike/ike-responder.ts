/**
 * The emulated host's IKE agent: an IKEv2 responder (RFC 7296) plus the host half of the
 * two-phase commit (DESIGN §2.5, ../commit.ts). It exists only while the host OS is up; its
 * only persistent state is the NIC's EEPROM (see recover()). Sans-I/O like the initiator.
 *
 *   --> IKE_SA_INIT { SA, KEi, Ni }           <-- { SA, KEr, Nr } | { N(NO_PROPOSAL_CHOSEN) } | { N(INVALID_KE_PAYLOAD) }
 *   --> IKE_AUTH { IDi, AUTH, ..., SA, TSi, TSr }
 *                        <-- { IDr, AUTH, N(USE_TRANSPORT_MODE), SA, TSi, TSr } | { N(AUTHENTICATION_FAILED) }
 *       nic-write-pending;  INFORMATIONAL { N(SA_READY) } -->   <-- { }
 *   --> INFORMATIONAL { N(SA_ACK) }          nic-commit;   <-- { N(SA_CONFIRM) }
 *   --> CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, KEi, TSi, TSr }  <-- { SA, Nr, KEr, TSi, TSr } (then the commit again)
 *
 * Error answers: NO_PROPOSAL_CHOSEN (14), INVALID_KE_PAYLOAD (17), AUTHENTICATION_FAILED (24),
 * TS_UNACCEPTABLE (38), TEMPORARY_FAILURE (43) for a rekey while a commit is pending,
 * CHILD_SA_NOT_FOUND (44) for a rekey of an SA already rekeyed or unknown and for an SA_ACK
 * naming no pending/committed SA, INVALID_SYNTAX (7) only inside a verified SK payload (§2.21).
 * No cookies (§2.6): the half-open table is bounded instead (maxSessions, oldest evicted).
 */
import { equalBytes, hex } from '../../firmware/bytes.js';
import { ProtocolError, UsageError, isLifelineError } from '../../firmware/errors.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../../firmware/sa.js';
import { HostCommit, commitIdOf } from '../commit.js';
import { buildSaPair, keymatLength, narrowSelectors, NIC_TS, randomEspSpi, STATION_TS } from './child-sa.js';
import {
  AUTH_SHARED_KEY_MIC,
  CURVE25519_KE_LENGTH,
  DH_CURVE25519,
  EXCHANGE,
  ID_FQDN,
  IKE_HEADER_LENGTH,
  NONCE_LENGTH,
  PAYLOAD,
  PROTO_ESP,
  PROTO_IKE,
} from './constants.js';
import { type IkeEffect, log } from './effects.js';
import { childKeymat, deriveIkeSaKeys, pskAuth, x25519PublicKey, x25519SharedSecret } from './ike-crypto.js';
import {
  decodeHeader,
  decodePayloadChain,
  encodeMessage,
  fromInitiator,
  isResponse,
  unsupportedCritical,
  type EncodedPayload,
  type IkeHeader,
  type RawPayload,
} from './ike-message.js';
import {
  decodeAuth,
  decodeDelete,
  decodeId,
  decodeKe,
  decodeNonce,
  decodeTs,
  encodeAuth,
  encodeDelete,
  encodeId,
  encodeKe,
  encodeNonce,
  encodeNotify,
  encodeTs,
} from './ike-payloads.js';
import { IkeSaCore } from './ike-sa.js';
import { NOTIFY, decodeCommitId, encodeCommitId, type CommitId } from './notify.js';
import { findNotify, maybe, need, notifiesOf, readSpi4, spi4 } from './payload-helpers.js';
import { chooseEspProposal, chooseIkeProposal, type EspPolicy } from './proposals.js';
import { DEFAULT_RETRANSMIT, assertRetransmitPolicy, type RetransmitPolicy } from './retransmit.js';
import { decodeSa, encodeSa } from './sa-payload.js';

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
  /** IKE SAs kept, half-open included (default 8; the oldest non-established goes first). */
  maxSessions?: number;
}

type SessionState = 'half-open' | 'established' | 'failed';

interface Child {
  sa: SaPair;
  status: 'pending' | 'committed' | 'rekeyed';
  /** spiFromNic of the SA this one rekeys. */
  replaces: number | null;
}

type Purpose = { kind: 'ready'; id: CommitId } | { kind: 'ping' };

interface Session {
  core: IkeSaCore<Purpose>;
  state: SessionState;
  ni: Uint8Array;
  nr: Uint8Array;
  initRequest: Uint8Array;
  initResponse: Uint8Array;
  /** Keyed by spiFromNic: the SPI the station names in REKEY_SA and DELETE (§1.3.3, §1.4.1). */
  children: Map<number, Child>;
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

export class IkeResponder {
  private readonly o: Required<Omit<ResponderOptions, 'peerId' | 'nextGeneration'>> & { peerId?: string };
  private nextGeneration: number;
  private readonly sessions = new Map<string, Session>();
  private readonly commit = new HostCommit();
  private readonly dropCounts = new Map<string, number>();

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
    };
    this.nextGeneration = 1;
    this.setNextGeneration(opts.nextGeneration);
    if (!(this.o.commitTimeoutMs > 0)) throw new UsageError('E_USAGE', 'IkeResponder: commitTimeoutMs must be > 0');
    if (!(Number.isInteger(this.o.maxSessions) && this.o.maxSessions >= 1)) throw new UsageError('E_USAGE', 'IkeResponder: maxSessions must be >= 1');
  }

  /** The NIC's EEPROM moved on (e.g. a manual SA was written): stage later SAs above `n - 1`. */
  setNextGeneration(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new UsageError('E_USAGE', `nextGeneration must be an integer 1..2^32-1, got ${n}`);
    this.nextGeneration = n;
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

  get drops(): Record<string, number> {
    return Object.fromEntries(this.dropCounts);
  }

  /** Number of IKE SAs in each state (for status output and tests). */
  get sessionStates(): SessionState[] {
    return [...this.sessions.values()].map((s) => s.state);
  }

  get commitState(): 'idle' | 'pending' {
    return this.commit.state;
  }

  private drop(reason: string, fx: IkeEffect[], detail?: string): IkeEffect[] {
    this.dropCounts.set(reason, (this.dropCounts.get(reason) ?? 0) + 1);
    fx.push(log('debug', 'ike.drop', detail ? `${reason}: ${detail}` : reason));
    return fx;
  }

  // ---- timers -------------------------------------------------------------------------------

  pollTimeout(): number | null {
    let t = this.commit.deadline;
    for (const s of this.sessions.values()) {
      const d = s.core.deadline;
      if (d !== null && (t === null || d < t)) t = d;
    }
    return t;
  }

  handleTimeout(now: number): IkeEffect[] {
    const fx: IkeEffect[] = [];
    const expired = this.commit.expire(now);
    if (expired) {
      this.forgetPending(expired.owner, expired.id.spiFromNic);
      fx.push(
        { kind: 'nic-discard', generation: expired.id.generation },
        log('warn', 'ike.commit-timeout', `no SA_ACK for generation ${expired.id.generation} within ${this.o.commitTimeoutMs} ms: discarded, the active SA stays`),
      );
    }
    for (const [key, s] of [...this.sessions]) {
      const r = s.core.onTimeout(now);
      if (!r) continue;
      if ('resend' in r) {
        fx.push({ kind: 'send', bytes: r.resend });
        continue;
      }
      this.removeSession(key, fx); // §2.4: the station is gone
      fx.push({ kind: 'failed', scope: 'ike', code: 'E_IKE_TIMEOUT', message: `station did not answer ${r.dead.purpose.kind}: IKE SA ${key} dropped` });
    }
    return fx;
  }

  // ---- input --------------------------------------------------------------------------------

  /** One datagram from a station. Never throws; bad input is dropped and counted. */
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
    if (h.majorVersion !== 2) {
      if (h.majorVersion > 2 && !isResponse(h)) {
        // §2.5: drop it, and say which version we speak (unauthenticated, no state).
        fx.push({ kind: 'send', bytes: this.plainAnswer(h, NOTIFY.INVALID_MAJOR_VERSION) });
      }
      return this.drop('E_VERSION', fx);
    }
    if (!fromInitiator(h)) return this.drop('unexpected', fx, 'message without the I flag');
    if (h.exchange === EXCHANGE.IKE_SA_INIT && !isResponse(h) && h.spiR.every((b) => b === 0)) return this.onInit(h, bytes, fx);
    const key = hex(h.spiR);
    const s = this.sessions.get(key);
    if (!s || !equalBytes(h.spiI, s.core.spiI)) return this.drop('spi', fx);
    if (isResponse(h)) {
      if (!s.core.isOurResponse(h)) return this.drop('msgid', fx);
      const inner = s.core.decodeInner(s.core.openOuter(bytes, this.skPayload(h, bytes)));
      if (unsupportedCritical(inner) !== null) return this.drop('critical', fx);
      return this.onResponse(key, s, inner, now, fx);
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
    const opened = s.core.openOuter(bytes, this.skPayload(h, bytes)); // E_ICV: dropped, nothing changes
    let inner: RawPayload[];
    try {
      inner = s.core.decodeInner(opened);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return this.syntaxError(s, h, bytes, fx);
    }
    const crit = unsupportedCritical(inner);
    if (crit !== null) {
      if (s.state === 'half-open') s.state = 'failed';
      fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, [encodeNotify(NOTIFY.UNSUPPORTED_CRITICAL_PAYLOAD, new Uint8Array([crit]))]) });
      return fx;
    }
    try {
      if (h.exchange === EXCHANGE.IKE_AUTH) return this.onAuth(key, s, h, bytes, inner, now, fx);
      if (h.exchange === EXCHANGE.CREATE_CHILD_SA) return this.onCreateChild(key, s, h, bytes, inner, now, fx);
      return this.onInformational(key, s, h, bytes, inner, fx);
    } catch (e) {
      // Handlers validate before they change anything; a syntax error found there earns INVALID_SYNTAX.
      if (!(e instanceof ProtocolError) || e.code !== 'E_IKE_SYNTAX') throw e;
      return this.syntaxError(s, h, bytes, fx);
    }
  }

  /** §2.21: INVALID_SYNTAX, only ever inside a verified SK payload. A failed IKE_AUTH leaves no IKE SA. */
  private syntaxError(s: Session, h: IkeHeader, bytes: Uint8Array, fx: IkeEffect[]): IkeEffect[] {
    if (s.state === 'half-open') s.state = 'failed';
    this.dropCounts.set('invalid-syntax', (this.dropCounts.get('invalid-syntax') ?? 0) + 1);
    fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)]) });
    return fx;
  }

  private skPayload(h: IkeHeader, bytes: Uint8Array): RawPayload {
    const top = decodePayloadChain(h.nextPayload, bytes, IKE_HEADER_LENGTH, bytes.length);
    if (top.length !== 1 || top[0].type !== PAYLOAD.SK) throw new ProtocolError('E_IKE_SYNTAX', 'expected SK as the only payload');
    return top[0];
  }

  /** An unencrypted error answer to an IKE_SA_INIT request: no state is created (§2.6, §1.2). */
  private plainAnswer(h: IkeHeader, notifyType: number, data: Uint8Array = EMPTY): Uint8Array {
    return encodeMessage(
      { spiI: h.spiI, spiR: new Uint8Array(8), exchange: h.exchange, initiator: false, response: true, messageId: h.messageId },
      [encodeNotify(notifyType, data)],
    );
  }

  // ---- IKE_SA_INIT --------------------------------------------------------------------------

  private onInit(h: IkeHeader, bytes: Uint8Array, fx: IkeEffect[]): IkeEffect[] {
    if (h.messageId !== 0) return this.drop('msgid', fx);
    for (const s of this.sessions.values()) {
      if (!equalBytes(s.core.spiI, h.spiI)) continue;
      // §2.1: a retransmitted IKE_SA_INIT gets the same answer; anything else with this SPIi is dropped.
      if (s.core.classifyRequest(h, bytes) === 'retransmit') {
        fx.push({ kind: 'send', bytes: s.core.cachedResponse as Uint8Array });
        return fx;
      }
      return this.drop('spi', fx, 'SPIi already in use');
    }
    const top = decodePayloadChain(h.nextPayload, bytes, IKE_HEADER_LENGTH, bytes.length);
    const crit = unsupportedCritical(top);
    if (crit !== null) {
      fx.push({ kind: 'send', bytes: this.plainAnswer(h, NOTIFY.UNSUPPORTED_CRITICAL_PAYLOAD, new Uint8Array([crit])) });
      return fx;
    }
    const proposals = decodeSa(need(top, PAYLOAD.SA));
    const ke = decodeKe(need(top, PAYLOAD.KE));
    const ni = decodeNonce(need(top, PAYLOAD.NONCE));
    notifiesOf(top); // syntax check only
    const chosen = chooseIkeProposal(proposals);
    if (!chosen) {
      fx.push({ kind: 'send', bytes: this.plainAnswer(h, NOTIFY.NO_PROPOSAL_CHOSEN) }, log('warn', 'ike.no-proposal', 'IKE_SA_INIT offered nothing we accept (AES-GCM-16/128, HMAC-SHA2-256, Curve25519)'));
      return fx;
    }
    if (ke.group !== DH_CURVE25519) {
      // §1.2: the KE must be for the group we chose; tell the initiator which one (2 octets).
      fx.push({ kind: 'send', bytes: this.plainAnswer(h, NOTIFY.INVALID_KE_PAYLOAD, new Uint8Array([0, DH_CURVE25519])) });
      return fx;
    }
    if (ke.data.length !== CURVE25519_KE_LENGTH) return this.drop('E_IKE_SYNTAX', fx, 'Curve25519 KE data must be 32 octets');
    const kePriv = this.o.random(32);
    const gir = x25519SharedSecret(kePriv, ke.data); // throws on a small-order point: dropped, nothing created
    let spiR = this.o.random(8);
    while (spiR.every((b) => b === 0) || this.sessions.has(hex(spiR))) spiR = this.o.random(8);
    const nr = this.o.random(NONCE_LENGTH);
    const spiI = new Uint8Array(h.spiI);
    const { keys } = deriveIkeSaKeys({ ni, nr, gir, spiI, spiR });
    const core = new IkeSaCore<Purpose>({ spiI, spiR, originalInitiator: false, retransmit: this.o.retransmit });
    core.keys = keys;
    const response = encodeMessage(core.fields(EXCHANGE.IKE_SA_INIT, true, 0), [
      encodeSa([chosen]),
      encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(kePriv)),
      encodeNonce(nr),
    ]);
    core.remember(0, new Uint8Array(bytes), response);
    this.makeRoom(fx);
    this.sessions.set(hex(spiR), {
      core,
      state: 'half-open',
      ni: new Uint8Array(ni),
      nr,
      initRequest: new Uint8Array(bytes),
      initResponse: response,
      children: new Map(),
    });
    fx.push({ kind: 'send', bytes: response });
    return fx;
  }

  private makeRoom(fx: IkeEffect[]): void {
    if (this.sessions.size < this.o.maxSessions) return;
    let victim: string | undefined;
    for (const [k, s] of this.sessions) if (s.state !== 'established') { victim = k; break; }
    victim ??= this.sessions.keys().next().value as string;
    this.removeSession(victim, fx);
    fx.push(log('info', 'ike.evict', `IKE SA table full: dropped ${victim}`));
  }

  private removeSession(key: string, fx: IkeEffect[]): void {
    const d = this.commit.discard(key);
    if (d) fx.push({ kind: 'nic-discard', generation: d.id.generation });
    this.sessions.get(key)?.core.clearQueue();
    this.sessions.delete(key);
  }

  // ---- IKE_AUTH -----------------------------------------------------------------------------

  private onAuth(key: string, s: Session, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const keys = s.core.keys as NonNullable<typeof s.core.keys>;
    const idi = decodeId(need(inner, PAYLOAD.IDi));
    const auth = decodeAuth(need(inner, PAYLOAD.AUTH));
    const proposals = decodeSa(need(inner, PAYLOAD.SA));
    const tsi = decodeTs(need(inner, PAYLOAD.TSi));
    const tsr = decodeTs(need(inner, PAYLOAD.TSr));
    const ns = notifiesOf(inner);
    const expected = pskAuth(this.o.psk, s.initRequest, s.nr, keys.skPi, idi.body);
    const peer = new TextDecoder().decode(idi.data);
    if (auth.method !== AUTH_SHARED_KEY_MIC || !equalBytes(auth.data, expected) || idi.idType !== ID_FQDN || (this.o.peerId !== undefined && peer !== this.o.peerId)) {
      // §2.21.2: answer AUTHENTICATION_FAILED and create no IKE SA and no Child SA.
      s.state = 'failed';
      fx.push(
        { kind: 'send', bytes: s.core.respond(h, bytes, [encodeNotify(NOTIFY.AUTHENTICATION_FAILED)]) },
        { kind: 'failed', scope: 'ike', code: 'E_IKE_AUTH', message: `station '${peer}' failed authentication (wrong pre-shared key or identity)` },
      );
      return fx;
    }
    const idr = encodeId(PAYLOAD.IDr, ID_FQDN, utf8.encode(this.o.id));
    const myAuth = encodeAuth(AUTH_SHARED_KEY_MIC, pskAuth(this.o.psk, s.initResponse, s.ni, keys.skPr, idr.body));
    const child = this.negotiateChild(s, proposals, tsi, tsr, null, s.ni, s.nr, undefined);
    s.state = 'established';
    fx.push({ kind: 'established', spiI: s.core.spiIHex, spiR: key }, log('info', 'ike.established', `IKE SA with station '${peer}' up`));
    if (findNotify(ns, NOTIFY.INITIAL_CONTACT)) {
      // §2.4 / §3.10.1: the station restarted or another one took over: forget older IKE SAs.
      for (const k of [...this.sessions.keys()]) if (k !== key) this.removeSession(k, fx);
    }
    const payloads: EncodedPayload[] = [idr, myAuth];
    if ('refuse' in child) {
      payloads.push(encodeNotify(child.refuse));
      fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, payloads) });
      return fx;
    }
    if (findNotify(ns, NOTIFY.USE_TRANSPORT_MODE)) payloads.push(encodeNotify(NOTIFY.USE_TRANSPORT_MODE));
    payloads.push(...child.payloads);
    this.stage(key, s, child.sa, null, now, fx);
    fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, payloads) });
    this.sendReady(s, child.sa, now, fx);
    return fx;
  }

  /**
   * Proposal + TS choice and KEYMAT for a new Child SA. Pure until the caller stages it;
   * returns the Notify type to refuse with instead, if any.
   */
  private negotiateChild(
    s: Session,
    proposals: ReturnType<typeof decodeSa>,
    tsi: ReturnType<typeof decodeTs>,
    tsr: ReturnType<typeof decodeTs>,
    ke: { data: Uint8Array } | null,
    ni: Uint8Array,
    nr: Uint8Array,
    kePriv: Uint8Array | undefined,
  ): { refuse: number } | { sa: SaPair; payloads: EncodedPayload[] } {
    const policy: EspPolicy = { transforms: this.o.espTransforms, allowEsn: this.o.allowEsn };
    const choice = chooseEspProposal(proposals, policy, ke !== null);
    if (!choice) return { refuse: NOTIFY.NO_PROPOSAL_CHOSEN };
    if (!narrowSelectors(tsi, tsr)) return { refuse: NOTIFY.TS_UNACCEPTABLE };
    const inUse = (spi: number): boolean => [...this.sessions.values()].some((x) => [...x.children.values()].some((c) => c.sa.toNic.spi === spi));
    const spiToNic = randomEspSpi(this.o.random, inUse);
    const gir = ke && kePriv ? x25519SharedSecret(kePriv, ke.data) : undefined;
    const keymat = childKeymat((s.core.keys as NonNullable<typeof s.core.keys>).skD, ni, nr, keymatLength(choice.transform, this.o.policy), gir);
    const sa = buildSaPair(
      { transform: choice.transform, esn: choice.esn, policy: this.o.policy, spiToNic, spiFromNic: choice.peerSpi },
      keymat,
      this.nextGeneration,
    );
    const answer = { ...choice.proposal, spi: spi4(spiToNic) };
    return { sa, payloads: [encodeSa([answer]), encodeTs(PAYLOAD.TSi, [STATION_TS]), encodeTs(PAYLOAD.TSr, [NIC_TS])] };
  }

  /** The new SA goes to the NIC's pending slot (DESIGN §2.5); a pending SA it replaces is discarded. */
  private stage(key: string, s: Session, sa: SaPair, replaces: number | null, now: number, fx: IkeEffect[]): void {
    this.nextGeneration = sa.generation + 1;
    const replaced = this.commit.stage(sa, key, now, this.o.commitTimeoutMs);
    if (replaced) {
      this.forgetPending(replaced.owner, replaced.id.spiFromNic);
      fx.push({ kind: 'nic-discard', generation: replaced.id.generation });
    }
    s.children.set(sa.fromNic.spi, { sa, status: 'pending', replaces });
    fx.push({ kind: 'nic-write-pending', sa });
  }

  private sendReady(s: Session, sa: SaPair, now: number, fx: IkeEffect[]): void {
    const id = commitIdOf(sa);
    const bytes = s.core.request(EXCHANGE.INFORMATIONAL, [encodeNotify(NOTIFY.SA_READY, encodeCommitId(id))], { kind: 'ready', id }, now);
    if (bytes) fx.push({ kind: 'send', bytes });
  }

  private forgetPending(owner: string, spiFromNic: number): void {
    const s = this.sessions.get(owner);
    const c = s?.children.get(spiFromNic);
    if (s && c?.status === 'pending') s.children.delete(spiFromNic);
  }

  // ---- CREATE_CHILD_SA ----------------------------------------------------------------------

  private onCreateChild(key: string, s: Session, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const ns = notifiesOf(inner);
    const proposals = decodeSa(need(inner, PAYLOAD.SA));
    const ni = decodeNonce(need(inner, PAYLOAD.NONCE));
    const tsi = decodeTs(need(inner, PAYLOAD.TSi));
    const tsr = decodeTs(need(inner, PAYLOAD.TSr));
    const keBody = maybe(inner, PAYLOAD.KE);
    const ke = keBody ? decodeKe(keBody) : null;
    const rekey = findNotify(ns, NOTIFY.REKEY_SA);
    const refuse = (type: number, data: Uint8Array = EMPTY, protocol = 0, spi: Uint8Array = EMPTY): IkeEffect[] => {
      fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, [encodeNotify(type, data, protocol, spi)]) });
      return fx;
    };
    if (proposals.some((p) => p.protocol === PROTO_IKE)) return refuse(NOTIFY.NO_PROPOSAL_CHOSEN); // no IKE SA rekey here
    const pending = this.commit.pending;
    if (pending && pending.owner === key) {
      // One refresh at a time: the previous one is still between SA_READY and SA_ACK (§2.25).
      return refuse(NOTIFY.TEMPORARY_FAILURE);
    }
    let replaces: number | null = null;
    if (rekey) {
      if (rekey.protocol !== PROTO_ESP) return refuse(NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, rekey.protocol, rekey.spi);
      const old = readSpi4(rekey.spi);
      const c = s.children.get(old);
      // §2.8.1 / §2.25: rekey of an SA already rekeyed (a late duplicate) or unknown.
      if (!c || c.status !== 'committed') return refuse(NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, PROTO_ESP, rekey.spi);
      replaces = old;
    }
    if (ke && (ke.group !== DH_CURVE25519 || ke.data.length !== CURVE25519_KE_LENGTH)) {
      return refuse(NOTIFY.INVALID_KE_PAYLOAD, new Uint8Array([0, DH_CURVE25519]));
    }
    if (!ke && this.o.requirePfs) return refuse(NOTIFY.NO_PROPOSAL_CHOSEN);
    const nr = this.o.random(NONCE_LENGTH);
    const kePriv = ke ? this.o.random(32) : undefined;
    let child;
    try {
      child = this.negotiateChild(s, proposals, tsi, tsr, ke, ni, nr, kePriv);
    } catch (e) {
      if (e instanceof ProtocolError && e.code === 'E_IKE_SYNTAX') return refuse(NOTIFY.INVALID_KE_PAYLOAD, new Uint8Array([0, DH_CURVE25519]));
      throw e;
    }
    if ('refuse' in child) return refuse(child.refuse);
    const [saPayload, tsiPayload, tsrPayload] = child.payloads;
    const payloads: EncodedPayload[] = [];
    if (findNotify(ns, NOTIFY.USE_TRANSPORT_MODE)) payloads.push(encodeNotify(NOTIFY.USE_TRANSPORT_MODE));
    payloads.push(saPayload, encodeNonce(nr));
    if (kePriv) payloads.push(encodeKe(PAYLOAD.KE, DH_CURVE25519, x25519PublicKey(kePriv)));
    payloads.push(tsiPayload, tsrPayload);
    this.stage(key, s, child.sa, replaces, now, fx);
    fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, payloads) });
    this.sendReady(s, child.sa, now, fx);
    return fx;
  }

  // ---- INFORMATIONAL ------------------------------------------------------------------------

  private onInformational(key: string, s: Session, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], fx: IkeEffect[]): IkeEffect[] {
    const ns = notifiesOf(inner);
    const deletes = inner.filter((p) => p.type === PAYLOAD.DELETE).map((p) => decodeDelete(p.body));
    const ack = findNotify(ns, NOTIFY.SA_ACK);
    const ackId = ack ? decodeCommitId(ack.data) : null;
    const respond = (payloads: EncodedPayload[]): IkeEffect[] => {
      fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, payloads) });
      return fx;
    };
    if (deletes.some((d) => d.protocol === PROTO_IKE)) {
      respond([]);
      this.removeSession(key, fx);
      fx.push({ kind: 'closed', message: `station deleted IKE SA ${key}` });
      return fx;
    }
    if (ackId) {
      const decision = this.commit.ack(ackId, key);
      if (decision === 'unknown') {
        fx.push(log('warn', 'ike.ack-unknown', `SA_ACK for generation ${ackId.generation}, which is neither pending nor committed`));
        return respond([encodeNotify(NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, PROTO_ESP, spi4(ackId.spiToNic))]);
      }
      if (decision === 'commit') {
        const c = s.children.get(ackId.spiFromNic);
        if (c) {
          c.status = 'committed';
          const old = c.replaces !== null ? s.children.get(c.replaces) : undefined;
          if (old) old.status = 'rekeyed';
        }
        fx.push({ kind: 'nic-commit', generation: ackId.generation });
      }
      return respond([encodeNotify(NOTIFY.SA_CONFIRM, encodeCommitId(ackId))]);
    }
    // §1.4.1: delete the named Child SAs from our books and answer with our halves.
    const ours: Uint8Array[] = [];
    for (const d of deletes) {
      if (d.protocol !== PROTO_ESP) continue;
      for (const raw of d.spis) {
        if (raw.length !== 4) continue;
        const c = s.children.get(readSpi4(raw));
        if (!c) continue;
        if (c.status === 'pending') {
          const p = this.commit.discard(key);
          if (p) fx.push({ kind: 'nic-discard', generation: p.id.generation });
        }
        s.children.delete(c.sa.fromNic.spi);
        ours.push(spi4(c.sa.toNic.spi));
      }
    }
    return respond(ours.length ? [encodeDelete(PROTO_ESP, ours)] : []); // empty request = liveness (§1.4)
  }

  // ---- responses to our own requests (SA_READY) ---------------------------------------------

  private onResponse(key: string, s: Session, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const purpose = (s.core.outstanding as { purpose: Purpose }).purpose;
    const ns = notifiesOf(inner);
    if (purpose.kind === 'ready' && findNotify(ns, NOTIFY.CHILD_SA_NOT_FOUND)) {
      const p = this.commit.pending;
      if (p && p.owner === key && p.id.generation === purpose.id.generation) {
        this.commit.discard(key);
        this.forgetPending(key, p.id.spiFromNic);
        fx.push({ kind: 'nic-discard', generation: p.id.generation }, log('warn', 'ike.ready-refused', `station does not know generation ${p.id.generation}: discarded`));
      }
    } else if (purpose.kind === 'ping') {
      fx.push({ kind: 'alive' });
    }
    const next = s.core.finishRequest(now);
    if (next) fx.push({ kind: 'send', bytes: next });
    return fx;
  }

  /** Everything that must not change on bad input (used by the fuzz tests). */
  snapshot(): string {
    const sessions = [...this.sessions].map(([k, s]) => [k, s.state, s.core.snapshot(), [...s.children].map(([c, x]) => [c, x.status, x.sa.generation])]);
    return JSON.stringify({ sessions, commit: this.commit.state, pending: this.commit.pending?.id ?? null, next: this.nextGeneration });
  }
}

