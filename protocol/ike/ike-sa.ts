/**
 * The per-IKE-SA exchange machinery both ends share (RFC 7296 §2.1-2.3):
 *  - two Message ID counters: the next ID for a request we initiate, the next we expect from
 *    the peer (§2.2); a window of size 1 each way (§2.3), further requests wait in a queue;
 *  - the last response we sent, replayed when the identical request arrives again (§2.1);
 *  - retransmission of our outstanding request, and "dead" after the last try (§2.4);
 *  - sealing/opening SK payloads with SK_ei/SK_er (RFC 5282), IV = a per-SA counter.
 * It does not interpret payloads; ike-initiator.ts / ike-responder.ts do.
 */
import { equalBytes, hex, putU64 } from '../../common/bytes.js';
import { ProtocolError, UsageError } from '../../common/errors.js';
import type { IkeSaKeys } from './ike-crypto.js';
import {
  fromInitiator,
  isResponse,
  unsupportedCritical,
  type EncodedPayload,
  type HeaderFields,
  type IkeHeader,
  type RawPayload,
} from './ike-message.js';
import { encodeNotify } from './ike-payloads.js';
import { NOTIFY } from './notify.js';
import { RetransmitTimer, type RetransmitPolicy } from './retransmit.js';
import { decodeInner, onlySkPayload, openSk, sealSk } from './sk-payload.js';

export interface OwnRequest<P> {
  messageId: number;
  exchange: number;
  bytes: Uint8Array;
  purpose: P;
  timer: RetransmitTimer;
}

export type RequestClass = 'new' | 'retransmit' | 'drop';

export class IkeSaCore<P> {
  readonly spiI: Uint8Array;
  spiR: Uint8Array;
  /** True on the station: it sent IKE_SA_INIT, so its messages carry the I flag (§3.1). */
  readonly originalInitiator: boolean;
  keys: IkeSaKeys | null = null;

  private nextOwnId = 0;
  private out: OwnRequest<P> | null = null;
  private queue: { exchange: number; payloads: EncodedPayload[]; purpose: P }[] = [];
  private nextPeerId = 0;
  private cache: { messageId: number; request: Uint8Array; response: Uint8Array } | null = null;
  private ivCounter = 0n;
  private readonly policy: RetransmitPolicy;

  constructor(p: { spiI: Uint8Array; spiR: Uint8Array; originalInitiator: boolean; retransmit: RetransmitPolicy }) {
    this.spiI = p.spiI;
    this.spiR = p.spiR;
    this.originalInitiator = p.originalInitiator;
    this.policy = p.retransmit;
  }

  get spiIHex(): string {
    return hex(this.spiI);
  }
  get spiRHex(): string {
    return hex(this.spiR);
  }

  /** Is `h` from our peer in this IKE SA (SPIs equal, I flag of the other role)? */
  fromPeer(h: IkeHeader): boolean {
    return equalBytes(h.spiI, this.spiI) && equalBytes(h.spiR, this.spiR) && fromInitiator(h) !== this.originalInitiator;
  }

  fields(exchange: number, response: boolean, messageId: number): HeaderFields {
    return { spiI: this.spiI, spiR: this.spiR, exchange, initiator: this.originalInitiator, response, messageId };
  }

  private requireKeys(): IkeSaKeys {
    if (!this.keys) throw new UsageError('E_IKE_STATE', 'IKE SA has no keys yet');
    return this.keys;
  }

  private nextIv(): Uint8Array {
    this.ivCounter++;
    const iv = new Uint8Array(8);
    putU64(iv, 0, this.ivCounter);
    return iv;
  }

  seal(exchange: number, response: boolean, messageId: number, payloads: EncodedPayload[]): Uint8Array {
    const k = this.requireKeys();
    const skE = this.originalInitiator ? k.skEi : k.skEr;
    return sealSk(this.fields(exchange, response, messageId), payloads, skE, this.nextIv());
  }

  /** Verifies and decrypts a message from the peer (E_ICV, E_PAD); nothing is decrypted unverified. */
  private openOuter(bytes: Uint8Array, sk: RawPayload): { first: number; plain: Uint8Array } {
    const k = this.requireKeys();
    return openSk(bytes, sk, this.originalInitiator ? k.skEr : k.skEi);
  }

  /** A response to our request: verified, decrypted, decoded. Any fault throws (the caller drops it). */
  openResponse(h: IkeHeader, bytes: Uint8Array): RawPayload[] {
    const inner = decodeInner(this.openOuter(bytes, onlySkPayload(h, bytes)));
    const crit = unsupportedCritical(inner);
    if (crit !== null) throw new ProtocolError('E_IKE_SYNTAX', `unsupported critical payload ${crit} in a response (§2.5)`);
    return inner;
  }

  /**
   * A new request from the peer. An ICV failure throws (dropped, nothing changes); once the
   * ICV verified, a malformed inside earns INVALID_SYNTAX (§2.21) and an unknown critical
   * payload UNSUPPORTED_CRITICAL_PAYLOAD naming its type (§2.5): returned as `error`.
   */
  openRequest(h: IkeHeader, bytes: Uint8Array): { inner: RawPayload[] } | { error: EncodedPayload } {
    const opened = this.openOuter(bytes, onlySkPayload(h, bytes));
    let inner: RawPayload[];
    try {
      inner = decodeInner(opened);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return { error: encodeNotify(NOTIFY.INVALID_SYNTAX) };
    }
    const crit = unsupportedCritical(inner);
    if (crit !== null) return { error: encodeNotify(NOTIFY.UNSUPPORTED_CRITICAL_PAYLOAD, new Uint8Array([crit])) };
    return { inner };
  }

  // ---- requests we initiate ------------------------------------------------------------------

  get outstanding(): OwnRequest<P> | null {
    return this.out;
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Sends a new request now (returns its bytes) or queues it behind the outstanding one. */
  request(exchange: number, payloads: EncodedPayload[], purpose: P, now: number): Uint8Array | null {
    if (this.out) {
      this.queue.push({ exchange, payloads, purpose });
      return null;
    }
    return this.launch(exchange, payloads, purpose, now);
  }

  private launch(exchange: number, payloads: EncodedPayload[], purpose: P, now: number): Uint8Array {
    const messageId = this.nextOwnId++;
    const bytes = this.seal(exchange, false, messageId, payloads);
    const timer = new RetransmitTimer(this.policy);
    timer.start(now);
    this.out = { messageId, exchange, bytes, purpose, timer };
    return bytes;
  }

  /**
   * A request sent once and never retransmitted, taking the next Message ID even past the window
   * (the IKE SA is being given up: its D(IKE) is best effort, as strongSwan's forced delete).
   */
  oneShot(exchange: number, payloads: EncodedPayload[]): Uint8Array {
    this.out = null;
    this.queue = [];
    return this.seal(exchange, false, this.nextOwnId++, payloads);
  }

  /** The IKE_SA_INIT request, encoded by the caller (unencrypted, Message ID 0). */
  requestPlain(bytes: Uint8Array, exchange: number, purpose: P, now: number): void {
    if (this.out || this.nextOwnId !== 0) throw new UsageError('E_IKE_STATE', 'IKE_SA_INIT must be the first request');
    const timer = new RetransmitTimer(this.policy);
    timer.start(now);
    this.out = { messageId: this.nextOwnId++, exchange, bytes, purpose, timer };
  }

  /** Replace the outstanding IKE_SA_INIT (COOKIE / INVALID_KE retry, §2.6, §1.2): same Message ID 0. */
  replacePlain(bytes: Uint8Array, now: number): void {
    if (!this.out || this.out.messageId !== 0) throw new UsageError('E_IKE_STATE', 'no IKE_SA_INIT outstanding');
    this.out.bytes = bytes;
    this.out.timer.start(now);
  }

  isOurResponse(h: IkeHeader): boolean {
    return !!this.out && isResponse(h) && h.messageId === this.out.messageId && h.exchange === this.out.exchange;
  }

  /** The outstanding request got its answer; launch the next queued one, if any. */
  finishRequest(now: number): Uint8Array | null {
    this.out = null;
    const next = this.queue.shift();
    return next ? this.launch(next.exchange, next.payloads, next.purpose, now) : null;
  }

  /** Drops queued requests (the SA is going away). */
  clearQueue(): void {
    this.queue = [];
  }

  // ---- requests from the peer ------------------------------------------------------------------

  /**
   * §2.2: a request with the expected ID is new; the previous ID with the identical bytes is a
   * retransmission (answer from the cache); anything else is dropped.
   */
  classifyRequest(h: IkeHeader, bytes: Uint8Array): RequestClass {
    if (h.messageId === this.nextPeerId) return 'new';
    if (this.cache && h.messageId === this.cache.messageId && equalBytes(bytes, this.cache.request)) return 'retransmit';
    return 'drop';
  }

  get cachedResponse(): Uint8Array | null {
    return this.cache ? this.cache.response : null;
  }

  /** Seals the response to request `h` and keeps it for retransmissions. */
  respond(h: IkeHeader, request: Uint8Array, payloads: EncodedPayload[]): Uint8Array {
    const response = this.seal(h.exchange, true, h.messageId, payloads);
    this.remember(h.messageId, request, response);
    return response;
  }

  remember(messageId: number, request: Uint8Array, response: Uint8Array): void {
    this.cache = { messageId, request, response };
    this.nextPeerId = messageId + 1;
  }

  // ---- timers ----------------------------------------------------------------------------------

  get deadline(): number | null {
    return this.out ? this.out.timer.deadline : null;
  }

  /** §2.1 / §2.4: retransmit the outstanding request, or report it dead after the last try. */
  onTimeout(now: number): { resend: Uint8Array } | { dead: OwnRequest<P> } | null {
    if (!this.out) return null;
    const r = this.out.timer.fire(now);
    if (r === 'resend') return { resend: this.out.bytes };
    if (r === 'give-up') {
      const dead = this.out;
      this.out = null;
      this.queue = [];
      return { dead };
    }
    return null;
  }

  /** For tests: a compact view of everything that must not change on bad input. */
  snapshot(): string {
    return JSON.stringify({
      spiI: this.spiIHex,
      spiR: this.spiRHex,
      keys: this.keys ? hex(this.keys.skD.subarray(0, 8)) : null,
      nextOwnId: this.nextOwnId,
      out: this.out ? [this.out.messageId, this.out.exchange, this.out.timer.deadline] : null,
      queue: this.queue.length,
      nextPeerId: this.nextPeerId,
      cache: this.cache ? [this.cache.messageId, this.cache.response.length, this.cache.response[this.cache.response.length - 1]] : null,
      iv: String(this.ivCounter),
    });
  }
}
