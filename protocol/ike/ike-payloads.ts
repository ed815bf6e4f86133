/**
 * Bodies of the simple IKEv2 payloads (RFC 7296 §3.4-3.13): KE, ID, AUTH, Nonce, Notify,
 * Delete, Traffic Selectors. The SA payload has its own file (sa-payload.ts).
 * Decoders take the body after the generic header and throw ProtocolError('E_IKE_SYNTAX').
 */
import { concat, putU16, u16 } from '../../common/bytes.js';
import { ProtocolError, UsageError } from '../../common/errors.js';
import { NONCE_MAX, NONCE_MIN, PAYLOAD, TS_IPV4_ADDR_RANGE } from './constants.js';
import type { EncodedPayload } from './ike-message.js';

function syntax(msg: string): never {
  throw new ProtocolError('E_IKE_SYNTAX', msg);
}

const EMPTY = new Uint8Array(0);

// §3.4 Key Exchange: DH Group Num(2) | RESERVED(2) | Key Exchange Data
export interface KePayload {
  group: number;
  data: Uint8Array;
}
export function encodeKe(type: typeof PAYLOAD.KE, group: number, data: Uint8Array): EncodedPayload {
  const b = new Uint8Array(4 + data.length);
  putU16(b, 0, group);
  b.set(data, 4);
  return { type, body: b };
}
export function decodeKe(body: Uint8Array): KePayload {
  if (body.length < 4) syntax('KE payload shorter than 4 octets');
  return { group: u16(body, 0), data: body.subarray(4) };
}

// §3.5 Identification: ID Type | RESERVED(3) | Identification Data
export interface IdPayload {
  idType: number;
  data: Uint8Array;
  /** The whole body: "RestOfInitIDPayload" / "RestOfRespIDPayload" of §2.15. */
  body: Uint8Array;
}
export function encodeId(type: number, idType: number, data: Uint8Array): EncodedPayload {
  const b = new Uint8Array(4 + data.length);
  b[0] = idType;
  b.set(data, 4);
  return { type, body: b };
}
export function decodeId(body: Uint8Array): IdPayload {
  if (body.length < 5) syntax('ID payload without identification data');
  return { idType: body[0], data: body.subarray(4), body };
}

// §3.8 Authentication: Auth Method | RESERVED(3) | Authentication Data
export interface AuthPayload {
  method: number;
  data: Uint8Array;
}
export function encodeAuth(method: number, data: Uint8Array): EncodedPayload {
  const b = new Uint8Array(4 + data.length);
  b[0] = method;
  b.set(data, 4);
  return { type: PAYLOAD.AUTH, body: b };
}
export function decodeAuth(body: Uint8Array): AuthPayload {
  if (body.length < 5) syntax('AUTH payload without authentication data');
  return { method: body[0], data: body.subarray(4) };
}

// §3.9 Nonce: 16..256 octets
export function encodeNonce(nonce: Uint8Array): EncodedPayload {
  if (nonce.length < NONCE_MIN || nonce.length > NONCE_MAX) throw new UsageError('E_USAGE', 'nonce must be 16..256 octets');
  return { type: PAYLOAD.NONCE, body: nonce };
}
export function decodeNonce(body: Uint8Array): Uint8Array {
  if (body.length < NONCE_MIN || body.length > NONCE_MAX) syntax(`nonce of ${body.length} octets (§3.9: 16..256)`);
  return body;
}

// §3.10 Notify: Protocol ID | SPI Size | Notify Message Type(2) | SPI | Notification Data
export interface NotifyPayload {
  protocol: number;
  spi: Uint8Array;
  notifyType: number;
  data: Uint8Array;
}
export function encodeNotify(notifyType: number, data: Uint8Array = EMPTY, protocol = 0, spi: Uint8Array = EMPTY): EncodedPayload {
  const b = new Uint8Array(4 + spi.length + data.length);
  b[0] = protocol;
  b[1] = spi.length;
  putU16(b, 2, notifyType);
  b.set(spi, 4);
  b.set(data, 4 + spi.length);
  return { type: PAYLOAD.NOTIFY, body: b };
}
export function decodeNotify(body: Uint8Array): NotifyPayload {
  if (body.length < 4) syntax('Notify payload shorter than 4 octets');
  const spiSize = body[1];
  if (4 + spiSize > body.length) syntax('Notify SPI runs past the payload');
  return {
    protocol: body[0],
    spi: body.subarray(4, 4 + spiSize),
    notifyType: u16(body, 2),
    data: body.subarray(4 + spiSize),
  };
}

// §3.11 Delete: Protocol ID | SPI Size | Num of SPIs(2) | SPIs
export interface DeletePayload {
  protocol: number;
  spis: Uint8Array[];
}
export function encodeDelete(protocol: number, spis: Uint8Array[]): EncodedPayload {
  const size = spis.length ? spis[0].length : 0;
  const head = new Uint8Array(4);
  head[0] = protocol;
  head[1] = size;
  putU16(head, 2, spis.length);
  return { type: PAYLOAD.DELETE, body: concat(head, ...spis) };
}
export function decodeDelete(body: Uint8Array): DeletePayload {
  if (body.length < 4) syntax('Delete payload shorter than 4 octets');
  const size = body[1];
  const n = u16(body, 2);
  if (body.length !== 4 + size * n) syntax('Delete payload length does not match SPI size x count');
  if (n > 0 && size === 0) syntax('Delete payload lists SPIs of size 0');
  const spis: Uint8Array[] = [];
  for (let i = 0; i < n; i++) spis.push(body.subarray(4 + i * size, 4 + (i + 1) * size));
  return { protocol: body[0], spis };
}

// §3.13 Traffic Selector: Number of TSs | RESERVED(3) | selectors
// §3.13.1 selector: TS Type | IP Protocol ID | Selector Length(2) | Start Port | End Port | Start Addr | End Addr
export interface TrafficSelector {
  tsType: number;
  ipProtocol: number;
  startPort: number;
  endPort: number;
  startAddress: Uint8Array;
  endAddress: Uint8Array;
}

/** Any IPv4 address, one IP protocol, one port range (TS_IPV4_ADDR_RANGE). */
export function ipv4Selector(ipProtocol: number, startPort: number, endPort: number): TrafficSelector {
  return {
    tsType: TS_IPV4_ADDR_RANGE,
    ipProtocol,
    startPort,
    endPort,
    startAddress: new Uint8Array([0, 0, 0, 0]),
    endAddress: new Uint8Array([255, 255, 255, 255]),
  };
}

export function encodeTs(type: number, selectors: TrafficSelector[]): EncodedPayload {
  const parts: Uint8Array[] = [new Uint8Array([selectors.length, 0, 0, 0])];
  for (const s of selectors) {
    const h = new Uint8Array(8);
    h[0] = s.tsType;
    h[1] = s.ipProtocol;
    putU16(h, 2, 8 + s.startAddress.length + s.endAddress.length);
    putU16(h, 4, s.startPort);
    putU16(h, 6, s.endPort);
    parts.push(h, s.startAddress, s.endAddress);
  }
  return { type, body: concat(...parts) };
}

export function decodeTs(body: Uint8Array): TrafficSelector[] {
  if (body.length < 4) syntax('TS payload shorter than 4 octets');
  const n = body[0];
  if (n === 0) syntax('TS payload with no selectors');
  const out: TrafficSelector[] = [];
  let o = 4;
  for (let i = 0; i < n; i++) {
    if (o + 8 > body.length) syntax('traffic selector header runs past the payload');
    const len = u16(body, o + 2);
    const addrLen = (len - 8) / 2;
    if (len < 16 || !Number.isInteger(addrLen) || o + len > body.length) syntax(`traffic selector length ${len}`);
    out.push({
      tsType: body[o],
      ipProtocol: body[o + 1],
      startPort: u16(body, o + 4),
      endPort: u16(body, o + 6),
      startAddress: body.subarray(o + 8, o + 8 + addrLen),
      endAddress: body.subarray(o + 8 + addrLen, o + len),
    });
    o += len;
  }
  if (o !== body.length) syntax('octets after the last traffic selector');
  return out;
}
