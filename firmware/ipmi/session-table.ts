/**
 * The BMC's RMCP+ sessions, in three bounded pools (IPMI v2.0 §13.15-13.24; cat. §8 #11):
 *
 *   opened      Open Session answered, no RAKP 1 yet. Anyone can make one with a spoofed source address,
 *               so this pool is the flood's target: bounded (64), per source address (8), oldest evicted first.
 *   challenged  RAKP 1 answered (RAKP 2 sent). Only a console that received the Open Session Response (its
 *               SID_C is 32 random bits) gets here, so a blind flood cannot push a console out of this pool;
 *               bounded (16) and counted in the same per-source limit.
 *   active      RAKP 3 verified. At most 4; never evicted, only closed (Close Session) or idle for 60 s.
 *
 * Half-open sessions expire 10 s after their last step (clients give up well before: ipmitool restarts
 * the handshake after about 1 s, cat. §8 #10). Time is an argument; deadlines are data (nextDeadline()).
 * Map insertion order is creation order, so "oldest" is the first key.
 */
import type { AesCbc128 } from './aes-cbc-128.js';
import type { CipherSuite } from './cipher-suites.js';
import type { IpmiEndpoint } from './ipmi-types.js';
import type { RakpTranscript } from './rakp-keys.js';
import type { SequenceWindow } from './sequence-window.js';
import type { UserEntry } from './users.js';
import { u32le } from './_le.js';

export interface SessionLimits {
  maxActive: number;
  maxOpened: number;
  maxChallenged: number;
  /** Half-open sessions (opened + challenged) per source address. */
  maxHalfOpenPerSource: number;
  idleTimeoutMs: number;
  halfOpenTimeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<SessionLimits> = {
  maxActive: 4,
  maxOpened: 64,
  maxChallenged: 16,
  maxHalfOpenPerSource: 8,
  idleTimeoutMs: 60_000,
  halfOpenTimeoutMs: 10_000,
};

export interface HalfOpenSession {
  stage: 'opened' | 'challenged';
  sidC: number;
  sidM: number;
  suite: CipherSuite;
  peer: IpmiEndpoint;
  /** Time of the last step (Open Session, RAKP 1): the half-open timeout runs from here. */
  since: number;
  /** Set once RAKP 1 was answered. */
  rakp?: { transcript: RakpTranscript; user: UserEntry; maxPrivilege: number };
}

export interface ActiveSession {
  sidC: number;
  sidM: number;
  suite: CipherSuite;
  peer: IpmiEndpoint;
  user: UserEntry;
  /** Current privilege (starts at USER, §22.18) and the most Set Session Privilege Level may raise it to. */
  privilege: number;
  maxPrivilege: number;
  k1: Uint8Array;
  /** AES-CBC-128 under K2 (§13.32), one context each way for the session's packets (aes-cbc-128.ts). */
  aes: AesCbc128;
  window: SequenceWindow;
  /** Last outbound session sequence number; the next packet carries outSeq + 1 (cat. §5.3: first is 1). */
  outSeq: number;
  lastActivity: number;
  activatedAt: number;
  /** Until the first in-session packet, a retransmitted RAKP 3 with this code is answered again (its RAKP 4 was lost). */
  rakp3Code: Uint8Array | null;
  rakp4Icv: Uint8Array;
}

export class SessionTable {
  private readonly opened = new Map<number, HalfOpenSession>();
  private readonly challenged = new Map<number, HalfOpenSession>();
  private readonly active = new Map<number, ActiveSession>();

  constructor(readonly limits: SessionLimits) {}

  /**
   * A fresh, non-zero BMC session ID from `random` not in use in any pool; null if 8 draws all collided
   * (with 32-bit IDs and at most ~84 sessions, that means the randomness is broken).
   */
  allocateSid(random: (n: number) => Uint8Array): number | null {
    for (let i = 0; i < 8; i++) {
      const sid = u32le(random(4), 0);
      if (sid !== 0 && !this.has(sid)) return sid;
    }
    return null;
  }

  has(sid: number): boolean {
    return this.opened.has(sid) || this.challenged.has(sid) || this.active.has(sid);
  }

  halfOpen(sid: number): HalfOpenSession | undefined {
    return this.opened.get(sid) ?? this.challenged.get(sid);
  }

  getActive(sid: number): ActiveSession | undefined {
    return this.active.get(sid);
  }

  get activeCount(): number {
    return this.active.size;
  }

  get halfOpenCount(): number {
    return this.opened.size + this.challenged.size;
  }

  activeSessions(): IterableIterator<ActiveSession> {
    return this.active.values();
  }

  /** Adds an opened session; returns the half-open sessions evicted to make room (per source first, then by age). */
  addOpened(s: HalfOpenSession): HalfOpenSession[] {
    const evicted = this.makeRoomForSource(s.peer.address);
    if (this.opened.size >= this.limits.maxOpened) evicted.push(this.evictOldest(this.opened));
    this.opened.set(s.sidC, s);
    return evicted;
  }

  /** Moves an opened (or re-challenges a challenged) session to the challenged pool; returns evictions. */
  challenge(s: HalfOpenSession, now: number): HalfOpenSession[] {
    const evicted: HalfOpenSession[] = [];
    this.opened.delete(s.sidC);
    this.challenged.delete(s.sidC);
    if (this.challenged.size >= this.limits.maxChallenged) evicted.push(this.evictOldest(this.challenged));
    s.stage = 'challenged';
    s.since = now;
    this.challenged.set(s.sidC, s);
    return evicted;
  }

  removeHalfOpen(sid: number): void {
    this.opened.delete(sid);
    this.challenged.delete(sid);
  }

  /** Activates a session (the caller checked activeCount < maxActive); it leaves the half-open pools. */
  activate(s: ActiveSession): void {
    this.removeHalfOpen(s.sidC);
    this.active.set(s.sidC, s);
  }

  closeActive(sid: number): ActiveSession | undefined {
    const s = this.active.get(sid);
    this.active.delete(sid);
    return s;
  }

  /** Ends every session (the users changed): returns the active ones and how many half-open ones went. */
  clear(): { active: ActiveSession[]; halfOpen: number } {
    const active = [...this.active.values()];
    const halfOpen = this.halfOpenCount;
    this.opened.clear();
    this.challenged.clear();
    this.active.clear();
    return { active, halfOpen };
  }

  /** Removes and returns everything whose deadline is at or before `now`. */
  expire(now: number): { halfOpen: HalfOpenSession[]; idle: ActiveSession[] } {
    const halfOpen: HalfOpenSession[] = [];
    const idle: ActiveSession[] = [];
    for (const pool of [this.opened, this.challenged]) {
      for (const s of pool.values()) {
        if (s.since + this.limits.halfOpenTimeoutMs <= now) {
          pool.delete(s.sidC);
          halfOpen.push(s);
        }
      }
    }
    for (const s of this.active.values()) {
      if (s.lastActivity + this.limits.idleTimeoutMs <= now) {
        this.active.delete(s.sidC);
        idle.push(s);
      }
    }
    return { halfOpen, idle };
  }

  /** The earliest deadline (a half-open timeout or an idle timeout), or null when there are no sessions. */
  nextDeadline(): number | null {
    let next: number | null = null;
    const consider = (t: number) => {
      if (next === null || t < next) next = t;
    };
    for (const pool of [this.opened, this.challenged]) {
      for (const s of pool.values()) consider(s.since + this.limits.halfOpenTimeoutMs);
    }
    for (const s of this.active.values()) consider(s.lastActivity + this.limits.idleTimeoutMs);
    return next;
  }

  private makeRoomForSource(address: string): HalfOpenSession[] {
    let oldest: HalfOpenSession | null = null;
    let count = 0;
    for (const pool of [this.opened, this.challenged]) {
      for (const s of pool.values()) {
        if (s.peer.address !== address) continue;
        count++;
        if (!oldest || s.since < oldest.since) oldest = s;
      }
    }
    if (count < this.limits.maxHalfOpenPerSource || !oldest) return [];
    this.removeHalfOpen(oldest.sidC);
    return [oldest];
  }

  private evictOldest(pool: Map<number, HalfOpenSession>): HalfOpenSession {
    const first = pool.values().next().value as HalfOpenSession;
    pool.delete(first.sidC);
    return first;
  }
}
