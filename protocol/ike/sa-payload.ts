/**
 * Security Association payload (RFC 7296 §3.3): proposals, transforms, transform attributes.
 *
 *   Proposal:  Last Substruc (0|2) | RESERVED | Proposal Length(2) | Proposal Num | Protocol ID |
 *              SPI Size | Num Transforms | SPI | Transforms
 *   Transform: Last Substruc (0|3) | RESERVED | Transform Length(2) | Transform Type | RESERVED |
 *              Transform ID(2) | Attributes
 *   Attribute: A|Type(2) | Value(2)            (TV, A=1; Key Length is always TV, §3.3.5)
 *              0|Type(2) | Length(2) | Value    (TLV, A=0)
 */
import { concat, putU16, u16 } from '../../common/bytes.js';
import { ProtocolError } from '../../common/errors.js';
import { ATTR_FORMAT_TV, ATTR_KEY_LENGTH, PAYLOAD } from './constants.js';
import type { EncodedPayload } from './ike-message.js';

export interface Transform {
  type: number;
  id: number;
  /** Key Length attribute in bits (§3.3.5), when present. */
  keyLength?: number;
  /** Carries an attribute we do not know: it must not be selected (§3.3.6). */
  unusable?: boolean;
}

export interface Proposal {
  num: number;
  protocol: number;
  /** Empty in IKE_SA_INIT, 4 octets for ESP (the sender's inbound SPI, §3.3.1). */
  spi: Uint8Array;
  transforms: Transform[];
}

const LAST = 0;
const MORE_PROPOSALS = 2;
const MORE_TRANSFORMS = 3;

function syntax(msg: string): never {
  throw new ProtocolError('E_IKE_SYNTAX', msg);
}

function encodeTransform(t: Transform, last: boolean): Uint8Array {
  const attrs = t.keyLength === undefined ? new Uint8Array(0) : new Uint8Array(4);
  if (t.keyLength !== undefined) {
    putU16(attrs, 0, ATTR_FORMAT_TV | ATTR_KEY_LENGTH);
    putU16(attrs, 2, t.keyLength);
  }
  const h = new Uint8Array(8);
  h[0] = last ? LAST : MORE_TRANSFORMS;
  putU16(h, 2, 8 + attrs.length);
  h[4] = t.type;
  putU16(h, 6, t.id);
  return concat(h, attrs);
}

export function encodeSa(proposals: Proposal[]): EncodedPayload {
  const parts: Uint8Array[] = [];
  proposals.forEach((p, i) => {
    const ts = p.transforms.map((t, j) => encodeTransform(t, j === p.transforms.length - 1));
    const body = concat(p.spi, ...ts);
    const h = new Uint8Array(8);
    h[0] = i === proposals.length - 1 ? LAST : MORE_PROPOSALS;
    putU16(h, 2, 8 + body.length);
    h[4] = p.num;
    h[5] = p.protocol;
    h[6] = p.spi.length;
    h[7] = p.transforms.length;
    parts.push(h, body);
  });
  return { type: PAYLOAD.SA, body: concat(...parts) };
}

function decodeTransform(b: Uint8Array): Transform {
  const t: Transform = { type: b[4], id: u16(b, 6) };
  let o = 8;
  while (o < b.length) {
    if (o + 4 > b.length) syntax('transform attribute header runs past the transform');
    const typeField = u16(b, o);
    if (typeField & ATTR_FORMAT_TV) {
      if ((typeField & 0x7fff) === ATTR_KEY_LENGTH) {
        if (t.keyLength !== undefined) syntax('two Key Length attributes in one transform');
        t.keyLength = u16(b, o + 2);
      } else {
        t.unusable = true;
      }
      o += 4;
    } else {
      const len = u16(b, o + 2);
      if (o + 4 + len > b.length) syntax('TLV attribute runs past the transform');
      t.unusable = true;
      o += 4 + len;
    }
  }
  return t;
}

export function decodeSa(body: Uint8Array): Proposal[] {
  const out: Proposal[] = [];
  let o = 0;
  for (;;) {
    if (o + 8 > body.length) syntax('proposal header runs past the SA payload');
    const last = body[o];
    const len = u16(body, o + 2);
    if (last !== LAST && last !== MORE_PROPOSALS) syntax(`proposal Last Substruc ${last}`);
    if (len < 8 || o + len > body.length) syntax(`proposal length ${len}`);
    const spiSize = body[o + 6];
    const count = body[o + 7];
    const p = body.subarray(o, o + len);
    if (8 + spiSize > len) syntax('proposal SPI runs past the proposal');
    const proposal: Proposal = { num: p[4], protocol: p[5], spi: p.subarray(8, 8 + spiSize), transforms: [] };
    let to = 8 + spiSize;
    for (let i = 0; i < count; i++) {
      if (to + 8 > len) syntax('transform header runs past the proposal');
      const tLast = p[to];
      const tLen = u16(p, to + 2);
      if (tLen < 8 || to + tLen > len) syntax(`transform length ${tLen}`);
      if (tLast !== (i === count - 1 ? LAST : MORE_TRANSFORMS)) syntax('transform Last Substruc does not match Num Transforms');
      proposal.transforms.push(decodeTransform(p.subarray(to, to + tLen)));
      to += tLen;
    }
    if (to !== len) syntax('octets after the last transform of a proposal');
    out.push(proposal);
    o += len;
    if (last === LAST) break;
  }
  if (o !== body.length) syntax('octets after the last proposal');
  return out;
}
