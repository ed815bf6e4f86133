/**
 * The NIC's system GUID (IPMI v2.0 §22.14 Get System GUID; RAKP 2's GUID_C, §13.21): stable for a NIC across
 * reboots and unique per NIC id, with no randomness drawn and nothing stored. An RFC 4122 §4.3 name-based UUID
 * (version 5, SHA-1) of the NIC id in a namespace of Lifeline's own, sent as IPMI sends a GUID: least significant
 * byte first (the UUID's 16 bytes reversed; FreeIPMI's bmc-info prints it back as the UUID).
 */
import { createHash } from 'node:crypto';

/** The namespace UUID (made once at random for this purpose): 5d0c3f8e-4a57-4b8e-9a51-6c1f0e2b7d44. */
const NAMESPACE = Uint8Array.from(Buffer.from('5d0c3f8e4a574b8e9a516c1f0e2b7d44', 'hex'));

/** The UUID in RFC 4122 byte order (as its text form reads). */
export function systemUuid(nicId: string): Uint8Array {
  const h = createHash('sha1').update(NAMESPACE).update(nicId, 'utf8').digest();
  const g = Uint8Array.from(h.subarray(0, 16));
  g[6] = (g[6] & 0x0f) | 0x50; // version 5
  g[8] = (g[8] & 0x3f) | 0x80; // RFC 4122 variant
  return g;
}

/** The UUID's text form, e.g. for comparing with what a tool prints. */
export function systemUuidText(nicId: string): string {
  const h = Buffer.from(systemUuid(nicId)).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The 16 bytes IPMI carries: the UUID least significant byte first. */
export function systemGuid(nicId: string): Uint8Array {
  return systemUuid(nicId).reverse();
}
