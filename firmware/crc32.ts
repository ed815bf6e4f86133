/**
 * CRC-32 as used by IEEE 802.3, zlib and PNG (reflected polynomial 0xEDB88320, initial value and final
 * XOR 0xFFFFFFFF). Check value: crc32("123456789") = 0xCBF43926 (the "CRC-32" entry of the Rocksoft /
 * reveng catalogue). Table-driven, one byte per step: the EEPROM image checks a few KiB at boot, so the
 * 1 KiB table is the right trade.
 */

const TABLE: Uint32Array = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * CRC-32 of `data`. Pass the result of a previous call as `crc` to continue over more bytes:
 * crc32(b, crc32(a)) === crc32(a || b).
 */
export function crc32(data: Uint8Array, crc = 0): number {
  if (!(data instanceof Uint8Array)) throw new TypeError('expected Uint8Array, got ' + typeof data);
  if (!Number.isInteger(crc) || crc < 0 || crc > 0xffffffff) throw new RangeError('expected a 32-bit crc, got ' + crc);
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
