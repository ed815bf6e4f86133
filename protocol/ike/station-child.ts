/**
 * The station's exchanges on an established IKE SA (ike-initiator.ts owns the life cycle and
 * IKE_SA_INIT; station-ike-sas.ts the IKE SAs and their rekey): IKE_AUTH's answer, Child SA
 * create/rekey in both directions with the §2.8.1 collision, the commit notifies, deletes.
 *
 * Commit mode (the host announced COMMIT_SUPPORTED): a derived SA waits for SA_READY, is
 * acknowledged, and is used after SA_CONFIRM (DESIGN §2.5). Plain mode: our own exchange's SA is
 * in force when its answer arrives (child-sa, then switch-outbound); a peer's rekey is installed
 * inbound before we answer (child-sa) and used for sending once the peer deletes the old SA (§2.8).
 */
import type { SaPair } from '../../wire/sa.js';
import { commitIdOf, type StationCommit } from '../commit.js';
import { answerChild, makeChildOffer, readChildAnswer } from './child-exchange.js';
import { randomEspSpi } from './child-sa.js';
import { CURVE25519_KE_LENGTH, DH_CURVE25519, EXCHANGE, NONCE_LENGTH, PAYLOAD, PROTO_ESP, PROTO_IKE } from './constants.js';
import { log, type IkeEffect } from './effects.js';
import { verifyPeerAuth } from './ike-auth.js';
import type { ResolvedInitiatorOptions } from './ike-initiator.js';
import type { IkeHeader, RawPayload } from './ike-message.js';
import { decodeDelete, decodeKe, decodeNonce, decodeTs, encodeDelete, encodeNotify } from './ike-payloads.js';
import { isIkeRekey, weLostCollision } from './ike-rekey.js';
import { COMMIT_DATA_LENGTH, NOTIFY, decodeCommitId, encodeCommitId, type CommitId } from './notify.js';
import { describeError, errorCodeFor, findNotify, firstError, maybe, need, notifiesOf, readSpi4, spi4 } from './payload-helpers.js';
import { decodeSa } from './sa-payload.js';
import { StationIkeSas, type ChildPurpose, type Core, type Purpose, type StationHooks } from './station-ike-sas.js';

export type { Purpose } from './station-ike-sas.js';

const EMPTY = new Uint8Array(0);

export class StationExchanges extends StationIkeSas {
  ni: Uint8Array = EMPTY;
  nr: Uint8Array = EMPTY;
  /** IKE_SA_INIT's response, for the peer's AUTH (§2.15); dropped once IKE_AUTH's answer is read. */
  initResponse: Uint8Array = EMPTY;
  current: SaPair | null = null;
  /** An IKE_AUTH / CREATE_CHILD_SA of ours is sent or queued and its answer not yet read. */
  childInFlight = false;
  commitMode = false;
  nextGeneration = 1;
  /** Plain mode: a peer's rekey of `current`, installed inbound, used once the peer deletes the old SA. */
  private peerRekey: { sa: SaPair; ni: Uint8Array; nr: Uint8Array; reported: boolean } | null = null;
  /** SAs the peer made in a collision it lost: it deletes them, we answer. */
  private readonly redundant = new Set<number>();

  constructor(o: ResolvedInitiatorOptions, commit: StationCommit, m: StationHooks) {
    super(o, commit, m);
  }

  protected childWorkBusy(): boolean {
    return this.commit.state !== 'idle' || this.childInFlight || this.peerRekey !== null;
  }

  // ---- helpers ------------------------------------------------------------------------------


  idle(): boolean {
    const out = this.core?.outstanding?.purpose.kind;
    return this.commit.state === 'idle' && !this.childInFlight && out !== 'ike-rekey' && this.peerRekey === null && this.peerIke === null;
  }

  abortCommit(fx: IkeEffect[], why: string): void {
    const sa = this.commit.abort();
    if (sa) fx.push({ kind: 'commit-aborted', generation: sa.generation, message: `${why}; the current SA stays in use` });
  }

  private report(sa: SaPair, role: 'new' | 'rekey', fx: IkeEffect[]): SaPair {
    const numbered = { ...sa, generation: this.nextGeneration++ };
    fx.push({ kind: 'child-sa', sa: numbered, role });
    return numbered;
  }

  private switchTo(sa: SaPair, now: number, fx: IkeEffect[], why: string, deleteOld: boolean): void {
    const old = this.current;
    this.current = sa;
    fx.push({ kind: 'switch-outbound', sa }, log('info', 'ike.switch', `${why}: switching outbound to generation ${sa.generation}`));
    if (deleteOld && old && old.fromNic.spi !== sa.fromNic.spi) {
      // §1.4.1 / §2.8: the replaced SA is closed once the new one is in use.
      fx.push(...this.send(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_ESP, [spi4(old.fromNic.spi)])], { kind: 'delete-child', spi: old.fromNic.spi }, now));
    }
  }

  // ---- our Child SA exchanges ---------------------------------------------------------------

  startRefresh(now: number): IkeEffect[] {
    const { offer, payloads } = makeChildOffer({
      inAuth: false,
      ourSpi: randomEspSpi(this.o.random, (x) => x === this.current?.fromNic.spi),
      transforms: this.o.espTransforms,
      esn: this.o.esn,
      ni: this.o.random(NONCE_LENGTH),
      kePriv: this.o.pfs ? this.o.random(32) : null,
      rekeySpi: this.current ? this.current.fromNic.spi : null,
    });
    this.childInFlight = true;
    return this.send(EXCHANGE.CREATE_CHILD_SA, payloads, { kind: 'child', x: offer, earlyReady: null }, now);
  }

  onAuthResponse(inner: RawPayload[], x: ChildPurpose, now: number, fx: IkeEffect[]): void {
    const core = this.core as Core;
    const keys = core.keys as NonNullable<Core['keys']>;
    const ns = notifiesOf(inner);
    const idrBody = maybe(inner, PAYLOAD.IDr);
    const authBody = maybe(inner, PAYLOAD.AUTH);
    const err = firstError(ns);
    if (!idrBody || !authBody) {
      // §2.21.2: an IKE_AUTH response without AUTH means the IKE SA was not created.
      if (err?.notifyType === NOTIFY.AUTHENTICATION_FAILED) {
        this.m.fail('E_IKE_AUTH', 'host answered AUTHENTICATION_FAILED: the pre-shared key or our ID does not match the NIC enrollment', fx);
      } else {
        this.m.fail(err ? errorCodeFor(err.notifyType) : 'E_IKE_SYNTAX', err ? `IKE_AUTH refused: ${describeError(err)}` : 'IKE_AUTH response without IDr/AUTH', fx);
      }
      return;
    }
    const v = verifyPeerAuth({ idBody: idrBody, authBody, psk: this.o.psk, realMessage: this.initResponse, ourNonce: this.ni, skP: keys.skPr, expectedId: this.o.peerId });
    // Not needed again (a station holds an IKE SA per NIC between refreshes, issue 16).
    this.initResponse = EMPTY;
    if (!v.ok) {
      this.m.fail('E_IKE_AUTH', `host agent failed authentication: ${v.message}`, fx);
      return;
    }
    this.commitMode = this.o.commitExtension && !!findNotify(ns, NOTIFY.COMMIT_SUPPORTED);
    this.m.go('auth-response');
    fx.push(
      { kind: 'established', spiI: core.spiIHex, spiR: core.spiRHex },
      log('info', 'ike.established', `IKE SA with ${v.peer} up (${this.commitMode ? 'two-phase commit' : 'plain IKEv2: the peer did not announce COMMIT_SUPPORTED, Child SAs are in force when their exchange completes'})`),
    );
    this.onChildAnswer(inner, x, now, fx);
  }

  /** The Child SA part of our IKE_AUTH / CREATE_CHILD_SA answer. */
  onChildAnswer(inner: RawPayload[], x: ChildPurpose, now: number, fx: IkeEffect[]): void {
    this.childInFlight = false;
    const r = readChildAnswer(inner, x.x, { inAuth: x.kind === 'auth', ikeNr: this.nr, skD: this.skD(), policy: this.o.policy });
    const peer = this.peerRekey && x.x.role === 'rekey' && !this.peerRekey.reported ? this.peerRekey : null;
    if (!r.ok) {
      if (peer) this.adoptPeerRekey(fx); // §2.8.1: ours failed, the peer's stands
      fx.push({ kind: 'failed', scope: 'child', code: r.code, message: `${x.kind === 'auth' ? 'IKE_AUTH' : 'CREATE_CHILD_SA'}: ${r.message}` });
      return;
    }
    if (!r.transportMode) fx.push(log('warn', 'ike.mode', 'peer did not confirm USE_TRANSPORT_MODE; using the SA anyway (UDP/664 only)'));
    if (!this.commitMode) {
      if (peer && weLostCollision({ ni: x.x.ni, nr: r.nr }, peer)) {
        // §2.8.1: our SA holds the lowest nonce: we delete it; the peer's SA stands (it deletes the old one).
        fx.push(log('info', 'ike.child-rekey-lost', 'our rekey lost the collision (§2.8.1): deleting our new SA'));
        fx.push(...this.send(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_ESP, [spi4(r.sa.fromNic.spi)])], { kind: 'delete-child', spi: r.sa.fromNic.spi }, now));
        this.adoptPeerRekey(fx);
        return;
      }
      if (peer) {
        this.redundant.add(peer.sa.toNic.spi); // the peer lost: it deletes the SA it made
        this.peerRekey = null;
      }
      const sa = this.report(r.sa, x.x.role, fx);
      this.switchTo(sa, now, fx, 'exchange complete (plain IKEv2)', true);
      return;
    }
    this.commit.derived(r.sa, x.x.role);
    fx.push(log('info', 'ike.child-derived', `Child SA ${r.sa.toNic.spi.toString(16)}/${r.sa.fromNic.spi.toString(16)} derived; waiting for SA_READY`));
    if (x.earlyReady && this.commit.matches(x.earlyReady)) this.acceptReady(x.earlyReady, now, fx);
  }

  /** The peer's rekey (answered, installed inbound) is the one that stays; we switch when it deletes the old SA. */
  private adoptPeerRekey(fx: IkeEffect[]): void {
    const p = this.peerRekey;
    if (!p || p.reported) return;
    p.sa = this.report(p.sa, 'rekey', fx);
    p.reported = true;
  }

  private onAckResponse(inner: RawPayload[], id: CommitId, now: number, fx: IkeEffect[]): void {
    const ns = notifiesOf(inner);
    const confirm = findNotify(ns, NOTIFY.SA_CONFIRM);
    if (confirm) {
      const sa = this.commit.confirm(decodeCommitId(confirm.data));
      if (sa) {
        this.switchTo(sa, now, fx, `host confirmed generation ${sa.generation}`, true);
        return;
      }
    }
    if (this.commit.ackId && this.commit.ackId.generation === id.generation) {
      const why = findNotify(ns, NOTIFY.CHILD_SA_NOT_FOUND) ? 'host no longer holds the pending SA (its SA_ACK deadline passed)' : 'host did not confirm';
      this.abortCommit(fx, why);
    }
  }

  // ---- responses ----------------------------------------------------------------------------

  onResponse(c: Core, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const purpose = (c.outstanding as { purpose: Purpose }).purpose;
    if (c !== this.core) {
      // An IKE SA on its way out: only its D(IKE) is ours to finish.
      if (purpose.kind === 'delete-old-ike') this.others.delete(this.ourSpi(c));
      else c.finishRequest(now);
      return fx;
    }
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
        fx.push(log('debug', 'ike.child-deleted', `Child SA ${purpose.spi.toString(16)} deleted at the peer`));
        break;
      case 'delete-ike':
        this.m.go('closed');
        fx.push({ kind: 'closed', message: 'IKE SA deleted' });
        return fx;
      case 'ike-rekey':
        this.onIkeRekeyAnswer(inner, purpose.offer, now, fx);
        return fx;
      case 'init':
      case 'delete-old-ike':
        return fx;
    }
    const st = this.m.state();
    if ((st === 'established' || st === 'closing') && this.core === c) {
      const next = c.finishRequest(now);
      if (next) fx.push({ kind: 'send', bytes: next });
    }
    return fx;
  }

  // ---- requests from the peer ---------------------------------------------------------------

  onRequest(c: Core, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    if (c !== this.core) return this.onOtherRequest(c, h, bytes, inner, fx);
    if (h.exchange === EXCHANGE.CREATE_CHILD_SA) {
      try {
        if (isIkeRekey(inner)) return this.onIkeRekeyRequest(h, bytes, inner, now, fx);
        return this.onPeerChildRequest(h, bytes, inner, fx);
      } catch {
        return this.answer(c, h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
      }
    }
    if (h.exchange !== EXCHANGE.INFORMATIONAL) return fx;
    let ns;
    let deletes;
    try {
      ns = notifiesOf(inner);
      deletes = inner.filter((p) => p.type === PAYLOAD.DELETE).map((p) => decodeDelete(p.body));
    } catch {
      return this.answer(c, h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
    }
    if (deletes.some((d) => d.protocol === PROTO_IKE)) {
      this.answer(c, h, bytes, [], fx);
      if (this.peerIke) {
        // §2.25.2: the peer finished the rekey we answered and closes the old SA: forget ours, its stands.
        const n = this.peerIke.core;
        this.peerIke = null;
        this.replaceCore(n, false, now, fx);
        this.others.delete(this.ourSpi(c));
        return fx;
      }
      this.abortCommit(fx, 'host deleted the IKE SA');
      c.clearQueue();
      this.m.go('closed');
      fx.push({ kind: 'closed', message: 'the peer deleted the IKE SA (host shutting down?)' });
      return fx;
    }
    const ready = findNotify(ns, NOTIFY.SA_READY);
    if (ready) {
      if (ready.data.length !== COMMIT_DATA_LENGTH) return this.answer(c, h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
      let id: CommitId;
      try {
        id = decodeCommitId(ready.data);
      } catch {
        return this.answer(c, h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
      }
      return this.onReady(h, bytes, id, now, fx);
    }
    return this.onChildDelete(h, bytes, deletes, now, fx);
  }

  /** §1.4.1: answer a Child SA delete with our halves; an empty request is liveness (§1.4). */
  private onChildDelete(h: IkeHeader, bytes: Uint8Array, deletes: { protocol: number; spis: Uint8Array[] }[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const ours: Uint8Array[] = [];
    let switchTo: SaPair | null = null;
    for (const d of deletes) {
      if (d.protocol !== PROTO_ESP) continue;
      for (const raw of d.spis) {
        if (raw.length !== 4) continue;
        const spi = readSpi4(raw);
        const cur = this.current;
        const staged = this.commit.staged?.sa;
        if (cur && spi === cur.toNic.spi) {
          ours.push(spi4(cur.fromNic.spi));
          if (this.peerRekey?.reported) switchTo = this.peerRekey.sa; // §2.8 (2): the rekey's initiator closed the old SA
          else fx.push(log('warn', 'ike.peer-delete', 'peer deleted the current Child SA at IKE level; the NIC keeps it, so we keep using it'));
        } else if (staged && spi === staged.toNic.spi) {
          // The host gave up on the staged SA (no SA_ACK in time, §1.4.1): it will never be committed.
          ours.push(spi4(staged.fromNic.spi));
          this.abortCommit(fx, 'the host discarded the staged SA (its SA_ACK deadline passed) and deleted it');
        } else if (this.redundant.delete(spi)) {
          ours.push(raw);
        }
      }
    }
    this.answer(this.core as Core, h, bytes, ours.length ? [encodeDelete(PROTO_ESP, ours)] : [], fx);
    if (switchTo) {
      this.peerRekey = null;
      this.switchTo(switchTo, now, fx, 'peer deleted the SA it rekeyed (§2.8)', false);
    }
    return fx;
  }

  /** SA_READY: answer {}, then SA_ACK if it names the SA our exchange just derived. */
  private onReady(h: IkeHeader, bytes: Uint8Array, id: CommitId, now: number, fx: IkeEffect[]): IkeEffect[] {
    const core = this.core as Core;
    if (this.commit.matches(id) && this.commit.can('ready')) {
      this.answer(core, h, bytes, [], fx);
      this.acceptReady(id, now, fx);
      return fx;
    }
    const out = core.outstanding?.purpose;
    if (out && (out.kind === 'child' || out.kind === 'auth') && out.x.ourSpi === id.spiFromNic) {
      // The READY overtook the answer to our exchange: keep it until the answer arrives.
      out.earlyReady = id;
      return this.answer(core, h, bytes, [], fx);
    }
    fx.push(log('warn', 'ike.ready-unknown', `SA_READY for an SA we did not derive (gen ${id.generation}); answering CHILD_SA_NOT_FOUND`));
    return this.answer(core, h, bytes, [encodeNotify(NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, PROTO_ESP, spi4(id.spiToNic))], fx);
  }

  private acceptReady(id: CommitId, now: number, fx: IkeEffect[]): void {
    const core = this.core as Core;
    const r = this.commit.ready(id);
    if (r.first) fx.push({ kind: 'child-sa', sa: r.sa, role: r.role });
    const out = core.outstanding?.purpose;
    if (out?.kind === 'ack' && out.id.generation === id.generation) return; // SA_ACK already on its way
    const ack = core.request(EXCHANGE.INFORMATIONAL, [encodeNotify(NOTIFY.SA_ACK, encodeCommitId(commitIdOf(r.sa)))], { kind: 'ack', id: commitIdOf(r.sa) }, now);
    if (ack) fx.push({ kind: 'send', bytes: ack });
  }

  /**
   * The peer rekeys our Child SA (CREATE_CHILD_SA { N(REKEY_SA), SA, Ni, [KEi,] TSi, TSr }, §1.3.3):
   * we are the exchange's responder. Creating further Child SAs stays refused (one SA per NIC).
   */
  private onPeerChildRequest(h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], fx: IkeEffect[]): IkeEffect[] {
    const core = this.core as Core;
    const refuse = (type: number, data: Uint8Array = EMPTY, protocol = 0, spi: Uint8Array = EMPTY): IkeEffect[] =>
      this.answer(core, h, bytes, [encodeNotify(type, data, protocol, spi)], fx);
    const ns = notifiesOf(inner);
    const rekey = findNotify(ns, NOTIFY.REKEY_SA);
    if (!rekey) return refuse(NOTIFY.NO_ADDITIONAL_SAS);
    const cur = this.current;
    if (rekey.protocol !== PROTO_ESP || rekey.spi.length !== 4 || !cur || readSpi4(rekey.spi) !== cur.toNic.spi) {
      return refuse(NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, rekey.protocol, rekey.spi);
    }
    const out = core.outstanding?.purpose;
    const ourRekeyRunning = this.childInFlight && out?.kind === 'child' && out.x.rekeySpi === cur.fromNic.spi;
    // §2.25: one change at a time where a collision cannot be resolved (the commit has one pending
    // slot on the NIC; an IKE rekey or close is under way; a peer rekey is not finished).
    if (this.m.state() !== 'established' || out?.kind === 'ike-rekey' || this.peerRekey || this.commit.state !== 'idle' || (this.childInFlight && !ourRekeyRunning) || (this.commitMode && ourRekeyRunning)) {
      return refuse(NOTIFY.TEMPORARY_FAILURE);
    }
    const ni = new Uint8Array(decodeNonce(need(inner, PAYLOAD.NONCE)));
    const keBody = maybe(inner, PAYLOAD.KE);
    const ke = keBody ? decodeKe(keBody) : null;
    if (ke && (ke.group !== DH_CURVE25519 || ke.data.length !== CURVE25519_KE_LENGTH)) return refuse(NOTIFY.INVALID_KE_PAYLOAD, new Uint8Array([0, DH_CURVE25519]));
    const nr = this.o.random(NONCE_LENGTH);
    const child = answerChild(
      { proposals: decodeSa(need(inner, PAYLOAD.SA)), tsi: decodeTs(need(inner, PAYLOAD.TSi)), tsr: decodeTs(need(inner, PAYLOAD.TSr)), ni, ke, transportMode: !!findNotify(ns, NOTIFY.USE_TRANSPORT_MODE) },
      {
        side: 'station',
        inAuth: false,
        accept: { transforms: this.o.espTransforms, allowEsn: true },
        policy: this.o.policy,
        skD: this.skD(),
        nr,
        kePriv: ke ? this.o.random(32) : null,
        ourSpi: randomEspSpi(this.o.random, (x) => x === cur.fromNic.spi),
        generation: 0,
      },
    );
    if ('refuse' in child) return refuse(child.refuse, child.refuse === NOTIFY.INVALID_KE_PAYLOAD ? new Uint8Array([0, DH_CURVE25519]) : EMPTY);
    if (this.commitMode) {
      // The peer runs the commit too: the SA waits for its SA_READY like one we derived.
      this.commit.derived(child.sa, 'rekey');
      return this.answer(core, h, bytes, child.payloads, fx);
    }
    // §2.8: "MUST be prepared to accept messages on an SA before sending its response".
    this.peerRekey = { sa: child.sa, ni, nr, reported: false };
    if (ourRekeyRunning) fx.push(log('info', 'ike.child-rekey-collision', 'both ends rekey the Child SA (§2.8.1); the lowest nonce decides'));
    else this.adoptPeerRekey(fx);
    return this.answer(core, h, bytes, child.payloads, fx);
  }
}
