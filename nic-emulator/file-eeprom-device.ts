/**
 * An EepromDevice backed by one file per NIC (DESIGN §3). Reads and writes are positional and synchronous:
 * the firmware writes rarely (a checkpoint per K packets, a few pages per refresh), and a synchronous write
 * means an acknowledged packet is never ahead of its checkpoint on disk.
 *
 * Fault injection for the lab: `tearNextWrite(atByte)` makes the next write stop after `atByte` bytes, as if
 * mains power were lost mid-write; the NIC then goes down and boots again from the file.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync, fsyncSync } from 'node:fs';
import type { EepromDevice } from '../firmware/eeprom-device.js';
import { TornWriteError } from '../firmware/eeprom-device.js';
import { LifelineError } from '../firmware/errors.js';

export class FileEepromDevice implements EepromDevice {
  readonly size: number;
  readonly path: string;
  private fd: number;
  private tearAt: number | null = null;
  /** fsync after each write: off by default in the lab (the page cache survives a killed process). */
  durable = false;

  private constructor(path: string, fd: number, size: number) {
    this.path = path;
    this.fd = fd;
    this.size = size;
  }

  /** Open an existing image file. Its size is checked by the image loader (E_EEPROM_SIZE). */
  static open(path: string): FileEepromDevice {
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (e) {
      throw new LifelineError('E_EEPROM_IO', `cannot open EEPROM file ${path}: ${(e as Error).message}`);
    }
    return new FileEepromDevice(path, fd, fstatSync(fd).size);
  }

  /** Create a new, blank (0xFF, like an erased part) image file of `size` bytes; fails if it exists. */
  static create(path: string, size: number): FileEepromDevice {
    let fd: number;
    try {
      fd = openSync(path, 'wx+');
    } catch (e) {
      throw new LifelineError('E_EEPROM_IO', `cannot create EEPROM file ${path}: ${(e as Error).message}`);
    }
    writeSync(fd, new Uint8Array(size).fill(0xff), 0, size, 0);
    return new FileEepromDevice(path, fd, size);
  }

  read(offset: number, length: number): Uint8Array {
    this.bounds(offset, length);
    const out = new Uint8Array(length);
    readSync(this.fd, out, 0, length, offset);
    return out;
  }

  write(offset: number, bytes: Uint8Array): void {
    this.bounds(offset, bytes.length);
    if (this.tearAt !== null) {
      const n = Math.min(this.tearAt, bytes.length);
      this.tearAt = null;
      if (n > 0) writeSync(this.fd, bytes, 0, n, offset);
      throw new TornWriteError(`power lost after ${n} of ${bytes.length} bytes at offset ${offset} of ${this.path}`);
    }
    writeSync(this.fd, bytes, 0, bytes.length, offset);
    if (this.durable) fsyncSync(this.fd);
  }

  /** Fault injection: the next write() is torn after `atByte` bytes. */
  tearNextWrite(atByte: number): void {
    if (!Number.isInteger(atByte) || atByte < 0) throw new RangeError('expected integer >= 0, got ' + atByte);
    this.tearAt = atByte;
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      /* already closed */
    }
  }

  private bounds(offset: number, length: number): void {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new LifelineError('E_EEPROM_IO', `access ${offset}+${length} outside ${this.path} (${this.size} bytes)`);
    }
  }
}
