/**
 * ESP (RFC 4303) as the payload of UDP/664 (DESIGN §2.2):
 *
 *   SPI(4) | Seq(4, low half of the 64-bit counter) | IV(8) | ciphertext | ICV(16)
 *   plaintext = inner payload | Padding 1,2,3,... | Pad Length | Next Header      (RFC 4303 §2.4-2.6)
 *
 * Transforms (both combined-mode, RFC 4303 §3.2.3):
 *  - AES-GCM with a 16-octet ICV, RFC 4106: key || salt(4); nonce = salt || IV (§4);
 *    AAD = SPI || Seq32, or SPI || SeqHigh32 || SeqLow32 with ESN (§5).
 *  - ChaCha20-Poly1305, RFC 7634: the same key||salt, nonce and AAD rules (§2, §2.1).
 * The IV is the 64-bit sequence number: unique per key, as RFC 4106 §3.1 and RFC 7634 §2 allow,
 * and deterministic (the firmware core takes no randomness on this path).
 * Padding aligns the ciphertext to 4 bytes with the default pattern 1, 2, 3, ... (RFC 4303 §2.4).
 */
import { SendCounter, maxSequence } from './send-counter.js';
import { createAead, AEAD_KEY_LENGTHS, AEAD_TAG_LENGTH, type Aead, type AeadImpl } from './aead.js';
import { ProtocolError, UsageError } from '../common/errors.js';
import { high32, low32, putU16, putU32, u16, u32, view } from '../common/bytes.js';
import { ReplayWindow } from './replay-window.js';
import type { EspTransform, SaDirection } from './sa.js';

export const ESP_HEADER_LENGTH = 8; // SPI + Sequence Number
export const ESP_IV_LENGTH = 8;
export const ESP_ICV_LENGTH = AEAD_TAG_LENGTH;
export const ESP_SALT_LENGTH = 4;
/** Smallest well-formed packet: header, IV, a 4-byte-aligned trailer (2 pad + 2), ICV. */
export const ESP_MIN_LENGTH = ESP_HEADER_LENGTH + ESP_IV_LENGTH + 4 + ESP_ICV_LENGTH;
/** Bytes ESP adds around a payload, before padding. */
export const ESP_OVERHEAD = ESP_HEADER_LENGTH + ESP_IV_LENGTH + 2 + ESP_ICV_LENGTH;

/** IP protocol numbers used as Next Header (IANA). */
export const NEXT_HEADER_UDP = 17;
/** "No next header": a dummy packet for traffic-flow confidentiality, to be discarded (RFC 4303 §2.6). */
export const NEXT_HEADER_NONE = 59;

/** Highest sequence number an SA may send before it must be replaced (RFC 4303 §3.3.3). */
export { maxSequence };

/** Padding for a payload so that payload + pad + 2 ends on a 4-byte boundary (RFC 4303 §2.4). */
export function espPadLength(payloadLength: number): number {
  return (4 - ((payloadLength + 2) % 4)) % 4;
}

/** The SPI of an ESP (or heartbeat) datagram: its first 4 bytes, big-endian. */
export function espSpi(packet: Uint8Array): number {
  if (packet.length < 4) throw new ProtocolError('E_SHORT', `ESP packet of ${packet.length} bytes has no SPI; dropped`);
  return u32(packet, 0);
}

function assertSpi(spi: number): void {
  // 0 must not be sent (RFC 4303 §2.1); 0xFFFFFFFF marks heartbeats here (DESIGN §2.3).
  if (!Number.isInteger(spi) || spi < 1 || spi >= 0xffffffff) {
    throw new UsageError('E_USAGE', `ESP SPI must be 1..0xFFFFFFFE, got ${spi}`);
  }
}

function assertNextHeader(nh: number): void {
  if (!Number.isInteger(nh) || nh < 0 || nh > 255) {
    throw new UsageError('E_USAGE', `next header must be an IP protocol number 0..255, got ${nh}`);
  }
}

/**
 * The keyed part shared by sender and receiver: AEAD with cached key, salt, and scratch buffers for
 * the nonce and the ESN AAD (no per-packet allocation for either). The AEAD (for AES-GCM its key schedule and 4 KiB
 * GHASH table) is made on the first packet, and release() drops it again: an SA that carries none (a station's
 * 'previous' SA, issue 16) costs only its key.
 */
/**
 * Scratch of every EspCrypto, shared (issue 16: a station holds four per NIC, and four small arrays each cost more
 * than their bytes): each is filled and used within one synchronous call, and the AEADs keep none of them.
 */
const NONCE = new Uint8Array(12); // salt(4) || IV(8)
const AAD_ESN = new Uint8Array(12); // SPI || SeqHigh || SeqLow
const AAD_PLAIN = new Uint8Array(8); // SPI || Sequence Number
const PREPARE_HEADER = new Uint8Array(ESP_HEADER_LENGTH); // the expected packet's SPI || Sequence Number

class EspCrypto {
  #aeadMade: Aead | null = null;
  /** What the AEAD is made from (the key a private copy): on first use, and again after release(). */
  readonly #spec: { transform: EspTransform; key: Uint8Array; impl: AeadImpl | undefined };
  /** The nonce's salt (RFC 4106 §4), big-endian: written into the shared NONCE before each use. */
  readonly #salt: number;
  readonly #esn: boolean;

  constructor(transform: EspTransform, encKey: Uint8Array, esn: boolean, impl: AeadImpl | undefined) {
    const lengths = AEAD_KEY_LENGTHS[transform];
    if (lengths === undefined) throw new UsageError('E_USAGE', `unknown ESP transform ${JSON.stringify(transform)}`);
    if (!(encKey instanceof Uint8Array) || !lengths.includes(encKey.length - ESP_SALT_LENGTH)) {
      const want = lengths.map((n) => n + ESP_SALT_LENGTH).join('/');
      throw new UsageError('E_USAGE', `${transform} needs key||salt of ${want} bytes (RFC 4106 §8.1, RFC 7634 §2)`);
    }
    const keyLength = encKey.length - ESP_SALT_LENGTH;
    this.#spec = { transform, key: encKey.slice(0, keyLength), impl };
    this.#salt = u32(encKey, keyLength);
    this.#esn = esn;
  }

  get #aead(): Aead {
    if (this.#aeadMade === null) this.#aeadMade = createAead(this.#spec.transform, this.#spec.key, this.#spec.impl);
    return this.#aeadMade;
  }

  /** Drop the AEAD's tables (made again on the next packet): for an SA kept but not expected to carry traffic. */
  release(): void {
    this.#aeadMade = null;
  }

  /** AAD of RFC 4106 §5 / RFC 7634 §2.1, read from the packet header (and the inferred high half). */
  #aad(packet: Uint8Array, seq: bigint): Uint8Array {
    // Copied into a buffer of our own: cheaper than a view per packet.
    if (!this.#esn) {
      const a = AAD_PLAIN;
      for (let i = 0; i < 8; i++) a[i] = packet[i];
      return a;
    }
    const a = AAD_ESN;
    for (let i = 0; i < 4; i++) a[i] = packet[i];
    putU32(a, 4, high32(seq));
    for (let i = 4; i < 8; i++) a[i + 4] = packet[i];
    return a;
  }

  /**
   * Frames and seals one packet. `iv` defaults to the 64-bit sequence number; an explicit IV is for
   * reproducing captured vectors and must never repeat under one key.
   */
  seal(spi: number, seq: bigint, iv: Uint8Array | bigint | undefined, payload: Uint8Array, nextHeader: number): Uint8Array {
    const padLength = espPadLength(payload.length);
    const plainLength = payload.length + padLength + 2;
    const packet = new Uint8Array(ESP_HEADER_LENGTH + ESP_IV_LENGTH + plainLength + ESP_ICV_LENGTH);
    const low = low32(seq);
    putU32(packet, 0, spi);
    putU32(packet, 4, low);
    if (iv === undefined || typeof iv === 'bigint') {
      const v = iv ?? seq;
      putU32(packet, 8, high32(v));
      putU32(packet, 12, low32(v));
    } else {
      packet.set(iv, 8);
    }
    // The plaintext is built in place, where the ciphertext will go.
    const body = ESP_HEADER_LENGTH + ESP_IV_LENGTH;
    packet.set(payload, body);
    for (let i = 1; i <= padLength; i++) packet[body + payload.length + i - 1] = i;
    packet[body + plainLength - 2] = padLength;
    packet[body + plainLength - 1] = nextHeader;
    const aead = this.#aead;
    const nonce = this.#setIv(packet);
    const aad = this.#aad(packet, seq);
    if (aead.sealInPlace) aead.sealInPlace(nonce, aad, packet, body, plainLength);
    else packet.set(aead.seal(nonce, aad, packet.subarray(body, body + plainLength)), body);
    return packet;
  }

  /** The shared NONCE = salt || the packet's 8-byte IV (RFC 4106 §4). */
  #setIv(packet: Uint8Array): Uint8Array {
    const n = NONCE;
    putU32(n, 0, this.#salt);
    for (let i = 0; i < ESP_IV_LENGTH; i++) n[ESP_SALT_LENGTH + i] = packet[ESP_HEADER_LENGTH + i];
    return n;
  }

  /**
   * Idle-time work for the packet with sequence number `seq`, `payloadLength` bytes of payload and IV `iv` (the
   * sequence number when absent, as EspSender sends by default): see Aead.prepare.
   */
  prepare(spi: number, seq: bigint, payloadLength: number, iv: bigint = seq): void {
    const aead = this.#aead;
    if (!aead.prepare) return;
    const plainLength = payloadLength + espPadLength(payloadLength) + 2;
    const header = PREPARE_HEADER;
    putU32(header, 0, spi);
    putU32(header, 4, low32(seq));
    putU32(NONCE, 0, this.#salt);
    putU32(NONCE, ESP_SALT_LENGTH, high32(iv));
    putU32(NONCE, ESP_SALT_LENGTH + 4, low32(iv));
    aead.prepare(NONCE, plainLength, this.#aad(header, seq));
  }

  /** The verified plaintext (payload | pad | pad length | next header), or null if the ICV is bad. */
  open(packet: Uint8Array, seq: bigint): Uint8Array | null {
    const aead = this.#aead;
    const nonce = this.#setIv(packet);
    const body = ESP_HEADER_LENGTH + ESP_IV_LENGTH;
    const aad = this.#aad(packet, seq);
    return aead.openAt ? aead.openAt(nonce, aad, packet, body) : aead.open(nonce, aad, view(packet, body));
  }
}

/**
 * One ESP packet with an explicit IV, for reproducing captures and published vectors.
 * Prefer EspSender, which owns the counter and can never reuse a nonce.
 */
export function sealEspPacket(
  transform: EspTransform,
  encKey: Uint8Array,
  spi: number,
  seq: bigint,
  esn: boolean,
  iv: Uint8Array,
  payload: Uint8Array,
  nextHeader: number = NEXT_HEADER_UDP,
  impl?: AeadImpl,
): Uint8Array {
  assertSpi(spi);
  assertNextHeader(nextHeader);
  if (typeof seq !== 'bigint' || seq < 1n || seq > maxSequence(esn)) {
    throw new UsageError('E_USAGE', `sequence number must be 1..${maxSequence(esn)}, got ${String(seq)}`);
  }
  if (!(iv instanceof Uint8Array) || iv.length !== ESP_IV_LENGTH) {
    throw new UsageError('E_USAGE', 'ESP IV must be 8 bytes (RFC 4106 §3.1)');
  }
  return new EspCrypto(transform, encKey, esn, impl).seal(spi, seq, iv, payload, nextHeader);
}

/** Outbound SA: owns the sequence counter (RFC 4303 §3.3.3). */
export class EspSender {
  readonly spi: number;
  readonly esn: boolean;
  readonly #crypto: EspCrypto;
  readonly #counter: SendCounter;

  constructor(dir: SaDirection, transform: EspTransform, esn: boolean, nextSeq: bigint, impl?: AeadImpl) {
    assertSpi(dir.spi);
    // nextSeq = max + 1 is a legal (exhausted) state, e.g. restored from a checkpoint.
    this.#counter = new SendCounter(esn, nextSeq, 'ESP');
    this.spi = dir.spi;
    this.esn = esn;
    this.#crypto = new EspCrypto(transform, dir.encKey, esn, impl);
  }

  /** The sequence number the next seal() will use. */
  get nextSeq(): bigint {
    return this.#counter.next;
  }

  /** True once the counter has used its last value: the SA must be refreshed (RFC 4303 §3.3.3). */
  get exhausted(): boolean {
    return this.#counter.exhausted;
  }

  /** Continue from `next` (forward only), e.g. above a block reserved by another sender. */
  skipTo(next: bigint): void {
    this.#counter.skipTo(next);
  }

  /**
   * Idle-time work for the next seal(), of a payload of `payloadLength` bytes (Aead.prepare); `iv`: the IV that
   * seal will be given (wire/sync-iv.ts), the sequence number when absent.
   */
  prepareNext(payloadLength: number, iv?: bigint): void {
    if (!this.#counter.exhausted) this.#crypto.prepare(this.spi, this.#counter.next, payloadLength, iv);
  }

  /**
   * Seals `payload` under the next sequence number and advances the counter. `iv` (64 bits): the IV to send, which
   * the caller guarantees never repeats under this key (wire/sync-iv.ts); absent, the sequence number is the IV.
   */
  seal(payload: Uint8Array, nextHeader: number = NEXT_HEADER_UDP, iv?: bigint): Uint8Array {
    if (!(payload instanceof Uint8Array)) throw new UsageError('E_USAGE', 'ESP payload must be a Uint8Array');
    assertNextHeader(nextHeader);
    // RFC 4303 §3.3.3: the counter must not cycle; a new SA is needed (DESIGN §2.2 forces a refresh).
    const seq = this.#counter.take(this.spi);
    return this.#crypto.seal(this.spi, seq, iv, payload, nextHeader);
  }

  /** See EspCrypto.release: the counter stays, only the AEAD's tables go. */
  releaseCrypto(): void {
    this.#crypto.release();
  }
}

export interface EspOpened {
  payload: Uint8Array;
  nextHeader: number;
  /** The full (ESN-inferred) sequence number. */
  seq: bigint;
}

/** Inbound SA: checks, authenticates, decrypts and records packets in RFC 4303 §3.4 order. */
export class EspReceiver {
  readonly spi: number;
  readonly esn: boolean;
  #window: ReplayWindow;
  readonly #crypto: EspCrypto;
  readonly #nextHeaders: readonly number[];

  /** `nextHeaders`: the inner protocols this SA carries (DESIGN §2.2: UDP only). */
  constructor(
    dir: SaDirection,
    transform: EspTransform,
    esn: boolean,
    window: ReplayWindow,
    impl?: AeadImpl,
    nextHeaders: readonly number[] = [NEXT_HEADER_UDP],
  ) {
    assertSpi(dir.spi);
    if (!(window instanceof ReplayWindow)) throw new UsageError('E_USAGE', 'EspReceiver needs a ReplayWindow');
    for (const nh of nextHeaders) assertNextHeader(nh);
    this.spi = dir.spi;
    this.esn = esn;
    this.#window = window;
    this.#crypto = new EspCrypto(transform, dir.encKey, esn, impl);
    this.#nextHeaders = [...nextHeaders];
  }

  get window(): ReplayWindow {
    return this.#window;
  }

  /**
   * Idle-time work for the packet expected next: sequence number highest + 1 with the IV our senders use (the
   * sequence number), `payloadLength` bytes of payload (Aead.prepare). Any other packet opens as usual.
   */
  prepareNext(payloadLength: number, iv?: bigint): void {
    const seq = this.window.highest + 1n;
    if (seq <= maxSequence(this.esn)) this.#crypto.prepare(this.spi, seq, payloadLength, iv);
  }

  /**
   * RFC 4303 §3.4: length and SPI -> replay check (§3.4.3, before any cryptography) -> ICV verify
   * and decrypt (§3.4.4, one AEAD step) -> window update -> trailer checks.
   * The window is updated as soon as the ICV verified (§3.4.3: "only if the integrity verification
   * succeeds"), so an authentic packet with a bad trailer still consumes its sequence number and
   * its replay reports E_REPLAY. `window`: the replay window to use instead of this receiver's own (a NIC keeps
   * one per sync epoch, firmware/secure-channel.ts); `precheck` sees the packet after its replay check.
   */
  open(packet: Uint8Array, precheck?: (packet: Uint8Array) => void, window: ReplayWindow = this.#window): EspOpened {
    if (!(packet instanceof Uint8Array)) throw new UsageError('E_USAGE', 'ESP packet must be a Uint8Array');
    if (packet.length < ESP_MIN_LENGTH) {
      throw new ProtocolError('E_SHORT', `ESP packet of ${packet.length} bytes, need at least ${ESP_MIN_LENGTH}; dropped`);
    }
    const spi = u32(packet, 0);
    if (spi !== this.spi) {
      throw new ProtocolError('E_SPI', `ESP SPI 0x${spi.toString(16).padStart(8, '0')} is not this SA's; dropped`);
    }
    const low = u32(packet, 4);
    const seq = this.esn ? window.inferEsn(low) : BigInt(low);
    if (!window.check(seq)) {
      throw new ProtocolError('E_REPLAY', `ESP sequence number ${seq} is ${window.refusal(seq)}; dropped as a replay`);
    }
    // The caller's own checks of the header and IV (wire/sync-iv.ts: the sync epoch), before any cryptography.
    precheck?.(packet);
    const plain = this.#crypto.open(packet, seq);
    if (plain === null) {
      throw new ProtocolError('E_ICV', `ESP ICV check failed for sequence number ${seq}; dropped (wrong key or tampered)`);
    }
    window.mark(seq);

    const n = plain.length;
    const padLength = plain[n - 2];
    const nextHeader = plain[n - 1];
    if (n % 4 !== 0 || padLength + 2 > n) {
      throw new ProtocolError('E_PAD', `ESP pad length ${padLength} does not fit a ${n}-byte 4-aligned trailer; dropped`);
    }
    const payloadLength = n - 2 - padLength;
    for (let i = 0; i < padLength; i++) {
      if (plain[payloadLength + i] !== i + 1) {
        // RFC 4303 §2.4: the receiver SHOULD check the default 1, 2, 3, ... pattern.
        throw new ProtocolError('E_PAD', `ESP padding byte ${i + 1} is ${plain[payloadLength + i]}, not ${i + 1}; dropped`);
      }
    }
    if (!this.#nextHeaders.includes(nextHeader)) {
      const why = nextHeader === NEXT_HEADER_NONE ? 'a dummy packet (RFC 4303 §2.6)' : 'not carried by this SA';
      throw new ProtocolError('E_NEXT_HEADER', `ESP next header ${nextHeader} is ${why}; dropped`);
    }
    // A copy, not a view: plain is small, so V8 keeps it on its heap, and a view would first move it out.
    return { payload: plain.slice(0, payloadLength), nextHeader, seq };
  }

  /** See EspCrypto.release: the replay window stays, only the AEAD's tables go. */
  releaseCrypto(): void {
    this.#crypto.release();
  }
}

// ---- inner UDP header (DESIGN §2.2): what a decrypted packet carries, so Wireshark sees UDP -> RMCP.

export const UDP_HEADER_LENGTH = 8;

function assertPort(p: number, what: string): void {
  if (!Number.isInteger(p) || p < 0 || p > 0xffff) throw new UsageError('E_USAGE', `${what} must be 0..65535, got ${p}`);
}

/** RFC 768 header: srcPort, dstPort, length, checksum 0 ("not computed"; ESP already protects it). */
export function encodeInnerUdp(srcPort: number, dstPort: number, body: Uint8Array): Uint8Array {
  assertPort(srcPort, 'UDP source port');
  assertPort(dstPort, 'UDP destination port');
  const length = UDP_HEADER_LENGTH + body.length;
  if (length > 0xffff) throw new UsageError('E_USAGE', `UDP datagram of ${length} bytes exceeds 65535`);
  const out = new Uint8Array(length);
  putU16(out, 0, srcPort);
  putU16(out, 2, dstPort);
  putU16(out, 4, length);
  out.set(body, UDP_HEADER_LENGTH);
  return out;
}

/** Parses the inner UDP header; the checksum is not verified (the ESP ICV covers these bytes). */
export function decodeInnerUdp(b: Uint8Array): { srcPort: number; dstPort: number; body: Uint8Array } {
  if (b.length < UDP_HEADER_LENGTH) {
    throw new ProtocolError('E_SHORT', `inner UDP datagram of ${b.length} bytes has no 8-byte header; dropped`);
  }
  const length = u16(b, 4);
  if (length !== b.length) {
    throw new ProtocolError('E_LENGTH', `inner UDP length field says ${length}, datagram has ${b.length} bytes; dropped`);
  }
  // slice(): a copy for a Uint8Array (a view of a small one would first move it off V8's heap, see
  // EspReceiver.open); for a Buffer, Buffer.prototype.slice is a view, which costs nothing there.
  return { srcPort: u16(b, 0), dstPort: u16(b, 2), body: b.slice(UDP_HEADER_LENGTH) };
}
