/**
 * IPMI session framing inside RMCP class 7 (IPMI v2.0 §13.6, table 13-8; cat. §1). After the 4-byte RMCP
 * header comes either
 *
 *   IPMI 1.5:  AuthType | Session Seq (4) | Session ID (4) | [AuthCode (16) unless AuthType = 00h] | Len (1) | message
 *   RMCP+:     06h | Payload Type (bit 7 encrypted, bit 6 authenticated) | Session ID (4) | Session Seq (4) |
 *              Payload Length (2) | payload | [Integrity PAD (FFh x 0-3) | Pad Length | Next Header 07h | AuthCode]
 *
 * Multi-byte fields are little-endian. The integrity trailer is there only when the session ID is non-zero and
 * the authenticated bit is set (cat. §1.3); the AuthCode covers AuthType through Next Header, and the pad makes
 * that a multiple of 4 bytes (§13.28.4, cat. §5.1). OEM explicit payloads (type 02h) are not decoded: this
 * BMC serves none.
 */
import { ProtocolError } from '../../common/errors.js';
import { decodeRmcpHeader, RMCP_CLASS_IPMI, RMCP_HEADER_LENGTH, RMCP_SEQ_NO_ACK, RMCP_VERSION_1_0 } from '../../wire/rmcp.js';
import { AUTH_TYPE_NONE, AUTH_TYPE_RMCPPLUS, PAYLOAD } from './ipmi-types.js';
import type { CipherSuite } from './cipher-suites.js';
import { codesEqual, integrityAuthCode } from './rakp-keys.js';
import { putU16le, putU32le, u16le, u32le } from './_le.js';

export const NEXT_HEADER_IPMI = 0x07;
const ENCRYPTED = 0x80;
const AUTHENTICATED = 0x40;
const PAYLOAD_TYPE_MASK = 0x3f;
/** RMCP+ session header after the RMCP header: AuthType, payload type, SID, seq, length. */
const V2_HEADER = 12;

export type SessionPacket =
  | {
      format: 'ipmi-1.5';
      authType: number;
      sequence: number;
      sessionId: number;
      /** The IPMI message (empty when AuthType is not 00h: such packets are refused, not read). */
      message: Uint8Array;
    }
  | {
      format: 'rmcp+';
      encrypted: boolean;
      authenticated: boolean;
      payloadType: number;
      sessionId: number;
      sequence: number;
      payload: Uint8Array;
      /** Whatever follows the payload: the integrity trailer of an authenticated in-session packet, else nothing. */
      trailer: Uint8Array;
    };

function short(what: string, need: number, got: number): ProtocolError {
  return new ProtocolError('E_SHORT', `${what} needs ${need} bytes, got ${got}: drop the datagram`);
}

/** Decodes a whole RMCP class-7 datagram down to its payload. Throws ProtocolError on anything malformed. */
export function decodeSessionPacket(datagram: Uint8Array): SessionPacket {
  const rmcp = decodeRmcpHeader(datagram);
  if (rmcp.messageClass !== RMCP_CLASS_IPMI || rmcp.ack) {
    throw new ProtocolError('E_CLASS', 'not an RMCP IPMI-class (07h) message: hand only class 7 to the IPMI responder');
  }
  const b = datagram;
  const o = RMCP_HEADER_LENGTH;
  if (b.length < o + 1) throw short('an IPMI session header', o + 1, b.length);
  const authType = b[o] & 0x0f;
  if (authType !== AUTH_TYPE_RMCPPLUS) {
    if (b[o] !== AUTH_TYPE_NONE && ![0x01, 0x02, 0x04, 0x05].includes(b[o])) {
      throw new ProtocolError('E_TYPE', `session AuthType 0x${b[o].toString(16)} is not 00h-05h or 06h (RMCP+): drop it`);
    }
    const withCode = b[o] !== AUTH_TYPE_NONE;
    const lenAt = o + 9 + (withCode ? 16 : 0);
    if (b.length < lenAt + 1) throw short('an IPMI 1.5 session header', lenAt + 1, b.length);
    const len = b[lenAt];
    // A legacy pad byte may follow the message (IPMI v1.5 §12.4), so more bytes than Len are tolerated.
    if (b.length < lenAt + 1 + len) throw short('the IPMI 1.5 message', lenAt + 1 + len, b.length);
    return {
      format: 'ipmi-1.5',
      authType: b[o],
      sequence: u32le(b, o + 1),
      sessionId: u32le(b, o + 5),
      message: withCode ? new Uint8Array(0) : b.slice(lenAt + 1, lenAt + 1 + len),
    };
  }
  if (b.length < o + V2_HEADER) throw short('an RMCP+ session header', o + V2_HEADER, b.length);
  const pt = b[o + 1];
  const payloadType = pt & PAYLOAD_TYPE_MASK;
  if (payloadType === PAYLOAD.oem) throw new ProtocolError('E_TYPE', 'OEM explicit payloads (02h) are not served: drop it');
  const len = u16le(b, o + 10);
  const start = o + V2_HEADER;
  if (b.length < start + len) throw short(`an RMCP+ payload of length ${len}`, start + len, b.length);
  return {
    format: 'rmcp+',
    encrypted: (pt & ENCRYPTED) !== 0,
    authenticated: (pt & AUTHENTICATED) !== 0,
    payloadType,
    sessionId: u32le(b, o + 2),
    sequence: u32le(b, o + 6),
    payload: b.slice(start, start + len),
    trailer: b.slice(start + len),
  };
}

/**
 * Checks the integrity trailer of an authenticated in-session packet: pad of FFh bytes (0-3), pad length,
 * next header 07h and the AuthCode over AuthType .. Next Header under K1 (§13.28.4). Returns false on any
 * mismatch; never throws.
 */
export function verifyIntegrity(datagram: Uint8Array, pkt: SessionPacket & { format: 'rmcp+' }, suite: CipherSuite, k1: Uint8Array): boolean {
  const t = pkt.trailer;
  const n = suite.authCodeLength;
  if (t.length < n + 2) return false;
  const padLength = t[t.length - n - 2];
  if (t[t.length - n - 1] !== NEXT_HEADER_IPMI || padLength > 3 || t.length !== padLength + 2 + n) return false;
  for (let i = 0; i < padLength; i++) if (t[i] !== 0xff) return false;
  const coveredEnd = RMCP_HEADER_LENGTH + V2_HEADER + pkt.payload.length + padLength + 2;
  if (coveredEnd + n !== datagram.length) return false;
  const expected = integrityAuthCode(suite, k1, datagram.subarray(RMCP_HEADER_LENGTH, coveredEnd));
  return codesEqual(expected, datagram.subarray(coveredEnd));
}

export interface RmcpPlusOut {
  payloadType: number;
  sessionId: number;
  sequence: number;
  /** The payload as it travels (already encrypted when `encrypted`). */
  payload: Uint8Array;
  encrypted: boolean;
  /** Present for an authenticated in-session packet: the trailer and AuthCode are added under K1. */
  integrity?: { suite: CipherSuite; k1: Uint8Array };
}

/** Encodes RMCP header (seq FFh, no ACK) + RMCP+ session header + payload (+ integrity trailer). */
export function encodeRmcpPlus(p: RmcpPlusOut): Uint8Array {
  const body = RMCP_HEADER_LENGTH + V2_HEADER + p.payload.length;
  const padLength = p.integrity ? (4 - ((V2_HEADER + p.payload.length + 2) % 4)) % 4 : 0;
  const trailer = p.integrity ? padLength + 2 + p.integrity.suite.authCodeLength : 0;
  const out = new Uint8Array(body + trailer);
  writeRmcpIpmiHeader(out);
  const o = RMCP_HEADER_LENGTH;
  out[o] = AUTH_TYPE_RMCPPLUS;
  out[o + 1] = (p.encrypted ? ENCRYPTED : 0) | (p.integrity ? AUTHENTICATED : 0) | p.payloadType;
  putU32le(out, o + 2, p.sessionId);
  putU32le(out, o + 6, p.sequence);
  putU16le(out, o + 10, p.payload.length);
  out.set(p.payload, o + V2_HEADER);
  if (p.integrity) {
    out.fill(0xff, body, body + padLength);
    out[body + padLength] = padLength;
    out[body + padLength + 1] = NEXT_HEADER_IPMI;
    const coveredEnd = body + padLength + 2;
    out.set(integrityAuthCode(p.integrity.suite, p.integrity.k1, out.subarray(o, coveredEnd)), coveredEnd);
  }
  return out;
}

/** An IPMI 1.5 sessionless packet (AuthType 00h, sequence 0, session ID 0), as GCAC answers travel (cat. §1.2). */
export function encodeIpmi15Sessionless(message: Uint8Array): Uint8Array {
  const o = RMCP_HEADER_LENGTH;
  const out = new Uint8Array(o + 10 + message.length);
  writeRmcpIpmiHeader(out);
  out[o] = AUTH_TYPE_NONE;
  out[o + 9] = message.length;
  out.set(message, o + 10);
  return out;
}

function writeRmcpIpmiHeader(out: Uint8Array): void {
  out[0] = RMCP_VERSION_1_0;
  out[1] = 0;
  out[2] = RMCP_SEQ_NO_ACK; // both clients send FFh and expect FFh: no RMCP ACKs on class 7 (cat. §1.1)
  out[3] = RMCP_CLASS_IPMI;
}
