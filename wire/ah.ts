/**
 * AH (RFC 4302) around an ESP packet: the `esp+ah` policy of DESIGN §2.2.
 *
 *   Next Header 50 | Payload Len 5 | Reserved 0 | SPI(4) | Seq(4) | ICV(16) | ESP packet
 *
 * Payload Len = AH length in 32-bit words minus 2 = (12 + 16) / 4 - 2 = 5 (RFC 4302 §2.2).
 * ICV = HMAC-SHA-256-128 (RFC 4868: HMAC-SHA-256 truncated to 128 bits, 256-bit key) over
 *
 *   pseudo-header(12) || AH header with the ICV zeroed(28) || ESP packet || [Seq high 32 bits]
 *
 * Pseudo-header: the emulated IP header has no real counterpart on a UDP hop, so it is replaced by
 * the immutable fields that identify the flow, in this fixed layout (big-endian):
 *
 *   offset 0  source IPv4 address (4)
 *   offset 4  destination IPv4 address (4)
 *   offset 8  source UDP port (2)
 *   offset 10 destination UDP port (2)
 *
 * This stands in for RFC 4302 §3.3.3.1.1 (the immutable IPv4 header fields, addresses included,
 * come first in the ICV input). With ESN the high half of the sequence number is appended after the
 * payload and never sent (RFC 4302 §2.5.1, §3.3.3.2.2).
 * Wireshark does not verify AH ICVs (shared/reference/tshark README §4): tests recompute the HMAC.
 */
import { createHmac, createSecretKey, type Hmac, type KeyObject } from 'node:crypto';
import { ProtocolError, UsageError } from '../common/errors.js';
import { equalBytes, high32, low32, putU16, putU32, u32 } from '../common/bytes.js';
import { SendCounter } from './send-counter.js';
import { ReplayWindow } from './replay-window.js';

export const NEXT_HEADER_ESP = 50;
export const AH_ICV_LENGTH = 16;
export const AH_LENGTH = 12 + AH_ICV_LENGTH; // 28 bytes
export const AH_PAYLOAD_LEN = AH_LENGTH / 4 - 2; // 5
export const AH_KEY_LENGTH = 32; // RFC 4868 §2.1.1
export const AH_PSEUDO_HEADER_LENGTH = 12;

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export interface AhEndpoints {
  /** Emulated source IPv4 address, dotted quad. */
  srcAddr: string;
  dstAddr: string;
  srcPort: number;
  dstPort: number;
}

/** Addresses already parsed (every datagram of a flow names the same two): text -> its four octets. Bounded. */
const parsed = new Map<string, Uint8Array>();
const PARSED_MAX = 4096;

function putIpv4(out: Uint8Array, offset: number, addr: string, what: string): void {
  let b = typeof addr === 'string' ? parsed.get(addr) : undefined;
  if (b === undefined) {
    const m = typeof addr === 'string' ? IPV4.exec(addr) : null;
    if (m === null) throw new UsageError('E_USAGE', `${what} must be a dotted IPv4 address, got ${JSON.stringify(addr)}`);
    b = new Uint8Array(4);
    for (let i = 0; i < 4; i++) {
      const v = Number(m[i + 1]);
      if (v > 255) throw new UsageError('E_USAGE', `${what} ${addr} has an octet above 255`);
      b[i] = v;
    }
    if (parsed.size >= PARSED_MAX) parsed.clear();
    parsed.set(addr, b);
  }
  out[offset] = b[0];
  out[offset + 1] = b[1];
  out[offset + 2] = b[2];
  out[offset + 3] = b[3];
}

function putPort(out: Uint8Array, offset: number, port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) {
    throw new UsageError('E_USAGE', `${what} must be 0..65535, got ${port}`);
  }
  putU16(out, offset, port);
}

/** The 12-byte pseudo-header described at the top of this file. */
export function ahPseudoHeader(ep: AhEndpoints, out: Uint8Array = new Uint8Array(AH_PSEUDO_HEADER_LENGTH)): Uint8Array {
  putIpv4(out, 0, ep.srcAddr, 'AH source address');
  putIpv4(out, 4, ep.dstAddr, 'AH destination address');
  putPort(out, 8, ep.srcPort, 'AH source port');
  putPort(out, 10, ep.dstPort, 'AH destination port');
  return out;
}

function assertSpi(spi: number): void {
  if (!Number.isInteger(spi) || spi < 1 || spi >= 0xffffffff) {
    throw new UsageError('E_USAGE', `AH SPI must be 1..0xFFFFFFFE, got ${spi}`);
  }
}

/** HMAC-SHA-256-128 over pseudo-header, AH header (ICV zeroed), ESP packet and, with ESN, Seq high. */
class AhIcv {
  readonly #key: KeyObject;
  readonly #esn: boolean;
  readonly #pseudo = new Uint8Array(AH_PSEUDO_HEADER_LENGTH);
  readonly #seqHigh = new Uint8Array(4);
  static readonly #zeroIcv = new Uint8Array(AH_ICV_LENGTH);

  constructor(key: Uint8Array, esn: boolean) {
    if (!(key instanceof Uint8Array) || key.length !== AH_KEY_LENGTH) {
      throw new UsageError('E_USAGE', `HMAC-SHA-256-128 needs a ${AH_KEY_LENGTH}-byte key (RFC 4868 §2.1.1)`);
    }
    this.#key = createSecretKey(key);
    this.#esn = esn;
  }

  /** `header` = the first 12 bytes of the AH header as sent; the ICV field counts as zero. */
  compute(ep: AhEndpoints, header: Uint8Array, esp: Uint8Array, seq: bigint): Uint8Array {
    const h = createHmac('sha256', this.#key);
    h.update(ahPseudoHeader(ep, this.#pseudo));
    h.update(header);
    h.update(AhIcv.#zeroIcv);
    h.update(esp);
    return this.#finish(h, seq);
  }

  /** The same over a whole AH packet whose ICV field is still zero (one being built): one update for all of it. */
  computeZeroed(ep: AhEndpoints, packet: Uint8Array, seq: bigint): Uint8Array {
    const h = createHmac('sha256', this.#key);
    h.update(ahPseudoHeader(ep, this.#pseudo));
    h.update(packet);
    return this.#finish(h, seq);
  }

  #finish(h: Hmac, seq: bigint): Uint8Array {
    if (this.#esn) {
      putU32(this.#seqHigh, 0, high32(seq));
      h.update(this.#seqHigh);
    }
    const mac = h.digest();
    return new Uint8Array(mac.buffer, mac.byteOffset, AH_ICV_LENGTH);
  }
}

export class AhSender {
  readonly spi: number;
  readonly esn: boolean;
  readonly #icv: AhIcv;
  readonly #counter: SendCounter;

  constructor(spi: number, key: Uint8Array, esn: boolean, nextSeq: bigint) {
    assertSpi(spi);
    this.#counter = new SendCounter(esn, nextSeq, 'AH');
    this.spi = spi;
    this.esn = esn;
    this.#icv = new AhIcv(key, esn);
  }

  get nextSeq(): bigint {
    return this.#counter.next;
  }

  get exhausted(): boolean {
    return this.#counter.exhausted;
  }

  /** Continue from `next` (forward only), in step with the ESP sender. */
  skipTo(next: bigint): void {
    this.#counter.skipTo(next);
  }

  /** Prepends the AH header to `espPacket`, under the next sequence number. */
  wrap(espPacket: Uint8Array, ep: AhEndpoints): Uint8Array {
    if (!(espPacket instanceof Uint8Array)) throw new UsageError('E_USAGE', 'AH payload must be a Uint8Array');
    // RFC 4302 §3.3.2: the counter must not cycle; a new SA is needed.
    const seq = this.#counter.take(this.spi);
    const out = new Uint8Array(AH_LENGTH + espPacket.length);
    out[0] = NEXT_HEADER_ESP;
    out[1] = AH_PAYLOAD_LEN;
    putU32(out, 4, this.spi);
    putU32(out, 8, low32(seq));
    out.set(espPacket, AH_LENGTH);
    // The ICV field (bytes 12..27) is still zero, as the ICV input wants it.
    out.set(this.#icv.computeZeroed(ep, out, seq), 12);
    return out;
  }
}

export class AhReceiver {
  readonly spi: number;
  readonly esn: boolean;
  #window: ReplayWindow;
  readonly #icv: AhIcv;

  constructor(spi: number, key: Uint8Array, esn: boolean, window: ReplayWindow) {
    assertSpi(spi);
    if (!(window instanceof ReplayWindow)) throw new UsageError('E_USAGE', 'AhReceiver needs a ReplayWindow');
    this.spi = spi;
    this.esn = esn;
    this.#window = window;
    this.#icv = new AhIcv(key, esn);
  }

  get window(): ReplayWindow {
    return this.#window;
  }

  /**
   * RFC 4302 §3.4: header and SPI -> replay check (§3.4.3, before the HMAC) -> ICV, compared in
   * constant time (§3.4.4) -> window update. Returns the ESP packet inside. `window`: the replay window to use
   * instead of this receiver's own (a NIC keeps one per sync epoch, firmware/secure-channel.ts).
   */
  unwrap(packet: Uint8Array, ep: AhEndpoints, window: ReplayWindow = this.#window): { espPacket: Uint8Array; seq: bigint } {
    if (!(packet instanceof Uint8Array)) throw new UsageError('E_USAGE', 'AH packet must be a Uint8Array');
    if (packet.length < AH_LENGTH) {
      throw new ProtocolError('E_SHORT', `AH packet of ${packet.length} bytes, need at least ${AH_LENGTH}; dropped`);
    }
    if (packet[0] !== NEXT_HEADER_ESP) {
      throw new ProtocolError('E_NEXT_HEADER', `AH next header ${packet[0]} is not ESP (50); dropped`);
    }
    if (packet[1] !== AH_PAYLOAD_LEN) {
      throw new ProtocolError('E_LENGTH', `AH payload length ${packet[1]} is not ${AH_PAYLOAD_LEN} (16-byte ICV); dropped`);
    }
    const spi = u32(packet, 4);
    if (spi !== this.spi) {
      throw new ProtocolError('E_SPI', `AH SPI 0x${spi.toString(16).padStart(8, '0')} is not this SA's; dropped`);
    }
    const low = u32(packet, 8);
    const seq = this.esn ? window.inferEsn(low) : BigInt(low);
    if (!window.check(seq)) {
      throw new ProtocolError('E_REPLAY', `AH sequence number ${seq} is ${window.refusal(seq)}; dropped as a replay`);
    }
    const esp = packet.subarray(AH_LENGTH);
    // The Reserved field is covered as received (RFC 4302 §2.3: in the ICV, otherwise ignored).
    const expected = this.#icv.compute(ep, packet.subarray(0, 12), esp, seq);
    if (!equalBytes(expected, packet.subarray(12, AH_LENGTH))) {
      throw new ProtocolError('E_AH_ICV', `AH ICV check failed for sequence number ${seq}; dropped (wrong key, endpoints or tampered)`);
    }
    window.mark(seq);
    return { espPacket: esp, seq };
  }
}
