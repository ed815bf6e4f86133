/**
 * The record frame every kind of EEPROM record uses (DESIGN §3): kind, format version, payload length and a
 * generation, then the payload and a CRC-32, starting on a page boundary with the unused tail of its last page
 * erased (0xFF). Boot takes the newest record of a kind that passes its CRC, so a write torn by a power loss
 * leaves the previous copy in force. The image (eeprom-image.ts), the executed-command record (exec-record.ts) and
 * the IPMI users record (eeprom-ipmi-users.ts) are built of these frames.
 *
 *   +0 kind u8 | +1 format version u8 (1) | +2 payload length u16 | +4 generation u32 | +8 payload |
 *   CRC-32 u32 (IEEE, crc32.ts) over everything before it. The header has the magic 'LFLN' in front.
 */
import { crc32 } from './crc32.js';
import { ERASED, type EepromDevice } from './eeprom-device.js';
import { ProtocolError } from '../common/errors.js';
import { putU16, putU32, u16, u32 } from '../common/bytes.js';

export const EEPROM_SIZE = 32768;
export const EEPROM_PAGE = 64;
export const EEPROM_FORMAT_VERSION = 1;

export const MAGIC = Uint8Array.of(0x4c, 0x46, 0x4c, 0x4e); // 'LFLN'
export const KIND = { header: 0x01, config: 0x02, sa: 0x03, directory: 0x04, checkpoint: 0x05, exec: 0x06, ipmiUsers: 0x07, identity: 0x08 } as const;
export const FRAME = 8;
export const CRC = 4;

export const pageRange = (first: number, n: number): string => (n === 1 ? `page ${first}` : `pages ${first}-${first + n - 1}`);

export function corrupt(file: string, record: string, detail: string): ProtocolError {
  return new ProtocolError(
    'E_EEPROM_CRC',
    `${file}: ${record} is corrupt (${detail}). The image cannot be trusted and is not reset silently: ` +
      `restore the file from a backup, or re-enroll the NIC with a freshly formatted image.`,
  );
}

export type Decoded = { state: 'blank' } | { state: 'bad'; why: string } | { state: 'ok'; generation: number; payload: Uint8Array };

export function encodeRecord(kind: number, generation: number, payload: Uint8Array, magic = false): Uint8Array {
  const pre = magic ? MAGIC.length : 0;
  const len = pre + FRAME + payload.length + CRC;
  const out = new Uint8Array(Math.ceil(len / EEPROM_PAGE) * EEPROM_PAGE).fill(ERASED);
  if (magic) out.set(MAGIC, 0);
  out[pre] = kind;
  out[pre + 1] = EEPROM_FORMAT_VERSION;
  putU16(out, pre + 2, payload.length);
  putU32(out, pre + 4, generation);
  out.set(payload, pre + FRAME);
  putU32(out, len - CRC, crc32(out.subarray(0, len - CRC)));
  return out;
}

export function isBlank(b: Uint8Array): boolean {
  return allBytes(b, ERASED) || allBytes(b, 0);
}

/** Every byte of `b` is `v` (a plain loop: boot checks a few hundred pages per NIC, and `every` with a closure per byte cost a fleet's start-up). */
export function allBytes(b: Uint8Array, v: number): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== v) return false;
  return true;
}

/** Decodes the record at the start of `buf` (one slot's bytes). A wrong version with a good CRC throws. */
export function decodeRecord(buf: Uint8Array, kind: number, file: string, record: string, magic = false): Decoded {
  const pre = magic ? MAGIC.length : 0;
  if (isBlank(buf.subarray(pre, pre + FRAME))) return { state: 'blank' };
  if (buf[pre] !== kind) return { state: 'bad', why: `kind 0x${buf[pre].toString(16)} where 0x${kind.toString(16)} belongs` };
  const len = pre + FRAME + u16(buf, pre + 2) + CRC;
  if (len > buf.length) return { state: 'bad', why: `length ${len} overruns the ${buf.length}-byte slot` };
  const stored = u32(buf, len - CRC);
  const computed = crc32(buf.subarray(0, len - CRC));
  if (stored !== computed) {
    return { state: 'bad', why: `CRC-32 is 0x${computed.toString(16).padStart(8, '0')}, stored 0x${stored.toString(16).padStart(8, '0')}` };
  }
  if (buf[pre + 1] !== EEPROM_FORMAT_VERSION) {
    throw new ProtocolError('E_VERSION', `${file}: ${record} has format version ${buf[pre + 1]}; this firmware reads version ${EEPROM_FORMAT_VERSION}. Use the Lifeline release that wrote the image.`);
  }
  return { state: 'ok', generation: u32(buf, pre + 4), payload: buf.slice(pre + FRAME, len - CRC) };
}

/** Index of the newest good record among copies, or -1. */
export function newest(copies: Decoded[]): number {
  let best = -1;
  copies.forEach((d, i) => {
    const b = copies[best];
    if (d.state === 'ok' && (best < 0 || (b.state === 'ok' && d.generation > b.generation))) best = i;
  });
  return best;
}

/** Writes a record page by page (one device write per page, as the part takes it). */
export function writePages(dev: EepromDevice, firstPage: number, record: Uint8Array): void {
  for (let o = 0; o < record.length; o += EEPROM_PAGE) dev.write(firstPage * EEPROM_PAGE + o, record.subarray(o, o + EEPROM_PAGE));
}
