/**
 * RMCP header and RMCP ACK (DMTF DSP0136 ASF 2.0 §3.2.2).
 *
 * Wire layout (4 bytes, every field one byte):
 *   Version (06h = RMCP 1.0) | Reserved (00h) | Sequence Number | Class of Message
 * Class of Message: bit 7 = ACK, bits 6:5 reserved (0), bits 4:0 = class (06h ASF, 07h IPMI,
 * 08h OEM). Only 6/7/8 are valid here, as in Wireshark, FreeIPMI and ipmitool.
 *
 * Pure: bytes in, values out. Bad input from the network throws `ProtocolError`; a bad value
 * handed to an encoder by local code throws `UsageError`.
 */
import { ProtocolError, UsageError } from '../common/errors.js';

/** "ASF RMCP Version 1.0" (§3.2.2, p.21). 0-5 are legacy RMCP, 7-255 reserved. */
export const RMCP_VERSION_1_0 = 0x06;
/** Sequence number FFh: "the receiver must not provide an RMCP ACK" (§3.2.2, p.21). */
export const RMCP_SEQ_NO_ACK = 0xff;

export const RMCP_CLASS_ASF = 0x06;
export const RMCP_CLASS_IPMI = 0x07;
export const RMCP_CLASS_OEM = 0x08;

/** Compatibility port 026Fh and secure port 0298h (§3.2.1, p.19; the spec's "644" is a typo). */
export const RMCP_PORT = 623;
export const RMCP_SECURE_PORT = 664;

export const RMCP_HEADER_LENGTH = 4;

const ACK_BIT = 0x80;
const RESERVED_CLASS_BITS = 0x60;
const CLASS_MASK = 0x1f;

export interface RmcpHeader {
  version: number;
  /** 0-254, or RMCP_SEQ_NO_ACK (0xFF) when no ACK is wanted. */
  sequence: number;
  /** Class of Message bits 4:0. */
  messageClass: number;
  /** Class of Message bit 7: this message is an RMCP ACK. */
  ack: boolean;
}

function isValidClass(c: number): boolean {
  return c === RMCP_CLASS_ASF || c === RMCP_CLASS_IPMI || c === RMCP_CLASS_OEM;
}

function assertByte(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xff) {
    throw new UsageError('E_USAGE', `${name}: expected an integer 0..255, got ${v}`);
  }
}

export function assertBytes(name: string, b: unknown): asserts b is Uint8Array {
  if (!(b instanceof Uint8Array)) {
    throw new UsageError('E_USAGE', `${name}: expected a Uint8Array, got ${typeof b}`);
  }
}

/**
 * Reads the 4-byte RMCP header at the start of `b` (any bytes after it are the caller's).
 * The Reserved byte is not checked (receivers should be liberal); encoders always send 00h.
 */
export function decodeRmcpHeader(b: Uint8Array): RmcpHeader {
  assertBytes('decodeRmcpHeader', b);
  if (b.length < RMCP_HEADER_LENGTH) {
    throw new ProtocolError('E_SHORT', `RMCP header needs 4 bytes, got ${b.length}: drop the datagram`);
  }
  const version = b[0];
  if (version !== RMCP_VERSION_1_0) {
    throw new ProtocolError(
      'E_VERSION',
      `RMCP version 0x${hex2(version)} is not supported (only 0x06, RMCP 1.0, DSP0136 §3.2.2)`,
    );
  }
  const cls = b[3];
  const messageClass = cls & CLASS_MASK;
  if ((cls & RESERVED_CLASS_BITS) !== 0 || !isValidClass(messageClass)) {
    throw new ProtocolError(
      'E_CLASS',
      `RMCP class of message 0x${hex2(cls)} is not ASF (06h), IPMI (07h) or OEM (08h) with bits 6:5 clear`,
    );
  }
  return { version, sequence: b[2], messageClass, ack: (cls & ACK_BIT) !== 0 };
}

export function encodeRmcpHeader(h: RmcpHeader): Uint8Array {
  const out = new Uint8Array(RMCP_HEADER_LENGTH);
  writeRmcpHeader(out, h);
  return out;
}

/** Writes the 4-byte RMCP header at the start of `out` (the message after it is the caller's). */
export function writeRmcpHeader(out: Uint8Array, h: RmcpHeader): void {
  assertByte('RMCP version', h.version);
  assertByte('RMCP sequence', h.sequence);
  if (!Number.isInteger(h.messageClass) || h.messageClass < 0 || h.messageClass > CLASS_MASK) {
    throw new UsageError('E_USAGE', `RMCP messageClass: expected an integer 0..31, got ${h.messageClass}`);
  }
  if (typeof h.ack !== 'boolean') throw new UsageError('E_USAGE', 'RMCP ack: expected a boolean');
  out[0] = h.version;
  out[1] = 0x00;
  out[2] = h.sequence;
  out[3] = (h.ack ? ACK_BIT : 0) | h.messageClass;
}

/**
 * The RMCP ACK to send for a received header, or null when none is due. §3.2.2.1 (pp.20-21):
 * acknowledge only if (a) the RMCP version is supported, (b) the message is not itself an ACK
 * (an ACK is never acknowledged) and (c) its sequence number is not FFh. The ACK copies version,
 * sequence and class and sets bit 7 of the class; it means "received", not "done".
 */
export function rmcpAckFor(h: RmcpHeader): Uint8Array | null {
  if (h.ack || h.sequence === RMCP_SEQ_NO_ACK || h.version !== RMCP_VERSION_1_0) return null;
  return encodeRmcpHeader({ ...h, ack: true });
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
