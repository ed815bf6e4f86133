/**
 * The two-phase SA commit of DESIGN §2.5 (seed Figs. 3-5) as two small state tables, one per
 * side. They decide; the IKE machines (ike/ike-initiator.ts, ike/ike-responder.ts) carry the
 * decisions in INFORMATIONAL exchanges as N(SA_READY), N(SA_ACK), N(SA_CONFIRM).
 *
 *   host:    Child SA created -> nic-write-pending -> INFORMATIONAL{N(SA_READY)}  -->
 *   station:                                                  <-- {}   (checks: it derived that SA)
 *   station: INFORMATIONAL{N(SA_ACK)}  -->
 *   host:    nic-commit ->                                    <-- {N(SA_CONFIRM)}
 *   station: switch-outbound
 *
 * Safety (make-before-break, RFC 7296 §2.8): the station never sends on an SA before the host
 * confirmed the NIC committed it, and the NIC keeps the SA that last authenticated a station
 * packet. So a lost/duplicated/delayed commit message can only delay the switch, never split
 * the two sides. A missing SA_ACK makes the host discard the pending slot at its deadline;
 * a missing SA_CONFIRM makes the station retransmit SA_ACK (the host answers every SA_ACK
 * for the pending or already committed SA with SA_CONFIRM: idempotent).
 */
import { UsageError } from '../common/errors.js';
import type { SaPair } from '../wire/sa.js';
import { sameCommitId, type CommitId } from './ike/notify.js';

export type { CommitId } from './ike/notify.js';

export function commitIdOf(sa: SaPair): CommitId {
  return { generation: sa.generation, spiToNic: sa.toNic.spi, spiFromNic: sa.fromNic.spi };
}

function illegal(side: string, state: string, event: string): never {
  throw new UsageError('E_ILLEGAL_TRANSITION', `${side} commit: event '${event}' is not allowed in state '${state}'`);
}

// ---------------------------------------------------------------------------------------------
// Station (IKE initiator)

export type StationCommitState = 'idle' | 'staged' | 'acking';
export type StationCommitEvent = 'derived' | 'ready' | 'confirm' | 'abort';

/** The whole station table: state x event -> next state; anything missing is illegal. */
export const STATION_COMMIT_TABLE: Record<StationCommitState, Partial<Record<StationCommitEvent, StationCommitState>>> = {
  idle: { derived: 'staged' },
  staged: { ready: 'acking', abort: 'idle' },
  acking: { ready: 'acking', confirm: 'idle', abort: 'idle' },
};

export class StationCommit {
  private s: StationCommitState = 'idle';
  /** Keys derived by our exchange; generation 0 until SA_READY names it. */
  private candidate: { sa: SaPair; role: 'new' | 'rekey' } | null = null;

  get state(): StationCommitState {
    return this.s;
  }

  can(e: StationCommitEvent): boolean {
    return STATION_COMMIT_TABLE[this.s][e] !== undefined;
  }

  private go(e: StationCommitEvent): void {
    const next = STATION_COMMIT_TABLE[this.s][e];
    if (next === undefined) illegal('station', this.s, e);
    this.s = next;
  }

  /** The SA waiting for READY/CONFIRM, if any. */
  get staged(): { sa: SaPair; role: 'new' | 'rekey' } | null {
    return this.candidate;
  }

  /** Our CREATE_CHILD_SA / IKE_AUTH produced a Child SA (generation still unknown). */
  derived(sa: SaPair, role: 'new' | 'rekey'): void {
    this.go('derived');
    this.candidate = { sa: { ...sa, generation: 0 }, role };
  }

  /** Does SA_READY name the SA we derived (SPIs equal)? */
  matches(id: CommitId): boolean {
    const c = this.candidate;
    return !!c && c.sa.toNic.spi === id.spiToNic && c.sa.fromNic.spi === id.spiFromNic &&
      (c.sa.generation === 0 || c.sa.generation === id.generation);
  }

  /**
   * SA_READY for our candidate: learn its generation and answer with SA_ACK. Returns the SA
   * (with its generation) and whether this is the first READY for it (then report child-sa).
   * Caller checks `matches(id)` and `can('ready')` first.
   */
  ready(id: CommitId): { sa: SaPair; role: 'new' | 'rekey'; first: boolean } {
    if (!this.matches(id)) throw new UsageError('E_ILLEGAL_TRANSITION', 'station commit: READY for another SA');
    const c = this.candidate as { sa: SaPair; role: 'new' | 'rekey' };
    const first = this.s === 'staged';
    this.go('ready');
    c.sa = { ...c.sa, generation: id.generation };
    return { sa: c.sa, role: c.role, first };
  }

  /** The SA_ACK we must (re)send names this id. */
  get ackId(): CommitId | null {
    return this.s === 'acking' && this.candidate ? commitIdOf(this.candidate.sa) : null;
  }

  /** SA_CONFIRM for the SA we acknowledged: switch outbound to it. Null if it names another SA. */
  confirm(id: CommitId): SaPair | null {
    if (this.s !== 'acking' || !this.candidate || !sameCommitId(commitIdOf(this.candidate.sa), id)) return null;
    this.go('confirm');
    const sa = this.candidate.sa;
    this.candidate = null;
    return sa;
  }

  /** The host lost or refused the SA, or the IKE SA died: keep the current SA. */
  abort(): SaPair | null {
    if (this.s === 'idle') return null;
    this.go('abort');
    const sa = this.candidate?.sa ?? null;
    this.candidate = null;
    return sa;
  }
}

// ---------------------------------------------------------------------------------------------
// Host (IKE responder, emulated host's agent)

export type HostCommitState = 'idle' | 'pending';
export type HostCommitEvent = 'stage' | 'ack' | 'deadline' | 'discard';

export const HOST_COMMIT_TABLE: Record<HostCommitState, Partial<Record<HostCommitEvent, HostCommitState>>> = {
  idle: { stage: 'pending' },
  pending: { stage: 'pending', ack: 'idle', deadline: 'idle', discard: 'idle' },
};

export interface PendingCommit {
  id: CommitId;
  sa: SaPair;
  /** The IKE SA that staged it (hex SPIr): only its peer may acknowledge it. */
  owner: string;
  deadline: number;
}

export type AckDecision = 'commit' | 'confirm-again' | 'unknown';

export class HostCommit {
  private s: HostCommitState = 'idle';
  private p: PendingCommit | null = null;
  private committed: { id: CommitId; owner: string } | null = null;

  get state(): HostCommitState {
    return this.s;
  }

  get pending(): PendingCommit | null {
    return this.p;
  }

  private go(e: HostCommitEvent): void {
    const next = HOST_COMMIT_TABLE[this.s][e];
    if (next === undefined) illegal('host', this.s, e);
    this.s = next;
  }

  /** A new SA goes to the pending slot; returns the pending SA it replaces (to discard), if any. */
  stage(sa: SaPair, owner: string, now: number, timeoutMs: number): PendingCommit | null {
    const replaced = this.p;
    this.go('stage');
    this.p = { id: commitIdOf(sa), sa, owner, deadline: now + timeoutMs };
    return replaced;
  }

  /** Decide on SA_ACK(id) received on IKE SA `owner`, and apply the decision. */
  ack(id: CommitId, owner: string): AckDecision {
    if (this.p && this.p.owner === owner && sameCommitId(this.p.id, id)) {
      this.go('ack');
      this.committed = { id, owner };
      this.p = null;
      return 'commit';
    }
    if (this.committed && this.committed.owner === owner && sameCommitId(this.committed.id, id)) return 'confirm-again';
    return 'unknown';
  }

  get deadline(): number | null {
    return this.p ? this.p.deadline : null;
  }

  /** The owning IKE SA was rekeyed (RFC 7296 §2.18): its Child SAs, and so their commit, move along. */
  renameOwner(from: string, to: string): void {
    if (this.p && this.p.owner === from) this.p.owner = to;
    if (this.committed && this.committed.owner === from) this.committed.owner = to;
  }

  /** At the deadline the pending SA is discarded (no SA_ACK came, DESIGN §2.5). */
  expire(now: number): PendingCommit | null {
    if (!this.p || now < this.p.deadline) return null;
    const p = this.p;
    this.go('deadline');
    this.p = null;
    return p;
  }

  /** Discard now (the station said it does not know the SA, or the owning IKE SA died). */
  discard(owner?: string): PendingCommit | null {
    if (!this.p || (owner !== undefined && this.p.owner !== owner)) return null;
    const p = this.p;
    this.go('discard');
    this.p = null;
    return p;
  }
}
