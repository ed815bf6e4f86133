/**
 * Key export for Wireshark/tshark, like SSLKEYLOGFILE: `esp_sa` UAT lines (8 columns, Wireshark 4.0) for every
 * ESP SA in the store, each headed by a comment naming the NIC, the generation and its state. The rows
 * themselves come from protocol/ike/wireshark-uat.ts (formats: ../shared/reference/tshark/README.md §3, §5).
 */
import { espSaUatLines as rows } from '../protocol/index.js';
import type { SaPair } from '../wire/sa.js';
import type { NicRecord } from './store/store.js';

export function espSaUatLines(nic: NicRecord, sa: SaPair, state = 'held'): string[] {
  const head = `# ${nic.id} SA generation ${sa.generation}, ${state} (${sa.policy}${sa.esn ? ', ESN: Wireshark 4.0 cannot verify ESN packets' : ''})`;
  const lines = rows(sa, { station: '*', nic: nic.address });
  if (lines.length === 0) return [head, `# ${sa.transform} cannot be decrypted by Wireshark 4.0 (SPIs 0x${sa.toNic.spi.toString(16)}, 0x${sa.fromNic.spi.toString(16)})`];
  return [head, ...lines];
}
