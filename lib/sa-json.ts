/** SaPair <-> JSON (keys as hex) for the control API and state files. Validates every field on the way in. */
import type { SaDirection, SaPair, EspTransform, SecurityPolicy } from '../wire/sa.js';
import { fromHex, hex } from '../common/bytes.js';
import { UsageError } from '../common/errors.js';

export interface SaDirectionJson { spi: number; encKey: string; ahSpi: number; ahKey: string }
export interface SaPairJson { generation: number; transform: EspTransform; esn: boolean; policy: SecurityPolicy; origin: 'ike' | 'manual'; toNic: SaDirectionJson; fromNic: SaDirectionJson }

export function saToJson(sa: SaPair): SaPairJson {
  const d = (x: SaDirection): SaDirectionJson => ({ spi: x.spi, encKey: hex(x.encKey), ahSpi: x.ahSpi, ahKey: hex(x.ahKey) });
  return { generation: sa.generation, transform: sa.transform, esn: sa.esn, policy: sa.policy, origin: sa.origin, toNic: d(sa.toNic), fromNic: d(sa.fromNic) };
}

function bad(what: string): never {
  throw new UsageError('E_USAGE', `invalid SA: ${what}`);
}

/**
 * Key material given as hex in a JSON request (`field` names it in the error); anything else, or bad hex, is
 * E_USAGE. The value itself is never echoed: it is a secret.
 */
export function hexField(v: unknown, field: string): Uint8Array {
  if (typeof v !== 'string') throw new UsageError('E_USAGE', `${field} must be a hex string, got ${v === null ? 'null' : typeof v}`);
  try {
    return fromHex(v);
  } catch {
    throw new UsageError('E_USAGE', `${field} must be an even number of hex digits`);
  }
}

/** An SA key (absent = no key), as hexField. */
function hexKey(v: unknown, field: string): Uint8Array {
  if (v === undefined || v === null) return new Uint8Array(0);
  try {
    return hexField(v, field);
  } catch (e) {
    return bad((e as Error).message);
  }
}

export function saFromJson(j: unknown): SaPair {
  if (typeof j !== 'object' || j === null) bad('expected an object');
  const o = j as Record<string, unknown>;
  const transform = o.transform;
  if (transform !== 'aes-gcm-16' && transform !== 'chacha20-poly1305') bad(`transform ${JSON.stringify(transform) ?? 'missing'} (aes-gcm-16 or chacha20-poly1305)`);
  const policy = o.policy;
  if (policy !== 'esp' && policy !== 'esp+ah') bad(`policy ${JSON.stringify(policy) ?? 'missing'} (esp or esp+ah)`);
  const keyLens = transform === 'aes-gcm-16' ? [20, 36] : [36];
  const dir = (x: unknown, name: string): SaDirection => {
    if (typeof x !== 'object' || x === null) bad(`${name} missing`);
    const d = x as Record<string, unknown>;
    const spi = d.spi;
    if (typeof spi !== 'number' || !Number.isInteger(spi) || spi < 256 || spi >= 0xffffffff) bad(`${name}.spi must be 256..0xfffffffe`);
    const encKey = hexKey(d.encKey, `${name}.encKey`);
    if (!keyLens.includes(encKey.length)) bad(`${name}.encKey must be ${keyLens.join(' or ')} bytes (key || 4-byte salt)`);
    const ahKey = hexKey(d.ahKey, `${name}.ahKey`);
    const ahSpi = d.ahSpi ?? 0;
    if (typeof ahSpi !== 'number') bad(`${name}.ahSpi must be a number`);
    if (policy === 'esp+ah' && (ahKey.length !== 32 || !Number.isInteger(ahSpi) || ahSpi < 256 || ahSpi >= 0xffffffff)) bad(`${name}: esp+ah needs ahSpi 256..0xfffffffe and a 32-byte ahKey`);
    return { spi, encKey, ahSpi: policy === 'esp+ah' ? ahSpi : 0, ahKey: policy === 'esp+ah' ? ahKey : new Uint8Array(0) };
  };
  const generation = o.generation ?? 0;
  if (typeof generation !== 'number' || !Number.isInteger(generation) || generation < 0) bad('generation must be a whole number');
  const toNic = dir(o.toNic, 'toNic');
  const fromNic = dir(o.fromNic, 'fromNic');
  // An SPI shared by the two directions would let a packet the NIC sent, reflected back to it, be looked up under
  // this same SA. (ESP and AH of one direction may share an SPI, as IKE-negotiated SAs do: protocol/ike/child-sa.ts.)
  const inbound = policy === 'esp+ah' ? [toNic.spi, toNic.ahSpi] : [toNic.spi];
  const outbound = policy === 'esp+ah' ? [fromNic.spi, fromNic.ahSpi] : [fromNic.spi];
  const shared = inbound.find((spi) => outbound.includes(spi));
  if (shared !== undefined) bad(`SPI ${shared} is used toward the NIC and from it; the two directions need different SPIs`);
  return {
    generation,
    transform,
    esn: o.esn === true,
    policy,
    origin: o.origin === 'ike' ? 'ike' : 'manual',
    toNic,
    fromNic,
  };
}
