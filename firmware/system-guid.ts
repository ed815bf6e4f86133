/**
 * The NIC's serial number and system GUID.
 *
 * Serial: drawn once when the EEPROM is formatted and kept in its header (eeprom-image.ts): 'LL' and 12 hex digits
 * (48 random bits), so NICs of two emulators never share one even where their ids collide, which is how a station
 * tells them apart (E_NIC_IDENTITY). Images written before NIC id prefixes have their id as serial, and keep it.
 *
 * System GUID (IPMI v2.0 §22.14 Get System GUID; RAKP 2's GUID_C, §13.21): stable for a NIC across reboots and
 * unique per NIC, with no randomness drawn and nothing stored beyond the serial. An RFC 4122 §4.3 name-based UUID
 * (version 5, SHA-1) of the NIC's serial in a namespace of Lifeline's own (for an image of an earlier release,
 * whose serial is its id, the GUID it had), sent as IPMI sends a GUID: least significant byte first (the UUID's
 * 16 bytes reversed; FreeIPMI's bmc-info prints it back as the UUID).
 */
import { createHash } from 'node:crypto';

/** The namespace UUID (made once at random for this purpose): 5d0c3f8e-4a57-4b8e-9a51-6c1f0e2b7d44. */
const NAMESPACE = Uint8Array.from(Buffer.from('5d0c3f8e4a574b8e9a516c1f0e2b7d44', 'hex'));

/** A new serial: 'LL' and 12 upper-case hex digits from `random` (the caller's randomness, 6 bytes). */
export function newSerial(random: (n: number) => Uint8Array): string {
  return 'LL' + Buffer.from(random(6)).toString('hex').toUpperCase();
}

/** The UUID in RFC 4122 byte order (as its text form reads). */
export function systemUuid(serial: string): Uint8Array {
  const h = createHash('sha1').update(NAMESPACE).update(serial, 'utf8').digest();
  const g = Uint8Array.from(h.subarray(0, 16));
  g[6] = (g[6] & 0x0f) | 0x50; // version 5
  g[8] = (g[8] & 0x3f) | 0x80; // RFC 4122 variant
  return g;
}

/** The UUID's text form, e.g. for comparing with what a tool prints. */
export function systemUuidText(serial: string): string {
  const h = Buffer.from(systemUuid(serial)).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The 16 bytes IPMI carries: the UUID least significant byte first. */
export function systemGuid(serial: string): Uint8Array {
  return systemUuid(serial).reverse();
}
