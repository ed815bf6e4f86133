/** Small byte helpers shared by the codecs. Big-endian (network order) throughout. */

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

export function fromHex(s: string): Uint8Array {
  const clean = s.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (clean.length % 2 !== 0 || /[^0-9a-f]/i.test(clean)) {
    throw new RangeError('expected an even-length hex string, got ' + JSON.stringify(s));
  }
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

/**
 * b[start, end) as a plain Uint8Array over the same memory. Cheaper than subarray() on the per-packet path:
 * no species lookup, and for a Buffer no FastBuffer construction. For received datagrams (Buffers): a small
 * Uint8Array made in JS lives on V8's heap, and any view of it first moves it out (slice() is cheaper there).
 */
export function view(b: Uint8Array, start: number, end: number = b.length): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset + start, end - start);
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function u16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function u64(b: Uint8Array, o: number): bigint {
  return (BigInt(u32(b, o)) << 32n) | BigInt(u32(b, o + 4));
}

export function putU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

export function putU32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

export function putU64(b: Uint8Array, o: number, v: bigint): void {
  putU32(b, o, high32(v));
  putU32(b, o + 4, low32(v));
}

/**
 * Up to here (2^53 - 1) a bigint is exact as a JS number. Per-packet code converts sequence numbers below it once
 * and does number arithmetic: every BigInt operation's result is a new heap object.
 */
export const MAX_SAFE_BIGINT = BigInt(Number.MAX_SAFE_INTEGER);

/** The low 32 bits of a 64-bit sequence number. */
export function low32(v: bigint): number {
  return v <= MAX_SAFE_BIGINT ? Number(v) % 0x1_0000_0000 : Number(v & 0xffffffffn);
}

/** The high 32 bits of a 64-bit sequence number (what ESN keeps out of the packet). */
export function high32(v: bigint): number {
  return v <= MAX_SAFE_BIGINT ? Math.floor(Number(v) / 0x1_0000_0000) : Number((v >> 32n) & 0xffffffffn);
}

/** Constant-time equality for MACs and tags. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}
