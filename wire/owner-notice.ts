/**
 * "You have a new owner": the message a station that took a NIC over sends it (DESIGN §5), so the NIC points
 * its heartbeats and alerts at that station. ASF defines no such message, so it travels as an RMCP OEM-class
 * message (class 0x08, DSP0136 §3.2.2) inside the secure channel only — it is authenticated by the SA it
 * arrives under, and the NIC ignores it in the clear.
 *
 * Layout after the 4-byte RMCP header (big-endian):
 *   IANA enterprise number u32 = 32473 (RFC 5612: reserved for documentation and examples; a lab protocol)
 *   type u8 = 0x01 (owner notice) | reserved u8 | length u16 = 12
 *   epoch u32 | station IPv4 address (4) | station heartbeat port u16 | reserved u16
 * The NIC answers with an RMCP ACK (the RMCP sequence must not be 0xFF). A notice with an epoch lower than one
 * already seen is stale (a revived former owner) and is refused.
 */
import { ProtocolError, UsageError } from '../common/errors.js';
import { putU16, putU32, u16, u32 } from '../common/bytes.js';
import { RMCP_CLASS_OEM, RMCP_VERSION_1_0 } from './rmcp.js';

export const LIFELINE_OEM_IANA = 32473;
export const OWNER_NOTICE_TYPE = 0x01;
const BODY = 12;

export interface OwnerNotice { epoch: number; address: string; port: number }

export function encodeOwnerNotice(rmcpSeq: number, n: OwnerNotice): Uint8Array {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(n.address);
  if (!m) throw new UsageError('E_USAGE', `owner notice needs an IPv4 station address, got '${n.address}'`);
  if (rmcpSeq === 0xff) throw new UsageError('E_USAGE', 'an owner notice must ask for an RMCP ACK (sequence != 0xFF)');
  const b = new Uint8Array(4 + 8 + BODY);
  b.set([RMCP_VERSION_1_0, 0, rmcpSeq & 0xff, RMCP_CLASS_OEM]);
  putU32(b, 4, LIFELINE_OEM_IANA);
  b[8] = OWNER_NOTICE_TYPE;
  putU16(b, 10, BODY);
  putU32(b, 12, n.epoch >>> 0);
  for (let i = 0; i < 4; i++) b[16 + i] = Number(m[i + 1]) & 0xff;
  putU16(b, 20, n.port);
  return b;
}

/** Decode the OEM body that follows a 4-byte RMCP header of class OEM. */
export function decodeOwnerNotice(b: Uint8Array, offset = 4): OwnerNotice {
  if (b.length - offset !== 8 + BODY) throw new ProtocolError('E_LENGTH', `OEM message of ${b.length - offset} bytes; an owner notice has ${8 + BODY}`);
  if (u32(b, offset) !== LIFELINE_OEM_IANA) throw new ProtocolError('E_IANA', `OEM IANA ${u32(b, offset)} is not Lifeline's ${LIFELINE_OEM_IANA}`);
  if (b[offset + 4] !== OWNER_NOTICE_TYPE || u16(b, offset + 6) !== BODY) throw new ProtocolError('E_TYPE', `OEM message type ${b[offset + 4]} is not an owner notice`);
  const o = offset + 8;
  return { epoch: u32(b, o), address: `${b[o + 4]}.${b[o + 5]}.${b[o + 6]}.${b[o + 7]}`, port: u16(b, o + 8) };
}
