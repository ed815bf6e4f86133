/**
 * One end of an SA pair: the ESP sender and receiver (and, under the esp+ah policy, the AH sender and
 * receiver around them) for the side that holds it. The NIC receives on `toNic` and sends on `fromNic`;
 * the station the other way round (wire/sa.ts).
 *
 * Wire order on UDP/664 (DESIGN §2.2): esp = ESP; esp+ah = AH(next header 50) || ESP. AH and ESP count
 * their sequence numbers in step (one of each per datagram), so one checkpoint covers both.
 */
import { EspReceiver, EspSender } from './esp.js';
import { AhReceiver, AhSender, AH_LENGTH as AH_HEADER_LENGTH, type AhEndpoints } from './ah.js';
import { ReplayWindow } from './replay-window.js';
import type { AeadImpl } from './aead.js';
import type { SaPair } from './sa.js';

export type SaSide = 'nic' | 'station';

/**
 * The SPIs a datagram on UDP/664 could be addressed to. An AH header starts with next header 50 and payload
 * length 5 and carries its SPI at offset 4 (RFC 4302 §2); an ESP packet carries its SPI at offset 0 (RFC 4303
 * §2). The receiver tries the AH reading first when the first two bytes allow it, and accepts it only if an
 * esp+ah SA owns that SPI, so an ESP SPI that happens to start 0x3205 still works.
 */
export function candidateSpis(datagram: Uint8Array): { ahSpi: number | null; espSpi: number } {
  const espSpi = ((datagram[0] << 24) | (datagram[1] << 16) | (datagram[2] << 8) | datagram[3]) >>> 0;
  const ahSpi = datagram.length >= 8 && datagram[0] === 50 && datagram[1] === 5
    ? ((datagram[4] << 24) | (datagram[5] << 16) | (datagram[6] << 8) | datagram[7]) >>> 0
    : null;
  return { ahSpi, espSpi };
}

export interface SaEndpointOptions {
  /** First outbound sequence number to use (>= 1): the value after the last reserved block. */
  outStart: bigint;
  /** Inbound sequence numbers <= floor are replays (the restart checkpoint). */
  inFloor: bigint;
  impl?: AeadImpl;
  windowSize?: number;
}

export interface OpenedDatagram { payload: Uint8Array; seq: bigint }

/** The replay windows one datagram is checked against: ESP's, and AH's under esp+ah. */
export interface InboundWindows { esp: ReplayWindow; ah: ReplayWindow | null }

/**
 * Where an ESP packet's IV lies in a datagram on UDP/664 (after the AH header under esp+ah): for a receiver that
 * must read the IV's sync epoch before it picks the replay window (wire/sync-iv.ts). Null when too short.
 */
export function espPacketOf(datagram: Uint8Array, ah: boolean): Uint8Array | null {
  const at = ah ? AH_HEADER_LENGTH : 0;
  return datagram.length >= at + 16 ? datagram.subarray(at) : null;
}

export class SaEndpoint {
  readonly sa: SaPair;
  readonly side: SaSide;
  private readonly espOut: EspSender;
  private readonly espIn: EspReceiver;
  private readonly ahOut: AhSender | null;
  private readonly ahIn: AhReceiver | null;
  /** Payload lengths of the last packet sealed and opened: the guess for the next ones (-1: none yet). */
  private lastSealed = -1;
  private lastOpened = -1;

  /**
   * Drop the ESP AEADs' tables (4 KiB and more per key), made again on the next packet: for an SA kept for late
   * packets while another carries the traffic (a station's 'previous' SA, issue 16). Counters and windows stay.
   */
  releaseCrypto(): void {
    this.espOut.releaseCrypto();
    this.espIn.releaseCrypto();
  }

  constructor(sa: SaPair, side: SaSide, o: SaEndpointOptions) {
    this.sa = sa;
    this.side = side;
    const out = side === 'nic' ? sa.fromNic : sa.toNic;
    const inn = side === 'nic' ? sa.toNic : sa.fromNic;
    this.espOut = new EspSender(out, sa.transform, sa.esn, o.outStart, o.impl);
    this.espIn = new EspReceiver(inn, sa.transform, sa.esn, new ReplayWindow(o.windowSize, o.inFloor), o.impl);
    if (sa.policy === 'esp+ah') {
      this.ahOut = new AhSender(out.ahSpi, out.ahKey, sa.esn, o.outStart);
      this.ahIn = new AhReceiver(inn.ahSpi, inn.ahKey, sa.esn, new ReplayWindow(o.windowSize, o.inFloor));
    } else {
      this.ahOut = null;
      this.ahIn = null;
    }
  }

  /** The SPI that identifies this SA on arriving datagrams (the AH SPI under esp+ah). */
  get inboundSpi(): number {
    const inn = this.side === 'nic' ? this.sa.toNic : this.sa.fromNic;
    return this.sa.policy === 'esp+ah' ? inn.ahSpi : inn.spi;
  }

  get nextOutSeq(): bigint {
    return this.espOut.nextSeq;
  }

  get highestInSeq(): bigint {
    return this.espIn.window.highest;
  }

  /**
   * Continue sending from sequence number `next` (only forwards): used after the peer may have
   * restarted with a reserved replay floor (DESIGN §2.6).
   */
  skipOutboundTo(next: bigint): void {
    this.espOut.skipTo(next);
    this.ahOut?.skipTo(next);
  }

  /**
   * ESP-protect (and AH-wrap) one inner packet. `ep` = this datagram's addresses, for the AH pseudo-header; `iv`:
   * the 64-bit ESP IV (wire/sync-iv.ts), the sequence number when absent.
   */
  seal(inner: Uint8Array, ep: AhEndpoints, iv?: bigint): Uint8Array {
    this.lastSealed = inner.length;
    const esp = this.espOut.seal(inner, undefined, iv);
    return this.ahOut ? this.ahOut.wrap(esp, ep) : esp;
  }

  /**
   * Verify and decrypt one datagram (RFC 4302 §3.4, then RFC 4303 §3.4). Throws ProtocolError on bad input.
   * `precheck` sees the ESP packet after its replay check and before any ESP cryptography (its IV's sync epoch).
   */
  open(datagram: Uint8Array, ep: AhEndpoints, precheck?: (espPacket: Uint8Array) => void, windows?: InboundWindows): OpenedDatagram {
    const esp = this.ahIn ? this.ahIn.unwrap(datagram, ep, windows?.ah ?? undefined).espPacket : datagram;
    const r = this.espIn.open(esp, precheck, windows?.esp);
    this.lastOpened = r.payload.length;
    return { payload: r.payload, seq: r.seq };
  }

  /** Fresh replay windows for this SA whose floor is `floor` (a NIC keeps a pair per sync epoch). */
  newWindows(floor: bigint, size?: number): InboundWindows {
    return { esp: new ReplayWindow(size, floor), ah: this.ahIn ? new ReplayWindow(size, floor) : null };
  }

  /**
   * Use idle time for the next packets each way, guessed to be as long as the last ones: the counter-mode
   * keystream and tag mask of the next seal and of the next expected arrival (Aead.prepare). Call it when
   * nothing is waiting (the NIC does after it sent an answer); a wrong guess only costs that idle time.
   * `outIv`, `inIv`: the IVs those packets will carry (wire/sync-iv.ts), the sequence numbers when absent.
   */
  prepareNext(outIv?: bigint, inIv?: bigint): void {
    if (this.lastSealed >= 0) this.espOut.prepareNext(this.lastSealed, outIv);
    if (this.lastOpened >= 0) this.espIn.prepareNext(this.lastOpened, inIv);
  }
}
