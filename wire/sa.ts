/**
 * Security association types shared by the NIC firmware, the host agent and the station.
 *
 * One "SA pair" is one child SA of RFC 7296 in the two directions. Directions are named from the
 * NIC's point of view so that both ends store the same structure without swapping fields:
 *  - `toNic`:   station -> NIC traffic (the NIC's inbound SA, the station's outbound SA)
 *  - `fromNic`: NIC -> station traffic (the NIC's outbound SA, the station's inbound SA)
 */

/** ESP transforms (IKEv2 Transform Type 1 IDs, RFC 7296 §3.3.2 / IANA). */
export type EspTransform = 'aes-gcm-16' | 'chacha20-poly1305';
export const ESP_TRANSFORM_ID: Record<EspTransform, number> = {
  'aes-gcm-16': 20, // ENCR_AES_GCM_16, RFC 4106
  'chacha20-poly1305': 28, // ENCR_CHACHA20_POLY1305, RFC 7634
};

/** Management-security policy for UDP/664: ESP alone, or ESP inside AH (DESIGN §2.2). */
export type SecurityPolicy = 'esp' | 'esp+ah';

export interface SaDirection {
  /** ESP SPI (non-zero; 0xFFFFFFFF is reserved for heartbeats, DESIGN §2.3). */
  spi: number;
  /** Encryption key followed by the 4-byte salt (RFC 4106 §8.1 / RFC 7634 §2): 20, 36 bytes. */
  encKey: Uint8Array;
  /** AH SPI for the esp+ah policy, else 0. */
  ahSpi: number;
  /** 32-byte HMAC-SHA-256 key for the esp+ah policy (RFC 4868), else an empty array. */
  ahKey: Uint8Array;
}

export interface SaPair {
  /** Monotonic generation of this SA at this NIC (1, 2, ...). 0 = none. */
  generation: number;
  transform: EspTransform;
  /** 64-bit Extended Sequence Numbers negotiated (RFC 4303 §2.2.1). Default off (DESIGN §2.2). */
  esn: boolean;
  policy: SecurityPolicy;
  toNic: SaDirection;
  fromNic: SaDirection;
  /** Where the SA came from: IKEv2 exchange or manual keying (RFC 4301 §4.5). */
  origin: 'ike' | 'manual';
}

/** The SPIs a NIC finds `sa` by for an inbound packet: the ESP SPI toward the NIC, and its AH SPI under esp+ah. */
export function inboundSpis(sa: SaPair): number[] {
  return sa.policy === 'esp+ah' ? [sa.toNic.spi, sa.toNic.ahSpi] : [sa.toNic.spi];
}

/** inboundSpis(sa) includes `spi`, without an array (SaDatabase.lookupInbound runs it per packet). */
export function carriesInbound(sa: SaPair, spi: number): boolean {
  return sa.toNic.spi === spi || (sa.policy === 'esp+ah' && sa.toNic.ahSpi === spi);
}

/** The reserved SPI that marks a heartbeat datagram on UDP/664 (DESIGN §2.3). */
export const HEARTBEAT_SPI = 0xffffffff;
