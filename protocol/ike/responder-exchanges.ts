/**
 * The host agent's exchanges after IKE_SA_INIT, one section each (libcharon's task-per-exchange):
 * IKE_AUTH, CREATE_CHILD_SA (Child SA create/rekey, both roles; the IKE SA rekey is in
 * responder-ike-sas.ts), INFORMATIONAL (commit notifies, deletes, liveness) and the answers to our
 * own requests. ike-responder.ts owns the table and the input checks; this file decides.
 *
 * Commit mode (both ends announced N(COMMIT_SUPPORTED) in IKE_AUTH): a new Child SA goes to the
 * NIC's pending slot and is announced with SA_READY (DESIGN §2.5). Plain mode (a standard peer):
 * "The responder to a CREATE_CHILD_SA MUST be prepared to accept messages on an SA before sending
 * its response" (§2.8), so the SA is written *and committed* before the answer leaves.
 */
import { UsageError } from '../../common/errors.js';
import type { SaPair } from '../../wire/sa.js';
import { commitIdOf, type HostCommit, type PendingCommit } from '../commit.js';
import { answerChild, makeChildOffer, readChildAnswer, type ChildOffer } from './child-exchange.js';
import { randomEspSpi } from './child-sa.js';
import { CURVE25519_KE_LENGTH, DH_CURVE25519, EXCHANGE, NONCE_LENGTH, PAYLOAD, PROTO_ESP, PROTO_IKE } from './constants.js';
import { type IkeEffect, log } from './effects.js';
import { authPayloads, verifyPeerAuth } from './ike-auth.js';
import type { EncodedPayload, IkeHeader, RawPayload } from './ike-message.js';
import { decodeDelete, decodeKe, decodeNonce, decodeTs, encodeDelete, encodeNotify } from './ike-payloads.js';
import { isIkeRekey, weLostCollision } from './ike-rekey.js';
import type { ResolvedResponderOptions } from './ike-responder.js';
import { NOTIFY, decodeCommitId, encodeCommitId, type CommitId } from './notify.js';
import { findNotify, maybe, need, notifiesOf, readSpi4, spi4 } from './payload-helpers.js';
import { decodeSa } from './sa-payload.js';
import { ResponderIkeSas, type Purpose, type Session } from './responder-ike-sas.js';

export type { Child, Purpose, Session, SessionState } from './responder-ike-sas.js';

const EMPTY = new Uint8Array(0);

export class ResponderExchanges extends ResponderIkeSas {
  nextGeneration = 1;

  constructor(o: ResolvedResponderOptions, sessions: Map<string, Session>, commit: HostCommit) {
    super(o, sessions, commit);
  }

  // ---- IKE_AUTH -----------------------------------------------------------------------------

  onAuth(s: Session, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
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
    const me = authPayloads({ idPayloadType: PAYLOAD.IDr, id: this.o.id, psk: this.o.psk, realMessage: s.initResponse, peerNonce: s.ni, skP: keys.skPr });
    s.commit = this.o.commitExtension && !!findNotify(ns, NOTIFY.COMMIT_SUPPORTED);
    const child = answerChild(
      { proposals, tsi, tsr, ni: s.ni, ke: null, transportMode: !!findNotify(ns, NOTIFY.USE_TRANSPORT_MODE) },
      { ...this.childPolicy(s), inAuth: true, nr: s.nr, kePriv: null },
    );
    s.state = 'established';
    fx.push({ kind: 'established', spiI: s.core.spiIHex, spiR: s.key }, log('info', 'ike.established', `IKE SA with station '${v.peer}' up (${s.commit ? 'two-phase commit' : 'plain IKEv2: the peer did not announce COMMIT_SUPPORTED'})`));
    if (findNotify(ns, NOTIFY.INITIAL_CONTACT)) {
      // §2.4 / §3.10.1: the station restarted or another one took over: forget older IKE SAs.
      for (const k of [...this.sessions.keys()]) if (k !== s.key) this.removeSession(k, fx);
    }
    this.limitEstablished(s.key, fx);
    const payloads: EncodedPayload[] = [...me];
    if (s.commit) payloads.push(encodeNotify(NOTIFY.COMMIT_SUPPORTED));
    if ('refuse' in child) {
      payloads.push(encodeNotify(child.refuse));
      return this.respond(s, h, bytes, payloads, fx);
    }
    payloads.push(...child.payloads);
    return this.install(s, h, bytes, child.sa, null, payloads, now, fx);
  }

  private limitEstablished(keep: string, fx: IkeEffect[]): void {
    const est = [...this.sessions.values()].filter((x) => x.state === 'established' && x.key !== keep);
    while (est.length + 1 > this.o.maxSessions) {
      const victim = est.shift() as Session;
      this.removeSession(victim.key, fx);
      fx.push(log('info', 'ike.evict', `IKE SA table full: dropped ${victim.key}`));
    }
  }

  /** What answerChild() needs besides the request: acceptable transforms, SK_d, a fresh SPI, the generation. */
  private childPolicy(s: Session) {
    return {
      accept: { transforms: this.o.espTransforms, allowEsn: this.o.allowEsn },
      policy: this.o.policy,
      skD: (s.core.keys as NonNullable<typeof s.core.keys>).skD,
      ourSpi: this.freshSpi(),
      generation: this.nextGeneration,
    };
  }

  private freshSpi(): number {
    return randomEspSpi(this.o.random, (spi) => [...this.sessions.values()].some((x) => [...x.children.values()].some((c) => c.sa.toNic.spi === spi)));
  }

  /**
   * A Child SA we answered: commit mode stages it, answers, then SA_READY; plain mode writes and
   * commits it, then answers (the NIC holds it before the peer can use it).
   */
  private install(s: Session, h: IkeHeader, bytes: Uint8Array, sa: SaPair, replaces: number | null, payloads: EncodedPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    this.stage(s, sa, replaces, now, fx);
    if (!s.commit) this.commitNow(s, sa, fx);
    this.respond(s, h, bytes, payloads, fx);
    if (s.commit) this.sendReady(s, sa, now, fx);
    return fx;
  }

  /** The new SA goes to the NIC's pending slot (DESIGN §2.5); a pending SA it replaces is discarded. */
  private stage(s: Session, sa: SaPair, replaces: number | null, now: number, fx: IkeEffect[]): void {
    this.nextGeneration = sa.generation + 1;
    const replaced = this.commit.stage(sa, s.key, now, this.o.commitTimeoutMs);
    if (replaced) {
      this.forgetPending(replaced.owner, replaced.id.spiFromNic);
      fx.push({ kind: 'nic-discard', generation: replaced.id.generation });
    }
    s.children.set(sa.fromNic.spi, { sa, status: 'pending', replaces });
    fx.push({ kind: 'nic-write-pending', sa });
  }

  /** Plain mode: the exchange itself is the commit (§2.8); nic-commit follows nic-write-pending at once. */
  private commitNow(s: Session, sa: SaPair, fx: IkeEffect[]): void {
    const id = commitIdOf(sa);
    this.commit.ack(id, s.key);
    this.markCommitted(s, id);
    fx.push({ kind: 'nic-commit', generation: id.generation });
  }

  private markCommitted(s: Session, id: CommitId): void {
    const c = s.children.get(id.spiFromNic);
    if (!c) return;
    c.status = 'committed';
    const old = c.replaces !== null ? s.children.get(c.replaces) : undefined;
    if (old) old.status = 'rekeyed';
  }

  private sendReady(s: Session, sa: SaPair, now: number, fx: IkeEffect[]): void {
    const id = commitIdOf(sa);
    this.send(s, EXCHANGE.INFORMATIONAL, [encodeNotify(NOTIFY.SA_READY, encodeCommitId(id))], { kind: 'ready', id }, now, fx);
  }

  private forgetPending(owner: string, spiFromNic: number): void {
    const s = this.sessions.get(owner);
    const c = s?.children.get(spiFromNic);
    if (s && c?.status === 'pending') s.children.delete(spiFromNic);
  }

  /** No SA_ACK in time: discard the pending slot and tell the peer the Child SA is gone (§1.4.1). */
  commitTimedOut(p: PendingCommit, now: number, fx: IkeEffect[]): void {
    this.forgetPending(p.owner, p.id.spiFromNic);
    fx.push(
      { kind: 'nic-discard', generation: p.id.generation },
      log('warn', 'ike.commit-timeout', `no SA_ACK for generation ${p.id.generation} within ${this.o.commitTimeoutMs} ms: discarded, the active SA stays`),
    );
    const s = this.sessions.get(p.owner);
    if (s && s.state === 'established' && !s.closing) {
      this.send(s, EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_ESP, [spi4(p.id.spiToNic)])], { kind: 'delete-child', spi: p.id.spiToNic }, now, fx);
    }
  }

  // ---- CREATE_CHILD_SA (as responder) ------------------------------------------------------

  onCreateChild(s: Session, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const own = s.core.outstanding?.purpose;
    // §2.25: an IKE SA being closed or already rekeyed takes no new work.
    if (s.closing || s.rekeyedTo || s.superseded) return this.refuse(s, h, bytes, fx, NOTIFY.TEMPORARY_FAILURE);
    if (isIkeRekey(inner)) return this.onIkeRekey(s, h, bytes, inner, own, now, fx);
    const ns = notifiesOf(inner);
    const proposals = decodeSa(need(inner, PAYLOAD.SA));
    const ni = decodeNonce(need(inner, PAYLOAD.NONCE));
    const tsi = decodeTs(need(inner, PAYLOAD.TSi));
    const tsr = decodeTs(need(inner, PAYLOAD.TSr));
    const keBody = maybe(inner, PAYLOAD.KE);
    const ke = keBody ? decodeKe(keBody) : null;
    const rekey = findNotify(ns, NOTIFY.REKEY_SA);
    if (own?.kind === 'ike-rekey') return this.refuse(s, h, bytes, fx, NOTIFY.TEMPORARY_FAILURE); // the IKE SA is being rekeyed
    const pending = this.commit.pending;
    if (pending && pending.owner === s.key) {
      // One refresh at a time: the previous one is still between SA_READY and SA_ACK (§2.25).
      return this.refuse(s, h, bytes, fx, NOTIFY.TEMPORARY_FAILURE);
    }
    let replaces: number | null = null;
    if (rekey) {
      if (rekey.protocol !== PROTO_ESP) return this.refuse(s, h, bytes, fx, NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, rekey.protocol, rekey.spi);
      const old = readSpi4(rekey.spi);
      const c = s.children.get(old);
      // §2.8.1 / §2.25: rekey of an SA already rekeyed (a late duplicate) or unknown.
      if (!c || c.status !== 'committed') return this.refuse(s, h, bytes, fx, NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, PROTO_ESP, rekey.spi);
      replaces = old;
    }
    if (ke && (ke.group !== DH_CURVE25519 || ke.data.length !== CURVE25519_KE_LENGTH)) {
      return this.refuse(s, h, bytes, fx, NOTIFY.INVALID_KE_PAYLOAD, new Uint8Array([0, DH_CURVE25519]));
    }
    if (!ke && this.o.requirePfs) return this.refuse(s, h, bytes, fx, NOTIFY.NO_PROPOSAL_CHOSEN);
    const nr = this.o.random(NONCE_LENGTH);
    const child = answerChild(
      { proposals, tsi, tsr, ni, ke, transportMode: !!findNotify(ns, NOTIFY.USE_TRANSPORT_MODE) },
      { ...this.childPolicy(s), inAuth: false, nr, kePriv: ke ? this.o.random(32) : null },
    );
    if ('refuse' in child) {
      return child.refuse === NOTIFY.INVALID_KE_PAYLOAD ? this.refuse(s, h, bytes, fx, child.refuse, new Uint8Array([0, DH_CURVE25519])) : this.refuse(s, h, bytes, fx, child.refuse);
    }
    if (own?.kind === 'child-rekey' && own.replaces === replaces) {
      // §2.8.1 collision: answer it like any other; the nonces decide when our own answer arrives.
      s.peerChildRekey = { ni: new Uint8Array(ni), nr };
      fx.push(log('info', 'ike.child-rekey-collision', 'both ends rekey the Child SA (§2.8.1); the lowest nonce decides'));
    }
    return this.install(s, h, bytes, child.sa, replaces, child.payloads, now, fx);
  }

  // ---- Child SA rekey as initiator (a standard peer's lifetime policy; plain mode) ------------

  startChildRekey(s: Session, now: number): IkeEffect[] {
    if (s.commit) throw new UsageError('E_IKE_STATE', 'IkeResponder.rekeyChild(): with the two-phase commit the station refreshes the SA (DESIGN §2.5)');
    this.mustBeIdle(s, 'rekeyChild');
    const current = [...s.children.values()].filter((c) => c.status === 'committed').pop();
    if (!current) throw new UsageError('E_IKE_STATE', `IkeResponder.rekeyChild(): IKE SA ${s.key} has no Child SA in force`);
    const { offer, payloads } = makeChildOffer({
      side: 'host',
      inAuth: false,
      ourSpi: this.freshSpi(),
      transforms: [current.sa.transform],
      esn: current.sa.esn,
      ni: this.o.random(NONCE_LENGTH),
      kePriv: this.o.random(32),
      rekeySpi: current.sa.toNic.spi,
    });
    const fx: IkeEffect[] = [];
    this.send(s, EXCHANGE.CREATE_CHILD_SA, payloads, { kind: 'child-rekey', x: offer, replaces: current.sa.fromNic.spi }, now, fx);
    return fx;
  }

  private onChildRekeyAnswer(s: Session, inner: RawPayload[], x: ChildOffer, replaces: number, now: number, fx: IkeEffect[]): void {
    const r = readChildAnswer(inner, x, { side: 'host', inAuth: false, ikeNr: s.nr, skD: (s.core.keys as NonNullable<typeof s.core.keys>).skD, policy: this.o.policy });
    const peer = s.peerChildRekey;
    s.peerChildRekey = null;
    this.finish(s, now, fx);
    if (!r.ok) {
      if (!peer) fx.push({ kind: 'failed', scope: 'child', code: r.code, message: `CREATE_CHILD_SA: ${r.message}` });
      return;
    }
    const sa = { ...r.sa, generation: this.nextGeneration };
    if (peer && weLostCollision({ ni: x.ni, nr: r.nr }, peer)) {
      // §2.8.1: ours holds the lowest nonce: never installed, deleted by us; the peer's SA stands.
      fx.push(log('info', 'ike.child-rekey-lost', 'our Child SA rekey lost the collision (§2.8.1): deleting it'));
      this.send(s, EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_ESP, [spi4(sa.toNic.spi)])], { kind: 'delete-child', spi: sa.toNic.spi }, now, fx);
      return;
    }
    this.stage(s, sa, replaces, now, fx);
    this.commitNow(s, sa, fx);
    const old = s.children.get(replaces);
    if (old) {
      // §2.8: the rekey's initiator deletes the old SA once the new one is in place.
      this.send(s, EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_ESP, [spi4(old.sa.toNic.spi)])], { kind: 'delete-child', spi: old.sa.toNic.spi }, now, fx);
    }
  }

  // ---- INFORMATIONAL ------------------------------------------------------------------------

  onInformational(s: Session, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], _now: number, fx: IkeEffect[]): IkeEffect[] {
    const ns = notifiesOf(inner);
    const deletes = inner.filter((p) => p.type === PAYLOAD.DELETE).map((p) => decodeDelete(p.body));
    const ack = findNotify(ns, NOTIFY.SA_ACK);
    const ackId = ack ? decodeCommitId(ack.data) : null;
    if (deletes.some((d) => d.protocol === PROTO_IKE)) {
      this.respond(s, h, bytes, [], fx);
      const peer = s.peerIkeRekey ? this.sessions.get(s.peerIkeRekey.key) : undefined;
      if (peer) {
        // §2.25.2: the peer finished the rekey we answered and closes the old SA: forget our own rekey, its stands.
        s.peerIkeRekey = null;
        this.moveTo(s, peer, fx);
      }
      if (s.rekeyedTo || s.superseded) {
        // §2.18 / §2.8.2: the old (or redundant) IKE SA goes; its Child SAs already moved.
        this.sessions.delete(s.key);
        fx.push(log('info', 'ike.old-deleted', `IKE SA ${s.key} deleted by the peer after a rekey`));
        return fx;
      }
      this.removeSession(s.key, fx);
      fx.push({ kind: 'closed', message: `station deleted IKE SA ${s.key}` });
      return fx;
    }
    if (ackId) {
      const decision = this.commit.ack(ackId, s.key);
      if (decision === 'unknown') {
        fx.push(log('warn', 'ike.ack-unknown', `SA_ACK for generation ${ackId.generation}, which is neither pending nor committed`));
        return this.respond(s, h, bytes, [encodeNotify(NOTIFY.CHILD_SA_NOT_FOUND, EMPTY, PROTO_ESP, spi4(ackId.spiToNic))], fx);
      }
      if (decision === 'commit') {
        this.markCommitted(s, ackId);
        fx.push({ kind: 'nic-commit', generation: ackId.generation });
      }
      return this.respond(s, h, bytes, [encodeNotify(NOTIFY.SA_CONFIRM, encodeCommitId(ackId))], fx);
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
          const p = this.commit.discard(s.key);
          if (p) fx.push({ kind: 'nic-discard', generation: p.id.generation });
        }
        s.children.delete(c.sa.fromNic.spi);
        ours.push(spi4(c.sa.toNic.spi));
      }
    }
    return this.respond(s, h, bytes, ours.length ? [encodeDelete(PROTO_ESP, ours)] : [], fx); // empty request = liveness (§1.4)
  }

  // ---- responses to our own requests --------------------------------------------------------

  onResponse(s: Session, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const purpose = (s.core.outstanding as { purpose: Purpose }).purpose;
    const ns = notifiesOf(inner);
    switch (purpose.kind) {
      case 'ike-rekey':
        this.onIkeRekeyAnswer(s, inner, purpose.offer, now, fx);
        return fx;
      case 'child-rekey':
        this.onChildRekeyAnswer(s, inner, purpose.x, purpose.replaces, now, fx);
        return fx;
      case 'ready':
        if (findNotify(ns, NOTIFY.CHILD_SA_NOT_FOUND)) this.readyRefused(s, purpose.id, fx);
        break;
      case 'ping':
        fx.push({ kind: 'alive' });
        break;
      case 'delete-child':
        fx.push(log('debug', 'ike.child-deleted', `Child SA ${purpose.spi.toString(16)} deleted at the peer`));
        break;
      case 'delete-ike':
        this.sessions.delete(s.key);
        s.core.clearQueue();
        if (purpose.why === 'shutdown') fx.push({ kind: 'closed', message: `IKE SA ${s.key} deleted (host shutdown)` });
        else fx.push(log('info', 'ike.old-deleted', `IKE SA ${s.key} deleted (${purpose.why})`));
        return fx;
    }
    this.finish(s, now, fx);
    return fx;
  }

  private readyRefused(s: Session, id: CommitId, fx: IkeEffect[]): void {
    const p = this.commit.pending;
    if (p && p.owner === s.key && p.id.generation === id.generation) {
      this.commit.discard(s.key);
      this.forgetPending(s.key, p.id.spiFromNic);
      fx.push({ kind: 'nic-discard', generation: p.id.generation }, log('warn', 'ike.ready-refused', `station does not know generation ${p.id.generation}: discarded`));
    }
  }
}

