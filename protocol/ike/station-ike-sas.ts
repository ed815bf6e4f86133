/**
 * The station's IKE SAs: the current one, the ones on their way out after a rekey, and the IKE SA
 * rekey itself in both directions with the §2.8.2 collision (pure parts in ike-rekey.ts).
 * station-child.ts builds the Child SA and commit exchanges on top of it.
 *
 *   CREATE_CHILD_SA { SA(IKE), Ni, KEi } -->   <-- { SA(IKE), Nr, KEr }   then D(IKE) on the old SA (§2.18)
 *   <-- CREATE_CHILD_SA { SA(IKE), Ni, KEi }   { SA(IKE), Nr, KEr } -->   the peer deletes the old SA
 */
import { hex } from '../../common/bytes.js';
import type { ErrorCode } from '../../common/errors.js';
import type { StationCommit } from '../commit.js';
import type { ChildOffer } from './child-exchange.js';
import { EXCHANGE, PAYLOAD, PROTO_IKE } from './constants.js';
import { log, type IkeEffect } from './effects.js';
import type { ResolvedInitiatorOptions } from './ike-initiator.js';
import type { EncodedPayload, IkeHeader, RawPayload } from './ike-message.js';
import { decodeDelete, encodeDelete, encodeNotify } from './ike-payloads.js';
import { answerIkeRekey, makeIkeRekeyRequest, readIkeRekeyAnswer, weLostCollision, type IkeRekeyOffer, type RekeyedIkeSa } from './ike-rekey.js';
import { IkeSaCore } from './ike-sa.js';
import { NOTIFY, type CommitId } from './notify.js';

/** A Child SA exchange in flight; `earlyReady` holds an SA_READY that overtook its answer. */
export type ChildPurpose = { kind: 'auth' | 'child'; x: ChildOffer; earlyReady: CommitId | null };

/** What each of our outstanding requests is for (the response is read accordingly). */
export type Purpose =
  | { kind: 'init' }
  | ChildPurpose
  | { kind: 'ack'; id: CommitId }
  | { kind: 'ping' }
  | { kind: 'delete-child'; spi: number }
  | { kind: 'delete-ike' }
  | { kind: 'ike-rekey'; offer: IkeRekeyOffer }
  | { kind: 'delete-old-ike' };

export type Core = IkeSaCore<Purpose>;

/** What the machine lends us: its state table. */
export interface StationHooks {
  state(): string;
  go(event: string): void;
  fail(code: ErrorCode, message: string, fx: IkeEffect[]): IkeEffect[];
}

export abstract class StationIkeSas {
  core: Core | null = null;
  /** IKE SAs on their way out after a rekey (old, or the loser of a collision), by our SPI. */
  protected readonly others = new Map<string, Core>();
  /** §2.8.2: the peer's rekey of this IKE SA answered while ours was outstanding. */
  protected peerIke: { core: Core; ni: Uint8Array; nr: Uint8Array } | null = null;

  constructor(
    protected readonly o: ResolvedInitiatorOptions,
    protected readonly commit: StationCommit,
    protected readonly m: StationHooks,
  ) {}

  /** A Child SA exchange or commit is half done (then an IKE SA rekey must wait, §2.25). */
  protected abstract childWorkBusy(): boolean;

  send(exchange: number, payloads: EncodedPayload[], purpose: Purpose, now: number, core: Core | null = this.core): IkeEffect[] {
    const bytes = (core as Core).request(exchange, payloads, purpose, now);
    return bytes ? [{ kind: 'send', bytes }] : [];
  }

  protected answer(c: Core, h: IkeHeader, request: Uint8Array, payloads: EncodedPayload[], fx: IkeEffect[]): IkeEffect[] {
    fx.push({ kind: 'send', bytes: c.respond(h, request, payloads) });
    return fx;
  }

  coreFor(h: IkeHeader): Core | null {
    if (this.core?.fromPeer(h)) return this.core;
    if (this.peerIke?.core.fromPeer(h)) return this.peerIke.core;
    for (const c of this.others.values()) if (c.fromPeer(h)) return c;
    return null;
  }

  deadline(): number | null {
    let t = this.core?.deadline ?? null;
    for (const c of this.others.values()) if (c.deadline !== null && (t === null || c.deadline < t)) t = c.deadline;
    return t;
  }

  othersTimeout(now: number, fx: IkeEffect[]): void {
    for (const [k, c] of [...this.others]) {
      const r = c.onTimeout(now);
      if (r && 'resend' in r) fx.push({ kind: 'send', bytes: r.resend });
      else if (r) this.others.delete(k); // §2.4: it was going anyway
    }
  }

  forgetOthers(): void {
    this.others.clear();
  }

  othersCount(): number {
    return this.others.size;
  }

  protected skD(c: Core = this.core as Core): Uint8Array {
    return (c.keys as NonNullable<Core['keys']>).skD;
  }

  // ---- IKE SA rekey (ike-rekey.ts) ----------------------------------------------------------

  startIkeRekey(now: number): IkeEffect[] {
    const { offer, payloads } = makeIkeRekeyRequest(this.o.random, (k) => k === this.core?.spiIHex || this.others.has(k));
    return this.send(EXCHANGE.CREATE_CHILD_SA, payloads, { kind: 'ike-rekey', offer }, now);
  }

  protected newCore(n: RekeyedIkeSa): Core {
    const c = new IkeSaCore<Purpose>({ spiI: n.spiI, spiR: n.spiR, originalInitiator: n.weInitiated, retransmit: this.o.retransmit });
    c.keys = n.keys;
    return c;
  }

  protected ourSpi(c: Core): string {
    return hex(c.originalInitiator ? c.spiI : c.spiR);
  }

  /** §2.18: the new IKE SA takes over; the old one is deleted (by us, `deleteOld`) or waits for the peer's D(IKE). */
  protected replaceCore(n: Core, deleteOld: boolean, now: number, fx: IkeEffect[]): void {
    const old = this.core as Core;
    this.core = n;
    this.others.set(this.ourSpi(old), old);
    fx.push(
      { kind: 'ike-rekeyed', oldSpiI: old.spiIHex, oldSpiR: old.spiRHex, spiI: n.spiIHex, spiR: n.spiRHex },
      log('info', 'ike.rekeyed', `IKE SA ${old.spiIHex}/${old.spiRHex} rekeyed into ${n.spiIHex}/${n.spiRHex} (§2.18)`),
    );
    if (deleteOld) fx.push(...this.send(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])], { kind: 'delete-old-ike' }, now, old));
  }

  protected onIkeRekeyRequest(h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], now: number, fx: IkeEffect[]): IkeEffect[] {
    const core = this.core as Core;
    const out = core.outstanding?.purpose;
    const busy = this.m.state() !== 'established' || (out !== undefined && out.kind !== 'ike-rekey') || core.queued > 0 || this.childWorkBusy();
    if (busy) return this.answer(core, h, bytes, [encodeNotify(NOTIFY.TEMPORARY_FAILURE)], fx);
    const r = answerIkeRekey(inner, { skDOld: this.skD(), random: this.o.random, inUse: (k) => k === core.spiRHex || this.others.has(k) });
    if ('refuse' in r) return this.answer(core, h, bytes, [encodeNotify(r.refuse, r.data)], fx);
    const n = this.newCore(r.sa);
    this.answer(core, h, bytes, r.payloads, fx);
    if (out?.kind === 'ike-rekey') {
      this.peerIke = { core: n, ni: r.sa.ni, nr: r.sa.nr };
      fx.push(log('info', 'ike.ike-rekey-collision', 'both ends rekey the IKE SA (§2.8.2); the lowest nonce decides'));
      return fx;
    }
    this.replaceCore(n, false, now, fx);
    return fx;
  }

  protected onIkeRekeyAnswer(inner: RawPayload[], offer: IkeRekeyOffer, now: number, fx: IkeEffect[]): void {
    const old = this.core as Core;
    const r = readIkeRekeyAnswer(inner, offer, this.skD(old));
    const peer = this.peerIke;
    this.peerIke = null;
    old.finishRequest(now);
    if (!r.ok) {
      if (peer) this.replaceCore(peer.core, false, now, fx); // §2.8.2: ours failed, the peer's stands
      else fx.push({ kind: 'failed', scope: 'rekey', code: r.code === 'E_IKE_BUSY' ? 'E_IKE_BUSY' : 'E_IKE_REKEY', message: `${r.message}; the IKE SA goes on unchanged` });
      return;
    }
    const mine = this.newCore(r.sa);
    if (peer && weLostCollision({ ni: offer.ni, nr: r.sa.nr }, peer)) {
      // §2.8.2: ours holds the lowest nonce: we delete it; the peer's stands and the peer deletes the old one.
      this.replaceCore(peer.core, false, now, fx);
      this.others.set(this.ourSpi(mine), mine);
      fx.push(...this.send(EXCHANGE.INFORMATIONAL, [encodeDelete(PROTO_IKE, [])], { kind: 'delete-old-ike' }, now, mine));
      return;
    }
    if (peer) this.others.set(this.ourSpi(peer.core), peer.core); // the peer deletes the one it made
    this.replaceCore(mine, true, now, fx); // §2.18: "the initiator deletes the old IKE SA"
  }

  /** Requests on an IKE SA on its way out: its D(IKE) closes it; anything else waits for the new one (§2.25). */
  protected onOtherRequest(c: Core, h: IkeHeader, bytes: Uint8Array, inner: RawPayload[], fx: IkeEffect[]): IkeEffect[] {
    if (h.exchange === EXCHANGE.INFORMATIONAL) {
      let deletesIke = false;
      try {
        deletesIke = inner.some((p) => p.type === PAYLOAD.DELETE && decodeDelete(p.body).protocol === PROTO_IKE);
      } catch {
        return this.answer(c, h, bytes, [encodeNotify(NOTIFY.INVALID_SYNTAX)], fx);
      }
      this.answer(c, h, bytes, [], fx);
      if (deletesIke) {
        this.others.delete(this.ourSpi(c));
        fx.push(log('info', 'ike.old-deleted', `IKE SA ${c.spiIHex}/${c.spiRHex} deleted by the peer after a rekey`));
      }
      return fx;
    }
    return this.answer(c, h, bytes, [encodeNotify(NOTIFY.TEMPORARY_FAILURE)], fx);
  }
}
