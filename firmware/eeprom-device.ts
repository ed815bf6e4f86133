/**
 * The storage under an EEPROM image (DESIGN §3): a byte-addressed part of fixed size. The firmware is
 * pure, so storage is passed in; the emulator backs it with one file per NIC, tests with memory.
 *
 * The image layer (eeprom-image.ts) issues one write() per page, page-aligned, the way a 24C256 takes
 * one page per write cycle, so "a write torn at byte n" is "power lost n bytes into a page write".
 */
import { UsageError } from '../common/errors.js';

export interface EepromDevice {
  readonly size: number;
  /** `length` bytes at `offset`: a copy, or a view valid until the next write (FileEepromDevice at boot); a caller copies what it keeps. */
  read(offset: number, length: number): Uint8Array;
  /** Store `bytes` at `offset`. May throw (I/O error, power lost); bytes before the failure may be stored. */
  write(offset: number, bytes: Uint8Array): void;
}

/** Value of an erased EEPROM cell: a fresh part reads all 0xFF. */
export const ERASED = 0xff;

function checkAccess(size: number, offset: number, length: number): void {
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    throw new UsageError('E_EEPROM_IO', `EEPROM access ${offset}+${length} is outside the ${size}-byte part`);
  }
}

/** An EEPROM in memory. `image` is the live content, for tests to inspect or corrupt. */
export class MemoryEepromDevice implements EepromDevice {
  readonly size: number;
  readonly image: Uint8Array;

  /** A blank (all 0xFF) part of `size` bytes, or a copy of an existing image. */
  constructor(sizeOrImage: number | Uint8Array) {
    if (typeof sizeOrImage === 'number') {
      if (!Number.isInteger(sizeOrImage) || sizeOrImage < 0) throw new RangeError('expected integer size >= 0, got ' + sizeOrImage);
      this.image = new Uint8Array(sizeOrImage).fill(ERASED);
    } else {
      this.image = Uint8Array.from(sizeOrImage);
    }
    this.size = this.image.length;
  }

  read(offset: number, length: number): Uint8Array {
    checkAccess(this.size, offset, length);
    return this.image.slice(offset, offset + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    checkAccess(this.size, offset, bytes.length);
    this.image.set(bytes, offset);
  }
}

/** Power was lost in the middle of a write (injected by a test double or the lab). */
export class TornWriteError extends Error {
  readonly code = 'E_EEPROM_TORN';
  constructor(message: string) {
    super(message);
    this.name = 'TornWriteError';
  }
}

export interface TearPoint {
  /** Which write() call tears, counted from 0 since the device was made. */
  atWrite: number;
  /** How many bytes of that call reach the part before power goes (0 .. length; >= length = all of them). */
  atByte: number;
}

/**
 * Test double: a MemoryEepromDevice whose write number `atWrite` stores only its first `atByte` bytes
 * and throws TornWriteError. Power then stays off: every later write throws and stores nothing, so the
 * image is exactly what a part would hold after the loss. Reads keep working (for the next boot).
 */
export class TearingEepromDevice implements EepromDevice {
  readonly size: number;
  readonly image: Uint8Array;
  readonly tear: TearPoint;
  /** write() calls so far, including the torn one and any refused after it. */
  writes = 0;
  /** True once power was lost. */
  torn = false;

  constructor(sizeOrImage: number | Uint8Array, tear: TearPoint) {
    if (!Number.isInteger(tear.atWrite) || tear.atWrite < 0) throw new RangeError('expected atWrite integer >= 0, got ' + tear.atWrite);
    if (!Number.isInteger(tear.atByte) || tear.atByte < 0) throw new RangeError('expected atByte integer >= 0, got ' + tear.atByte);
    this.image = new MemoryEepromDevice(sizeOrImage).image;
    this.size = this.image.length;
    this.tear = { ...tear };
  }

  read(offset: number, length: number): Uint8Array {
    checkAccess(this.size, offset, length);
    return this.image.slice(offset, offset + length);
  }

  write(offset: number, bytes: Uint8Array): void {
    checkAccess(this.size, offset, bytes.length);
    const n = this.writes++;
    if (this.torn) throw new TornWriteError(`power is off: write #${n} at offset ${offset} not stored`);
    if (n === this.tear.atWrite) {
      this.torn = true;
      const kept = Math.min(this.tear.atByte, bytes.length);
      this.image.set(bytes.subarray(0, kept), offset);
      throw new TornWriteError(`power lost after ${kept} of ${bytes.length} bytes of write #${n} at offset ${offset}`);
    }
    this.image.set(bytes, offset);
  }
}
