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
 * shutdown() (graceful OS shutdown) sends INFORMATIONAL { D(IKE) } on every IKE SA.
 */
import { equalBytes, hex } from '../../common/bytes.js';
import { ProtocolError, UsageError, isLifelineError } from '../../common/errors.js';
import type { EspTransform, SaPair, SecurityPolicy } from '../../wire/sa.js';
import { HostCommit, commitIdOf } from '../commit.js';
import { answerChild } from './child-exchange.js';
import { randomEspSpi } from './child-sa.js';
import { CURVE25519_KE_LENGTH, DH_CURVE25519, EXCHANGE, NONCE_LENGTH, PAYLOAD, PROTO_ESP, PROTO_IKE } from './constants.js';
import { DropCounter, type IkeEffect, log } from './effects.js';
import { authPayloads, verifyPeerAuth } from './ike-auth.js';
import { decodeHeader, fromInitiator, isResponse, type EncodedPayload, type IkeHeader, type RawPayload } from './ike-message.js';
import { decodeDelete, decodeKe, decodeNonce, decodeTs, encodeDelete, encodeNotify } from './ike-payloads.js';
import { answerInit, plainErrorAnswer } from './ike-sa-init.js';
import { IkeSaCore } from './ike-sa.js';
import { NOTIFY, decodeCommitId, encodeCommitId, type CommitId } from './notify.js';
import { findNotify, maybe, need, notifiesOf, readSpi4, spi4 } from './payload-helpers.js';
import { type EspPolicy } from './proposals.js';
import { DEFAULT_RETRANSMIT, assertRetransmitPolicy, type RetransmitPolicy } from './retransmit.js';
import { decodeSa } from './sa-payload.js';

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

type Purpose = { kind: 'ready'; id: CommitId } | { kind: 'ping' } | { kind: 'delete-ike' };

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

export class IkeResponder {
  private readonly o: Required<Omit<ResponderOptions, 'peerId' | 'nextGeneration'>> & { peerId?: string };
  private nextGeneration: number;
  private readonly sessions = new Map<string, Session>();
  private readonly commit = new HostCommit();
  private readonly dropped = new DropCounter();

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

  /**
   * Graceful host shutdown: INFORMATIONAL { D(IKE) } on every established IKE SA (§1.4.1), so
   * the station learns at once instead of after its retransmissions. The Child SAs stay on the
   * NIC. A pending SA can no longer be confirmed and is discarded.
   */
  shutdown(now: number): IkeEffect[] {
    const fx: IkeEffect[] = [];
    const d = this.commit.discard();
    if (d) fx.push({ kind: 'nic-discard', generation: d.id.generation });
    for (const [key, s] of [...this.sessions]) {
      if (s.state !== 'established') {
        this.sessions.delete(key);
        continue;
      }
      s.core.clearQueue();
      const bytes = s.core.request(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])], { kind: 'delete-ike' }, now);
      if (bytes) fx.push({ kind: 'send', bytes });
    }
    return fx;
  }

  /** Dropped inputs by reason (never thrown, RFC 7296 §2.21 / STYLE 4). */
  get drops(): Record<string, number> {
    return this.dropped.record;
  }

  /** Number of IKE SAs in each state (for status output and tests). */
  get sessionStates(): SessionState[] {
    return [...this.sessions.values()].map((s) => s.state);
  }

  get commitState(): 'idle' | 'pending' {
    return this.commit.state;
  }

  private drop(reason: string, fx: IkeEffect[], detail?: string): IkeEffect[] {
    return this.dropped.drop(reason, fx, detail);
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
        fx.push({ kind: 'send', bytes: plainErrorAnswer(h, NOTIFY.INVALID_MAJOR_VERSION) });
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
      return this.onResponse(key, s, s.core.openResponse(h, bytes), now, fx);
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
      if (h.exchange === EXCHANGE.IKE_AUTH) return this.onAuth(key, s, h, bytes, opened.inner, now, fx);
      if (h.exchange === EXCHANGE.CREATE_CHILD_SA) return this.onCreateChild(key, s, h, bytes, opened.inner, now, fx);
      return this.onInformational(key, s, h, bytes, opened.inner, fx);
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
    const r = answerInit(h, bytes, this.o.random, (spi) => this.sessions.has(spi));
    if (r.kind === 'refuse') {
      fx.push({ kind: 'send', bytes: r.bytes }, log('warn', 'ike.init-refused', r.message));
      return fx;
    }
    const core = new IkeSaCore<Purpose>({ spiI: new Uint8Array(h.spiI), spiR: r.spiR, originalInitiator: false, retransmit: this.o.retransmit });
    core.keys = r.keys;
    core.remember(0, new Uint8Array(bytes), r.response);
    this.makeRoom(fx);
    this.sessions.set(hex(r.spiR), {
      core,
      state: 'half-open',
      ni: r.ni,
      nr: r.nr,
      initRequest: new Uint8Array(bytes),
      initResponse: r.response,
      children: new Map(),
    });
    fx.push({ kind: 'send', bytes: r.response });
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
    const idiBody = need(inner, PAYLOAD.IDi);
    const authBody = need(inner, PAYLOAD.AUTH);
    const proposals = decodeSa(need(inner, PAYLOAD.SA));
    const tsi = decodeTs(need(inner, PAYLOAD.TSi));
    const tsr = decodeTs(need(inner, PAYLOAD.TSr));
    const ns = notifiesOf(inner);
    const v = verifyPeerAuth({ idBody: idiBody, authBody, psk: this.o.psk, realMessage: s.initRequest, ourNonce: s.nr, skP: keys.skPi, expectedId: this.o.peerId });
    if (!v.ok) {
      // §2.21.2: answer AUTHENTICATION_FAILED and create no IKE SA and no Child SA.
      s.state = 'failed';
      fx.push(
        { kind: 'send', bytes: s.core.respond(h, bytes, [encodeNotify(NOTIFY.AUTHENTICATION_FAILED)]) },
        { kind: 'failed', scope: 'ike', code: 'E_IKE_AUTH', message: `station failed authentication: ${v.message}` },
      );
      return fx;
    }
    const peer = v.peer;
    const me = authPayloads({ idPayloadType: PAYLOAD.IDr, id: this.o.id, psk: this.o.psk, realMessage: s.initResponse, peerNonce: s.ni, skP: keys.skPr });
    const child = answerChild(
      { proposals, tsi, tsr, ni: s.ni, ke: null, transportMode: !!findNotify(ns, NOTIFY.USE_TRANSPORT_MODE) },
      { ...this.childPolicy(s), inAuth: true, nr: s.nr, kePriv: null },
    );
    s.state = 'established';
    fx.push({ kind: 'established', spiI: s.core.spiIHex, spiR: key }, log('info', 'ike.established', `IKE SA with station '${peer}' up`));
    if (findNotify(ns, NOTIFY.INITIAL_CONTACT)) {
      // §2.4 / §3.10.1: the station restarted or another one took over: forget older IKE SAs.
      for (const k of [...this.sessions.keys()]) if (k !== key) this.removeSession(k, fx);
    }
    const payloads: EncodedPayload[] = [...me];
    if ('refuse' in child) {
      payloads.push(encodeNotify(child.refuse));
      fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, payloads) });
      return fx;
    }
    payloads.push(...child.payloads);
    this.stage(key, s, child.sa, null, now, fx);
    fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, payloads) });
    this.sendReady(s, child.sa, now, fx);
    return fx;
  }

  /** What answerChild() needs besides the request: acceptable transforms, SK_d, a fresh SPI, the generation. */
  private childPolicy(s: Session): { accept: EspPolicy; policy: SecurityPolicy; skD: Uint8Array; spiToNic: number; generation: number } {
    const inUse = (spi: number): boolean => [...this.sessions.values()].some((x) => [...x.children.values()].some((c) => c.sa.toNic.spi === spi));
    return {
      accept: { transforms: this.o.espTransforms, allowEsn: this.o.allowEsn },
      policy: this.o.policy,
      skD: (s.core.keys as NonNullable<typeof s.core.keys>).skD,
      spiToNic: randomEspSpi(this.o.random, inUse),
      generation: this.nextGeneration,
    };
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
    const child = answerChild(
      { proposals, tsi, tsr, ni, ke, transportMode: !!findNotify(ns, NOTIFY.USE_TRANSPORT_MODE) },
      { ...this.childPolicy(s), inAuth: false, nr, kePriv: ke ? this.o.random(32) : null },
    );
    if ('refuse' in child) {
      return child.refuse === NOTIFY.INVALID_KE_PAYLOAD ? refuse(child.refuse, new Uint8Array([0, DH_CURVE25519])) : refuse(child.refuse);
    }
    this.stage(key, s, child.sa, replaces, now, fx);
    fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, child.payloads) });
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
        fx.push(
          { kind: 'nic-discard', generation: p.id.generation },
          log('warn', 'ike.ready-refused', `station does not know generation ${p.id.generation}: discarded`),
        );
      }
    } else if (purpose.kind === 'ping') {
      fx.push({ kind: 'alive' });
    } else if (purpose.kind === 'delete-ike') {
      this.removeSession(key, fx);
      fx.push({ kind: 'closed', message: `IKE SA ${key} deleted (host shutdown)` });
      return fx;
    }
    const next = s.core.finishRequest(now);
    if (next) fx.push({ kind: 'send', bytes: next });
    return fx;
  }

  /**
   * Everything that must not change on bad input (used by the fuzz tests). `halfOpen: false`
   * leaves out half-open IKE SAs, which any well-formed IKE_SA_INIT may legitimately create.
   */
  snapshot(halfOpen = true): string {
    const sessions = [...this.sessions]
      .filter(([, s]) => halfOpen || s.state !== 'half-open')
      .map(([k, s]) => [k, s.state, s.core.snapshot(), [...s.children].map(([c, x]) => [c, x.status, x.sa.generation])]);
    return JSON.stringify({ sessions, commit: this.commit.state, pending: this.commit.pending?.id ?? null, next: this.nextGeneration });
  }
}

