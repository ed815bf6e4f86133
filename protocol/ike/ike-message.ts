/**
 * IKEv2 message framing: the fixed header (RFC 7296 §3.1) and the chain of generic payload
 * headers (§3.2). Payload bodies are decoded in ike-payloads.ts / sa-payload.ts.
 *
 *   SPIi(8) | SPIr(8) | Next Payload | MjVer|MnVer | Exchange Type | Flags | Message ID(4) | Length(4)
 *   generic payload: Next Payload | C|RESERVED | Payload Length(2) | body
 *
 * Bad input throws ProtocolError('E_IKE_SYNTAX' / 'E_VERSION'); callers drop and count it.
 */
import { concat, putU16, putU32, u16, u32 } from '../../common/bytes.js';
import { ProtocolError, UsageError } from '../../common/errors.js';
import {
  FLAG_INITIATOR,
  FLAG_RESPONSE,
  GENERIC_HEADER_LENGTH,
  IKE_HEADER_LENGTH,
  IKE_VERSION,
  PAYLOAD,
  isKnownPayloadType,
} from './constants.js';

export interface IkeHeader {
  spiI: Uint8Array;
  spiR: Uint8Array;
  nextPayload: number;
  majorVersion: number;
  minorVersion: number;
  exchange: number;
  flags: number;
  messageId: number;
  length: number;
}

/** Header fields a sender chooses; Next Payload and Length follow from the payloads. */
export interface HeaderFields {
  spiI: Uint8Array;
  spiR: Uint8Array;
  exchange: number;
  /** Sent by the original initiator of the IKE SA (§3.1 I flag). */
  initiator: boolean;
  response: boolean;
  messageId: number;
}

export function isResponse(h: IkeHeader): boolean {
  return (h.flags & FLAG_RESPONSE) !== 0;
}

export function fromInitiator(h: IkeHeader): boolean {
  return (h.flags & FLAG_INITIATOR) !== 0;
}

function syntax(msg: string): never {
  throw new ProtocolError('E_IKE_SYNTAX', msg);
}

/**
 * Decodes the header of a whole UDP payload. The Length field must equal the datagram length
 * (§3.1 "Length of the total message (header + payloads) in octets").
 */
export function decodeHeader(b: Uint8Array): IkeHeader {
  if (!(b instanceof Uint8Array)) throw new UsageError('E_USAGE', 'decodeHeader: expected a Uint8Array');
  if (b.length < IKE_HEADER_LENGTH) {
    throw new ProtocolError('E_SHORT', `IKE header needs 28 octets, got ${b.length}`);
  }
  const h: IkeHeader = {
    spiI: b.subarray(0, 8),
    spiR: b.subarray(8, 16),
    nextPayload: b[16],
    majorVersion: b[17] >> 4,
    minorVersion: b[17] & 0x0f,
    exchange: b[18],
    flags: b[19],
    messageId: u32(b, 20),
    length: u32(b, 24),
  };
  if (h.length !== b.length) syntax(`IKE Length field says ${h.length}, datagram has ${b.length} octets`);
  return h;
}

export function encodeHeader(f: HeaderFields, nextPayload: number, length: number): Uint8Array {
  if (f.spiI.length !== 8 || f.spiR.length !== 8) throw new UsageError('E_USAGE', 'IKE SPIs are 8 octets');
  const b = new Uint8Array(IKE_HEADER_LENGTH);
  b.set(f.spiI, 0);
  b.set(f.spiR, 8);
  b[16] = nextPayload;
  b[17] = IKE_VERSION;
  b[18] = f.exchange;
  b[19] = (f.initiator ? FLAG_INITIATOR : 0) | (f.response ? FLAG_RESPONSE : 0);
  putU32(b, 20, f.messageId >>> 0);
  putU32(b, 24, length);
  return b;
}

/** A payload as it arrives: type, critical bit (§3.2) and body (after the 4-octet header). */
export interface RawPayload {
  type: number;
  critical: boolean;
  body: Uint8Array;
  /** For the SK payload only: the type of the first payload inside it (§3.14). */
  innerFirst?: number;
}

/** A payload to send (the critical bit is never set by us: every type we send is standard). */
export interface EncodedPayload {
  type: number;
  body: Uint8Array;
}

const MAX_PAYLOADS = 64;

/**
 * Walks the chain from `first` over b[offset, end). An SK payload ends the chain (its Next
 * Payload names the first inner payload, §3.14) and must reach `end`. The chain must end
 * exactly at `end`: trailing octets are a syntax error.
 */
export function decodePayloadChain(first: number, b: Uint8Array, offset: number, end: number): RawPayload[] {
  const out: RawPayload[] = [];
  let type = first;
  let o = offset;
  while (type !== PAYLOAD.NONE) {
    if (out.length >= MAX_PAYLOADS) syntax(`more than ${MAX_PAYLOADS} payloads`);
    if (o + GENERIC_HEADER_LENGTH > end) syntax(`payload ${type} header runs past the end`);
    const next = b[o];
    const critical = (b[o + 1] & 0x80) !== 0;
    const len = u16(b, o + 2);
    if (len < GENERIC_HEADER_LENGTH || o + len > end) syntax(`payload ${type} length ${len} out of range`);
    const body = b.subarray(o + GENERIC_HEADER_LENGTH, o + len);
    o += len;
    if (type === PAYLOAD.SK) {
      if (o !== end) syntax('SK payload must be the last payload (§3.14)');
      out.push({ type, critical, body, innerFirst: next });
      return out;
    }
    out.push({ type, critical, body });
    type = next;
  }
  if (o !== end) syntax(`${end - o} octets after the last payload`);
  return out;
}

/** The first payload that is unrecognized *and* critical (§2.5), else null. */
export function unsupportedCritical(payloads: RawPayload[]): number | null {
  for (const p of payloads) if (p.critical && !isKnownPayloadType(p.type)) return p.type;
  return null;
}

export function encodePayloadChain(payloads: EncodedPayload[]): { first: number; bytes: Uint8Array } {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i];
    const len = GENERIC_HEADER_LENGTH + p.body.length;
    if (len > 0xffff) throw new UsageError('E_USAGE', `payload ${p.type} too long (${len})`);
    const h = new Uint8Array(GENERIC_HEADER_LENGTH);
    h[0] = i + 1 < payloads.length ? payloads[i + 1].type : PAYLOAD.NONE;
    putU16(h, 2, len);
    parts.push(h, p.body);
  }
  return { first: payloads.length ? payloads[0].type : PAYLOAD.NONE, bytes: concat(...parts) };
}

/** An unencrypted message (IKE_SA_INIT, §1.2). */
export function encodeMessage(f: HeaderFields, payloads: EncodedPayload[]): Uint8Array {
  const chain = encodePayloadChain(payloads);
  const total = IKE_HEADER_LENGTH + chain.bytes.length;
  return concat(encodeHeader(f, chain.first, total), chain.bytes);
}

/** Decodes an unencrypted message: header plus top-level chain. */
export function decodeMessage(b: Uint8Array): { header: IkeHeader; payloads: RawPayload[] } {
  const header = decodeHeader(b);
  const payloads = decodePayloadChain(header.nextPayload, b, IKE_HEADER_LENGTH, b.length);
  return { header, payloads };
}

export function findPayload(payloads: RawPayload[], type: number): RawPayload | undefined {
  return payloads.find((p) => p.type === type);
}
