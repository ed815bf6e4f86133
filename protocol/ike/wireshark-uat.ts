/**
 * Key export for Wireshark/tshark 4.0 (like SSLKEYLOGFILE), in the exact formats
 * reference/tshark/README.md §3 and §5 verified:
 *
 *  ikev2_decryption_table (8 columns):
 *    SPIi,SPIr,SK_ei,SK_er,"Encryption algorithm",SK_ai,SK_ar,"Integrity algorithm"
 *    byte columns bare hex (no quotes, no 0x), SK_e including the 4-octet salt; AEAD -> empty
 *    SK_a columns and "NONE [RFC4306]".
 *  esp_sa (8 columns):
 *    "Protocol","Src IP","Dest IP","SPI","Encryption","Encryption Key","Authentication","Authentication Key"
 *    SPI and key as 0x-hex; AES-GCM key = key | salt, authentication "NULL".
 * Use: tshark -o 'uat:ikev2_decryption_table:<line>' or put the lines in a profile's file.
 */
import { hex } from '../../common/bytes.js';
import { UsageError } from '../../common/errors.js';
import type { SaDirection, SaPair } from '../../wire/sa.js';

const GCM_NAMES: Record<number, string> = {
  20: 'AES-GCM-128 with 16 octet ICV [RFC5282]',
  28: 'AES-GCM-192 with 16 octet ICV [RFC5282]',
  36: 'AES-GCM-256 with 16 octet ICV [RFC5282]',
};

export function ikev2DecryptionTableLine(k: { spiI: Uint8Array; spiR: Uint8Array; skEi: Uint8Array; skEr: Uint8Array }): string {
  if (k.spiI.length !== 8 || k.spiR.length !== 8) throw new UsageError('E_USAGE', 'IKE SPIs must be 8 octets');
  const alg = GCM_NAMES[k.skEi.length];
  if (!alg || k.skEr.length !== k.skEi.length) throw new UsageError('E_USAGE', `no Wireshark AES-GCM name for SK_e of ${k.skEi.length} octets`);
  return `${hex(k.spiI)},${hex(k.spiR)},${hex(k.skEi)},${hex(k.skEr)},"${alg}",,,"NONE [RFC4306]"`;
}

function espLine(d: SaDirection, src: string, dst: string): string {
  const spi = '0x' + d.spi.toString(16).padStart(8, '0');
  return `"IPv4","${src}","${dst}","${spi}","AES-GCM with 16 octet ICV [RFC4106]","0x${hex(d.encKey)}","NULL",""`;
}

/**
 * esp_sa lines for both directions of an AES-GCM-16 Child SA (addresses default to "*").
 * Wireshark 4.0 has no ChaCha20-Poly1305 for ESP: returns [] for such SAs.
 */
export function espSaUatLines(sa: SaPair, addresses?: { station: string; nic: string }): string[] {
  if (sa.transform !== 'aes-gcm-16') return [];
  const st = addresses?.station ?? '*';
  const nic = addresses?.nic ?? '*';
  return [espLine(sa.toNic, st, nic), espLine(sa.fromNic, nic, st)];
}
