/**
 * The host agent's IKE SA table entries and the IKE SA rekey in both roles, with the §2.8.2
 * collision (pure parts in ike-rekey.ts); responder-exchanges.ts builds IKE_AUTH, the Child SA
 * exchanges, the commit and INFORMATIONAL on top of it.
 *
 *   --> CREATE_CHILD_SA { SA(IKE), Ni, KEi }   <-- { SA(IKE), Nr, KEr }   the peer then deletes the old SA
 *   CREATE_CHILD_SA { SA(IKE), Ni, KEi } -->   <-- { SA(IKE), Nr, KEr }   we delete the old SA (§2.18)
 */
import { hex } from '../../common/bytes.js';
import { UsageError } from '../../common/errors.js';
import type { SaPair } from '../../wire/sa.js';
import type { HostCommit } from '../commit.js';
import type { ChildOffer } from './child-exchange.js';
import { EXCHANGE, PROTO_IKE } from './constants.js';
import { log, type DatagramSource, type IkeEffect } from './effects.js';
import type { EncodedPayload, IkeHeader, RawPayload } from './ike-message.js';
import { encodeDelete, encodeNotify } from './ike-payloads.js';
import { answerIkeRekey, makeIkeRekeyRequest, readIkeRekeyAnswer, weLostCollision, type IkeRekeyOffer } from './ike-rekey.js';
import type { ResolvedResponderOptions } from './ike-responder.js';
import { IkeSaCore } from './ike-sa.js';
import { NOTIFY, type CommitId } from './notify.js';

export type SessionState = 'half-open' | 'established' | 'failed';

export interface Child {
  sa: SaPair;
  status: 'pending' | 'committed' | 'rekeyed';
  /** spiFromNic of the SA this one rekeys. */
  replaces: number | null;
}

export type Purpose =
  | { kind: 'ready'; id: CommitId }
  | { kind: 'ping' }
  | { kind: 'delete-ike'; why: 'shutdown' | 'rekeyed' | 'redundant' }
  | { kind: 'delete-child'; spi: number }
  | { kind: 'ike-rekey'; offer: IkeRekeyOffer }
  | { kind: 'child-rekey'; x: ChildOffer; replaces: number };

export interface Session {
  /** Our SPI, 16 hex digits: the table key. */
  key: string;
  core: IkeSaCore<Purpose>;
  state: SessionState;
  ni: Uint8Array;
  nr: Uint8Array;
  initRequest: Uint8Array;
  initResponse: Uint8Array;
  source: string | null;
  /** Where the IKE_SA_INIT that made it came from: our requests on it go there (§2.11). */
  peer: DatagramSource | null;
  created: number;
  cookieVerified: boolean;
  /** Keyed by spiFromNic: the SPI the station names in REKEY_SA and DELETE (§1.3.3, §1.4.1). */
  children: Map<number, Child>;
  /** Both ends announced COMMIT_SUPPORTED: SA_READY/ACK/CONFIRM runs (DESIGN §2.5). */
  commit: boolean;
  /** We sent D(IKE) on it. */
  closing: boolean;
  /** This old IKE SA was rekeyed into that one (§2.18); it waits for (or sends) its D(IKE). */
  rekeyedTo: string | null;
  /** A new IKE SA that lost a §2.8.2 collision: its D(IKE) closes it without closing anything else. */
  superseded: boolean;
  /** §2.8.2: the peer's rekey of this IKE SA, answered while ours was outstanding. */
  peerIkeRekey: { key: string; ni: Uint8Array; nr: Uint8Array } | null;
  /** §2.8.1: the peer's rekey of the Child SA we are rekeying, answered (and committed) meanwhile. */
  peerChildRekey: { ni: Uint8Array; nr: Uint8Array } | null;
}

const EMPTY = new Uint8Array(0);

export abstract class ResponderIkeSas {

  constructor(
    protected readonly o: ResolvedResponderOptions,
    protected readonly sessions: Map<string, Session>,
    protected readonly commit: HostCommit,
  ) {}

  newSession(key: string, core: IkeSaCore<Purpose>, p: Pick<Session, 'state' | 'ni' | 'nr' | 'initRequest' | 'initResponse' | 'source' | 'peer' | 'created' | 'cookieVerified'>): Session {
    return { key, core, ...p, children: new Map(), commit: false, closing: false, rekeyedTo: null, superseded: false, peerIkeRekey: null, peerChildRekey: null };
  }

  removeSession(key: string, fx: IkeEffect[]): void {
    const d = this.commit.discard(key);
    if (d) fx.push({ kind: 'nic-discard', generation: d.id.generation });
    this.sessions.get(key)?.core.clearQueue();
    this.sessions.delete(key);
  }

  /** Our outstanding request got its answer: launch the next queued one. */
  protected finish(s: Session, now: number, fx: IkeEffect[]): void {
    const next = s.core.finishRequest(now);
    if (next) fx.push({ kind: 'send', bytes: next });
  }

  protected send(s: Session, exchange: number, payloads: EncodedPayload[], purpose: Purpose, now: number, fx: IkeEffect[]): void {
    const bytes = s.core.request(exchange, payloads, purpose, now);
    if (bytes) fx.push({ kind: 'send', bytes });
  }

  protected respond(s: Session, h: IkeHeader, bytes: Uint8Array, payloads: EncodedPayload[], fx: IkeEffect[]): IkeEffect[] {
    fx.push({ kind: 'send', bytes: s.core.respond(h, bytes, payloads) });
    return fx;
  }

  protected refuse(s: Session, h: IkeHeader, bytes: Uint8Array, fx: IkeEffect[], type: number, data: Uint8Array = EMPTY, protocol = 0, spi: Uint8Array = EMPTY): IkeEffect[] {
    return this.respond(s, h, bytes, [encodeNotify(type, data, protocol, spi)], fx);
  }

  // ---- IKE SA rekey (ike-rekey.ts), both roles ----------------------------------------------

  protected onIkeRekey(s: Session, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], own: Purpose | undefined, now: number, fx: IkeEffect[]): IkeEffect[] {
    const pending = this.commit.pending;
    const busy = (pending && pending.owner === s.key) || (own !== undefined && own.kind !== 'ike-rekey') || s.core.queued > 0;
    // strongSwan's rule too: no IKE rekey while a Child SA exchange or commit is half done.
    if (busy) return this.refuse(s, h, bytes, fx, NOTIFY.TEMPORARY_FAILURE);
    const r = answerIkeRekey(inner, { skDOld: (s.core.keys as NonNullable<typeof s.core.keys>).skD, random: this.o.random, inUse: (k) => this.sessions.has(k) });
    if ('refuse' in r) return this.refuse(s, h, bytes, fx, r.refuse, r.data);
    const ns = this.adoptNewIkeSa(s, r.sa, now);
    this.respond(s, h, bytes, r.payloads, fx);
    if (own?.kind === 'ike-rekey') {
      s.peerIkeRekey = { key: ns.key, ni: r.sa.ni, nr: r.sa.nr };
      fx.push(log('info', 'ike.ike-rekey-collision', 'both ends rekey the IKE SA (§2.8.2); the lowest nonce decides'));
      return fx;
    }
    this.moveTo(s, ns, fx);
    return fx;
  }

  protected adoptNewIkeSa(old: Session, n: { spiI: Uint8Array; spiR: Uint8Array; ni: Uint8Array; nr: Uint8Array; keys: NonNullable<IkeSaCore<Purpose>['keys']>; weInitiated: boolean }, now: number): Session {
    const core = new IkeSaCore<Purpose>({ spiI: n.spiI, spiR: n.spiR, originalInitiator: n.weInitiated, retransmit: this.o.retransmit });
    core.keys = n.keys;
    const key = hex(n.weInitiated ? n.spiI : n.spiR);
    const ns = this.newSession(key, core, { state: 'established', ni: n.ni, nr: n.nr, initRequest: old.initRequest, initResponse: old.initResponse, source: old.source, peer: old.peer, created: now, cookieVerified: true });
    ns.commit = old.commit;
    this.sessions.set(key, ns);
    return ns;
  }

  /** §2.18: the Child SAs (and the commit's owner) move to the new IKE SA; the old one waits for its D(IKE). */
  protected moveTo(old: Session, ns: Session, fx: IkeEffect[]): void {
    for (const [k, c] of old.children) ns.children.set(k, c);
    old.children.clear();
    this.commit.renameOwner(old.key, ns.key);
    old.rekeyedTo = ns.key;
    fx.push(
      { kind: 'ike-rekeyed', oldSpiI: old.core.spiIHex, oldSpiR: old.core.spiRHex, spiI: ns.core.spiIHex, spiR: ns.core.spiRHex },
      log('info', 'ike.rekeyed', `IKE SA ${old.key} rekeyed into ${ns.key} (§2.18)`),
    );
  }

  startIkeRekey(s: Session, now: number): IkeEffect[] {
    this.mustBeIdle(s, 'rekeyIkeSa');
    const { offer, payloads } = makeIkeRekeyRequest(this.o.random, (k) => this.sessions.has(k));
    const fx: IkeEffect[] = [];
    this.send(s, EXCHANGE.CREATE_CHILD_SA, payloads, { kind: 'ike-rekey', offer }, now, fx);
    return fx;
  }

  protected mustBeIdle(s: Session, what: string): void {
    const pending = this.commit.pending;
    if (s.core.outstanding || s.core.queued || (pending && pending.owner === s.key)) {
      throw new UsageError('E_IKE_STATE', `IkeResponder.${what}(): IKE SA ${s.key} has an exchange or commit under way; try again when it is idle`);
    }
  }

  protected onIkeRekeyAnswer(s: Session, inner: RawPayload[], offer: IkeRekeyOffer, now: number, fx: IkeEffect[]): void {
    const r = readIkeRekeyAnswer(inner, offer, (s.core.keys as NonNullable<typeof s.core.keys>).skD);
    const peer = s.peerIkeRekey;
    s.peerIkeRekey = null;
    this.finish(s, now, fx);
    if (!r.ok) {
      const survivor = peer ? this.sessions.get(peer.key) : undefined;
      if (survivor) this.moveTo(s, survivor, fx); // §2.8.2: ours failed, the peer's rekey stands; it deletes the old SA
      else fx.push({ kind: 'failed', scope: 'rekey', code: r.code, message: r.message });
      return;
    }
    const ns = this.adoptNewIkeSa(s, r.sa, now);
    const theirs = peer ? this.sessions.get(peer.key) : undefined;
    if (peer && theirs && weLostCollision({ ni: offer.ni, nr: r.sa.nr }, peer)) {
      // §2.8.2: our new IKE SA holds the lowest nonce: we close it; the peer deletes the old one.
      this.moveTo(s, theirs, fx);
      ns.superseded = true;
      this.deleteIke(ns, 'redundant', now, fx);
      return;
    }
    if (theirs) theirs.superseded = true; // the peer closes the one it made
    this.moveTo(s, ns, fx);
    this.deleteIke(s, 'rekeyed', now, fx); // §2.18: "the initiator deletes the old IKE SA"
  }

  protected deleteIke(s: Session, why: 'rekeyed' | 'redundant', now: number, fx: IkeEffect[]): void {
    s.closing = true;
    this.send(s, EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])], { kind: 'delete-ike', why }, now, fx);
  }
}
