/**
 * The NIC's side of the secure channel on UDP/664: finds the SA a datagram belongs to, opens it in RFC 4303
 * §3.4 order, records it in the SA database (make-before-break bookkeeping and the inbound sequence
 * checkpoint, DESIGN §2.5-2.6) before the firmware acts on it, and seals answers under the SA the request
 * came in on, with outbound sequence numbers handed out (and checkpointed) by the SA database.
 */
import { ProtocolError, UsageError } from '../common/errors.js';
import { SaEndpoint, candidateSpis } from '../wire/sa-endpoint.js';
import type { AeadImpl } from '../wire/aead.js';
import type { SaDatabase } from './sa-database.js';
import type { SaPair } from '../wire/sa.js';

export interface Endpoint { address: string; port: number }
export interface OpenedPacket { sa: SaPair; payload: Uint8Array; seq: bigint }

export class SecureChannel {
  /** Live crypto state per SA generation, created on first use (idle NICs hold none). */
  private readonly endpoints = new Map<number, SaEndpoint>();

  constructor(
    private readonly db: SaDatabase,
    /** This NIC's own address and secure port (the AH pseudo-header's NIC side). */
    private readonly local: Endpoint,
    private readonly impl?: AeadImpl,
  ) {}

  /** Verify and decrypt one datagram from the station. Throws ProtocolError (E_SPI, E_REPLAY, E_ICV, ...). */
  open(datagram: Uint8Array, from: Endpoint): OpenedPacket {
    if (datagram.length < 8) throw new ProtocolError('E_SHORT', `secure datagram of ${datagram.length} bytes; dropped`);
    const { ahSpi, espSpi } = candidateSpis(datagram);
    let sa = ahSpi !== null ? this.db.lookupInbound(ahSpi) : null;
    if (sa && (sa.policy !== 'esp+ah' || sa.toNic.ahSpi !== ahSpi)) sa = null;
    if (!sa) {
      sa = this.db.lookupInbound(espSpi);
      // An esp+ah SA accepts only AH-wrapped datagrams: ESP alone would skip the policy's AH check.
      if (sa && (sa.policy !== 'esp' || sa.toNic.spi !== espSpi)) sa = null;
    }
    if (!sa) throw new ProtocolError('E_SPI', `no SA with SPI 0x${espSpi.toString(16).padStart(8, '0')}${ahSpi !== null ? ` or AH SPI 0x${ahSpi.toString(16).padStart(8, '0')}` : ''}; dropped`);
    const ep = this.endpoint(sa);
    this.lastUsed = ep;
    const r = ep.open(datagram, { srcAddr: from.address, srcPort: from.port, dstAddr: this.local.address, dstPort: this.local.port });
    // Persist what must survive a restart before the packet is acted on (DESIGN §2.6).
    this.db.onAuthenticated(sa.generation, r.seq);
    return { sa, payload: r.payload, seq: r.seq };
  }

  /**
   * Idle time: prepare the next packets' keystreams of the SA last used (SaEndpoint.prepareNext). The NIC's
   * shell calls it after it has sent an answer, so the next request and answer need less work on arrival.
   */
  prepareNext(): void {
    const ep = this.lastUsed;
    if (ep && this.db.byGeneration(ep.sa.generation)) ep.prepareNext();
  }

  private lastUsed: SaEndpoint | null = null;

  /** Seal an answer under SA `generation` (the one its request came in on). */
  seal(generation: number, inner: Uint8Array, to: Endpoint): Uint8Array {
    const sa = this.db.byGeneration(generation);
    if (!sa) throw new UsageError('E_NO_SA', `SA generation ${generation} is no longer held`);
    const ep = this.endpoint(sa);
    const { seq } = this.db.nextOutbound(generation);
    if (seq !== ep.nextOutSeq) ep.skipOutboundTo(seq);
    return ep.seal(inner, { srcAddr: this.local.address, srcPort: this.local.port, dstAddr: to.address, dstPort: to.port });
  }

  private endpoint(sa: SaPair): SaEndpoint {
    let ep = this.endpoints.get(sa.generation);
    if (!ep) {
      ep = new SaEndpoint(sa, 'nic', { outStart: this.db.outboundStart(sa.generation), inFloor: this.db.inboundFloor(sa.generation), impl: this.impl });
      if (this.endpoints.size >= 2) {
        for (const g of [...this.endpoints.keys()]) if (!this.db.byGeneration(g)) this.endpoints.delete(g);
      }
      this.endpoints.set(sa.generation, ep);
    }
    return ep;
  }

  /** Forget live crypto state (the NIC lost power). */
  reset(): void {
    this.endpoints.clear();
    this.lastUsed = null;
  }
}
