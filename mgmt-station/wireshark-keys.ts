/**
 * Key export for Wireshark/tshark, like SSLKEYLOGFILE: `esp_sa` UAT lines (8 columns, Wireshark 4.0) for
 * every ESP SA the station holds, and `ikev2_decryption_table` lines for its IKE SAs.
 * Formats: ../shared/reference/tshark/README.md §3 and §5 (keys for esp_sa start with 0x; IKE keys are bare hex).
 */
import { hex } from '../firmware/bytes.js';
import type { SaPair, SaDirection } from '../firmware/sa.js';
import type { NicRecord } from './store/store.js';

const ESP_ENCRYPTION_NAME: Record<SaPair['transform'], string | null> = {
  'aes-gcm-16': 'AES-GCM with 16 octet ICV [RFC4106]',
  'chacha20-poly1305': null, // Wireshark 4.0 has no ChaCha20-Poly1305 for ESP
};

function spiHex(spi: number): string {
  return '0x' + (spi >>> 0).toString(16).padStart(8, '0');
}

/** Two UAT rows (station -> NIC and NIC -> station), or comment lines where Wireshark cannot decrypt. */
export function espSaUatLines(nic: NicRecord, sa: SaPair, state = 'held'): string[] {
  const name = ESP_ENCRYPTION_NAME[sa.transform];
  const row = (dir: SaDirection, src: string, dst: string, what: string) =>
    name
      ? `"IPv4","${src}","${dst}","${spiHex(dir.spi)}","${name}","0x${hex(dir.encKey)}","NULL",""`
      : `# ${nic.id} SA ${sa.generation} ${what} SPI ${spiHex(dir.spi)}: ${sa.transform} cannot be decrypted by Wireshark 4.0`;
  return [
    `# ${nic.id} SA generation ${sa.generation}, ${state} (${sa.policy}${sa.esn ? ', ESN: Wireshark 4.0 cannot verify ESN packets' : ''})`,
    row(sa.toNic, '*', nic.address, 'station->NIC'),
    row(sa.fromNic, nic.address, '*', 'NIC->station'),
  ];
}

