/**
 * RMCP+ session set-up payloads (IPMI v2.0 §13.17-13.23; cat. §3, §4). Decoders for what the console sends
 * (Open Session Request, RAKP 1, RAKP 3) throw ProtocolError when the payload cannot be read at all; fields
 * that can be read but are wrong are the handshake's business (it answers with a status code). Encoders for
 * what the BMC sends (Open Session Response, RAKP 2, RAKP 4).
 */
import { ProtocolError } from '../../common/errors.js';
import { putU32le, u32le } from './_le.js';
import type { CipherSuite } from './cipher-suites.js';

export interface OpenSessionRequest {
  tag: number;
  /** Bits 3:0 of byte 1: requested maximum privilege, 0 = "highest level matching the proposed algorithms". */
  requestedPrivilege: number;
  /** Remote console session ID SID_M. */
  sidM: number;
  /** Algorithm numbers (bits 5:0), or null where the payload record is malformed (wrong type byte or length). */
  auth: number | null;
  integrity: number | null;
  confidentiality: number | null;
}

/** Open Session Request (§13.17): 32 bytes; tag, privilege, reserved, SID_M, then three 8-byte algorithm records. */
export function decodeOpenSessionRequest(p: Uint8Array): OpenSessionRequest {
  if (p.length < 32) throw new ProtocolError('E_SHORT', `an Open Session Request is 32 bytes, got ${p.length}: drop it`);
  // Each record: payload type (0 auth, 1 integrity, 2 confidentiality), 2 reserved, length 08h, algorithm, 3 reserved.
  const alg = (at: number, type: number) => (p[at] === type && p[at + 3] === 8 ? p[at + 4] & 0x3f : null);
  return {
    tag: p[0],
    requestedPrivilege: p[1] & 0x0f,
    sidM: u32le(p, 4),
    auth: alg(8, 0),
    integrity: alg(16, 1),
    confidentiality: alg(24, 2),
  };
}

/**
 * Open Session Response (§13.18). On success 36 bytes; on an error only tag, status, reserved and SID_M
 * (8 bytes: ipmitool and FreeIPMI read no further when the status is not 00h, cat. §3.2).
 */
export function encodeOpenSessionResponse(
  tag: number,
  status: number,
  sidM: number,
  ok?: { maxPrivilege: number; sidC: number; suite: CipherSuite },
): Uint8Array {
  const out = new Uint8Array(ok ? 36 : 8);
  out[0] = tag;
  out[1] = status;
  putU32le(out, 4, sidM);
  if (ok) {
    out[2] = ok.maxPrivilege;
    putU32le(out, 8, ok.sidC);
    out.set([0x00, 0, 0, 8, ok.suite.auth, 0, 0, 0], 12);
    out.set([0x01, 0, 0, 8, ok.suite.integrity, 0, 0, 0], 20);
    out.set([0x02, 0, 0, 8, ok.suite.confidentiality, 0, 0, 0], 28);
  }
  return out;
}

export interface Rakp1 {
  tag: number;
  sidC: number;
  rM: Uint8Array;
  /** Byte 24 as sent: bit 4 name-only lookup, bits 3:0 requested maximum privilege. */
  roleM: number;
  /** ULEN_M as sent (0-255; over 16 is answered with status 0Ch). */
  nameLength: number;
  /** The user name bytes actually present (up to ULEN_M). */
  userName: Uint8Array;
}

/** RAKP Message 1 (§13.20): tag, 3 reserved, SID_C, R_M (16), ROLE_M, 2 reserved, ULEN_M, user name. */
export function decodeRakp1(p: Uint8Array): Rakp1 {
  if (p.length < 28) throw new ProtocolError('E_SHORT', `RAKP 1 needs at least 28 bytes, got ${p.length}: drop it`);
  return {
    tag: p[0],
    sidC: u32le(p, 4),
    rM: p.slice(8, 24),
    roleM: p[24],
    nameLength: p[27],
    userName: p.slice(28, 28 + Math.min(p[27], 16)),
  };
}

/**
 * RAKP Message 2 (§13.21): tag, status, reserved, SID_M, R_C, GUID_C, then the full HMAC. An error status
 * carries no more than tag, status, reserved and SID_M: no random number, no GUID and above all no HMAC,
 * so an unknown name leaks no password oracle (cat. §9).
 */
export function encodeRakp2(tag: number, status: number, sidM: number, ok?: { rC: Uint8Array; guid: Uint8Array; authCode: Uint8Array }): Uint8Array {
  const out = new Uint8Array(ok ? 40 + ok.authCode.length : 8);
  out[0] = tag;
  out[1] = status;
  putU32le(out, 4, sidM);
  if (ok) {
    out.set(ok.rC, 8);
    out.set(ok.guid, 24);
    out.set(ok.authCode, 40);
  }
  return out;
}

export interface Rakp3 {
  tag: number;
  /** The console's verdict on RAKP 2 (00h = it verified). */
  status: number;
  sidC: number;
  authCode: Uint8Array;
}

/** RAKP Message 3 (§13.22): tag, status, reserved, SID_C, the full HMAC. */
export function decodeRakp3(p: Uint8Array): Rakp3 {
  if (p.length < 8) throw new ProtocolError('E_SHORT', `RAKP 3 needs at least 8 bytes, got ${p.length}: drop it`);
  return { tag: p[0], status: p[1], sidC: u32le(p, 4), authCode: p.slice(8) };
}

/** RAKP Message 4 (§13.23): tag, status, reserved, SID_M, then the ICV (only when the status is 00h). */
export function encodeRakp4(tag: number, status: number, sidM: number, icv?: Uint8Array): Uint8Array {
  const out = new Uint8Array(8 + (icv?.length ?? 0));
  out[0] = tag;
  out[1] = status;
  putU32le(out, 4, sidM);
  if (icv) out.set(icv, 8);
  return out;
}
