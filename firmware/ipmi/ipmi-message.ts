/**
 * The IPMI LAN message inside an IPMI payload (IPMI v2.0 §13.8, table 13-8 "IPMI LAN message"; cat. §6):
 *
 *   request:  rsAddr | netFn<<2 | rsLUN | chk1 | rqAddr | rqSeq<<2 | rqLUN | cmd | data... | chk2
 *   response: rqAddr | (netFn+1)<<2 | rqLUN | chk1 | rsAddr | rqSeq<<2 | rsLUN | cmd | cc | data... | chk2
 *
 * chk1 makes the first two bytes plus chk1 sum to 0 (mod 256); chk2 does the same for everything from byte 3
 * (rqAddr / rsAddr) to the end (§13.8, "2's complement checksum"). A response echoes the requester's
 * addresses, LUNs, rqSeq and cmd: ipmitool matches responses by (rqSeq, cmd), FreeIPMI checks rqSeq, netFn and
 * cmd and both checksums (cat. §6).
 */
import { ProtocolError } from '../../common/errors.js';

export interface IpmiRequest {
  rsAddr: number;
  netFn: number;
  rsLun: number;
  rqAddr: number;
  rqSeq: number;
  rqLun: number;
  cmd: number;
  data: Uint8Array;
}

/** Header (6 bytes) + chk2. */
export const IPMI_REQUEST_MIN = 7;

export function checksum(b: Uint8Array, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) s = (s + b[i]) & 0xff;
  return (0x100 - s) & 0xff;
}

/** Decodes a request; a short message, an odd (response) netFn or a wrong checksum throws ProtocolError. */
export function decodeIpmiRequest(b: Uint8Array): IpmiRequest {
  if (b.length < IPMI_REQUEST_MIN) {
    throw new ProtocolError('E_SHORT', `an IPMI request needs ${IPMI_REQUEST_MIN} bytes, got ${b.length}: drop it`);
  }
  if (checksum(b, 0, 2) !== b[2]) throw new ProtocolError('E_CHECKSUM', 'IPMI message header checksum (chk1) is wrong: drop it');
  if (checksum(b, 3, b.length - 1) !== b[b.length - 1]) {
    throw new ProtocolError('E_CHECKSUM', 'IPMI message data checksum (chk2) is wrong: drop it');
  }
  const netFn = b[1] >> 2;
  if (netFn & 1) throw new ProtocolError('E_TYPE', `netFn 0x${netFn.toString(16)} is a response, not a request: drop it`);
  return {
    rsAddr: b[0],
    netFn,
    rsLun: b[1] & 3,
    rqAddr: b[3],
    rqSeq: b[4] >> 2,
    rqLun: b[4] & 3,
    cmd: b[5],
    data: b.slice(6, b.length - 1),
  };
}

/** The response to `req` with completion code `cc` and `data` after it. */
export function encodeIpmiResponse(req: IpmiRequest, cc: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(8 + data.length);
  out[0] = req.rqAddr;
  out[1] = ((req.netFn + 1) << 2) | req.rqLun;
  out[2] = checksum(out, 0, 2);
  out[3] = req.rsAddr;
  out[4] = (req.rqSeq << 2) | req.rsLun;
  out[5] = req.cmd;
  out[6] = cc;
  out.set(data, 7);
  out[out.length - 1] = checksum(out, 3, out.length - 1);
  return out;
}
