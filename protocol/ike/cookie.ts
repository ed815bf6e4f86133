/**
 * Responder defence against IKE_SA_INIT floods (RFC 7296 §2.6, RFC 8019 §4-§5):
 *
 *   - Stateless cookies (§2.6): Cookie = <VersionIDofSecret> | HMAC-SHA-256(<secret>, Ni | IPi | SPIi).
 *     The secret comes from the injected random(), is replaced every `secretLifetimeMs` (driven by
 *     `now`, no timer), and its 4-octet version leads the cookie so a cookie made with the previous
 *     secret is still recognised for one more lifetime ("the responder should change the value of
 *     <secret> frequently ... should accept cookies made with the previous secret for a short time").
 *   - Cookies are demanded only under load (§2.6 "when the number of half-open IKE SAs crosses a
 *     threshold"), and stay demanded while requests keep arriving that must be answered with one,
 *     plus `holdMs` (RFC 8019 §4.1: hysteresis, so a flood cannot toggle the mode).
 *   - A limit of half-open IKE SAs per source address (RFC 8019 §5 "limit ... from a single IP
 *     address"), checked before any DH computation or state.
 * Puzzles (RFC 8019 §7) are not implemented: a lab NIC's peers are stations that follow §2.6, and
 * cookies already defeat the spoofed-source flood of the issue; see protocol/README.md.
 * Pure: time and randomness are parameters.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { concat, putU32, u32 } from '../../common/bytes.js';
import { UsageError } from '../../common/errors.js';

/** Version (4) + HMAC-SHA-256 (32): 36 octets, within §2.6's 1..64. */
export const COOKIE_LENGTH = 36;

interface Secret {
  version: number;
  key: Uint8Array;
  /** When it was made; it is current for one lifetime and accepted for one more. */
  born: number;
}

const utf8 = new TextEncoder();

export class CookieJar {
  private current: Secret | null = null;
  private previous: Secret | null = null;
  private versions = 0;
  /** Secrets made so far (for tests: rotation happened). */
  rotations = 0;

  constructor(
    private readonly random: (n: number) => Uint8Array,
    readonly secretLifetimeMs: number,
  ) {
    if (!(secretLifetimeMs > 0)) throw new UsageError('E_USAGE', 'cookie secret lifetime must be > 0 ms');
  }

  /** Rotates the secret when its lifetime is over (lazily, on use: there is no timer). */
  private secretAt(now: number): Secret {
    if (this.current && now - this.current.born < this.secretLifetimeMs) return this.current;
    this.previous = this.current;
    this.versions = (this.versions + 1) >>> 0;
    this.current = { version: this.versions, key: this.random(32), born: now };
    this.rotations++;
    return this.current;
  }

  private mac(s: Secret, ni: Uint8Array, ip: string, spiI: Uint8Array): Uint8Array {
    const v = new Uint8Array(4);
    putU32(v, 0, s.version);
    const h = createHmac('sha256', s.key).update(concat(ni, utf8.encode(ip), spiI)).digest();
    return concat(v, new Uint8Array(h));
  }

  /** The cookie for this request (§2.6). */
  make(ni: Uint8Array, ip: string, spiI: Uint8Array, now: number): Uint8Array {
    return this.mac(this.secretAt(now), ni, ip, spiI);
  }

  /** Does `cookie` come from us for this Ni, address and SPIi, under the current or previous secret? */
  verify(cookie: Uint8Array, ni: Uint8Array, ip: string, spiI: Uint8Array, now: number): boolean {
    if (cookie.length !== COOKIE_LENGTH) return false;
    const cur = this.secretAt(now);
    const version = u32(cookie, 0);
    let s: Secret | null = null;
    if (version === cur.version) s = cur;
    else if (this.previous && version === this.previous.version && now - this.previous.born < 2 * this.secretLifetimeMs) s = this.previous;
    if (!s) return false;
    return timingSafeEqual(this.mac(s, ni, ip, spiI), cookie);
  }
}

export interface FloodPolicy {
  /** Half-open IKE SAs at which cookies become mandatory (§2.6). */
  cookieThreshold: number;
  /** Keep demanding cookies this long after the last request that needed one (RFC 8019 §4.1). */
  cookieHoldMs: number;
  /** Half-open IKE SAs per source address (RFC 8019 §5). */
  maxHalfOpenPerSource: number;
  /** Half-open IKE SAs in all; the oldest one that did not return a cookie goes first. */
  maxHalfOpen: number;
  /** A half-open IKE SA is forgotten after this long without IKE_AUTH (RFC 8019 §4.1). */
  halfOpenTimeoutMs: number;
  /** Lifetime of a cookie secret (§2.6). */
  cookieSecretLifetimeMs: number;
}

export const DEFAULT_FLOOD_POLICY: FloodPolicy = {
  cookieThreshold: 4,
  cookieHoldMs: 10_000,
  maxHalfOpenPerSource: 4,
  maxHalfOpen: 32,
  halfOpenTimeoutMs: 10_000,
  cookieSecretLifetimeMs: 30_000,
};

export function assertFloodPolicy(p: FloodPolicy): void {
  for (const [k, v] of Object.entries(p)) {
    if (!(typeof v === 'number' && v >= 0 && !Number.isNaN(v))) throw new UsageError('E_USAGE', `flood policy ${k} must be a number >= 0, got ${v}`);
  }
  if (!(p.maxHalfOpen >= 1 && p.maxHalfOpenPerSource >= 1)) throw new UsageError('E_USAGE', 'maxHalfOpen and maxHalfOpenPerSource must be >= 1');
}

/** What the responder does with an IKE_SA_INIT before any DH (RFC 8019 §4: cheap checks first). */
export type InitAdmission = 'admit' | 'demand-cookie' | 'bad-cookie' | 'per-source-limit';

/**
 * The cookie mode and the admission decision. It keeps no per-request state: only the time the
 * mode was last needed. Counting half-open SAs is the responder's (it owns the table).
 */
export class InitGuard {
  readonly jar: CookieJar;
  private demandUntil = -Infinity;

  constructor(
    readonly policy: FloodPolicy,
    random: (n: number) => Uint8Array,
  ) {
    assertFloodPolicy(policy);
    this.jar = new CookieJar(random, policy.cookieSecretLifetimeMs);
  }

  cookieMode(halfOpen: number, now: number): boolean {
    return halfOpen >= this.policy.cookieThreshold || now < this.demandUntil;
  }

  /**
   * `cookie` is the N(COOKIE) data of the request, if any. A request whose cookie does not verify is
   * treated as one without a cookie (§2.6 "MUST ignore the cookie and process the message as if no
   * cookie had been included").
   */
  admit(
    r: { cookie: Uint8Array | null; ni: Uint8Array; ip: string; spiI: Uint8Array },
    counts: { halfOpen: number; fromSource: number },
    now: number,
  ): InitAdmission {
    const valid = r.cookie !== null && this.jar.verify(r.cookie, r.ni, r.ip, r.spiI, now);
    if (!valid && this.cookieMode(counts.halfOpen, now)) {
      this.demandUntil = now + this.policy.cookieHoldMs;
      return r.cookie !== null ? 'bad-cookie' : 'demand-cookie';
    }
    if (counts.fromSource >= this.policy.maxHalfOpenPerSource) return 'per-source-limit';
    return 'admit';
  }
}
